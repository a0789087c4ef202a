"""The lazy decoder-only recommender (OneRec-V2): its architecture invariants, training, trie-constrained
beam search, evaluation through ``recif-eval`` (mini-RecIF and an Amazon-format category), the FLOPs
formula against torch's FLOP counter, and bad inputs."""

import json

import pytest
import torch

from recif_bench import sid
from recif_bench.cli import eval as eval_cli
from recif_bench.recommenders import lazy_decoder as ld
from test_baselines import write_synthetic
from trainers import cli as train_cli
from trainers import lazy_decoder as ld_recipe

TINY = dict(d_model=16, layers=4, heads=4, kv_heads=2, kv_groups=2, d_ff=32, dropout=0.0, max_history=8)


def tiny_config(**changes) -> ld.LazyDecoderConfig:
    return ld.LazyDecoderConfig(**{**TINY, **changes})


def successor_world(n_items: int = 12) -> tuple[dict, sid.SidFormat, list[list[int]]]:
    """Items 0..n-1 with unique 2-level SIDs (codebook 4); every user walks i -> i + 1 (cyclically)."""
    codes = {i: (i // 4, i % 4) for i in range(n_items)}
    sequences = [[(start + t) % n_items for t in range(6 + start % 3)] for start in range(n_items) for _ in range(3)]
    return codes, sid.SidFormat(2, 4), sequences


def test_cross_attention_has_no_kv_projections_and_layers_share_the_context_kv():
    network = ld.LazyDecoder(sid.SidFormat(3, 8), tiny_config()).eval()
    for block in network.blocks:
        assert {name for name, _ in block.cross.named_parameters()} == {"q.weight", "o.weight"}
    # one context projection yields every K/V: kv_groups x (K, V) x kv_heads x head_dim
    assert network.context.proj.weight.shape == (2 * 2 * 2 * 4, 16)
    seen = []
    for block in network.blocks:
        block.cross.register_forward_hook(lambda module, args, out: seen.append((args[1], args[2])))
    network(torch.randint(0, 8, (2, 5, 3)), torch.ones(2, 5, dtype=torch.bool), torch.randint(0, 8, (2, 3)))
    assert seen[0][0] is seen[1][0] and seen[0][1] is seen[1][1]          # layers 0, 1: group 0
    assert seen[2][0] is seen[3][0] and seen[0][0] is not seen[2][0]      # layers 2, 3: group 1
    assert seen[0][0].shape == (2, 2, 6, 4)                               # GQA: 2 K/V heads for 4 query heads; 5 items + user


def test_self_attention_is_causal():
    network = ld.LazyDecoder(sid.SidFormat(3, 8), tiny_config()).eval()
    history, mask = torch.randint(0, 8, (1, 4, 3)), torch.ones(1, 4, dtype=torch.bool)
    target = torch.tensor([[1, 2, 3]])
    changed = torch.tensor([[1, 5, 3]])                 # level-1 code: read only by position 2
    before, after = network(history, mask, target), network(history, mask, changed)
    assert torch.equal(before[:, :2], after[:, :2])
    assert not torch.allclose(before[:, 2], after[:, 2])


def test_padding_the_history_does_not_change_the_logits():
    model = ld.LazyDecoderModel.new(*successor_world()[:2], tiny_config(), {})
    model.network.eval()
    alone = model.network(*model.encode_histories([[3, 4]]), model.targets([5]))
    batched = model.network(*model.encode_histories([[3, 4], [0, 1, 2, 3, 4]]), model.targets([5, 5]))
    assert torch.allclose(alone[0], batched[0], atol=1e-5)


def test_training_learns_the_successor_rule_and_resumes(tmp_path):
    codes, fmt, sequences = successor_world()
    config = tiny_config(lr=0.02, batch_size=32, epochs=20, eval_every=20, beams=4, valid_users=12)
    summary = ld_recipe.fit(ld.LazyDecoderModel.new(codes, fmt, config, {}), sequences, tmp_path, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.3 * losses[0] and summary["epochs_run"] == 20
    model = ld.LazyDecoderModel.load(tmp_path)
    top = model.generate([[2, 3, 4], [9, 10]], k=1)
    assert top == [[5], [11]]
    config.epochs = 21                                  # a longer run continues from the last checkpoint
    ld_recipe.fit(ld.LazyDecoderModel.new(codes, fmt, config, {}), sequences, tmp_path, progress=False)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 22))


def test_constrained_beam_search_returns_only_catalogue_sids_in_probability_order():
    # 5 catalogue SIDs out of 4^3 = 64 code paths, an untrained model: beams cover the whole catalogue, so
    # the beam order must be the exact p(SID | history) order
    catalogue = {"a": (0, 1, 2), "b": (0, 1, 3), "c": (0, 3, 0), "d": (2, 2, 2), "e": (3, 0, 1)}
    model = ld.LazyDecoderModel.new(catalogue, sid.SidFormat(3, 4), tiny_config(beams=8, kv_groups=1), {})
    ranked = model.generate([["a", "d"], []], k=10)
    for row, history in zip(ranked, (["a", "d"], [])):
        assert sorted(row) == sorted(catalogue)
        scores = [model.item_score(history, item) for item in row]
        assert scores == sorted(scores, reverse=True)
    assert model.generate([["a", "d"]], k=2) == [ranked[0][:2]]
    assert model.item_score(["a"], "unknown") == 0.0


@pytest.mark.parametrize("kv_groups,history", [(1, 0), (2, 7)])
def test_analytic_flops_match_the_flop_counter(kv_groups, history):
    config, fmt = tiny_config(kv_groups=kv_groups), sid.SidFormat(3, 8)
    flops = ld.request_flops(config, fmt, history)
    assert ld.measured_flops(ld.LazyDecoder(fmt, config), history) == flops["lazy_context"] + flops["lazy_target"]
    assert ld.measured_flops(ld.DenseDecoderOnly(fmt, config), history) == flops["dense_context"] + flops["dense_target"]
    # hand count of the lazy context: (history + user token) x d_model x (groups x K,V x kv_heads x head_dim) x 2
    assert flops["lazy_context"] == (history + 1) * 16 * (kv_groups * 2 * 2 * 4) * 2


def test_recif_eval_scores_a_mini_recif_checkpoint(mini_dir, tmp_path, capsys):
    out = tmp_path / "ckpt"
    config = tmp_path / "ld.yaml"
    config.write_text(f"output_dir: {out}\ndata: {{source: recif, domain: video, raw: {mini_dir / 'raw'}, "
                      "sid_codebook: 256}\nmodel: {d_model: 16, layers: 2, heads: 2, kv_heads: 1, d_ff: 32, "
                      "max_history: 6, epochs: 1, batch_size: 1024, beams: 32, valid_users: 8}\n")
    assert train_cli.main(["lazy-decoder", "--config", str(config)]) == 0
    assert json.loads((out / "summary.json").read_text())["domain"] == "video"
    run = tmp_path / "run"
    code = eval_cli.main(["--model", "lazy_decoder", "--model-args", f"checkpoint={out}", "--data-dir", str(mini_dir),
                          "--tasks", "recif_video", "--limit", "6", "--output", str(run)])
    assert code == 0, capsys.readouterr().err
    entry = json.loads((run / "summary.json").read_text())["tasks"]["video"]
    assert entry["n"] == 6 and entry["metrics"]["legal_rate"] == 1.0
    sample = json.loads((run / "samples_recif_video.jsonl").read_text().splitlines()[0])
    assert len(sample["resps"][0][0]) == 32


def test_recif_eval_scores_an_amazon_checkpoint(tmp_path, capsys):
    write_synthetic(tmp_path)
    out = tmp_path / "ckpt"
    config = tmp_path / "ld.yaml"
    config.write_text(f"output_dir: {out}\ndata: {{source: amazon, dir: {tmp_path / 'data'}, category: beauty, "
                      f"item_ids: {tmp_path / 'codes.json'}}}\n"
                      "model: {d_model: 16, layers: 2, heads: 2, kv_heads: 1, d_ff: 32, epochs: 2, lr: 0.01, beams: 12}\n")
    assert train_cli.main(["lazy-decoder", "--config", str(config)]) == 0
    code = eval_cli.main(["--model", "lazy_decoder", "--model-args", f"checkpoint={out}", "--tasks", "amazon_beauty",
                          "--data-dir", str(tmp_path / "data"), "--item-ids", str(tmp_path / "codes.json"),
                          "--output", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "summary.json").read_text())["tasks"]["amazon_beauty"]["metrics"]
    assert metrics["legal_rate"] == 1.0 and metrics["recall@20"] == 1.0     # 12 items, 20 candidates: all ranked


@pytest.mark.parametrize("setting,message", [
    ("heads: 3", "model.d_model (16) must be divisible by model.heads (3)"),
    ("kv_heads: 3", "model.heads (4) must be divisible by model.kv_heads (3)"),
    ("kv_groups: 3", "model.layers (4) must be divisible by model.kv_groups (3)"),
    ("depth: 2", "model.depth: unknown setting"),
])
def test_bad_config_is_one_error_line(tmp_path, capsys, setting, message):
    config = tmp_path / "bad.yaml"
    config.write_text(f"output_dir: {tmp_path / 'out'}\ndata: {{source: recif}}\n"
                      f"model: {{d_model: 16, layers: 4, heads: 4, {setting}}}\n")
    assert train_cli.main(["lazy-decoder", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_checkpoints_and_codes_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="lazy decoder checkpoint not found"):
        ld.LazyDecoderModel.load(tmp_path)
    torch.save({"kind": "sasrec"}, tmp_path / "best.pt")
    with pytest.raises(ValueError, match="not a lazy decoder checkpoint"):
        ld.LazyDecoderModel.load(tmp_path)
    with pytest.raises(ValueError, match=r"item 'x': SID \(0, 9\) does not fit 2 levels x 4 codes"):
        ld.LazyDecoderModel.new({"x": (0, 9)}, sid.SidFormat(2, 4), tiny_config(), {})
    with pytest.raises(ValueError, match="collisions"):
        ld.LazyDecoderModel.new({"x": (0, 1), "y": (0, 1)}, sid.SidFormat(2, 4), tiny_config(), {})
    codes, fmt, sequences = successor_world()
    ld_recipe.fit(ld.LazyDecoderModel.new(codes, fmt, tiny_config(epochs=1, beams=4), {}), sequences, tmp_path / "run",
           progress=False)
    with pytest.raises(ValueError, match="a checkpoint of a different run"):
        ld_recipe.fit(ld.LazyDecoderModel.new(codes, fmt, tiny_config(epochs=2, d_ff=64, beams=4), {}), sequences,
               tmp_path / "run", progress=False)


def test_recif_eval_with_a_missing_checkpoint_is_one_error_line(mini_dir, tmp_path, capsys):
    code = eval_cli.main(["--model", "lazy_decoder", "--model-args", f"checkpoint={tmp_path / 'nope'}",
                          "--data-dir", str(mini_dir), "--tasks", "recif_video", "--limit", "1",
                          "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and f"recif-eval: error: --model-args checkpoint={tmp_path / 'nope'}: no such file or folder" in err
