"""Recommendation Explanation score (spec §3.4): the judge's 1–5 ``llm_score``, averaged.

Both texts are cut to their "refined reasoning" (after the last ``精炼推理``) before judging.
``llm_score`` is the reference's number: the mean over judged samples, an out-of-range or
non-numeric score read as 3, failures and empty answers left out.  ``llm_score_strict`` divides by
every sample with a reference, and an empty answer, a failure or a score that stayed out of range
after the re-asks counts 0.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from recif_bench import sid
from recif_bench.judges import prompt
from recif_bench.judges.base import ScoreResult, TextSample, mean
from recif_bench.judges.runner import JudgeRunner, MalformedAnswer

MARK = "精炼推理"
FALLBACK_SCORE = 3.0   # the reference's value for a score it cannot use
_LEADING = re.compile(r"^[\s*#：:]+")
_FLAT_OBJECT = re.compile(r"\{[^{}]*\}")


def refined_reasoning(text: str) -> str:
    """The text after the last ``精炼推理`` (minus leading blanks, ``*``, ``#``, colons), else all of it."""
    text = text.strip()
    at = text.rfind(MARK)
    if at >= 0:
        tail = _LEADING.sub("", text[at + len(MARK):]).strip()
        if tail:
            return tail
    return text


def parse_score(text: str) -> dict[str, Any]:
    """``{"score", "reason"}`` from the judge's JSON (a fenced block or the first flat object)."""
    body = text.strip()
    body = re.sub(r"^```(?:json)?", "", body)
    body = re.sub(r"```$", "", body).strip()
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        found = _FLAT_OBJECT.search(body)
        try:
            answer = json.loads(found.group()) if found else None
        except json.JSONDecodeError:
            answer = None
    if not isinstance(answer, dict) or "llm_score" not in answer:
        raise MalformedAnswer("no JSON object with 'llm_score'")
    score, reason = answer["llm_score"], str(answer.get("llm_reason", ""))
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 5:
        raise MalformedAnswer(f"llm_score {score!r} is not a number in [1, 5]",
                              salvage={"score": FALLBACK_SCORE, "reason": reason})
    return {"score": float(score), "reason": reason}


def score_rec_reason(samples: Sequence[TextSample], runner: JudgeRunner) -> ScoreResult:
    records: list[dict[str, Any]] = []
    prompts: list[str] = []
    for sample in samples:
        gt, model = refined_reasoning(sample.reference), refined_reasoning(sid.answer_text(sample.prediction))
        records.append({"sample_id": sample.sample_id, "status": "no_reference" if not gt else
                        "empty_prediction" if not model else "judge"})
        if gt and model:
            prompts.append(prompt.render("rec_reason", GT_REASON=gt, MODEL_REASON=model))
    outcomes = iter(runner.ask_many(prompts, parse_score, "judge rec_reason"))
    paper, strict = [], []
    for record in records:
        if record["status"] == "no_reference":
            continue
        outcome = next(outcomes) if record["status"] == "judge" else None
        if outcome is None:
            strict.append(0.0)
        elif outcome.ok:
            record.update(status="scored", llm_score=outcome.value["score"], llm_reason=outcome.value["reason"])
            paper.append(outcome.value["score"])
            strict.append(outcome.value["score"])
        else:
            salvaged = outcome.salvage is not None
            record.update(status="out_of_range" if salvaged else "judge_failed", error=outcome.error)
            if salvaged:
                record["llm_score"] = outcome.salvage["score"]
                paper.append(outcome.salvage["score"])
            strict.append(0.0)
    failed = sum(r["status"] in ("judge_failed", "out_of_range") for r in records)
    metrics = {
        "llm_score": mean(paper),
        "llm_score_strict": mean(strict),
        "llm_eval_num_samples": float(len(paper)),
        "n_judge_failed": float(failed),
    }
    return ScoreResult(metrics, {"failed": failed}, records)
