"""Scoring alone at full RecIF-Bench size: our scorer beside the reference's algorithm, paired.

Synthetic generation outputs of the full benchmark (spec recif_bench_eval §0): 38,781 + 27,677 +
27,910 + 34,891 + 1,000 rec samples x 32 beams (drawn from a Zipf-popular catalogue, ~2 % malformed,
1-10 targets each), a ``sid2pid.json`` of 432,709 SIDs with item collisions (product: a
``sid2iid.json`` of the same size), and 346,190 label_pred samples over 30,000 users.

* ours: what ``recif-eval`` / lm-eval run: the rec tasks' filter (``harness.score_rec_corpus``),
  ``process_rec`` per document and lm-eval's mean per metric; label_pred: ``process_label_pred`` per
  document, then the AUC and wuAUC aggregations; each mapping file is read once per run.  Twice:
  ``ours-cold`` with an empty cache (the mapping files parsed), ``ours`` with the arrays the first
  run left in the cache (``recif_bench.sid_map_cache``: what every later evaluation on the same
  benchmark files does, and what scoring does the first time too: ``recif-eval``'s data check and
  lm-eval's task building (``harness.load_docs``) read the mapping files before generation).  Both
  run under ``gc_tuning.batch_gc`` as ``recif-eval`` and ``recif-lm-eval`` run lm-eval (the
  reference runs with Python's default collector settings).
* reference: its algorithm re-expressed from spec §3.1-3.2 (not its code): per sample and
  candidate the SID extraction and the regex PID lookup in the json-loaded mapping, list / set
  metrics, label_pred's JSON probabilities and sklearn's AUC.  It reads the mapping file once per
  rec task, as the official run does (spec §0: ``eval_script.sh`` runs ``evaluate.py`` once per
  task, each process scoring its task), and writes nothing (the reference also merges per-sample
  metrics into the generation files and writes debug files: left out, so this is a lower bound).

Each side runs in a fresh process on the same files, alternating (``--repeat``); the time and the
memory are those of scoring only (after the outputs are read and the libraries imported): wall,
CPU, and the peak resident memory above the loaded outputs.

    python benchmarks/scoring_speed.py --full [--repeat 3]
    python benchmarks/scoring_speed.py --scale 0.1          # a tenth of the size, for a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from recif_bench import harness
from recif_bench.gc_tuning import batch_gc
from recif_bench.paths import CACHE_ENV

REC_SIZES = {"video": 38_781, "ad": 27_677, "product": 27_910, "label_cond": 34_891, "interactive": 1_000}
MAPPING = {"product": "sid2iid.json"}          # the other rec tasks read sid2pid.json
LABEL_PRED_SIZE, USERS, SIDS, K, CODEBOOK = 346_190, 30_000, 432_709, 32, 8192
KS = (1, 32)
SIDES = ("ours-cold", "ours", "reference")


# ------------------------------------------------------------------------------------ inputs

def write_inputs(folder: Path, scale: float, seed: int = 0) -> None:
    """Mapping files and generation outputs as JSON, as a finished generation run leaves them."""
    rng = np.random.default_rng(seed)
    n_sids = max(int(SIDS * scale), 1000)
    packed = rng.choice(CODEBOOK ** 3, size=n_sids, replace=False)
    bodies = [f"<s_a_{p // CODEBOOK ** 2}><s_b_{p // CODEBOOK % CODEBOOK}><s_c_{p % CODEBOOK}>" for p in packed.tolist()]
    first_item = {}
    for name, id_key in (("sid2pid.json", "pid"), ("sid2iid.json", "iid")):
        per_sid = 1 + rng.poisson(0.6, n_sids)          # collisions: 1.6 items per SID on average
        item_ids = rng.permutation(int(per_sid.sum())) + 1
        counts, after = rng.integers(1, 200, len(item_ids)), rng.integers(0, 6, len(item_ids))  # many ties
        mapping, start = {}, 0
        for key, n in zip(packed.tolist(), per_sid.tolist()):
            rows = sorted(zip(item_ids[start:start + n].tolist(), counts[start:start + n].tolist(),
                              after[start:start + n].tolist()), key=lambda r: -r[1])
            mapping[str(key)] = [{id_key: i, "count": c, "count_after_downsample": a} for i, c, a in rows]
            start += n
        (folder / name).write_text(json.dumps(mapping))
        first_item[name] = item_ids[np.concatenate([[0], np.cumsum(per_sid)[:-1]])]
    popularity = 1.0 / (np.arange(n_sids) + 10.0) ** 0.9
    popularity /= popularity.sum()
    for task, size in REC_SIZES.items():
        n = max(int(size * scale), 10)
        beams = rng.choice(n_sids, size=(n, K), p=popularity)
        broken = rng.random((n, K)) < 0.02
        n_targets = rng.integers(1, 11, n)
        targets = rng.choice(n_sids, size=int(n_targets.sum()), p=popularity)
        items = first_item[MAPPING.get(task, "sid2pid.json")]
        samples, start = [], 0
        for row, bad, m in zip(beams.tolist(), broken.tolist(), n_targets.tolist()):
            gens = [bodies[b][:14] if flag else bodies[b] for b, flag in zip(row, bad)]
            goal = targets[start:start + m].tolist()
            start += m
            samples.append({"generations": gens,
                            "ground_truth": "".join(f"<|sid_begin|>{bodies[t]}<|sid_end|>" for t in goal),
                            "answer_pid": [int(items[t]) if rng.random() > 0.05 else 0 for t in goal]})
        (folder / f"{task}.json").write_text(json.dumps(samples))
    n = max(int(LABEL_PRED_SIZE * scale), 100)
    p_yes, p_no = rng.uniform(0.01, 0.99, n), rng.uniform(0.01, 0.99, n)
    labels, users = rng.integers(0, 2, n), rng.integers(0, max(int(USERS * scale), 10), n)
    (folder / "label_pred.json").write_text(json.dumps({
        "p_yes": p_yes.tolist(), "p_no": p_no.tolist(), "label": labels.tolist(), "uid": users.astype(str).tolist()}))


# ------------------------------------------------------------------------------------ ours

def lm_eval_inputs(folder: Path, outputs: dict) -> dict:
    """What lm-eval holds when it scores: documents as ``harness.load_docs`` builds them, responses."""
    rec = {}
    for task, samples in outputs["rec"].items():
        mapping = str(folder / MAPPING.get(task, "sid2pid.json"))
        docs = [{"task": task, "answer": s["ground_truth"], "answer_ids": s["answer_pid"], "mapping": mapping, "seed": 0,
                 "sid_levels": 3, "sid_codebook": CODEBOOK, "sid_strategy": "most_popular_after_downsampling"}
                for s in samples]
        rec[task] = (docs, [[s["generations"]] for s in samples])
    lp = outputs["label_pred"]
    label_pred = [({"label": y, "uid": u}, [(math.log(a), False), (math.log(b), False)])
                  for a, b, y, u in zip(lp["p_yes"], lp["p_no"], lp["label"], lp["uid"])]
    return {"rec": rec, "label_pred": label_pred}


def score_ours(folder: Path, inputs: dict) -> dict[str, float]:
    corpus = {}
    for task, (docs, resps) in inputs["rec"].items():
        rows = harness.score_rec_corpus(resps, docs)
        per_doc = [harness.process_rec(doc, [row]) for doc, row in zip(docs, rows)]
        for metric in per_doc[0]:                       # lm-eval's mean aggregation
            corpus[f"{task}/{metric}"] = sum(r[metric] for r in per_doc) / len(per_doc)
    items = [harness.process_label_pred(doc, results) for doc, results in inputs["label_pred"]]
    corpus["label_pred/auc"] = harness.agg_auc([i["auc"] for i in items])
    corpus["label_pred/wuauc"] = harness.agg_wuauc([i["wuauc"] for i in items])
    return corpus


# ------------------------------------------------------------------------------------ the reference's algorithm

_PID_PATTERN = re.compile(r"<s_a_(\d+)><s_b_(\d+)><s_c_(\d+)>")


def _after_think(text: str) -> str:
    text = text.strip()
    return text.rsplit("</think>", 1)[1].strip() if "</think>" in text else text


def _reference_sid(generation: str) -> str:
    text = _after_think(generation)
    if "<|sid_begin|>" not in text:
        return text
    for piece in text.split("<|sid_begin|>")[1:]:
        body = piece.split("<|sid_end|>", 1)[0].strip() if "<|sid_end|>" in piece else piece.strip()
        if body:
            return body
    return ""


def _reference_pid(generation: str, mapping: dict) -> int:
    match = _PID_PATTERN.search(_after_think(generation))
    if not match:
        return 0
    a, b, c = map(int, match.groups())
    items = mapping.get(str(a * 8192 * 8192 + b * 8192 + c))
    if not items:
        return 0
    best = max(item["count_after_downsample"] for item in items)
    chosen = random.choice([item for item in items if item["count_after_downsample"] == best])
    return chosen.get("pid", chosen.get("iid", 0))


def _reference_metrics(preds: list, truth: list, miss: object) -> dict[str, float]:
    out = {}
    for k in KS:
        top = preds[:k]
        out[f"pass@{k}"] = float(any(p != miss and p in truth for p in top))
        out[f"position1_pass@{k}"] = float(bool(truth) and truth[0] in top)
        out[f"recall@{k}"] = len(set(p for p in top if p != miss) & set(truth)) / len(truth) if truth else 0.0
    return out


def score_reference(folder: Path, outputs: dict) -> dict[str, float]:
    corpus = {}
    for task, samples in outputs["rec"].items():
        with open(folder / MAPPING.get(task, "sid2pid.json"), encoding="utf-8") as fh:
            mapping = json.load(fh)                      # one evaluate.py process per task
        totals = {}
        for sample in samples:
            truth = list(dict.fromkeys(b.split("<|sid_end|>", 1)[0].strip()
                                       for b in sample["ground_truth"].split("<|sid_begin|>")[1:] if "<|sid_end|>" in b))
            row = _reference_metrics([_reference_sid(g) for g in sample["generations"]], truth, "")
            pids = list(dict.fromkeys(p for p in sample["answer_pid"] if p != 0))
            row.update({f"pid_{k}": v for k, v in _reference_metrics(
                [_reference_pid(g, mapping) for g in sample["generations"]], pids, 0).items()})
            sample["metrics"] = row
            for key, value in row.items():
                totals[key] = totals.get(key, 0.0) + value
        del mapping
        for metric in ("pass@32", "recall@32", "pid_pass@32", "pid_recall@32"):
            corpus[f"{task}/{metric}"] = totals[metric] / len(samples)
    lp = outputs["label_pred"]
    scores, labels = [], []
    for a, b, y in zip(lp["p_yes"], lp["p_no"], lp["label"]):
        probs = json.loads(_after_think(json.dumps({"是": a, "否": b}, ensure_ascii=False)))
        scores.append(probs["是"] / (probs["是"] + probs["否"]))
        labels.append(1 if "是" in ("是" if y else "否") else 0)
    corpus["label_pred/auc"] = float(roc_auc_score(labels, scores))
    return corpus


# ------------------------------------------------------------------------------------ measuring

def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(side: str, folder: Path) -> dict:
    """One side in this (fresh) process: seconds and memory of scoring alone."""
    import gc

    outputs = {"rec": {t: json.loads((folder / f"{t}.json").read_text()) for t in REC_SIZES},
               "label_pred": json.loads((folder / "label_pred.json").read_text())}
    if side.startswith("ours"):
        outputs = lm_eval_inputs(folder, outputs)
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")   # resets the peak RSS (Linux), so it covers scoring only
    except OSError:
        pass
    before = _status_kb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    if side.startswith("ours"):
        with batch_gc():                                 # as recif-eval and recif-lm-eval run lm-eval
            corpus = score_ours(folder, outputs)
    else:
        corpus = score_reference(folder, outputs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"side": side, "wall_s": wall, "cpu_s": cpu, "extra_peak_mb": (_status_kb("VmHWM") - before) / 1024,
            "corpus": corpus}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full benchmark size (same as --scale 1)")
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of the full size (default 0.1)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="paired runs: ours-cold, ours, reference, ... (best of them reported, as timeit)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.side, args.inputs)))
        return
    scale = 1.0 if args.full else args.scale
    with tempfile.TemporaryDirectory(prefix="recif-scoring-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        write_inputs(folder, scale)
        n_rec = sum(len(json.loads((folder / f"{t}.json").read_text())) for t in REC_SIZES)
        print(f"inputs (scale {scale:g}): {n_rec:,} rec samples x {K} candidates, "
              f"{len(json.loads((folder / 'sid2pid.json').read_text())):,} SIDs per mapping file, "
              f"label_pred {max(int(LABEL_PRED_SIZE * scale), 100):,} samples; "
              f"written in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"{'run':<4} {'side':<10} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}", flush=True)
        results: dict[str, list[dict]] = {side: [] for side in SIDES}
        for run in range(args.repeat):
            cache = folder / f"cache-{run}"                 # empty for ours-cold, then left for ours
            for side in SIDES:
                done = subprocess.run([sys.executable, __file__, "--side", side, "--inputs", str(folder)],
                                      check=True, capture_output=True, text=True,
                                      env={**os.environ, CACHE_ENV: str(cache)})
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[side].append(result)
                print(f"{run + 1:<4} {side:<10} {result['wall_s']:>8.2f} {result['cpu_s']:>8.2f} "
                      f"{result['extra_peak_mb']:>8.0f}", flush=True)
    report(results, args.repeat)


def report(results: dict[str, list[dict]], repeat: int) -> None:
    ref = results["reference"]
    gaps = {"SID": [], "pid_": [], "auc": []}
    for key, want in ref[0]["corpus"].items():
        group = "auc" if key.startswith("label_pred") else "pid_" if "/pid_" in key else "SID"
        gaps[group].append(max(abs(r["corpus"][key] - want) for side in SIDES[:2] for r in results[side]))
    print("agreement, max |ours - reference| over the shared corpus metrics: "
          + ", ".join(f"{group} {max(values):.1e}" for group, values in gaps.items())
          + " (pid_ differs by the reference's unseeded tie-breaks, B5)")
    best = {side: min(r["wall_s"] for r in rs) for side, rs in results.items()}
    best_cpu = {side: min(r["cpu_s"] for r in rs) for side, rs in results.items()}
    peak = {side: max(r["extra_peak_mb"] for r in rs) for side, rs in results.items()}
    print(f"scoring, best of {repeat}: reference {best['reference']:.2f} s wall / "
          f"{best_cpu['reference']:.2f} s CPU, peak {peak['reference']:.0f} MB")
    for side in SIDES[:2]:
        print(f"  {side:<9} {best[side]:.2f} s wall / {best_cpu[side]:.2f} s CPU, peak {peak[side]:.0f} MB: "
              f"{best['reference'] / best[side]:.1f}x (wall), {best_cpu['reference'] / best_cpu[side]:.1f}x (CPU)")
    print("targets: >= 10x the reference, < 15 s, memory <= the reference's")


if __name__ == "__main__":
    main()
