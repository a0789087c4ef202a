"""What the two judged tasks take and give: recorded generations in, metrics + accounting out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TextSample:
    sample_id: str
    prediction: str   # the recorded generation (thinking included; scorers take the answer part)
    reference: str    # the ground-truth text


@dataclass
class ScoreResult:
    metrics: dict[str, float | None]                          # metric name -> value (None: nothing scored)
    stats: dict[str, Any]                                     # judge accounting for summary.json
    samples: list[dict[str, Any]] = field(default_factory=list)  # one record per sample: status, score, error


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
