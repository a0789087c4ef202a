"""What one ``generate_until`` request asks for, read from the task's ``generation_kwargs``.

Every backend (hf, vllm, openai, rec) reads requests through :func:`GenSpec.from_kwargs`, so the
task YAMLs stay backend-agnostic.  Keys beyond the usual lm-eval / HF ones:

``answer_prefix``  text appended to the prompt right before the answer (``<|sid_begin|>`` for the
                   rec tasks); in thinking mode it comes after the closed thought.
``catalogue``      SID -> item file name in the data root (``sid2pid.json``): the valid SIDs for
                   trie-constrained decoding.  Defaults to the task's registry entry.
``domain``         item space of the answer (video | ad | product), for non-LLM recommenders.
                   Defaults to the task's registry entry.
``thinking``       the stage-1 sampling settings used when the model runs in thinking mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class SamplingSpec:
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1            # -1 = off (vLLM convention)
    repetition_penalty: float = 1.0
    max_new_tokens: int = 256
    n: int = 1


@dataclass(frozen=True)
class GenSpec:
    until: tuple[str, ...] = ()
    num_return_sequences: int = 1
    num_beams: int = 0          # 0 = no beam search
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    answer_prefix: str = ""
    catalogue: str | None = None
    domain: str | None = None
    thinking: SamplingSpec = field(default_factory=lambda: SamplingSpec(
        do_sample=True, temperature=1.0, max_new_tokens=1000))

    @property
    def beam_search(self) -> bool:
        return self.num_beams > 0 and not self.sampling.do_sample

    @property
    def beam_width(self) -> int:
        """As the reference: width = max(num_beams, num_return_sequences)."""
        return max(self.num_beams, self.num_return_sequences)

    @classmethod
    def for_request(cls, request: Any, default_max_new_tokens: int = 256) -> "GenSpec":
        """The spec of an lm-eval ``Instance``; catalogue and domain come from its task when unset."""
        spec = cls.from_kwargs(request.args[1], default_max_new_tokens)
        task = getattr(request, "task_name", None)
        if task and (spec.catalogue is None or spec.domain is None):
            from recif_bench.benchmark import task_info

            try:
                info = task_info(task)
            except KeyError:
                info = None
            if info is not None:
                spec = replace(spec, catalogue=spec.catalogue or info.mapping_file,
                               domain=spec.domain or info.domain)
        return spec

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | None, default_max_new_tokens: int = 256) -> "GenSpec":
        kw = dict(kwargs or {})
        until = kw.pop("until", None) or ()
        if isinstance(until, str):
            until = (until,)
        k = int(kw.pop("num_return_sequences", 1))
        beams = int(kw.pop("num_beams", 0) or 0)
        thinking = kw.pop("thinking", None) or {}
        return cls(
            until=tuple(until),
            num_return_sequences=k,
            num_beams=beams,
            sampling=_sampling(kw, default_max_new_tokens),
            answer_prefix=str(kw.pop("answer_prefix", "") or ""),
            catalogue=kw.pop("catalogue", None),
            domain=kw.pop("domain", None),
            thinking=_sampling({"do_sample": True, **thinking}, 1000),
        )


def _sampling(kw: dict[str, Any], default_max_new_tokens: int) -> SamplingSpec:
    top_k = kw.get("top_k", -1)
    return SamplingSpec(
        do_sample=bool(kw.get("do_sample", False)),
        temperature=float(kw.get("temperature", 1.0)),
        top_p=float(kw.get("top_p", 1.0)),
        top_k=-1 if top_k in (None, 0) else int(top_k),
        repetition_penalty=float(kw.get("repetition_penalty", 1.0)),
        max_new_tokens=int(kw.get("max_gen_toks", kw.get("max_new_tokens", default_max_new_tokens))),
        n=int(kw.get("n", 1)),
    )
