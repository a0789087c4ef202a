"""Harness overhead over the bare model calls it must make, on a tiny model (target: at most 10%).

"Bare" = the same prompts through ``model.generate`` (beam 32 -> 32, 3 new tokens, same batch
size) and one forward per label_pred prompt, with nothing around them.  "Harness" =
``recif_bench.evaluate.evaluate`` on the same tasks and rows and the same loaded model: data
validation, lm-eval task building, request handling, the resume store, scoring and writing the run
directory.  Imports and model loading are excluded from both.

    python benchmarks/harness_overhead.py [--limit 400] [--model DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from recif_bench import chat
from recif_bench.data import mini
from recif_bench.data.reader import load_task
from recif_bench.evaluate import evaluate
from recif_bench.models.hf import HFRecLM
from recif_bench.models.tiny import build_tiny_qwen3
from recif_bench.settings import EvalSettings, Model

BATCH = 8


def bare_seconds(lm: HFRecLM, data_dir: Path, limit: int) -> float:
    video, _ = load_task(data_dir, "video", limit=limit)
    labels, _ = load_task(data_dir, "label_pred", limit=limit)
    rec_prompts = [chat.render(s.messages, False) + "<|sid_begin|>" for s in video]
    label_prompts = [chat.render(s.messages, False) for s in labels]
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(rec_prompts), BATCH):
            ids, mask = lm._encode(rec_prompts[i:i + BATCH])
            lm.model.generate(input_ids=ids, attention_mask=mask, num_beams=32, num_return_sequences=32,
                              max_new_tokens=3, do_sample=False, early_stopping=True,
                              pad_token_id=lm.tokenizer.pad_token_id)
        for prompt in label_prompts:
            lm.model(input_ids=torch.tensor([lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--model", default=None, help="model folder (default: a tiny Qwen3 built now)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else build_tiny_qwen3(Path(tmp) / "tiny")
        data_dir = mini.generate(Path(tmp) / "mini", seed=0)
        torch.set_num_threads(torch.get_num_threads())
        lm = HFRecLM(pretrained=str(model_dir), batch_size=BATCH)
        bare_seconds(lm, data_dir, 8)                      # warm-up: kernels, caches
        bare = bare_seconds(lm, data_dir, args.limit)
        settings = EvalSettings(data_dir=data_dir, limit=args.limit, output=Path(tmp) / "run")
        start = time.perf_counter()
        evaluate(Model(str(model_dir), "hf", lm=lm), "video,label_pred", settings)
        total = time.perf_counter() - start
    print(f"bare model calls: {bare:.2f} s")
    print(f"evaluate():       {total:.2f} s")
    print(f"harness overhead: {100 * (total - bare) / bare:.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()
