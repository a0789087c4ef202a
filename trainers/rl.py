"""Recommendation RL: GRPO with hit rewards on the recommendation SFT prompts (spec training §6, §7.6).

    recif-train rl --config configs/train/tiny_rl.yaml

Built on trl's ``GRPOTrainer`` with a custom rollout and reward:

* Rollout per prompt (spec §6.3): optionally sample the reasoning up to ``</think>`` (stage 1,
  ``rollout.thinking``; a stage 1 that stops without ``</think>`` gets it appended, so its SID is
  still scored, unlike the reference), then append ``<|sid_begin|>`` and take the K beams
  (``rollout.mode: beam``, the reference) or K samples (``sample``) of exactly ``levels`` item
  tokens.  Each candidate is one member of the GRPO group (``num_generations`` = K).  The text
  between reasoning and SID is the SFT convention ``</think>\\n\\n<|sid_begin|>`` (spec §7.7).
* Reward (spec §6.4): 1 when the first SID of the answer (after the last ``</think>``) is one of
  the ground-truth SIDs, else 0; malformed or missing SIDs score 0.  No think tags are required
  (the reference's requirement zeroes every forced-prefix reward).  ``reward.partial: true`` adds
  the hierarchical partial credit: 0.1 for a matching a/b prefix, 0.01 for a matching first code.
* Loss (spec §6.5): group-normalised advantages (all-equal groups -> 0), PPO clipping 0.2 / 0.28,
  token-mean (trl ``dapo``), KL to the initial model with coefficient 0.001 (trl's k3 estimator
  = verl ``low_var_kl``).  One optimiser step per rollout batch (``steps_per_generation: 1``);
  the reference's 32 is ``train.steps_per_generation: 32``.  trl has no dual-clip; not used.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from recif_bench import chat, sid
from trainers.common import samples, trainer
from trainers.common.config import ConfigError, require

log = logging.getLogger(__name__)

RL_DEFAULTS: dict[str, Any] = {   # spec training §6.6; configs override any of them
    **trainer.RECIPE_DEFAULTS, "learning_rate": 2e-6, "lr_scheduler_type": "constant_with_warmup",
    "lr_scheduler_kwargs": {}, "warmup_steps": 10, "adam_beta2": 0.999, "weight_decay": 0.1,
    "num_generations": 32, "per_device_train_batch_size": 32, "steps_per_generation": 1, "num_iterations": 1,
    "beta": 0.001, "epsilon": 0.2, "epsilon_high": 0.28, "loss_type": "dapo", "scale_rewards": "group",
    "logging_steps": 1, "save_steps": 50,
}
ROLLOUT_MODES = ("beam", "sample")


def first_sid_reward(completion: str, truth: set[tuple[int, ...]], fmt: sid.SidFormat,
                     partial: bool = False) -> float:
    """1.0 when the answer's first SID is a ground-truth SID; with ``partial``, 10^-(unmatched levels)
    for the longest code prefix it shares with one (0.1 for a/b, 0.01 for a of three); else 0."""
    codes = sid.try_parse_body(sid.prediction_body(completion), fmt)
    if codes is None:
        return 0.0
    if codes in truth:
        return 1.0
    if not partial:
        return 0.0
    best = 0
    for target in truth:
        shared = 0
        while shared < len(codes) and codes[shared] == target[shared]:
            shared += 1
        best = max(best, shared)
    return 10.0 ** (best - fmt.levels) if best else 0.0


def reward_function(fmt: sid.SidFormat, partial: bool) -> Callable[..., list[float]]:
    """trl reward function over the dataset's ``ground_truth`` column (JSON list of code lists)."""
    def hit(prompts: Sequence[Any], completions: Sequence[str], ground_truth: Sequence[str],
            **_: Any) -> list[float]:
        return [first_sid_reward(text, {tuple(c) for c in json.loads(truth)}, fmt, partial)
                for text, truth in zip(completions, ground_truth)]

    hit.__name__ = "partial_hit" if partial else "hit"
    return hit


def build_rows(data: Mapping[str, Any], fmt: sid.SidFormat, thinking: bool) -> list[dict[str, str]]:
    """SFT recommendation rows -> ``{prompt, ground_truth, source}``: the soft-switch generation prompt
    of every message but the last, and the SIDs of the last (assistant) message."""
    rows = samples.mix(require(dict(data), "mixture"), require(dict(data), "dir"), int(data.get("seed", 0)))
    out = []
    for row in rows:
        messages = chat.normalise_messages(json.loads(row["messages"]))
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"row {row.get('uuid', '?')} of {row.get('source')}: last message is not the answer")
        truth = sid.extract_codes(messages[-1]["content"], fmt)
        if truth:
            out.append({"prompt": chat.render(messages[:-1], thinking), "ground_truth": json.dumps(truth),
                        "source": str(row.get("source", ""))})
    if not out:
        raise ValueError("no RL prompts with ground-truth SIDs in data.mixture")
    log.warning("RL data: %d prompts", len(out))
    return out


class TwoStageRollout:
    """trl ``rollout_func``: optional sampled reasoning, then K beams / samples of one SID per prompt."""

    def __init__(self, tokenizer: Any, fmt: sid.SidFormat, thinking: bool, mode: str = "beam",
                 think_tokens: int = 1024, temperature: float = 1.0, top_p: float = 1.0) -> None:
        if mode not in ROLLOUT_MODES:
            raise ConfigError(f"rollout.mode must be one of {ROLLOUT_MODES}, got {mode!r}")
        self.tokenizer, self.fmt, self.thinking, self.mode = tokenizer, fmt, thinking, mode
        self.think_tokens, self.temperature, self.top_p = think_tokens, temperature, top_p
        self.think_end = tokenizer.convert_tokens_to_ids(sid.THINK_END)
        bridge = ("\n\n" if thinking else "") + sid.SID_BEGIN
        self.bridge = tokenizer(bridge, add_special_tokens=False)["input_ids"]

    def __call__(self, prompts: Sequence[str], grpo: Any) -> dict[str, Any]:
        model = grpo.accelerator.unwrap_model(grpo.model)
        k = grpo.num_generations
        if len(prompts) % k:
            raise ValueError(f"rollout got {len(prompts)} prompts, not a multiple of num_generations={k}")
        prompt_ids, completion_ids = [], []
        for i in range(0, len(prompts), k):
            ids = self.tokenizer(prompts[i], add_special_tokens=False)["input_ids"]
            for candidate in self.candidates(model, ids, k):
                prompt_ids.append(ids)
                completion_ids.append(candidate)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    def candidates(self, model: Any, prompt_ids: list[int], k: int) -> list[list[int]]:
        """K completions of one prompt: shared reasoning + bridge + ``levels`` item tokens each."""
        import torch

        reasoning = self.reason(model, prompt_ids) if self.thinking else []
        prefix = torch.tensor([prompt_ids + reasoning + self.bridge])
        search = ({"num_beams": k, "do_sample": False} if self.mode == "beam"
                  else {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p})
        with torch.no_grad():
            out = model.generate(input_ids=prefix, attention_mask=torch.ones_like(prefix), num_return_sequences=k,
                                 max_new_tokens=self.fmt.levels, min_new_tokens=self.fmt.levels, use_cache=True,
                                 pad_token_id=self.tokenizer.pad_token_id, **search)
        return [reasoning + self.bridge + row[prefix.shape[1]:].tolist() for row in out]

    def reason(self, model: Any, prompt_ids: list[int]) -> list[int]:
        """Sampled reasoning up to and including ``</think>`` (appended if the sample stopped without it)."""
        import torch

        prefix = torch.tensor([prompt_ids])
        with torch.no_grad():
            out = model.generate(input_ids=prefix, attention_mask=torch.ones_like(prefix), do_sample=True,
                                 temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.think_tokens,
                                 eos_token_id=[self.think_end, self.tokenizer.eos_token_id],
                                 pad_token_id=self.tokenizer.pad_token_id, use_cache=True)
        tokens = out[0, prefix.shape[1]:].tolist()
        if self.think_end in tokens:
            return tokens[:tokens.index(self.think_end) + 1]
        stops = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        return [t for t in tokens if t not in stops] + [self.think_end]


def fmt_of(config: Mapping[str, Any]) -> sid.SidFormat:
    return sid.SidFormat(int(config.get("sid_levels", 3)), int(config.get("sid_codebook", 8192)))


def build_trainer(config: Mapping[str, Any]) -> Any:
    """The configured trl ``GRPOTrainer`` (not yet trained)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # rollout_func is marked experimental
    from trl import GRPOConfig, GRPOTrainer

    class RecGRPOTrainer(trainer.RecipeDecay, GRPOTrainer):
        pass

    model, tokenizer = trainer.load_model(require(config, "model"))
    tokenizer.padding_side = "left"
    fmt = fmt_of(config)
    rollout_cfg = dict(config.get("rollout") or {})
    thinking = bool(rollout_cfg.pop("thinking", False))
    try:
        rollout = TwoStageRollout(tokenizer, fmt, thinking, **rollout_cfg)
    except TypeError as exc:
        raise ConfigError(f"rollout: {exc}") from None
    rows = build_rows(require(config, "data"), fmt, thinking)
    train = {"max_completion_length": rollout.think_tokens + len(rollout.bridge) + fmt.levels,
             **dict(config.get("train") or {})}
    args = trainer.training_arguments(require(config, "output_dir"), train, RL_DEFAULTS, GRPOConfig)
    from datasets import Dataset

    partial = bool((config.get("reward") or {}).get("partial", False))
    return RecGRPOTrainer(model=model, reward_funcs=[reward_function(fmt, partial)], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer, rollout_func=rollout)


def main(config: dict[str, Any]) -> Path:
    return trainer.fit(build_trainer(config), require(config, "output_dir"))
