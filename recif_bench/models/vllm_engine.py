"""One vLLM engine, or several behind Ray (data parallelism), driven with token ids only.

:class:`EngineWorker` owns one ``vllm.LLM`` and answers the four calls the ``recif-vllm`` backend
needs (beam search, sampling, next-token scores of chosen tokens, prompt scores); results are
plain lists, so the same class runs in process or as a Ray actor.  :class:`EnginePool` splits a
batch round-robin over its workers (as the reference harness does) and puts the answers back in
order.

vLLM's ``LLM`` refuses ``data_parallel_size > 1`` in one process, so data parallelism is one
Ray actor per engine, each holding ``tensor_parallel_size`` GPUs; Ray spans nodes (``ray start``
on every node, then ``ray_address=auto``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

# recif-vllm turns these on unless the user sets them: beam search re-submits prompt + beam at
# every step, so without prefix caching every step would prefill the whole prompt again.
ENGINE_DEFAULTS = {"enable_prefix_caching": True}


class EngineOptionError(ValueError):
    """A ``--model-args`` option vLLM's engine does not know (one line, names the option)."""


def check_engine_options(options: dict[str, Any]) -> None:
    """Refuse options that are not fields of vLLM's ``EngineArgs`` (a typo would be silently ignored)."""
    from vllm.engine.arg_utils import EngineArgs

    known = {f.name for f in dataclasses.fields(EngineArgs)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EngineOptionError(f"--model-args: {', '.join(unknown)}: not a vLLM engine option "
                                "(see `vllm serve --help` for the engine arguments)")


class EngineWorker:
    """One ``vllm.LLM`` (built from ``model`` and ``options``) or an injected engine."""

    def __init__(self, model: str | None = None, options: dict[str, Any] | None = None, engine: Any = None) -> None:
        if engine is None:
            from vllm import LLM

            engine = LLM(model=model, **{**ENGINE_DEFAULTS, **(options or {})})
        self.engine = engine

    def beam_search(self, prompts: list[list[int]], width: int, max_tokens: int) -> list[list[list[int]]]:
        """Per prompt, the ``width`` beams' new token ids, best first (vLLM's order)."""
        from vllm.sampling_params import BeamSearchParams

        outputs = self.engine.beam_search([{"prompt_token_ids": p} for p in prompts],
                                          BeamSearchParams(beam_width=width, max_tokens=max_tokens))
        # returned sequences include the prompt tokens: keep only what was generated
        return [[list(seq.tokens[len(p):]) for seq in out.sequences] for out, p in zip(outputs, prompts)]

    def sample(self, prompts: list[list[int]], params: dict[str, Any]) -> list[list[str]]:
        """Per prompt, the texts of ``params["n"]`` completions (stop strings already applied by vLLM)."""
        from vllm import SamplingParams

        outputs = self.engine.generate([{"prompt_token_ids": p} for p in prompts], SamplingParams(**params),
                                       use_tqdm=False)
        return [[o.text for o in out.outputs] for out in outputs]

    def next_token_scores(self, prompts: list[list[int]], token_ids: list[int],
                          progress: bool = False) -> list[tuple[list[float], int]]:
        """Per prompt, the exact log-probabilities of ``token_ids`` as the next token, and the argmax token.

        vLLM's ``logprob_token_ids`` returns the raw log-softmax of exactly these tokens, whatever
        their rank (the reference read a top-10000 list and floored the rest at 1e-10).
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(token_ids),
                                logprob_token_ids=list(token_ids))
        outputs = self.engine.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=progress)
        scores = []
        for out in outputs:
            step = out.outputs[0].logprobs[0]
            scores.append(([step[t].logprob for t in token_ids], out.outputs[0].token_ids[0]))
        return scores

    def prompt_scores(self, prompts: list[list[int]], starts: list[int]) -> list[list[tuple[float, bool]]]:
        """Per prompt, (log p, is the argmax) of each token from ``starts[i]`` on, given the tokens before it."""
        from vllm import SamplingParams

        outputs = self.engine.generate([{"prompt_token_ids": p} for p in prompts],
                                       SamplingParams(max_tokens=1, prompt_logprobs=1), use_tqdm=False)
        scores = []
        for out, prompt, start in zip(outputs, prompts, starts):
            row = []
            for position in range(start, len(prompt)):
                entry = out.prompt_logprobs[position][prompt[position]]
                row.append((entry.logprob, entry.rank == 1))
            scores.append(row)
        return scores


class EnginePool:
    """``workers`` engines (in process, or Ray actor handles); each call is split round-robin."""

    def __init__(self, workers: Sequence[Any], remote: bool = False) -> None:
        self.workers = list(workers)
        self.remote = remote

    @classmethod
    def start(cls, model: str, options: dict[str, Any], data_parallel_size: int = 1,
              ray_address: str | None = None) -> "EnginePool":
        if data_parallel_size <= 1:
            return cls([EngineWorker(model, options)])
        try:
            import ray
        except ImportError as exc:
            raise ImportError("data_parallel_size > 1 runs one vLLM engine per Ray actor: pip install ray") from exc
        ray.init(address=ray_address, ignore_reinit_error=True)
        gpus = int(options.get("tensor_parallel_size", 1)) * int(options.get("pipeline_parallel_size", 1))
        actor = ray.remote(num_gpus=gpus if _cluster_has_gpus(ray) else 0)(EngineWorker)
        return cls([actor.remote(model, options) for _ in range(data_parallel_size)], remote=True)

    def call(self, method: str, items: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """``worker.method(shard, *args)`` on shard ``items[w::W]`` of every worker, merged back in order."""
        shards = [items[w::len(self.workers)] for w in range(len(self.workers))]
        busy = [(w, shard) for w, shard in zip(self.workers, shards) if shard]
        if self.remote:
            import ray

            answers = ray.get([getattr(w, method).remote(shard, *args, **kwargs) for w, shard in busy])
        else:
            answers = [getattr(w, method)(shard, *args, **kwargs) for w, shard in busy]
        return _interleave(answers, len(items), len(self.workers))

    def engine(self) -> Any:
        """The in-process engine (for its tokenizer); None behind Ray."""
        return None if self.remote else self.workers[0].engine


def _interleave(answers: list[list[Any]], total: int, width: int) -> list[Any]:
    merged: list[Any] = [None] * total
    for w, answer in enumerate(answers):
        merged[w::width] = answer
    return merged


def _cluster_has_gpus(ray: Any) -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0

