"""The task YAMLs carry the reference's generation settings (spec §2.3, eval_script.sh)."""

from pathlib import Path

import pytest
import yaml

from recif_bench.models.genspec import GenSpec

TASKS = Path(__file__).resolve().parents[1] / "tasks"


class _Loader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs without importing their ``!function`` hooks."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def task_config(name: str) -> dict:
    config = yaml.load((TASKS / f"{name}.yaml").read_text(encoding="utf-8"), Loader=_Loader)
    if "include" in config:
        base = yaml.load((TASKS / config.pop("include")).read_text(encoding="utf-8"), Loader=_Loader)
        config = {**base, **config}
    return config


# task -> (answer stage: temperature, top_p, top_k, repetition penalty, max new tokens), thinking stage: same
REFERENCE = {
    "recif_video": (None, (0.6, 0.95, 50, 1.0, 1000)),
    "recif_interactive": (None, (0.6, 0.95, 50, 1.0, 1000)),
    "recif_item_understand": ((0.01, 0.95, -1, 1.0, 128), (0.01, 0.95, -1, 1.0, 1000)),
    "recif_rec_reason": ((0.01, 0.95, -1, 1.1, 2000), (0.01, 0.95, -1, 1.1, 10000)),
}


def _settings(s):
    return (s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.max_new_tokens)


@pytest.mark.parametrize("task", sorted(REFERENCE))
def test_sampling_and_thinking_stage_follow_the_reference(task):
    answer, thinking = REFERENCE[task]
    spec = GenSpec.from_kwargs(task_config(task)["generation_kwargs"])
    assert _settings(spec.thinking) == thinking and spec.thinking.do_sample and spec.thinking.n == 1
    if answer is None:   # rec tasks: beam search of width 32 returning 32, 3 new tokens
        assert spec.beam_search and spec.beam_width == 32 and spec.num_return_sequences == 32
        assert spec.sampling.max_new_tokens == 3
    else:
        assert _settings(spec.sampling) == answer and spec.sampling.do_sample
