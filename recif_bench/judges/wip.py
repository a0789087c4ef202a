"""Item Understanding score (spec §3.3): Weighted Information Points, double-weighted F1.

The judge extracts weighted information points (WIPs) from the reference caption and from the
model's answer, then matches the two lists; each match is weighted by the BERTScore F1 of its two
points.  Per sample, with s = importance (1 when missing) and q = match quality:
TP += s_gt·q, FN += s_gt·(1−q), FP += s_model·(1−q) per match; FN += s per unmatched GT point,
FP += s per unmatched model point; F1 = 2TP / (2TP + FP + FN).

``macro_wip_double_weighted_f1`` (the paper's "LLM Score") averages over scored samples only, as
the reference does; ``_strict`` divides by every sample whose reference has points, so empty
answers and judge failures count 0; ``micro_`` pools TP/FP/FN over the scored samples.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from recif_bench import sid
from recif_bench.judges import prompt
from recif_bench.judges.base import ScoreResult, TextSample, mean
from recif_bench.judges.runner import JudgeRunner, MalformedAnswer

Wip = tuple[str, float]   # (info_point, importance)


def load_answer_json(text: str) -> Any:
    """The reference's cleaning: strip trailing backticks and leading ``{`, j, s, o, n}`` characters."""
    cleaned = text.strip().rstrip("`").lstrip("`json")
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"not JSON ({exc.msg})") from None


def _checked_wip(obj: Any) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("info_point"), str) or not obj["info_point"].strip():
        raise MalformedAnswer(f"not an information point: {str(obj)[:80]}")
    score = obj.get("importance_score", 1)
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 5:
        raise MalformedAnswer(f"importance_score {score!r} is not a number in [1, 5]")
    return obj


def parse_wips(text: str) -> list[dict]:
    """The judge's ``wips`` list, as returned (it is re-sent verbatim to the matching prompt)."""
    answer = load_answer_json(text)
    if not isinstance(answer, dict) or not isinstance(answer.get("wips"), list):
        raise MalformedAnswer("no 'wips' list")
    return [_checked_wip(w) for w in answer["wips"]]


def parse_matching(text: str) -> tuple[list[tuple[Wip, Wip]], list[Wip], list[Wip]]:
    """(matches as (model, gt) pairs, unmatched model points, unmatched GT points)."""
    answer = load_answer_json(text)
    keys = ("matches", "unmatched_model_wips", "unmatched_gt_wips")
    if not isinstance(answer, dict) or not all(isinstance(answer.get(k), list) for k in keys):
        raise MalformedAnswer(f"matching answer lacks one of {keys}")
    pairs = []
    for match in answer["matches"]:
        if not isinstance(match, dict):
            raise MalformedAnswer(f"not a match: {str(match)[:80]}")
        pairs.append((_wip(match.get("model_wip")), _wip(match.get("gt_wip"))))
    return pairs, [_wip(w) for w in answer["unmatched_model_wips"]], [_wip(w) for w in answer["unmatched_gt_wips"]]


def _wip(obj: Any) -> Wip:
    checked = _checked_wip(obj)
    return checked["info_point"], float(checked.get("importance_score", 1))


def double_weighted_counts(matches: Sequence[tuple[Wip, Wip, float]], unmatched_model: Sequence[Wip],
                           unmatched_gt: Sequence[Wip]) -> tuple[float, float, float]:
    """(TP, FP, FN) of one sample; ``matches`` = (model point, GT point, quality q)."""
    tp = fp = fn = 0.0
    for (_, s_model), (_, s_gt), q in matches:
        tp += s_gt * q
        fn += s_gt * (1 - q)
        fp += s_model * (1 - q)
    fp += sum(s for _, s in unmatched_model)
    fn += sum(s for _, s in unmatched_gt)
    return tp, fp, fn


def f1(tp: float, fp: float, fn: float) -> float:
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def _extract_prompt(text: str) -> str:
    return prompt.render("wip_extract", TEXT=text)


def _match_prompt(gt: list[dict], model: list[dict]) -> str:
    return prompt.render("wip_match", GT_WIPS_JSON=json.dumps(gt, ensure_ascii=False, indent=2),
                         MODEL_WIPS_JSON=json.dumps(model, ensure_ascii=False, indent=2))


def score_item_understand(samples: Sequence[TextSample], runner: JudgeRunner, bertscorer) -> ScoreResult:
    predictions = [sid.answer_text(s.prediction) for s in samples]
    references = [s.reference.strip() for s in samples]
    texts = list(dict.fromkeys(t for t in references + predictions if t))
    extracted = dict(zip(texts, runner.ask_many([_extract_prompt(t) for t in texts], parse_wips,
                                                "judge item_understand: extract points")))
    records: list[dict[str, Any]] = []
    to_match: list[int] = []
    for i, (sample, ref, pred) in enumerate(zip(samples, references, predictions)):
        record: dict[str, Any] = {"sample_id": sample.sample_id}
        gt, model = extracted.get(ref), extracted.get(pred)
        if gt is not None and not gt.ok:
            record.update(status="judge_failed", error=f"reference points: {gt.error}")
        elif gt is None or not gt.value:
            record["status"] = "no_gt_points"
        elif model is None:
            record["status"] = "empty_prediction"
        elif not model.ok:
            record.update(status="judge_failed", error=f"answer points: {model.error}")
        elif not model.value:
            record["status"] = "no_model_points"
        else:
            record.update(status="match", n_gt_wips=len(gt.value), n_model_wips=len(model.value))
            to_match.append(i)
        records.append(record)

    matched = runner.ask_many([_match_prompt(extracted[references[i]].value, extracted[predictions[i]].value)
                               for i in to_match], parse_matching, "judge item_understand: match points")
    pairs = [(m, g) for outcome in matched if outcome.ok for m, g in outcome.value[0]]
    qualities = iter(bertscorer.f1([m[0] for m, _ in pairs], [g[0] for _, g in pairs]) if pairs else [])
    totals = [0.0, 0.0, 0.0]
    for i, outcome in zip(to_match, matched):
        record = records[i]
        if not outcome.ok:
            record.update(status="judge_failed", error=f"matching: {outcome.error}")
            continue
        matches, unmatched_model, unmatched_gt = outcome.value
        scored = [(m, g, next(qualities)) for m, g in matches]
        counts = double_weighted_counts(scored, unmatched_model, unmatched_gt)
        totals = [a + b for a, b in zip(totals, counts)]
        record.update(status="scored", wip_double_weighted_f1=f1(*counts), n_matches=len(matches),
                      **dict(zip(("tp", "fp", "fn"), counts)))

    f1s = [r["wip_double_weighted_f1"] for r in records if r["status"] == "scored"]
    with_points = [r for r in records if r["status"] != "no_gt_points"]
    failed = sum(r["status"] == "judge_failed" for r in records)
    metrics = {
        "macro_wip_double_weighted_f1": mean(f1s),
        "micro_wip_double_weighted_f1": f1(*totals) if f1s else None,
        "macro_wip_double_weighted_f1_strict": sum(f1s) / len(with_points) if with_points else None,
        "wip_num_samples": float(len(f1s)),
        "n_judge_failed": float(failed),
    }
    return ScoreResult(metrics, {"failed": failed, "bertscore": bertscorer.describe()}, records)
