"""Stage-2 training throughput on a tiny model, with and without packing (target: >= 0.9 useful share packed).

Useful tokens = tokens of real samples; the padded run also computes pad tokens (right padding to
the longest sample of each batch), the packed run none (padding-free packs with restarting
position ids).  Prints tokens/s of useful tokens and the padding share of each.

    python benchmarks/train_throughput.py [--steps 20] [--batch 8] [--max-length 1024]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from recif_bench.data import mini, training
from recif_bench.models.tiny import build_tiny_qwen3
from trainers.common import collate, samples, trainer


def measure(model_dir: Path, data: list[samples.Sample], packing: bool, batch: int, max_length: int,
            steps: int) -> tuple[float, float]:
    model, tokenizer = trainer.load_model(model_dir)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = random.Random(0)
    order = data[:]
    rng.shuffle(order)
    items, collator = collate.batches(order, packing, max_length, tokenizer.pad_token_id)
    per_step = 1 if packing else batch
    useful = computed = 0
    start = None
    for step in range(steps + 1):
        chunk = items[step * per_step:(step + 1) * per_step]
        if not chunk:
            break
        if step == 1:
            start, useful, computed = time.perf_counter(), 0, 0   # step 0 is warm-up
        features = collator(chunk)
        useful += sum(len(s) for p in (chunk if packing else [chunk]) for s in p)
        computed += features["input_ids"].numel()
        loss = model(**features, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    elapsed = time.perf_counter() - start
    return useful / elapsed, 1 - useful / computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="samples per step without packing")
    parser.add_argument("--max-length", type=int, default=1024, help="tokens per pack")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = mini.generate(tmp / "mini", seed=0, scale=0.3)
        model_dir = build_tiny_qwen3(tmp / "model")
        _, tokenizer = trainer.load_model(model_dir)
        rows = training.build_all(world / "raw", fmt=mini.FORMAT)
        data = samples.tokenize_all(tokenizer, rows["pretrain_video_rec"] + rows["pretrain_item_understand"],
                                    args.max_length)
        print(f"stage-2 data: {len(data)} samples, mean {sum(map(len, data)) / len(data):.0f} tokens; "
              f"torch threads {torch.get_num_threads()}")
        print(f"{'mode':<10} {'useful tokens/s':>16} {'padding share':>14} {'useful share':>13}")
        for packing in (False, True):
            rate, pad = measure(model_dir, data, packing, args.batch, args.max_length, args.steps)
            print(f"{'packed' if packing else 'padded':<10} {rate:>16.0f} {pad:>14.3f} {1 - pad:>13.3f}")


if __name__ == "__main__":
    main()
