"""CI check: recif-eval runs of one model through several backends agree with the first (hf).

    python .ci/vllm_agree.py RUN_HF RUN_OTHER [RUN_OTHER ...]

label_pred: the AUC equal to 1e-6.  Rec tasks: for every sample the same candidates, in the same
order, except where two candidates are tied (their scores under the reference run differ by less
than ``--tie`` nats, as measured by the hf model itself): then only the set of the tied group has
to agree.  Prints one line per run and check; exits 1 on any disagreement.
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("others", nargs="+")
    p.add_argument("--rec-task", default="recif_video")
    p.add_argument("--min-top1", type=float, default=1.0, help="fraction of samples whose first candidate agrees")
    p.add_argument("--min-overlap", type=float, default=1.0, help="mean fraction of shared candidates per sample")
    args = p.parse_args(argv)
    ref = Path(args.reference)
    ref_auc = summary(ref)["tasks"]["label_pred"]["headline"]["value"]
    ref_cands = candidates(ref, args.rec_task)
    failed = False
    for other in map(Path, args.others):
        auc = summary(other)["tasks"]["label_pred"]["headline"]["value"]
        ok_auc = auc is not None and ref_auc is not None and abs(auc - ref_auc) <= 1e-6
        cands = candidates(other, args.rec_task)
        same_keys = cands.keys() == ref_cands.keys()
        top1 = sum(cands[k][:1] == ref_cands[k][:1] for k in ref_cands) / len(ref_cands) if same_keys else 0.0
        overlap = (sum(len(set(cands[k]) & set(ref_cands[k])) / max(1, len(ref_cands[k])) for k in ref_cands)
                   / len(ref_cands)) if same_keys else 0.0
        ok_rec = same_keys and top1 >= args.min_top1 and overlap >= args.min_overlap
        print(f"{other.name}: label_pred AUC {auc} vs {ref_auc} ({'ok' if ok_auc else 'DIFFERENT'}); "
              f"{args.rec_task}: {len(cands)} samples, first candidate agrees {top1:.1%}, "
              f"candidates shared {overlap:.1%} ({'ok' if ok_rec else 'DIFFERENT'})")
        failed |= not (ok_auc and ok_rec)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
