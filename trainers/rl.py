"""Recommendation RL: GRPO-family policy optimisation on the recommendation SFT prompts (spec training
§6, §7.6; issue 10 for the OneRec-family variants).

    recif-train rl --config configs/train/tiny_rl.yaml

Built on trl's ``GRPOTrainer`` with a custom rollout, reward and loss:

* Rollout per prompt (spec §6.3): optionally sample the reasoning up to ``</think>`` (stage 1,
  ``rollout.thinking``; a stage 1 that stops without ``</think>`` gets it appended, so its SID is
  still scored, unlike the reference), then append ``<|sid_begin|>`` and take the K beams
  (``rollout.mode: beam``, the reference) or K samples (``sample``) of exactly ``levels`` item
  tokens.  Each candidate is one member of the GRPO group (``num_generations`` = K).  The text
  between reasoning and SID is evaluation's and the reference's ``</think>\\n<|sid_begin|>``
  (``sid.THOUGHT_CLOSE``).
  ``think_beam`` (OneRec-Think) gives every member its own reasoning and a beam search of
  ``rollout.beams`` items after it.
* Reward ``reward.kind`` (:mod:`trainers.rl_rewards`): ``hit`` (spec §6.4: 1 when the answer's first
  SID is a ground-truth SID; no think tags required, unlike the reference, whose requirement zeroes
  every forced-prefix reward; ``partial: true`` adds 0.1 / 0.01 for a shared a/b or a prefix),
  ``beam_match`` (Think), ``pscore`` (V1), ``feedback`` (V2).  ``reward.format_regularisation``
  (V1) adds ``reward.format_weight`` (1) to the advantage of every completion whose SID is an item.
  ``reward.advantage``: ``group`` (trl: reward minus the group mean, over the group std) or ``raw``
  (the reward itself, OneRec-V2's use of the +1 / -1 / 0 feedback); default ``raw`` for GBPO with
  the feedback reward, ``group`` otherwise.
* Loss ``loss.kind`` (:mod:`trainers.policy_losses`): ``grpo`` is trl's own path (spec §6.5:
  group-normalised advantages, all-equal groups -> 0, PPO clipping 0.2 / 0.28, token-mean (trl
  ``dapo``), KL to the initial model with coefficient 0.001 = trl's k3 estimator = verl
  ``low_var_kl``); ``ecpo`` (V1, ``loss.delta``, default 0.1) and ``gbpo`` (V2) replace the policy
  term, token-mean, plus the same KL.  One optimiser step per rollout batch
  (``steps_per_generation: 1``, so the old policy is the current one and ECPO = GRPO); the
  reference's 32 is ``train.steps_per_generation: 32``.  trl has no dual-clip; not used.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from recif_bench import chat, sid
from trainers import policy_losses, rl_rewards
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
ROLLOUT_MODES = ("beam", "sample", "think_beam")


def build_rows(data: Mapping[str, Any], fmt: sid.SidFormat, thinking: bool) -> list[dict[str, Any]]:
    """SFT recommendation rows -> ``{prompt, ground_truth, source, uid}``: the soft-switch generation
    prompt of every message but the last, the SIDs of the last (assistant) message, and the user
    of the row's metadata (-1 when it has none; the pscore / feedback rewards need it)."""
    rows = samples.mix(require(dict(data), "mixture"), require(dict(data), "dir"), int(data.get("seed", 0)))
    out = []
    for row in rows:
        messages = chat.normalise_messages(json.loads(row["messages"]))
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"row {row.get('uuid', '?')} of {row.get('source')}: last message is not the answer")
        truth = sid.extract_codes(messages[-1]["content"], fmt)
        if truth:
            meta = json.loads(row.get("metadata") or "{}")
            out.append({"prompt": chat.render(messages[:-1], thinking), "ground_truth": json.dumps(truth),
                        "source": str(row.get("source", "")), "uid": int(meta.get("uid", -1))})
    if not out:
        raise ValueError("no RL prompts with ground-truth SIDs in data.mixture")
    log.warning("RL data: %d prompts", len(out))
    return out


class TwoStageRollout:
    """trl ``rollout_func``: optional sampled reasoning, then K beams / samples of one SID per prompt.

    ``think_beam`` is OneRec-Think's rollout: every group member samples its own reasoning, then a
    beam search of width ``beams`` follows it; the member's completion ends in the top beam and its
    ``beam_texts`` (all the beams' items) go to the reward (``beam_match`` takes the best of them).
    """

    def __init__(self, tokenizer: Any, fmt: sid.SidFormat, thinking: bool, mode: str = "beam",
                 think_tokens: int = 1024, temperature: float = 1.0, top_p: float = 1.0, beams: int = 8) -> None:
        if mode not in ROLLOUT_MODES:
            raise ConfigError(f"rollout.mode must be one of {ROLLOUT_MODES}, got {mode!r}")
        if mode == "think_beam" and not thinking:
            raise ConfigError("rollout.mode think_beam needs rollout.thinking: true (its members differ by reasoning)")
        self.tokenizer, self.fmt, self.thinking, self.mode = tokenizer, fmt, thinking, mode
        self.think_tokens, self.temperature, self.top_p, self.beams = think_tokens, temperature, top_p, beams
        self.think_end = tokenizer.convert_tokens_to_ids(sid.THINK_END)
        # the sampled reasoning ends in </think>; the rest of sid.THOUGHT_CLOSE and <|sid_begin|> follow
        bridge = (sid.THOUGHT_CLOSE.removeprefix(sid.THINK_END) if thinking else "") + sid.SID_BEGIN
        self.bridge = tokenizer(bridge, add_special_tokens=False)["input_ids"]

    def __call__(self, prompts: Sequence[str], grpo: Any) -> dict[str, Any]:
        model = grpo.accelerator.unwrap_model(grpo.model)
        k = grpo.num_generations
        if len(prompts) % k:
            raise ValueError(f"rollout got {len(prompts)} prompts, not a multiple of num_generations={k}")
        prompt_ids, completion_ids, beam_texts = [], [], []
        for i in range(0, len(prompts), k):
            ids = self.tokenizer(prompts[i], add_special_tokens=False)["input_ids"]
            if self.mode == "think_beam":
                members = [self.think_beam(model, ids) for _ in range(k)]
                completion_ids += [completion for completion, _ in members]
                beam_texts += [texts for _, texts in members]
            else:
                completion_ids += self.candidates(model, ids, k)
            prompt_ids += [ids] * k
        out = {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}
        return {**out, "beam_texts": beam_texts} if beam_texts else out

    def candidates(self, model: Any, prompt_ids: list[int], k: int) -> list[list[int]]:
        """K completions of one prompt: shared reasoning + bridge + ``levels`` item tokens each."""
        reasoning = self.reason(model, prompt_ids) if self.thinking else []
        return [reasoning + self.bridge + item for item in self.items(model, prompt_ids + reasoning, k, self.mode)]

    def think_beam(self, model: Any, prompt_ids: list[int]) -> tuple[list[int], list[str]]:
        """One Think rollout: (reasoning + bridge + top beam, the decoded bridge + item of every beam)."""
        reasoning = self.reason(model, prompt_ids)
        items = self.items(model, prompt_ids + reasoning, self.beams, "beam")
        texts = self.tokenizer.batch_decode([self.bridge + item for item in items], skip_special_tokens=True)
        return reasoning + self.bridge + items[0], texts

    def items(self, model: Any, context_ids: list[int], k: int, mode: str) -> list[list[int]]:
        """The item tokens of K beams (best first) or K samples after ``context + bridge``."""
        import torch

        prefix = torch.tensor([context_ids + self.bridge])
        search = ({"num_beams": k, "do_sample": False} if mode == "beam"
                  else {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p})
        with torch.no_grad():
            out = model.generate(input_ids=prefix, attention_mask=torch.ones_like(prefix), num_return_sequences=k,
                                 max_new_tokens=self.fmt.levels, min_new_tokens=self.fmt.levels, use_cache=True,
                                 pad_token_id=self.tokenizer.pad_token_id, **search)
        return [row[prefix.shape[1]:].tolist() for row in out]

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


def trainer_class() -> type:
    """trl's ``GRPOTrainer`` with the recipes' no-decay set, a selectable policy loss and OneRec-V1's
    format regularisation (defined here so that importing this module does not import trl)."""
    import torch
    from trl import GRPOTrainer

    class RecGRPOTrainer(trainer.RecipeDecay, GRPOTrainer):
        policy_loss: policy_losses.PolicyLoss | None = None   # None: trl's own clipped surrogate (loss.kind grpo)
        catalogue: rl_rewards.Catalogue | None = None          # set: format regularisation on
        format_weight: float = 1.0
        raw_advantages: bool = False                           # advantage = reward (reward.advantage raw)
        fmt: sid.SidFormat = sid.DEFAULT_FORMAT
        _rewards: Any = None

        def _calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
            self._rewards = super()._calculate_rewards(*args, **kwargs)   # all processes' rewards per function
            return self._rewards

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            """trl's rollout and group-normalised advantages (or the raw rewards), plus ``format_weight``
            for every completion whose SID is an item of the catalogue (OneRec-V1: advantage 1 for
            legal items among the K samples, 0 for illegal ones)."""
            output = super()._generate_and_score_completions(inputs)
            if self.raw_advantages:
                weights = self.reward_weights.to(self._rewards.device).unsqueeze(0)
                rewards = torch.nan_to_num((self._rewards * weights).nansum(dim=1))
                start = self.accelerator.process_index * len(inputs)
                output["advantages"] = rewards[start:start + len(inputs)].to(output["advantages"].device)
            if self.catalogue is None:
                return output
            texts = self.processing_class.batch_decode(output["completion_ids"], skip_special_tokens=True)
            legal = torch.tensor([float(self.catalogue.legal(rl_rewards.answer_codes(text, self.fmt), row["source"]))
                                  for text, row in zip(texts, inputs)], device=output["advantages"].device)
            output["advantages"] = output["advantages"] + self.format_weight * legal
            self._metrics["train" if self.model.training else "eval"]["format/legal_rate"].append(legal.mean().item())
            return output

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            """``policy_loss`` of the completion tokens plus trl's k3 KL to the reference (``beta``)."""
            if self.policy_loss is None:
                return super()._compute_loss(model, inputs)
            completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
            logp, _, _ = self._get_per_token_logps_and_entropies(
                model, torch.cat([inputs["prompt_ids"], completion_ids], dim=1),
                torch.cat([inputs["prompt_mask"], mask], dim=1), completion_ids.size(1))
            old = inputs.get("old_per_token_logps")
            loss = self.policy_loss(logp, logp.detach() if old is None else old, inputs["advantages"], mask)
            mode = "train" if self.model.training else "eval"
            if self.beta != 0.0:
                gap = inputs["ref_per_token_logps"] - logp
                kl = policy_losses.masked_mean(torch.exp(gap) - gap - 1, mask)
                loss = loss + self.beta * kl
                self._metrics[mode]["kl"].append(self.accelerator.gather(kl.detach()).mean().item())
            return loss / (self.current_gradient_accumulation_steps if mode == "train" else 1)

    return RecGRPOTrainer


def policy_loss(spec: Mapping[str, Any], eps_low: float, eps_high: float) -> policy_losses.PolicyLoss | None:
    """``loss: {kind: grpo | ecpo | gbpo, delta}`` -> the loss function (None for trl's GRPO path);
    ECPO uses trl's clip range (``train.epsilon`` / ``train.epsilon_high``)."""
    kind = spec.get("kind", "grpo")
    if kind not in policy_losses.LOSS_KINDS:
        raise ConfigError(f"loss.kind must be one of {policy_losses.LOSS_KINDS}, got {kind!r}")
    if kind == "ecpo":
        delta = float(spec.get("delta", 0.1))
        if delta <= 0:
            raise ConfigError(f"loss.delta must be > 0 for ECPO, got {delta}")
        return functools.partial(policy_losses.ecpo_loss, eps_low=eps_low, eps_high=eps_high, delta=delta)
    return policy_losses.gbpo_loss if kind == "gbpo" else None


def advantage_mode(reward_spec: Mapping[str, Any], loss_spec: Mapping[str, Any]) -> str:
    """``reward.advantage`` (``raw`` | ``group``); OneRec-V2 feeds GBPO the feedback signal itself, so
    a member without feedback keeps 0 instead of going negative when a sibling got +1."""
    default = "raw" if reward_spec.get("kind") == "feedback" and loss_spec.get("kind") == "gbpo" else "group"
    mode = reward_spec.get("advantage", default)
    if mode not in ("raw", "group"):
        raise ConfigError(f"reward.advantage must be raw or group, got {mode!r}")
    return mode


def build_trainer(config: Mapping[str, Any]) -> Any:
    """The configured trl ``GRPOTrainer`` (not yet trained)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # rollout_func is marked experimental
    from trl import GRPOConfig

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
    reward_spec = dict(config.get("reward") or {})
    kind = reward_spec.get("kind", "hit")
    regularise = bool(reward_spec.get("format_regularisation", False))
    catalogue = (rl_rewards.Catalogue.from_raw(rl_rewards.raw_dir(reward_spec))
                 if regularise or kind in ("pscore", "feedback") else None)
    reward = rl_rewards.build(reward_spec, fmt, catalogue)
    from datasets import Dataset

    run = trainer_class()(model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, rollout_func=rollout)
    loss_spec = dict(config.get("loss") or {})
    run.policy_loss = policy_loss(loss_spec, run.epsilon_low, run.epsilon_high)
    run.raw_advantages = advantage_mode(reward_spec, loss_spec) == "raw"
    run.fmt = fmt
    if regularise:
        run.catalogue, run.format_weight = catalogue, float(reward_spec.get("format_weight", 1.0))
    return run


def main(config: dict[str, Any]) -> Path:
    return trainer.fit(build_trainer(config), require(config, "output_dir"))
