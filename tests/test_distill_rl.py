"""Trainers part 2: distillation reward and mask, teacher vocabulary guard, Rec-RL reward, GRPO
advantages, real steps of both trainers on the tiny model, pipeline stage wiring."""

import json
import math
from pathlib import Path

import pytest
import torch

from recif_bench import sid
from trainers import distill, pipeline, rl, rl_rewards
from trainers.common.config import load

REPO = Path(__file__).resolve().parents[1]
FMT = sid.SidFormat(3, 256)
SETTINGS = distill.DistillSettings()


def test_distill_advantage_and_mask_on_a_hand_made_sequence():
    # response: text, text, ITEMIC, text, ITEMIC, EOS, pad  (EOS at 5 is the last valid token)
    valid = torch.tensor([[True, True, True, True, True, True, False]])
    extended = torch.tensor([[False, False, True, False, True, False, False]])
    weights, first = distill.response_weights(valid, extended)
    assert weights.tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]        # kept up to and including the itemic
    assert first.tolist() == [[False, False, True, False, False, False, False]]
    teacher = torch.tensor([[-1.0, -0.1, -0.2, -1.0, -1.0, -1.0, 0.0]])
    student = torch.tensor([[-1.5, -10.0, -0.1, -1.0, -1.0, -1.0, 0.0]])
    adv = distill.token_advantages(teacher, student, first, SETTINGS)
    assert adv[0, :3].tolist() == pytest.approx([0.5, 5.0, -30.0])          # 9.9 clamped to 5; itemic -> minimum
    logp = student.clone().requires_grad_(True)
    distill.clipped_surrogate(logp, logp.detach(), adv, weights, 0.2, 0.28).backward()
    assert logp.grad[0, 3:].abs().sum() == 0                                # nothing after the itemic token trains
    assert logp.grad[0, :3].tolist() == pytest.approx([-0.5 / 3, -5.0 / 3, 30.0 / 3])   # token-mean of -A


def test_a_row_without_itemic_tokens_is_kept_to_its_eos():
    valid = torch.tensor([[True, True, False]])
    weights, first = distill.response_weights(valid, torch.tensor([[False, False, True]]))   # itemic after EOS
    assert weights.tolist() == [[1.0, 1.0, 0.0]] and not first.any()


def test_prompt_messages_cut_at_the_last_user_turn():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"}]
    assert [m["role"] for m in distill.prompt_messages(messages)] == ["system", "user"]
    with pytest.raises(ValueError, match="no non-empty user"):
        distill.prompt_messages([{"role": "user", "content": "  "}])


def tiny(name, **values):
    return load(REPO / "configs" / "train" / f"tiny_{name}.yaml", [f"{k}={v}" for k, v in values.items()])


def changed(before, model):
    return any(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())


def test_distill_steps_never_feed_the_teacher_an_oov_id(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recif_bench.itemic.vocab import find_itemic_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text_vocab = find_itemic_ids(tokenizer)[0]
    teacher = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    teacher.resize_token_embeddings(text_vocab)                     # a base model: no itemic rows at all
    teacher.save_pretrained(tmp_path / "teacher")
    run = distill.build_trainer(tiny("distill", model=tiny_model_dir, teacher=tmp_path / "teacher",
                                     output_dir=tmp_path / "out", **{"train.max_steps": 2, "train.weight_decay": 0.0,
                                                                     "data.prompts": "[{path: general_prompts.jsonl, rows: 4}]"}))
    seen = []
    run.teacher.get_input_embeddings().register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].max())))
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    run.train()
    losses = [e["loss"] for e in run.state.log_history if "loss" in e]
    leaks = [e["leak_rate"] for e in run.state.log_history if "leak_rate" in e]
    assert len(seen) == 2 and max(seen) < text_vocab
    assert max(leaks) > 0                       # the random student did emit itemic ids, and they were replaced
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert changed(before, run.model)            # weight decay 0: only the distillation gradient moves weights


@pytest.mark.parametrize("completion,partial,expected", [
    ("<|sid_begin|><s_a_4><s_b_5><s_c_6>", False, 1.0),                               # hit (prompt-forced begin)
    ("<think>想想</think>\n\n<|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|>", False, 1.0),  # hit after reasoning
    ("<|sid_begin|><s_a_1><s_b_2><s_c_9>", False, 0.0),                               # miss
    ("<|sid_begin|><s_a_1><s_b_2><s_c_9>", True, 0.1),                                # a/b prefix
    ("<|sid_begin|><s_a_1><s_b_7><s_c_7>", True, 0.01),                               # a prefix
    ("<|sid_begin|><s_a_9><s_b_2><s_c_3>", True, 0.0),
    ("<|sid_begin|><s_a_9><s_b_9><s_c_9><|sid_end|><|sid_begin|><s_a_1><s_b_2><s_c_3>", False, 0.0),  # first SID only
    ("<think><|sid_begin|><s_a_1><s_b_2><s_c_3><|sid_end|></think>\n\n<|sid_begin|><s_a_9><s_b_9><s_c_9>", False, 0.0),
    ("<|sid_begin|><s_a_1><s_c_3><s_b_2>", True, 0.0),                                # malformed: wrong order
    ("<|sid_begin|><s_a_1><s_b_2>", True, 0.0),                                       # malformed: too short
    ("<|sid_begin|><s_a_300><s_b_2><s_c_3>", True, 0.0),                              # code out of range
    ("我不知道", True, 0.0),                                                            # no SID
    ("", False, 0.0),
])
def test_rl_reward_on_hand_made_completions(completion, partial, expected):
    assert rl_rewards.first_sid_reward(completion, {(1, 2, 3), (4, 5, 6)}, FMT, partial) == pytest.approx(expected)


def test_rl_reward_function_reads_the_ground_truth_column():
    reward = rl_rewards.build({"kind": "hit"}, FMT)
    truth = json.dumps([[1, 2, 3]])
    assert reward.__name__ == "hit"
    assert reward(["p", "p"], ["<|sid_begin|><s_a_1><s_b_2><s_c_3>", "<|sid_begin|><s_a_1><s_b_2><s_c_4>"],
                  ground_truth=[truth, truth]) == [1.0, 0.0]


@pytest.fixture(scope="module")
def rl_trainer(tiny_model_dir, mini_dir, tmp_path_factory):
    from recif_bench.data import training
    from recif_bench.data.mini import FORMAT

    root = tmp_path_factory.mktemp("rl")
    training.write({"sft_video": training.build_all(mini_dir / "raw", fmt=FORMAT)["sft_video"][:6]}, root / "data")
    return rl.build_trainer(tiny("rl", model=tiny_model_dir, output_dir=root / "out", **{
        "data.dir": root / "data", "data.mixture": "{sft_video: 1.0}", "train.max_steps": 1,
        "train.weight_decay": 0.0}))


def named(fn, name="hit"):
    fn.__name__ = name
    return fn


def test_grpo_groups_are_beams_and_equal_rewards_give_zero_advantages(rl_trainer):
    k = rl_trainer.num_generations
    rows = [rl_trainer.train_dataset[i] for i in (0, 1) for _ in range(k)]
    rl_trainer.reward_funcs[0] = named(lambda prompts, completions, **kw: [1.0] * len(completions))
    out = rl_trainer._generate_and_score_completions(rows)
    assert torch.count_nonzero(out["advantages"]) == 0
    texts = rl_trainer.processing_class.batch_decode(out["completion_ids"][:k], skip_special_tokens=True)
    assert len(set(texts)) == k and all(t.startswith(sid.SID_BEGIN) for t in texts)   # k distinct beams, one prompt
    assert all(len(sid.extract_codes(t + sid.SID_END, FMT)) <= 1 for t in texts)
    first_beam = named(lambda prompts, completions, **kw: [float(i % k == 0) for i in range(len(completions))])
    rl_trainer.reward_funcs[0] = first_beam
    adv = rl_trainer._generate_and_score_completions(rows)["advantages"].view(2, k)
    assert torch.allclose(adv.sum(1), torch.zeros(2), atol=1e-5) and (adv[:, 0] > 0).all() and (adv[:, 1:] < 0).all()


def test_thinking_rollout_shares_the_reasoning_and_closes_it(rl_trainer):
    tokenizer = rl_trainer.processing_class
    rollout = rl.TwoStageRollout(tokenizer, FMT, thinking=True, think_tokens=4)
    prompt = tokenizer(rl_trainer.train_dataset[0]["prompt"], add_special_tokens=False)["input_ids"]
    candidates = rollout.candidates(rl_trainer.model, prompt, 3)
    cut = candidates[0].index(rollout.think_end) + 1
    assert cut <= 5 and all(c[:cut] == candidates[0][:cut] for c in candidates)   # one reasoning per group
    assert all(c[cut:cut + len(rollout.bridge)] == rollout.bridge and len(c) == cut + len(rollout.bridge) + 3
               for c in candidates)
    assert tokenizer.decode(rollout.bridge) == "\n" + sid.SID_BEGIN


def test_grpo_step_with_zero_advantages_leaves_the_weights(rl_trainer):
    """The control of the next test: equal rewards give zero advantages and (weight decay 0, KL 0 at the
    first step) no update, so a change there is learning, not decay."""
    rl_trainer.reward_funcs[0] = named(lambda prompts, completions, **kw: [1.0] * len(completions))
    before = {n: p.detach().clone() for n, p in rl_trainer.model.named_parameters()}
    rl_trainer.train()
    assert rl_trainer.args.weight_decay == 0.0 and not changed(before, rl_trainer.model)


def test_grpo_step_changes_the_weights_with_a_finite_loss(rl_trainer):
    k = rl_trainer.num_generations
    rl_trainer.reward_funcs[0] = named(lambda prompts, completions, **kw: [float(i % k == 0) for i in range(len(completions))])
    before = {n: p.detach().clone() for n, p in rl_trainer.model.named_parameters()}
    rl_trainer.train()
    logged = [e for e in rl_trainer.state.log_history if "loss" in e]
    assert logged and math.isfinite(logged[0]["loss"]) and logged[0]["rewards/hit/mean"] == pytest.approx(1 / k)
    assert changed(before, rl_trainer.model)


def test_pipeline_stage_config_wires_model_data_and_teacher(tmp_path):
    stages = {"base": tmp_path / "base", "sft": tmp_path / "sft"}
    stage = {"name": "distill", "recipe": "distill", "config": str(REPO / "configs/train/mini_distill.yaml"),
             "teacher": "base"}
    config = pipeline.stage_config(stage, tmp_path / "sft", tmp_path / "distill", tmp_path / "data", stages)
    assert (config["model"], config["teacher"], config["output_dir"]) == \
        (str(tmp_path / "sft"), str(tmp_path / "base"), str(tmp_path / "distill"))
    assert "dir" not in config["data"]
    rl_stage = {"name": "rl", "recipe": "rl", "config": str(REPO / "configs/train/mini_rl.yaml"),
                "set": ["train.max_steps=3"]}
    config = pipeline.stage_config(rl_stage, tmp_path / "distill", tmp_path / "rl", tmp_path / "data", stages)
    assert config["data"]["dir"] == str(tmp_path / "data") and config["train"]["max_steps"] == 3


def test_distillation_prompts_draw_the_reference_think_switch(tiny_model_dir, tmp_path):
    """A third each of ' /think', ' /no_think' and nothing, on every user turn, no pre-filled think block."""
    from transformers import AutoTokenizer

    rows = [{"messages": [{"role": "user", "content": f"问题{i}"}, {"role": "assistant", "content": "答"},
                          {"role": "user", "content": f"追问{i}"}]} for i in range(300)]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = distill.build_prompts({"prompts": [{"path": str(path), "rows": 300}], "seed": 0}, tokenizer)
    texts = [tokenizer.decode(p["input_ids"]) for p in prompts]
    switches = []
    for text in texts:
        first, second = (turn.split("<|im_end|>")[0] for turn in text.split("<|im_start|>user\n")[1:])
        switch = first.removeprefix(first.rstrip("/think no_").rstrip())
        assert second.endswith(switch) and first.endswith(switch)                 # every user turn
        assert text.endswith("<|im_start|>assistant\n") and "<think>" not in text  # the model decides
        switches.append(switch)
    counts = {s: switches.count(s) for s in (" /think", " /no_think", "")}
    assert sum(counts.values()) == 300 and all(80 <= n <= 120 for n in counts.values()), counts
    fixed = distill.build_prompts({"prompts": [{"path": str(path), "rows": 5}], "think_mode": "no_think"}, tokenizer)
    assert all(tokenizer.decode(p["input_ids"]).count(" /no_think<|im_end|>") == 2 for p in fixed)
