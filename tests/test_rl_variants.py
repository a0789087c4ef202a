"""Issue 10 part 1: the OneRec-family rewards and policy losses of trainers/rl.py.

Losses on hand-made tokens (gradients computed by autograd and compared with the closed forms),
rewards on hand-made completions, and each RL variant (grpo+hit, grpo+beam_match, ecpo+pscore,
gbpo+feedback) for two real steps on the tiny model.  The tiny random model never writes a SID,
so a forward hook steers its generation towards the SID grammar (``<|sid_begin|>`` -> a -> b -> c
codes), as constrained decoding would; the log-probabilities trl trains on stay the model's own.
The beams are then SIDs, the rewards differ inside a group, and a weight change with weight
decay 0 can only come from the policy gradient.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from recif_bench import sid
from recif_bench.benchmark import task_info
from trainers import policy_losses as pl
from trainers import rl, rl_rewards
from trainers.common.config import ConfigError, load

REPO = Path(__file__).resolve().parents[1]
FMT = sid.SidFormat(3, 256)
TRUTH = {(1, 2, 3), (4, 5, 6)}
VIDEO = task_info("video").sft_source
PRODUCT = task_info("product").sft_source


def one_token(p: float, vocab: int = 3) -> torch.Tensor:
    """Logits of one position whose token 0 has probability ``p`` (the rest shared equally)."""
    rest = (1 - p) / (vocab - 1)
    return torch.tensor([[math.log(p)] + [math.log(rest)] * (vocab - 1)], dtype=torch.float64, requires_grad=True)


def logit_grad(loss_fn, p: float, old_p: float, advantage: float) -> torch.Tensor:
    logits = one_token(p)
    logp = torch.log_softmax(logits, -1)[:, :1]                     # (B=1, T=1)
    old = torch.full_like(logp, math.log(old_p))
    loss_fn(logp, old, torch.tensor([advantage], dtype=torch.float64), torch.ones_like(logp)).backward()
    return logits.grad[0]


def bce_grad(p: float, positive: bool) -> torch.Tensor:
    logits = one_token(p)
    prob = torch.softmax(logits, -1)[0, 0]
    (-torch.log(prob) if positive else -torch.log1p(-prob)).backward()
    return logits.grad[0]


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
def test_gbpo_negative_gradient_is_the_bce_gradient_while_grpo_grows_with_the_ratio(p):
    old_p = 1e-4                                                    # the rollout policy found the token unlikely
    gbpo = logit_grad(pl.gbpo_loss, p, old_p, -1.0)
    assert torch.allclose(gbpo, bce_grad(p, positive=False))       # d(-log(1 - pi))/dz: pi on the token, bounded
    assert gbpo[0].item() == pytest.approx(p) and gbpo.norm() <= math.sqrt(2)
    grpo = logit_grad(pl.grpo_loss, p, old_p, -1.0)                 # negative ratio never clipped above
    assert grpo[0].item() == pytest.approx(p * (1 - p) / old_p)     # = pi (1 - pi) / pi_old
    assert logit_grad(pl.grpo_loss, p, old_p / 100, -1.0)[0].item() == pytest.approx(100 * grpo[0].item())


def test_gbpo_gradient_stays_below_the_advantage_as_pi_goes_to_one():
    for old_p in (1e-8, 1e-4, 0.3, 0.9):
        for p in (0.5, 0.99, 1 - 1e-5, 1 - 1e-9):
            negative = logit_grad(pl.gbpo_loss, p, old_p, -2.0)
            positive = logit_grad(pl.gbpo_loss, p, old_p, 2.0)
            assert negative.abs().max() <= 2.0 * p + 1e-9 and positive.abs().max() <= 2.0 * (1 - p) + 1e-9
    assert torch.allclose(logit_grad(pl.gbpo_loss, 0.3, 0.1, 1.0), bce_grad(0.3, positive=True))   # pi >= pi_old


def grad_and_loss(loss_fn, log_ratio: float, advantage: float) -> tuple[float, float]:
    old = torch.tensor([[-3.0]])
    logp = (old + log_ratio).requires_grad_(True)
    loss = loss_fn(logp, old, torch.tensor([advantage]), torch.ones_like(old))
    loss.backward()
    return loss.item(), logp.grad.item()


def test_ecpo_caps_the_ratio_of_negative_samples():
    cap = 1 + 0.28 + 0.1
    assert grad_and_loss(pl.grpo_loss, math.log(50), -1.0) == pytest.approx((50.0, 50.0))   # GRPO: r A, unbounded
    assert grad_and_loss(pl.ecpo_loss, math.log(50), -1.0) == pytest.approx((cap, cap))     # ECPO: r <= 1 + eps + delta
    assert grad_and_loss(pl.ecpo_loss, math.log(1.3), -1.0) == pytest.approx((1.3, 1.3))    # below the cap: GRPO
    assert grad_and_loss(pl.ecpo_loss, math.log(0.5), -1.0) == pytest.approx((0.8, 0.0))    # clipped at 1 - eps
    assert grad_and_loss(pl.ecpo_loss, math.log(50), 1.0) == pytest.approx((-1.28, 0.0))    # positives: GRPO's clip
    assert grad_and_loss(pl.grpo_loss, math.log(50), 1.0) == pytest.approx((-1.28, 0.0))
    with pytest.raises(ValueError, match="delta > 0"):
        pl.ecpo_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1), delta=0.0)


@pytest.mark.parametrize("loss_fn", [pl.grpo_loss, pl.ecpo_loss, pl.gbpo_loss])
def test_zero_advantages_and_masked_tokens_give_no_gradient(loss_fn):
    logp = torch.tensor([[-0.1, -2.0, -0.5], [-1.0, -0.2, -3.0]], requires_grad=True)
    loss_fn(logp, logp.detach() - 0.3, torch.zeros(2), torch.ones(2, 3)).backward()
    assert torch.count_nonzero(logp.grad) == 0
    logp.grad = None
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    loss_fn(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask).backward()
    assert (logp.grad[mask == 0] == 0).all() and (logp.grad[mask == 1] != 0).all()


# ---- rewards on hand-made completions -------------------------------------------------------------------

@pytest.mark.parametrize("completion,expected", [
    ("<|sid_begin|><s_a_1><s_b_2><s_c_3>", 3),             # hit
    ("<|sid_begin|><s_a_4><s_b_5><s_c_9>", 2),             # a/b of the second target
    ("<|sid_begin|><s_a_1><s_b_9><s_c_3>", 2),             # levels count one by one, not as a prefix
    ("<|sid_begin|><s_a_9><s_b_9><s_c_6>", 1),
    ("<|sid_begin|><s_a_9><s_b_9><s_c_9>", 0),             # miss
    ("<|sid_begin|><s_a_1><s_c_3><s_b_2>", 0),             # malformed
    ("<think>x</think>\n\n<|sid_begin|><s_a_1><s_b_2>", 0),  # too short
    ("没有推荐", 0),                                          # no SID
])
def test_beam_match_counts_matching_levels(completion, expected):
    assert rl_rewards.beam_match_reward([completion], TRUTH, FMT) == expected


def test_beam_match_takes_the_best_beam_of_a_rollout_or_the_member_itself():
    reward = rl_rewards.build({"kind": "beam_match"}, FMT)
    truth = json.dumps([list(t) for t in TRUTH])
    a, b, c = "<|sid_begin|><s_a_9><s_b_9><s_c_6>", "<|sid_begin|><s_a_1><s_b_2><s_c_9>", "oops"
    assert reward(["p"] * 3, [a, b, c], ground_truth=[truth] * 3) == [1.0, 2.0, 0.0]
    assert reward(["p"] * 2, [a, c], ground_truth=[truth] * 2, beam_texts=[[a, b, c], [c]]) == [2.0, 0.0]


class FakePScore:
    """Scores ``uid / 10 + pid / 1000``, and records the calls."""

    def __init__(self):
        self.calls = []

    def score(self, uid, pids):
        self.calls.append((uid, list(pids)))
        return [uid / 10 + pid / 1000 for pid in pids]


def hand_catalogue():
    return rl_rewards.Catalogue(video={10: (1, 2, 3), 11: (1, 2, 3), 12: (4, 5, 6), 13: (7, 7, 7)},
                                product={20: (1, 2, 3)})


def test_pscore_reward_scores_the_items_of_the_generated_sid():
    fake = FakePScore()
    reward = rl_rewards.build({"kind": "pscore"}, FMT, catalogue=hand_catalogue(), scorer=fake)
    completions = ["<|sid_begin|><s_a_1><s_b_2><s_c_3>", "<|sid_begin|><s_a_4><s_b_5><s_c_6>",
                   "<|sid_begin|><s_a_1><s_b_2><s_c_3>", "<|sid_begin|><s_a_9><s_b_9><s_c_9>", "nothing"]
    sources = [VIDEO, VIDEO, PRODUCT, VIDEO, VIDEO]
    scores = reward(["p"] * 5, completions, source=sources, uid=[2, 2, 3, 2, 2], ground_truth=["[]"] * 5)
    assert scores == pytest.approx([0.2 + 0.0105, 0.2 + 0.012, 0.0, 0.0, 0.0])   # mean over a collision
    assert fake.calls == [(2, [10, 11]), (2, [12])]          # products (not the model's items), non-items: 0


def test_pscore_needs_a_model_path():
    with pytest.raises(ConfigError, match="pscore_model"):
        rl_rewards.build({"kind": "pscore"}, FMT, catalogue=hand_catalogue())


def hand_users():
    return pd.DataFrame({
        "uid": [2, 3], "target_video_pid": [[10, 12, 13, 11], [12]],
        "target_video_like": [[1, 0, 0, 0], [1]], "target_video_longview": [[0, 1, 1, 0], [0]],
        "target_video_not_interested": [[0, 1, 0, 0], [0]],
    })


def test_feedback_reward_is_plus_one_minus_one_or_zero():
    reward = rl_rewards.build({"kind": "feedback"}, FMT, catalogue=hand_catalogue(), users=hand_users())
    completions = ["<|sid_begin|><s_a_1><s_b_2><s_c_3>",   # items 10 (liked) and 11 (no flag): +1
                   "<|sid_begin|><s_a_4><s_b_5><s_c_6>",   # 12: long view but not interested: -1
                   "<|sid_begin|><s_a_7><s_b_7><s_c_7>",   # 13: long view: +1
                   "<|sid_begin|><s_a_4><s_b_5><s_c_6>",   # user 3 liked 12: +1
                   "<|sid_begin|><s_a_7><s_b_7><s_c_7>",   # user 3 never saw 13: 0
                   "<|sid_begin|><s_a_9><s_b_9><s_c_9>",   # not an item: 0
                   "<|sid_begin|><s_a_1>"]                  # malformed: 0
    uids = [2, 2, 2, 3, 3, 2, 2]
    assert reward(["p"] * 7, completions, source=[VIDEO] * 7, uid=uids, ground_truth=["[]"] * 7) == \
        [1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    like_only = rl_rewards.build({"kind": "feedback", "positive": ["like"]}, FMT, catalogue=hand_catalogue(),
                                 users=hand_users())
    assert like_only(["p"], [completions[2]], source=[VIDEO], uid=[2]) == [0.0]   # long view no longer counts
    with pytest.raises(ConfigError, match="unknown flag"):
        rl_rewards.build({"kind": "feedback", "positive": ["share"]}, FMT, catalogue=hand_catalogue(),
                         users=hand_users())


def test_legal_items_are_catalogue_sids_of_the_rows_item_space():
    catalogue = hand_catalogue()
    assert catalogue.legal((7, 7, 7), VIDEO) and not catalogue.legal((7, 7, 7), PRODUCT)
    assert catalogue.legal((1, 2, 3), PRODUCT) and not catalogue.legal(None, VIDEO)
    assert not catalogue.legal((4, 5, 7), VIDEO)


def test_unknown_reward_and_loss_kinds_are_config_errors():
    with pytest.raises(ConfigError, match="reward.kind"):
        rl_rewards.build({"kind": "ctr"}, FMT)
    with pytest.raises(ConfigError, match="loss.kind"):
        rl.policy_loss({"kind": "ppo"}, 0.2, 0.28)
    with pytest.raises(ConfigError, match="delta"):
        rl.policy_loss({"kind": "ecpo", "delta": 0}, 0.2, 0.28)
    with pytest.raises(ConfigError, match="reward.raw"):
        rl_rewards.build({"kind": "feedback"}, FMT)


# ---- the variants on the tiny model ---------------------------------------------------------------------

def steer_to_sids(model, tokenizer, strength: float = 30.0) -> None:
    """Add a fixed bias towards the next SID level to the logits of generation (module docstring)."""
    vocab = model.get_output_embeddings().weight.shape[0]
    level = torch.zeros(vocab, dtype=torch.long)
    allowed = torch.zeros(FMT.levels + 2, vocab)
    level[tokenizer.convert_tokens_to_ids(sid.SID_BEGIN)] = 1
    for depth, letter in enumerate("abc"):
        ids = tokenizer.convert_tokens_to_ids([f"<s_{letter}_{code}>" for code in range(FMT.codebook_size)])
        level[ids] = depth + 2
        allowed[depth + 1, ids] = strength

    def hook(module, args, kwargs, output):
        if getattr(output, "logits", None) is None:             # trl's fused log-prob pass: the model's own
            return output
        ids = kwargs["input_ids"][:, -output.logits.shape[1]:]
        output.logits = output.logits + allowed[level[ids]].to(output.logits.dtype)
        return output

    model.register_forward_hook(hook, with_kwargs=True)


@pytest.fixture(scope="module")
def world(tiny_model_dir, mini_dir, tmp_path_factory):
    """RL data of 4 video rows, the steered model's 4 beams per row, and a raw folder whose catalogue
    holds beams 0 and 1 of every row (items 1000 + i, 2000 + i): the row's user liked the first and
    marked the second not-interested."""
    from recif_bench.data import training
    from recif_bench.data.mini import FORMAT

    root = tmp_path_factory.mktemp("rl_variants")
    training.write({"sft_video": training.build_all(mini_dir / "raw", fmt=FORMAT)["sft_video"][:4]}, root / "data")
    probe = build(tiny_model_dir, root, "probe", {})
    tokenizer = probe.processing_class
    beams = []
    for row in probe.train_dataset:
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        texts = tokenizer.batch_decode(probe.rollout_func.candidates(probe.model, prompt, 4), skip_special_tokens=True)
        beams.append([rl_rewards.answer_codes(t, FMT) for t in texts])
    raw = root / "raw"
    raw.mkdir()
    items = {1000 + i: codes[0] for i, codes in enumerate(beams)}
    items.update({2000 + i: codes[1] for i, codes in enumerate(beams)})
    pd.DataFrame({"pid": list(items), "sid": [list(c) for c in items.values()]}).to_parquet(
        raw / "video_ad_pid2sid.parquet")
    pd.DataFrame({"pid": [1], "sid": [[255, 255, 255]]}).to_parquet(raw / "product_pid2sid.parquet")
    uids = list(probe.train_dataset["uid"])
    pd.DataFrame({"uid": uids, "target_video_pid": [[1000 + i, 2000 + i] for i in range(len(uids))],
                  "target_video_like": [[1, 0]] * len(uids), "target_video_longview": [[0, 0]] * len(uids),
                  "target_video_not_interested": [[0, 1]] * len(uids)}).to_parquet(raw / "onerec_bench_release.parquet")
    return {"root": root, "beams": beams, "raw": raw, "probe": probe}


def build(model_dir, root, name, values):
    config = load(REPO / "configs" / "train" / "tiny_rl.yaml", [f"{k}={v}" for k, v in {
        "model": model_dir, "output_dir": root / name, "data.dir": root / "data", "data.mixture": "{sft_video: 1.0}",
        "train.weight_decay": 0.0, "train.per_device_train_batch_size": 4, **values}.items()])
    run = rl.build_trainer(config)
    steer_to_sids(run.model, run.processing_class)
    if run.ref_model is not None:
        steer_to_sids(run.ref_model, run.processing_class)
    return run


def test_the_steered_beams_are_distinct_sids(world):
    assert all(len(set(codes)) == 4 and None not in codes for codes in world["beams"])


def test_think_beam_rollout_ends_in_the_top_beam_and_hands_all_beams_to_the_reward(world):
    probe = world["probe"]
    tokenizer = probe.processing_class
    with pytest.raises(ConfigError, match="thinking"):
        rl.TwoStageRollout(tokenizer, FMT, thinking=False, mode="think_beam")
    rollout = rl.TwoStageRollout(tokenizer, FMT, thinking=True, mode="think_beam", think_tokens=4, beams=3)
    prompt = tokenizer(probe.train_dataset[0]["prompt"], add_special_tokens=False)["input_ids"]
    completion, texts = rollout.think_beam(probe.model, prompt)
    codes = [rl_rewards.answer_codes(t, FMT) for t in texts]
    assert len(set(codes)) == 3 and None not in codes
    assert rl_rewards.answer_codes(tokenizer.decode(completion, skip_special_tokens=True), FMT) == codes[0]
    tail = len(rollout.bridge) + FMT.levels                   # reasoning ... </think> | bridge | item
    assert completion[-tail - 1] == rollout.think_end and completion[-tail:-FMT.levels] == rollout.bridge


def test_format_regularisation_adds_one_to_the_advantage_of_legal_items(world, tiny_model_dir):
    run = build(tiny_model_dir, world["root"], "format", {"reward.kind": "beam_match", "reward.raw": world["raw"],
                                                           "reward.format_regularisation": True})
    def constant(prompts, completions, **_):
        return [1.0] * len(completions)

    run.reward_funcs[0] = constant
    rows = [run.train_dataset[i] for i in (0, 1) for _ in range(4)]
    advantages = run._generate_and_score_completions(rows)["advantages"].view(2, 4)
    assert advantages.tolist() == [[1.0, 1.0, 0.0, 0.0]] * 2     # equal rewards -> 0, plus 1 for beams 0 and 1


@pytest.mark.parametrize("loss,reward,extra", [
    ("grpo", "hit", {}),
    ("grpo", "beam_match", {}),
    ("ecpo", "pscore", {"reward.pscore_model": "fake", "reward.format_regularisation": True, "loss.delta": 0.1}),
    ("gbpo", "feedback", {}),
])
def test_each_variant_trains_with_a_finite_loss(world, tiny_model_dir, monkeypatch, loss, reward, extra):
    monkeypatch.setattr(rl_rewards, "load_pscore", lambda path: FakePScore())
    run = build(tiny_model_dir, world["root"], f"{loss}_{reward}", {
        "loss.kind": loss, "reward.kind": reward, "reward.raw": world["raw"], "train.max_steps": 2, **extra})
    targets = {i: json.dumps([list(codes[0])]) for i, codes in enumerate(world["beams"])}   # beam 0 is the target
    run.train_dataset = run.train_dataset.map(lambda row, i: {"ground_truth": targets[i]}, with_indices=True)
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    run.train()
    logged = [e for e in run.state.log_history if "loss" in e]
    assert len(logged) == 2 and all(math.isfinite(e["loss"]) for e in logged)
    first = logged[0][f"rewards/{run.reward_funcs[0].__name__}/mean"]
    expected = {"hit": 1 / 4, "pscore": None, "feedback": 0.0}.get(reward)   # beam 0 right; feedback +1 and -1
    if expected is not None:
        assert first == pytest.approx(expected)
    assert logged[0][f"rewards/{run.reward_funcs[0].__name__}/std"] > 0     # rewards differ inside the groups
    assert any(not torch.equal(before[n], p.detach()) for n, p in run.model.named_parameters())
    wired = {"grpo": lambda f: f is None,                           # trl's own clipped surrogate
             "ecpo": lambda f: f.func is pl.ecpo_loss
             and f.keywords == {"eps_low": 0.2, "eps_high": 0.28, "delta": 0.1},
             "gbpo": lambda f: f is pl.gbpo_loss}
    assert wired[loss](run.policy_loss)


@pytest.mark.parametrize("mode", [None, "group"])
def test_gbpo_with_feedback_uses_the_raw_feedback_as_advantage(world, tiny_model_dir, mode):
    """OneRec-V2: +1 liked, -1 not interested, 0 no feedback.  Group normalisation would give the
    members without feedback -0.5 when one sibling got +1; the raw signal keeps them at 0."""
    values = {"loss.kind": "gbpo", "reward.kind": "feedback", "reward.raw": world["raw"]}
    run = build(tiny_model_dir, world["root"], f"gbpo_advantage_{mode}",
                values if mode is None else {**values, "reward.advantage": mode})
    rows = [run.train_dataset[i] for i in (0, 1) for _ in range(4)]
    real = run._generate_and_score_completions(rows)["advantages"].view(2, 4)   # beams: liked, rejected, -, -

    def one_liked(prompts, completions, **_):
        return [1.0, 0.0, 0.0, 0.0] * (len(completions) // 4)

    run.reward_funcs[0] = one_liked
    single = run._generate_and_score_completions(rows)["advantages"].view(2, 4)
    if mode is None:
        assert run.raw_advantages and real.tolist() == [[1.0, -1.0, 0.0, 0.0]] * 2
        assert single.tolist() == [[1.0, 0.0, 0.0, 0.0]] * 2
    else:
        assert not run.raw_advantages
        assert single[0].tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-3)
    with pytest.raises(ConfigError, match="reward.advantage"):
        rl.advantage_mode({"advantage": "mean"}, {})


def test_rollout_closes_the_thought_as_evaluation_does(world):
    """One separator: RL's reasoning -> SID bridge is evaluation's stage-2 text ``</think>\\n<|sid_begin|>``."""
    tokenizer = world["probe"].processing_class
    rollout = rl.TwoStageRollout(tokenizer, FMT, thinking=True, think_tokens=4)
    assert tokenizer.decode([rollout.think_end] + rollout.bridge) == sid.THOUGHT_CLOSE + sid.SID_BEGIN == \
        "</think>\n<|sid_begin|>"
    assert tokenizer.decode(rl.TwoStageRollout(tokenizer, FMT, thinking=False).bridge) == sid.SID_BEGIN
