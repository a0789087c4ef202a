"""CI check: recif-eval runs of one model through other backends agree with the reference run (hf).

    python .ci/vllm_agree.py RUN_HF RUN_OTHER [RUN_OTHER ...]

label_pred: the AUC equal to 1e-6.  Rec task: every sample's first candidate is the same, and its
32 candidates are the same up to ties at the cut: the two lists may differ only after their common
prefix, by at most ``--max-swapped`` candidates (near-equal beams whose order or 32nd place flips
between two engines' float arithmetic).  Prints one line per run, each differing sample, and exits 1
on any disagreement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text("utf-8"))


def candidates(run: Path, task: str) -> dict[int, list[str]]:
    out = {}
    for line in (run / f"samples_{task}.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        out[record["doc_id"]] = record["resps"][0][0]
    return out


def compare_lists(ref: list[str], other: list[str]) -> tuple[int, int]:
    """(length of the common prefix, candidates of ``ref`` missing from ``other``)."""
    prefix = next((i for i, (a, b) in enumerate(zip(ref, other)) if a != b), min(len(ref), len(other)))
    return prefix, len(set(ref) - set(other))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("others", nargs="+")
    p.add_argument("--rec-task", default="recif_video")
    p.add_argument("--max-swapped", type=int, default=2, help="candidates that may differ at the cut per sample")
    args = p.parse_args(argv)
    ref = Path(args.reference)
    ref_auc = summary(ref)["tasks"]["label_pred"]["headline"]["value"]
    ref_cands = candidates(ref, args.rec_task)
    failed = False
    for other in map(Path, args.others):
        auc = summary(other)["tasks"]["label_pred"]["headline"]["value"]
        ok_auc = auc is not None and ref_auc is not None and abs(auc - ref_auc) <= 1e-6
        cands = candidates(other, args.rec_task)
        ok_rec = cands.keys() == ref_cands.keys()
        identical = 0
        for doc in sorted(ref_cands):
            if doc not in cands:
                continue
            prefix, missing = compare_lists(ref_cands[doc], cands[doc])
            identical += ref_cands[doc] == cands[doc]
            if ref_cands[doc] != cands[doc]:
                agree = len(cands[doc]) == len(ref_cands[doc]) and prefix >= 1 and missing <= args.max_swapped
                ok_rec &= agree
                print(f"  {other.name} sample {doc}: same first {prefix} candidates, {missing} of "
                      f"{len(ref_cands[doc])} not shared ({'tie at the cut' if agree else 'DIFFERENT'})")
        print(f"{other.name}: label_pred AUC {auc} vs {ref_auc} ({'ok' if ok_auc else 'DIFFERENT'}); "
              f"{args.rec_task}: {identical} of {len(ref_cands)} candidate lists identical "
              f"({'ok' if ok_rec else 'DIFFERENT'})")
        failed |= not (ok_auc and ok_rec)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
