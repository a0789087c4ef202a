"""P-Score reward model: it learns mini-RecIF's engagement structure, the weighted BCE loss, the
``score()`` API, checkpoints (round trip, resume), and one-line errors for bad inputs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from recif_bench.data import mini
from recif_bench.recommenders import pscore as pscore_model
from trainers import cli as train_cli
from trainers import pscore
from trainers.common.config import ConfigError

TRAIN = {"epochs": 3, "batch_size": 256, "lr": 1.0e-2, "patience": 2, "seed": 0}


def write_config(tmp_path, raw, out, **sections):
    config = {"output_dir": str(out), "data": {"raw": str(raw)}, "train": dict(TRAIN), **sections}
    path = tmp_path / "pscore.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def trained(mini_dir, tmp_path_factory):
    """A P-Score model trained through ``recif-train pscore`` on the session's mini-RecIF (scale 0.3)."""
    tmp = tmp_path_factory.mktemp("pscore")
    out = tmp / "model"
    assert train_cli.main(["pscore", "--config", str(write_config(tmp, mini_dir / "raw", out))]) == 0
    return out, json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def world():
    """The generator's own users (with their favourite topics), the same seed and scale as ``mini_dir``."""
    return mini.World(0, 0.3)


def test_towers_learn_the_favourite_topic_structure(trained, world):
    """In mini-RecIF a flag depends only on whether the video is on one of the user's favourite topics
    (FEEDBACK: long-view 0.70 vs 0.15, like 0.35 vs 0.04, not-interested 0.02 vs 0.25).

    1. A model that learned this ranks favourite-topic videos far above the rest for long-view and
       like (the true rates differ 4.7x and 8.8x), and below them for not-interested.  Over the test
       users' targets (~160 of 1230 off the favourites, AUC s.e. ~0.025 around chance) we ask AUC >
       0.75 (< 0.25 for not-interested): 10 s.e. from 0.5.  Measured: 0.87-0.91 long-view, 0.83-0.87 like.
    2. Against the real flags no model can beat the oracle that knows the favourites: ~87% of the
       targets are on favourite topics anyway, so its AUC is only ~0.64 (long-view), ~0.59 (like),
       ~0.80 (not-interested, scored by "not a favourite").  On the 1230 test samples (AUC s.e.
       ~0.017) we ask for half of the oracle's edge over 0.5 on long-view and not-interested; like's
       edge (~0.08) is under 5 s.e., so there a quarter of it (train seeds 0, 1, 2: 0.536, 0.573, 0.531)."""
    out, metrics = trained
    model = pscore_model.PScoreModel.load(out)
    rates = {"longview": [], "like": [], "not_interested": []}
    favourite, oracle_labels = [], {k: [] for k in rates}
    for user in world.users:
        if user["split"] != 1:
            continue
        predicted = model.rates(user["uid"], user["target_video_pid"])
        for kind in rates:
            rates[kind] += predicted[kind]
            oracle_labels[kind] += user[f"target_video_{kind}"]
        favourite += [world.videos[p] in user["favourites"] for p in user["target_video_pid"]]
    assert len(favourite) == metrics["test"]["like"]["n"]
    for kind in ("longview", "like"):
        assert roc_auc_score(favourite, rates[kind]) > 0.75, kind
    assert roc_auc_score(favourite, rates["not_interested"]) < 0.25
    for kind in rates:
        oracle = roc_auc_score(oracle_labels[kind], [f != (kind == "not_interested") for f in favourite])
        assert oracle > 0.55
        share = 0.25 if kind == "like" else 0.5
        assert metrics["test"][kind]["auc"] > 0.5 + share * (oracle - 0.5), (kind, oracle, metrics["test"][kind])
    assert metrics["test"]["fused"]["auc"] > 0.55          # the fused score ranks engaged-and-not-annoyed videos


def test_score_api_shape_range_and_unknowns(trained):
    out, _ = trained
    model = pscore_model.PScoreModel.load(out)
    uid = int(model.histories.uids[0])
    pids = [int(p) for p in model.catalogue.pids[:7]] + [10**12]        # the last pid is in no table
    scores = model.score(uid, pids)
    assert len(scores) == len(pids) and all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) > 1
    rates = model.rates(uid, pids)
    assert set(rates) == {*pscore_model.FLAGS, "fused"} and rates["fused"] == scores
    assert model.score(uid, []) == []
    assert model.score(uid, pids[2:3]) == pytest.approx(scores[2:3], abs=1e-6)   # a candidate's score is its own
    with pytest.raises(KeyError, match="uid -5 is not among"):
        model.score(-5, pids)


def test_round_trip_and_resume_keep_the_evaluated_checkpoint(trained, mini_dir, tmp_path):
    out, metrics = trained
    model = pscore_model.PScoreModel.load(out / "model.pt")
    users = model.histories.uids[:5]
    pids = [int(p) for p in model.catalogue.pids[::97]]
    copy = pscore_model.PScoreModel.load(model.save(tmp_path / "copy", {}))
    assert all(copy.score(int(u), pids) == model.score(int(u), pids) for u in users)
    # the stored checkpoint is the one the metrics describe
    config = pscore_model.PScoreConfig()
    data = pscore.load_recif(mini_dir / "raw", config, pscore.TrainConfig(**TRAIN))
    again = pscore.evaluate(model.net, model.histories, data.test)
    assert again["like"]["auc"] == pytest.approx(metrics["test"]["like"]["auc"], abs=1e-6)
    # rerunning a finished run trains nothing and rewrites the same metrics
    log_lines = (out / "log.jsonl").read_text().count("\n")
    weights = pscore.loss_weights({}, config.towers)
    rerun = pscore.fit(data, config, pscore.TrainConfig(**TRAIN), weights, out, progress=False)
    assert (out / "log.jsonl").read_text().count("\n") == log_lines
    aucs = {k: v["auc"] for k, v in metrics["test"].items()}
    assert {k: v["auc"] for k, v in rerun["test"].items()} == pytest.approx(aucs)
    assert rerun["best_epoch"] == metrics["best_epoch"]
    with pytest.raises(ValueError, match="different run"):
        pscore.fit(data, config, pscore.TrainConfig(**{**TRAIN, "lr": 0.5}), weights, out, progress=False)


def bce(logit: float, label: float) -> float:
    return -(label * math.log(1 / (1 + math.exp(-logit))) + (1 - label) * math.log(1 - 1 / (1 + math.exp(-logit))))


def test_loss_is_the_weighted_sum_of_tower_and_fused_bces():
    config = pscore_model.PScoreConfig(towers=["like", "follow", "not_interested"], positive=["like", "follow"],
                                 negative=["not_interested"])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert pscore_model.fused_label(labels, config).tolist() == [1.0, 0.0, 0.0]   # liked / annoyed / nothing
    towers = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.0]], requires_grad=True)
    fused = torch.tensor([1.0, -1.0, 0.25])
    weights = {"like": 2.0, "follow": 0.0, "not_interested": 0.5, "fused": 3.0}
    total, parts = pscore.pscore_loss(towers, fused, labels, config, weights)
    like = (bce(0.5, 1) + bce(1.5, 0) + bce(-2.0, 0)) / 3
    not_interested = (bce(2.0, 0) + bce(-0.5, 1) + bce(0.0, 0)) / 3
    fused_bce = (bce(1.0, 1) + bce(-1.0, 0) + bce(0.25, 0)) / 3
    assert parts["like"] == pytest.approx(like) and parts["fused"] == pytest.approx(fused_bce)
    assert total.item() == pytest.approx(2.0 * like + 0.5 * not_interested + 3.0 * fused_bce)
    total.backward()
    assert towers.grad[:, 1].abs().sum() == 0                 # weight 0: the follow tower gets no gradient
    assert towers.grad[:, 0].abs().sum() > 0


def test_config_errors_name_the_setting():
    with pytest.raises(ConfigError, match="model.positive / model.negative name share"):
        pscore_model.PScoreConfig.from_dict({"positive": ["like", "share"]})
    with pytest.raises(ConfigError, match="loss.weights names ctr"):
        pscore.loss_weights({"ctr": 1.0}, pscore_model.FLAGS)
    with pytest.raises(ConfigError, match="unknown setting"):
        pscore_model.PScoreConfig.from_dict({"layers": 3})
    with pytest.raises(ConfigError, match="valid_fraction"):
        pscore.TrainConfig.from_dict({"valid_fraction": 1.0})


def test_bad_raw_tables_are_one_error_line(mini_dir, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    users = pd.read_parquet(mini_dir / "raw" / pscore.USERS_FILE).drop(columns=["target_video_like"])
    users.to_parquet(raw / pscore.USERS_FILE)
    pd.read_parquet(mini_dir / "raw" / pscore.SID_FILE).to_parquet(raw / pscore.SID_FILE)
    config = write_config(tmp_path, raw, tmp_path / "out")
    assert train_cli.main(["pscore", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and pscore.USERS_FILE in err and "target_video_like" in err
    (raw / pscore.SID_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=pscore.SID_FILE):
        pscore.load_recif(raw, pscore_model.PScoreConfig(towers=["longview"], positive=["longview"], negative=[]),
                          pscore.TrainConfig())
    with pytest.raises(FileNotFoundError, match="raw RecIF folder not found"):
        pscore.load_recif(tmp_path / "nowhere", pscore_model.PScoreConfig(), pscore.TrainConfig())
    with pytest.raises(FileNotFoundError, match="P-Score model not found"):
        pscore_model.PScoreModel.load(tmp_path / "out")


def test_history_samples_hide_their_own_video(mini_dir):
    """A history sample's video is blanked out of its user's history, so it cannot read its own flags."""
    config = pscore_model.PScoreConfig(towers=["like"], positive=["like"], negative=[], max_history=8)
    data = pscore.load_recif(mini_dir / "raw", config, pscore.TrainConfig(valid_fraction=0.0))
    own = data.train.take((data.train.exclude >= 0).nonzero().squeeze(1)[:50])
    rows = data.histories.rows[own.users.numpy(), own.exclude.numpy()]
    assert np.array_equal(rows, own.items.numpy())            # the sample's video is that history slot
    seen = {}
    net = pscore_model.PScoreNet(config, data.catalogue)
    net.forward = lambda hist_rows, hist_flags, target_rows: seen.update(rows=hist_rows, flags=hist_flags)
    pscore._batch(net, data.histories, own)
    index = torch.arange(len(own))
    assert (seen["rows"][index, own.exclude] == 0).all() and (seen["flags"][index, own.exclude] == 0).all()
    assert (seen["rows"] > 0).sum() == (data.histories.rows[own.users.numpy()] > 0).sum() - len(own)


def test_misaligned_flags_are_skipped_and_a_table_without_test_users_is_refused(mini_dir, tmp_path, caplog):
    users = pd.read_parquet(mini_dir / "raw" / pscore.USERS_FILE)
    pd.read_parquet(mini_dir / "raw" / pscore.SID_FILE).to_parquet(tmp_path / pscore.SID_FILE)
    config = pscore_model.PScoreConfig(towers=["like"], positive=["like"], negative=[])
    plain = pscore.TrainConfig(valid_fraction=0.0, history_samples=False)
    users.to_parquet(tmp_path / pscore.USERS_FILE)
    before = pscore.load_recif(tmp_path, config, plain)
    test_user = users.index[users["split"] == 1][0]
    users.at[test_user, "target_video_like"] = users.at[test_user, "target_video_like"][:-1]
    users.to_parquet(tmp_path / pscore.USERS_FILE)
    after = pscore.load_recif(tmp_path, config, plain)
    assert len(after.test) == len(before.test) - len(users.at[test_user, "target_video_pid"])
    assert "'target_flags': 1" in caplog.text
    users.assign(split=0).to_parquet(tmp_path / pscore.USERS_FILE)
    with pytest.raises(ValueError, match="target videos of test users"):
        pscore.load_recif(tmp_path, config, plain)
