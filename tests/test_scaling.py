"""Scaling-law fit: recovery of a known law from noisy synthetic runs, readers, report and plot."""

import json
import math

import numpy as np
import pytest

from leaderboard import scaling
from leaderboard.scaling import PAPER_FIT, ScalingError, ScalingLaw

# Six model sizes (0.1B-8B) evaluated at ten checkpoints each (1e8-1e11 tokens): the shape of a
# pre-training sweep.  Noise: 0.2% multiplicative on the loss (sd of log-loss 0.002).
SIZES = np.array([0.1, 0.3, 0.6, 1.7, 4.0, 8.0]) * 1e9
TOKENS = np.geomspace(1e8, 1e11, 10)


def synthetic(seed: int, noise: float = 0.002):
    n, d = (x.ravel() for x in np.meshgrid(SIZES, TOKENS))
    rng = np.random.default_rng(seed)
    return n, d, PAPER_FIT.loss(n, d) * np.exp(rng.normal(0, noise, n.size))


def test_closed_form_exponents_and_optimum_of_the_paper_law():
    # beta / (alpha + beta) = 0.1865 / 0.519 and alpha / (alpha + beta) = 0.3325 / 0.519
    assert PAPER_FIT.exponents["params"] == pytest.approx(0.35934, abs=1e-5)
    assert PAPER_FIT.exponents["tokens"] == pytest.approx(0.64066, abs=1e-5)
    compute = 1e21
    n_opt, d_opt = PAPER_FIT.optimal(compute)
    assert 6 * n_opt * d_opt == pytest.approx(compute)
    # the optimum beats its neighbours on the same iso-compute line
    for factor in (0.8, 1.25):
        n = n_opt * factor
        assert PAPER_FIT.loss(n, compute / (6 * n)) > PAPER_FIT.loss(n_opt, d_opt)


def test_fit_recovers_the_paper_law_from_noisy_runs():
    n, d, loss = synthetic(seed=0)
    law = scaling.fit(n, d, loss).law
    assert law.E == pytest.approx(PAPER_FIT.E, abs=0.03)
    assert law.alpha == pytest.approx(PAPER_FIT.alpha, abs=0.02)
    assert law.beta == pytest.approx(PAPER_FIT.beta, abs=0.03)
    assert math.log(law.A) == pytest.approx(math.log(PAPER_FIT.A), abs=0.3)   # A within ~35%
    assert math.log(law.B) == pytest.approx(math.log(PAPER_FIT.B), abs=0.3)
    assert law.exponents["params"] == pytest.approx(PAPER_FIT.exponents["params"], abs=0.03)
    assert law.exponents["tokens"] == pytest.approx(PAPER_FIT.exponents["tokens"], abs=0.03)


def test_noise_free_runs_give_the_law_back_exactly():
    law = ScalingLaw(E=1.7, A=400.0, alpha=0.34, B=410.0, beta=0.28)   # Chinchilla-like
    n, d = (x.ravel() for x in np.meshgrid(SIZES, TOKENS))
    fitted = scaling.fit(n, d, law.loss(n, d)).law
    for key, value in law.as_dict().items():
        assert fitted.as_dict()[key] == pytest.approx(value, rel=0.02), key


def test_bootstrap_intervals_bracket_the_fit():
    n, d, loss = synthetic(seed=1)
    base = scaling.fit(n, d, loss)
    intervals = scaling.bootstrap(n, d, loss, base, iterations=8, starts=4, progress=False)
    assert set(intervals) == set(base.law.as_dict())
    for key, (low, high) in intervals.items():
        assert low < high, key
    low, high = intervals["alpha"]
    assert low - 0.02 < base.law.alpha < high + 0.02


def test_runs_from_csv_and_trainer_state(tmp_path, tiny_model_dir):
    (tmp_path / "runs.csv").write_text("name,N,tokens,eval_loss\na,1e8,1e9,2.5\nb,1e9,1e9,2.1\n")
    run = tmp_path / "sweep" / "tiny-run"
    (run / "checkpoint-10").mkdir(parents=True)
    (run / "checkpoint-20").mkdir()
    (run / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    history = lambda loss, seen: {"log_history": [{"loss": 3.0, "num_input_tokens_seen": seen // 2},
                                                  {"eval_loss": loss, "num_input_tokens_seen": seen}]}
    (run / "checkpoint-10" / "trainer_state.json").write_text(json.dumps(history(2.9, 1000)))
    (run / "checkpoint-20" / "trainer_state.json").write_text(json.dumps(history(2.4, 2000)))
    runs = scaling.read_runs([tmp_path / "runs.csv", tmp_path / "sweep"])
    assert list(runs["name"]) == ["a", "b", "tiny-run"]
    assert list(runs["loss"]) == [2.5, 2.1, 2.4]      # the latest checkpoint's last eval_loss
    assert runs["tokens"].iloc[2] == 2000
    from transformers import AutoModelForCausalLM

    tiny = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert runs["n_params"].iloc[2] == sum(p.numel() for p in tiny.parameters())


@pytest.mark.parametrize("content, message", [
    ("name,N,loss\na,1e8,2.5\n", "no column 'tokens'"),
    ("N,D,loss\n1e8,0,2.5\n", "must be positive"),
])
def test_bad_runs_csv_is_named(tmp_path, content, message):
    (tmp_path / "runs.csv").write_text(content)
    with pytest.raises(ScalingError, match=message):
        scaling.read_runs([tmp_path / "runs.csv"])


def test_trainer_state_without_eval_loss_is_named(tmp_path):
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [{"loss": 1.0}]}))
    with pytest.raises(ScalingError, match="trainer_state.json: log_history has no eval_loss"):
        scaling.read_runs([tmp_path])


def test_recif_leaderboard_scaling_writes_fit_figures_and_report(tmp_path, capsys):
    from leaderboard.cli import main

    n, d, loss = synthetic(seed=2)
    rows = "\n".join(f"r{i},{a},{b},{c}" for i, (a, b, c) in enumerate(zip(n, d, loss)))
    (tmp_path / "runs.csv").write_text("name,n_params,tokens,loss\n" + rows + "\n")
    assert main(["scaling", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "site"), "--bootstrap", "4"]) == 0
    saved = json.loads((tmp_path / "site" / "scaling" / "scaling_fit.json").read_text())
    assert saved["fit"]["alpha"] == pytest.approx(PAPER_FIT.alpha, abs=0.02)
    assert saved["paper"]["fit"]["A"] == 502.32 and len(saved["runs"]) == n.size
    assert saved["ci95"]["alpha"][0] < saved["ci95"]["alpha"][1]
    assert (tmp_path / "site" / "scaling" / "scaling.png").stat().st_size > 10_000
    assert "<svg" in (tmp_path / "site" / "scaling" / "scaling.svg").read_text()[:500]
    table = capsys.readouterr().out
    assert "alpha" in table and "0.3325" in table and "C^0.56" in table
    assert main(["scaling", str(tmp_path / "nothing.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"recif-leaderboard: {tmp_path / 'nothing.csv'}: not a runs CSV, " \
                                               "a trainer_state.json or a folder of training runs"
