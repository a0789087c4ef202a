"""FLOPs per request: the lazy decoder next to a standard decoder-only model of the same size.

OneRec-V2's argument for the lazy decoder: in a decoder-only recommender almost all compute goes
into the user context (hundreds of history tokens through every layer), little into the few target
tokens that are the actual output.  For a few history lengths this prints the analytic matmul FLOPs
of one teacher-forced request (:func:`recif_bench.recommenders.lazy_decoder.request_flops`, the formula in the
module docstring), split into context encoding and target decoding, for both architectures, and
checks each total against ``torch.utils.flop_counter.FlopCounterMode`` on the real modules.

    python benchmarks/lazy_decoder_flops.py [--config configs/train/lazy_decoder_mini.yaml]
        [--histories 16,64,256,1024] [--sid 4x256] [--no-check]
"""

from __future__ import annotations

import argparse

from recif_bench import sid
from trainers.common.config import load
from recif_bench.recommenders.lazy_decoder import DenseDecoderOnly, LazyDecoder, LazyDecoderConfig, measured_flops, request_flops


def mflops(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/train/lazy_decoder_mini.yaml", help="a lazy-decoder training config")
    p.add_argument("--histories", default="16,64,256,1024", help="context lengths in history items")
    p.add_argument("--sid", default=None, help="SID shape LEVELSxCODEBOOK (default: the config's data.sid_levels / "
                                                 "data.sid_codebook, else 3x256)")
    p.add_argument("--no-check", action="store_true", help="skip the FlopCounterMode measurement")
    args = p.parse_args()
    config = load(args.config)
    data = config.get("data", {})
    levels, codebook = (args.sid or f"{data.get('sid_levels', 3)}x{data.get('sid_codebook', 256)}").split("x")
    fmt = sid.SidFormat(int(levels), int(codebook))
    histories = [int(h) for h in args.histories.split(",")]
    model = LazyDecoderConfig.from_dict({**config.get("model", {}), "max_history": max(histories + [1])})
    lazy, dense = LazyDecoder(fmt, model), DenseDecoderOnly(fmt, model)
    print(f"{args.config}: d_model {model.d_model}, {model.layers} layers, {model.heads} query heads / "
          f"{model.kv_heads} K/V heads, {model.kv_groups} K/V set(s), FFN {model.d_ff}, "
          f"SID {fmt.levels} x {fmt.codebook_size}; parameters: lazy {sum(q.numel() for q in lazy.parameters()):,}, "
          f"standard {sum(q.numel() for q in dense.parameters()):,}")
    print("MFLOPs per request (one teacher-forced pass: history items + user token, then BOS + the SID codes); "
          "ctx% = share spent on the context")
    head = (f"{'history':>7} | {'lazy ctx':>9} {'lazy tgt':>9} {'lazy':>9} {'ctx%':>5} | {'std ctx':>9} {'std tgt':>9} "
            f"{'std':>9} {'ctx%':>5} | {'std/lazy':>8} | {'FlopCounter':>11}")
    print(head)
    print("-" * len(head))
    for n in histories:
        f = request_flops(model, fmt, n)
        lazy_total, dense_total = f["lazy_context"] + f["lazy_target"], f["dense_context"] + f["dense_target"]
        check = "skipped"
        if not args.no_check:
            same = measured_flops(lazy, n) == lazy_total and measured_flops(dense, n) == dense_total
            check = "= analytic" if same else "DIFFERS"
        print(f"{n:>7} | {mflops(f['lazy_context']):>9} {mflops(f['lazy_target']):>9} {mflops(lazy_total):>9} "
              f"{100 * f['lazy_context'] / lazy_total:>4.0f}% | {mflops(f['dense_context']):>9} "
              f"{mflops(f['dense_target']):>9} {mflops(dense_total):>9} {100 * f['dense_context'] / dense_total:>4.0f}% | "
              f"{dense_total / lazy_total:>7.1f}x | {check:>11}")


if __name__ == "__main__":
    main()
