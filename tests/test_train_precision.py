"""Training keeps its small updates: fp32 master weights under bf16 autocast (spec ecosystem §8)."""

import torch

from trainers.common import trainer


def _train(model, tokenizer, tmp_path, steps=10, lr=2e-6):
    """``steps`` AdamW steps at ``lr`` with bf16 autocast (CPU autocast here, CUDA autocast on a GPU)."""
    torch.manual_seed(0)
    rows = [{"input_ids": ids, "labels": ids, "attention_mask": [1] * len(ids)}
            for ids in torch.randint(0, len(tokenizer), (16, 24)).tolist()]
    args = trainer.training_arguments(tmp_path, {
        "bf16": True, "max_steps": steps, "learning_rate": lr, "lr_scheduler_type": "constant",
        "lr_scheduler_kwargs": {}, "warmup_steps": 0, "save_strategy": "no", "per_device_train_batch_size": 4,
        "logging_steps": 1})
    run = trainer.RecipeTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
    run.train()
    return run


def test_bf16_training_at_lr_2e6_moves_the_trained_weights(tiny_model_dir, tmp_path):
    model, tokenizer = trainer.load_model(tiny_model_dir)
    assert all(p.dtype == torch.float32 for p in model.parameters())   # the master copy
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    compute_dtypes = []
    layer = model.model.layers[0].mlp.down_proj
    layer.register_forward_hook(lambda module, inputs, output: compute_dtypes.append(output.dtype))
    run = _train(model, tokenizer, tmp_path)
    assert run.args.bf16 and compute_dtypes and set(compute_dtypes) == {torch.bfloat16}   # autocast was on
    used = torch.tensor(sorted({t for row in run.train_dataset for t in row["input_ids"]}))
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        moved = p.detach() != before[name]
        if "embed_tokens" in name:   # rows of tokens never seen get no gradient (and no decay)
            moved = moved[used]
        # measured: >= 99.96 % of every matrix, 99.99 % overall (the rest: updates that cancel out)
        assert moved.float().mean() > 0.995, f"{name}: {int((~moved).sum())} of {moved.numel()} weights did not move"


def test_bf16_weights_would_lose_those_updates(tiny_model_dir, tmp_path):
    """The failure the fp32 masters prevent: the same steps on bf16 weights leave most weights unchanged."""
    model, tokenizer = trainer.load_model(tiny_model_dir)
    model = model.to(torch.bfloat16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _train(model, tokenizer, tmp_path)
    weights = [(name, p) for name, p in model.named_parameters() if p.dim() == 2 and "embed" not in name]
    moved = sum(int((p.detach() != before[name]).sum()) for name, p in weights)
    total = sum(p.numel() for _, p in weights)
    assert moved / total < 0.1, f"{moved / total:.1%} of the bf16 weights moved"   # measured: 3.9 %
