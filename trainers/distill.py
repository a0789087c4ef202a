"""On-policy distillation with the itemic-token penalty (spec training §5, §7.5).

    recif-train distill --config configs/train/tiny_distill.yaml

The student (our model, with itemic tokens) samples answers to general-domain prompts; the
teacher is a base model whose vocabulary has no itemic tokens.  Per response token ``t``:

* ``A_t = log p_teacher(y_t) - log p_student(y_t)`` (negative per-token reverse KL, both at the
  rollout temperature), clamped to ``[adv_min, adv_max]`` = [-30, 5];
* the first *extended* token (an itemic token, or any id the teacher lacks) gets the teacher
  log-prob ``teacher_replace_value`` (-100), so after clamping its advantage is ``adv_min``: a
  fixed strong penalty; every token after it gets weight 0.  That is the reference's intended
  behaviour; its trainer overwrites the mask and trains on everything (spec §5.3), ours keeps it;
* before the teacher forward, extended ids are replaced by ``<|im_end|>`` (the tokenizer's EOS,
  not a hard-coded id) and the teacher's logits are cut to the shared text vocabulary, so the
  teacher never sees or scores an id it does not have.

Loss: PPO clipped surrogate (0.2 / 0.28) with token-mean over the kept tokens, one optimiser step
per rollout batch, so the ratio is 1 and this is REINFORCE with a per-token advantage.  trl's
``DistillationTrainer`` / GKD need a shared vocabulary and use full-distribution divergences with
no per-token penalty, so the loss lives here, inside the same transformers Trainer the other
recipes use (resume, logging, accelerate launch unchanged).  Logged: ``leak_rate`` (share of
responses with an itemic token), ``reverse_kl``, ``response_length``.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from recif_bench import chat
from recif_bench.itemic.vocab import find_itemic_ids
from trainers.common import mixer, trainer
from trainers.common.collate import left_pad
from trainers.common.config import ConfigError, require

log = logging.getLogger(__name__)

DISTILL_DEFAULTS: dict[str, Any] = {   # spec training §5.6; configs override any of them
    **trainer.RECIPE_DEFAULTS, "learning_rate": 5e-6, "lr_scheduler_type": "constant", "lr_scheduler_kwargs": {},
    "warmup_steps": 0, "adam_beta2": 0.999, "weight_decay": 0.01, "per_device_train_batch_size": 32,
    "save_steps": 5, "logging_steps": 1,
}
# the reference's switches (with the leading space) appended to every user turn; auto draws one per row
THINK_SWITCHES = {"think": " /think", "no_think": " /no_think", "none": ""}
THINK_MODES = ("auto", *THINK_SWITCHES)


@dataclass(frozen=True)
class DistillSettings:
    """Rollout and loss settings (the config's ``rollout:`` and ``loss:`` sections)."""

    temperature: float = 1.1
    top_p: float = 0.95
    top_k: int = 200
    max_new_tokens: int = 2048
    adv_min: float = -30.0
    adv_max: float = 5.0
    teacher_replace_value: float = -100.0
    clip_low: float = 0.2
    clip_high: float = 0.28

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DistillSettings":
        given = {**dict(config.get("rollout") or {}), **dict(config.get("loss") or {})}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(f"unknown distillation setting(s) {unknown}; known: {sorted(known)}")
        return cls(**given)


def prompt_messages(messages: Any) -> list[dict[str, str]]:
    """The prompt of a general chat row: every message up to and including the last user turn."""
    chat_ = chat.normalise_messages(messages)
    users = [i for i, m in enumerate(chat_) if m["role"] == "user" and m["content"].strip()]
    if not users:
        raise ValueError("general chat row has no non-empty user message")
    return chat_[:users[-1] + 1]


def build_prompts(data: Mapping[str, Any], tokenizer: Any) -> list[dict[str, list[int]]]:
    """The ``data:`` section -> tokenised generation prompts: ``data.think_mode`` auto draws ``" /think"``,
    ``" /no_think"`` or nothing per row, a third each, appended to every user turn (the reference)."""
    import json

    mode = data.get("think_mode", "auto")
    if mode not in THINK_MODES:
        raise ConfigError(f"data.think_mode must be one of {THINK_MODES}, got {mode!r}")
    seed = int(data.get("seed", 0))
    rng = random.Random(seed)
    max_length = int(data.get("max_prompt_length", 10240))
    rows = mixer.general_rows(require(dict(data), "prompts"), seed)
    prompts, too_long = [], 0
    for row in rows:
        messages = row.get("messages")
        if messages is None:
            raise ValueError(f"{row['source']}: distillation prompts need a messages column")
        switch = rng.choice(list(THINK_SWITCHES.values())) if mode == "auto" else THINK_SWITCHES[mode]
        text = chat.render_with_switch(prompt_messages(json.loads(messages) if isinstance(messages, str) else messages),
                                       switch)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_length:
            too_long += 1
        else:
            prompts.append({"input_ids": ids})
    if too_long:
        log.warning("dropped %d prompts longer than max_prompt_length=%d", too_long, max_length)
    if not prompts:
        raise ValueError("no distillation prompts (empty data.prompts, or all longer than max_prompt_length)")
    return prompts


class PromptCollator:
    """Prompts left-padded into one batch (generation continues at the right edge)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[Mapping[str, list[int]]]) -> dict[str, Any]:
        ids, mask = left_pad([item["input_ids"] for item in items], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask}


def text_vocab_size(tokenizer: Any, teacher_rows: int) -> int:
    """Ids below this are shared text tokens; ids at or above it are extended (itemic, padding rows)."""
    return min(find_itemic_ids(tokenizer)[0], teacher_rows)


def response_weights(valid: Any, extended: Any) -> tuple[Any, Any]:
    """(weights, first_extended) of a response batch.

    ``valid`` marks generated tokens up to and including EOS, ``extended`` marks itemic/unknown ids.
    Weight 1 up to and including the first extended token of a row, 0 after it and after EOS.
    """
    ext = extended & valid
    seen_before = ext.long().cumsum(-1) - ext.long()
    keep = valid & (seen_before == 0)
    return keep.float(), ext & (seen_before == 0)


def token_advantages(teacher_logp: Any, student_logp: Any, first_extended: Any,
                     settings: DistillSettings) -> Any:
    """Clamped ``teacher - student`` log-prob per token; the first extended token scores the penalty."""
    import torch

    teacher = torch.where(first_extended, torch.full_like(teacher_logp, settings.teacher_replace_value), teacher_logp)
    return (teacher - student_logp).clamp(settings.adv_min, settings.adv_max)


def teacher_ids(ids: Any, text_vocab: int, replacement: int) -> Any:
    """``ids`` with every id the teacher lacks replaced by ``replacement`` (``<|im_end|>``)."""
    import torch

    return torch.where(ids >= text_vocab, torch.full_like(ids, replacement), ids)


def token_logps(model: Any, ids: Any, attention_mask: Any, start: int, temperature: float,
                vocab: int | None = None) -> Any:
    """Log-prob of ``ids[:, start:]`` under ``model`` at ``temperature`` (logits cut to ``vocab`` if given)."""
    import torch

    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False).logits[:, start - 1:-1]
    if vocab is not None:
        logits = logits[..., :vocab]
    logps = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logps.gather(-1, ids[:, start:, None]).squeeze(-1)


def clipped_surrogate(logp: Any, old_logp: Any, advantages: Any, weights: Any, clip_low: float,
                      clip_high: float) -> Any:
    """PPO clipped policy-gradient loss, token-mean over ``weights``."""
    import torch

    ratio = torch.exp(logp - old_logp)
    loss = torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - clip_low, 1 + clip_high))
    return (loss * weights).sum() / weights.sum().clamp(min=1.0)


def sample(model: Any, input_ids: Any, attention_mask: Any, settings: DistillSettings, eos_id: int,
           pad_id: int) -> tuple[Any, Any]:
    """(sequences, valid response mask): sampled continuations, valid up to and including EOS."""
    import torch

    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True,
                             temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k,
                             max_new_tokens=settings.max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id,
                             use_cache=True)
    response = out[:, input_ids.shape[1]:]
    is_eos = (response == eos_id).long()
    valid = (is_eos.cumsum(-1) - is_eos) == 0
    return out, valid


class DistillTrainer(trainer.RecipeTrainer):
    """The recipe Trainer whose loss is an on-policy rollout scored by the teacher."""

    def __init__(self, *args: Any, teacher: Any, settings: DistillSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False)
        self.settings = settings
        tok = self.processing_class
        self.text_vocab = text_vocab_size(tok, teacher.get_input_embeddings().weight.shape[0])
        self.eos_id, self.pad_id = tok.eos_token_id, tok.pad_token_id
        self.metrics: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model: Any, inputs: Mapping[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        import torch

        prompt_mask = inputs["attention_mask"]
        start = inputs["input_ids"].shape[1]
        student = self.accelerator.unwrap_model(model)
        ids, valid = sample(student, inputs["input_ids"], prompt_mask, self.settings, self.eos_id, self.pad_id)
        mask = inputs["attention_mask"].new_ones(ids.shape)
        mask[:, :start] = prompt_mask
        mask[:, start:] = valid
        extended = ids[:, start:] >= self.text_vocab
        weights, first = response_weights(valid, extended)
        logp = token_logps(model, ids, mask, start, self.settings.temperature)
        if self.teacher.device != ids.device:
            self.teacher.to(ids.device)
        with torch.no_grad():
            safe = teacher_ids(ids, self.text_vocab, self.eos_id)
            teacher_logp = token_logps(self.teacher, safe, mask, start, self.settings.temperature, self.text_vocab)
        advantages = token_advantages(teacher_logp, logp.detach(), first, self.settings)
        loss = clipped_surrogate(logp, logp.detach(), advantages, weights, self.settings.clip_low,
                                 self.settings.clip_high)
        plain = weights * (~first).float()
        self.metrics["leak_rate"].append((extended & valid).any(-1).float().mean().item())
        self.metrics["reverse_kl"].append((((logp.detach() - teacher_logp) * plain).sum()
                                           / plain.sum().clamp(min=1)).item())
        self.metrics["response_length"].append(valid.float().sum(-1).mean().item())
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.metrics and "loss" in logs:
            logs.update({k: sum(v) / len(v) for k, v in self.metrics.items()})
            self.metrics.clear()
        super().log(logs, start_time)


def leak_rate(model: Any, tokenizer: Any, prompts: Sequence[Mapping[str, list[int]]], settings: DistillSettings,
              batch_size: int = 8, seed: int = 0) -> float:
    """Share of sampled answers to ``prompts`` that contain an itemic token (the distillation target)."""
    import torch

    torch.manual_seed(seed)
    first_itemic = find_itemic_ids(tokenizer)[0]
    collate = PromptCollator(tokenizer.pad_token_id)
    leaked = 0
    model.eval()
    for i in range(0, len(prompts), batch_size):
        batch = collate(prompts[i:i + batch_size])
        ids, valid = sample(model, batch["input_ids"], batch["attention_mask"], settings, tokenizer.eos_token_id,
                            tokenizer.pad_token_id)
        leaked += int(((ids[:, batch["input_ids"].shape[1]:] >= first_itemic) & valid).any(-1).sum())
    return leaked / max(1, len(prompts))


def load_teacher(path: str | Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: teacher model folder not found")
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False)


def build_trainer(config: Mapping[str, Any]) -> DistillTrainer:
    """The configured :class:`DistillTrainer` (not yet trained)."""
    model, tokenizer = trainer.load_model(require(config, "model"))
    tokenizer.padding_side = "left"
    teacher = load_teacher(require(config, "teacher"))
    settings = DistillSettings.from_config(config)
    prompts = build_prompts(require(config, "data"), tokenizer)
    output_dir = require(config, "output_dir")
    args = trainer.training_arguments(output_dir, config.get("train") or {}, DISTILL_DEFAULTS)
    return DistillTrainer(model=model, args=args, train_dataset=prompts, teacher=teacher, settings=settings,
                          data_collator=PromptCollator(tokenizer.pad_token_id), processing_class=tokenizer)


def main(config: dict[str, Any]) -> Path:
    return trainer.fit(build_trainer(config), require(config, "output_dir"))
