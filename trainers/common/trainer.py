"""The training loop every recipe uses: transformers' Trainer plus three recipe rules.

* Weight decay skips biases, norms (Qwen3's RMSNorm, q/k norms) *and* the embeddings / head, the
  no-decay set the reference meant but did not hit (spec training §4.5).
* Stage 1 trains only the itemic rows of the embeddings (and of an untied head) through a
  gradient mask; every other weight stays bit-identical (spec ecosystem §3.1, option A).
* Runs resume from the last ``checkpoint-N`` of the output folder, and the final model is written
  in HF format (weights + tokenizer) to the output folder itself, so ``recif-eval --model
  <output_dir>`` loads it directly.  Checkpoints load the same way.
* Weights are always float32 (the master copy AdamW updates) and GPUs compute in bf16 autocast
  (``bf16=True``).  Weights stored in bf16 lose small updates: AdamW at LR 2e-6 moved only 3.9 %
  of them in 10 steps (spec ecosystem §8); with fp32 masters every weight moves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from transformers import Trainer, TrainingArguments

log = logging.getLogger(__name__)

NO_DECAY_MODULES = ("embed_tokens", "lm_head")
RECIPE_DEFAULTS: dict[str, Any] = {   # spec training §4.5-4.6; configs override any of them
    "optim": "adamw_torch", "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_epsilon": 1e-8,
    "weight_decay": 0.1, "max_grad_norm": 1.0, "lr_scheduler_type": "cosine_with_min_lr",
    "lr_scheduler_kwargs": {"min_lr": 1e-4}, "learning_rate": 2e-4, "per_device_train_batch_size": 1,
    "logging_steps": 5, "save_strategy": "steps", "save_steps": 50, "save_total_limit": 2,
    "report_to": "none", "remove_unused_columns": False, "dataloader_num_workers": 0,
    "include_num_input_tokens_seen": "non_padding",   # D of the scaling-law fit (recif-leaderboard scaling)
}


class RecipeDecay:
    """Mixin for any transformers/trl trainer: the recipes' no-decay set (biases, norms, embeddings, head)."""

    def get_decay_parameter_names(self, model) -> list[str]:
        names = super().get_decay_parameter_names(model)
        return [n for n in names if not any(part in n for part in NO_DECAY_MODULES)]


class RecipeTrainer(RecipeDecay, Trainer):
    pass


def training_arguments(output_dir: str | Path, train: Mapping[str, Any],
                       defaults: Mapping[str, Any] = RECIPE_DEFAULTS, cls: type = TrainingArguments) -> Any:
    """``cls`` (TrainingArguments or a trl config) from a recipe's defaults and its config's ``train:``."""
    args = {**defaults, **dict(train or {})}
    args.update(mixed_precision(args))
    return cls(output_dir=str(output_dir), **args)


def mixed_precision(args: Mapping[str, Any]) -> dict[str, Any]:
    """bf16 autocast over the fp32 weights on GPUs with bf16, fp32 elsewhere; a config's own
    ``bf16`` / ``fp16`` wins (``bf16: true`` on CPU runs CPU autocast, as the bf16 test does).

    trl's configs default to ``bf16=True`` whatever the machine, so the default is set here, not
    left to the config class.
    """
    import torch

    if torch.cuda.is_available():
        fp16 = bool(args.get("fp16", False))
        return {"bf16": bool(args.get("bf16", torch.cuda.is_bf16_supported() and not fp16)), "fp16": fp16}
    return {"use_cpu": True, "bf16": bool(args.get("bf16", False)), "fp16": False}


def train_only_itemic_rows(model: Any, itemic_ids: Sequence[int]) -> list[Any]:
    """Freeze everything but the itemic rows of the input embeddings and of an untied head.

    Returns the trainable matrices.  Their other rows get a zero gradient, so AdamW leaves them
    unchanged as long as they are not weight-decayed (the stage-1 recipe sets no decay there).
    """
    import torch

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not matrices[0]:
        matrices.append(head.weight)
    for matrix in matrices:
        mask = torch.zeros(matrix.shape[0], 1, dtype=matrix.dtype, device=matrix.device)
        mask[list(itemic_ids)] = 1
        matrix.requires_grad_(True)
        matrix.register_hook(lambda grad, mask=mask: grad * mask)
    return matrices


def load_model(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) of an HF folder with float32 weights (the master copy; GPUs compute in
    bf16 autocast, see :func:`mixed_precision`), cache off for packing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: model folder not found")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, trust_remote_code=False)
    model.config.use_cache = False
    return model, tokenizer


def run(model: Any, tokenizer: Any, dataset: Sequence[Any], collator: Any, output_dir: str | Path,
        train: Mapping[str, Any]) -> Path:
    """Train (resuming from the last checkpoint in ``output_dir`` if any) and save the final model."""
    trainer = RecipeTrainer(model=model, args=training_arguments(output_dir, train), train_dataset=dataset,
                            data_collator=collator, processing_class=tokenizer)
    return fit(trainer, output_dir)


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` whose ``trainer_state.json`` exists.

    The Trainer writes that file last, so a kill in the middle of a save leaves a newer folder
    without it; resuming from such a folder would fail (transformers' ``get_last_checkpoint``
    only checks the folder name).
    """
    steps = [int(p.name.split("-", 1)[1]) for p in output_dir.glob("checkpoint-*")
             if p.name.split("-", 1)[1].isdigit() and (p / "trainer_state.json").is_file()]
    return str(output_dir / f"checkpoint-{max(steps)}") if steps else None


def fit(trainer: Any, output_dir: str | Path) -> Path:
    """Run any Trainer (recipe, distillation, GRPO): resume from the last ``checkpoint-N`` of
    ``output_dir`` if there is one, train, and save the final HF model (with cache on) there."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    last = last_complete_checkpoint(output_dir)
    if last:
        log.warning("resuming from %s", last)
    model = trainer.model
    trainer.train(resume_from_checkpoint=last)
    model.config.use_cache = True   # generation wants the cache back
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        model.generation_config.save_pretrained(str(output_dir))
    return output_dir
