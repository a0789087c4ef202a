"""Scaling-law analysis of training runs: L(N, D) = E + A / N^alpha + B / D^beta.

The fit follows the Chinchilla paper's third approach (Hoffmann et al. 2022): parameters
``e = log E, a = log A, b = log B`` so the prediction is ``log L = LSE(a - alpha log N,
b - beta log D, e)``; the objective is the Huber loss (delta 1e-3) between predicted and observed
log-loss, minimised by L-BFGS from a grid of starts (the best grid points of a coarse grid, since
the objective has many shallow local minima).  Confidence intervals come from refitting
resampled runs (bootstrap).  The compute-optimal split under ``C = 6 N D`` is
``N_opt ∝ C^(beta / (alpha + beta))`` and ``D_opt ∝ C^(alpha / (alpha + beta))``.

Runs are read from a CSV (columns ``n_params``, ``tokens``, ``loss``) or from Hugging Face
Trainer output folders (``trainer_state.json``: the last ``eval_loss`` and ``num_input_tokens_seen``
of ``log_history``; the parameter count from the run's ``config.json``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

CSV_COLUMNS = {"n_params": ("n_params", "N", "params"), "tokens": ("tokens", "D", "n_tokens"),
               "loss": ("loss", "eval_loss", "final_loss")}


class ScalingError(Exception):
    """Unusable runs input (missing file, column, or too few runs to fit)."""


@dataclass(frozen=True)
class ScalingLaw:
    E: float
    A: float
    alpha: float
    B: float
    beta: float

    def loss(self, n_params, tokens):
        return self.E + self.A / np.power(n_params, self.alpha) + self.B / np.power(tokens, self.beta)

    @property
    def exponents(self) -> dict[str, float]:
        """Compute-optimal growth exponents: N_opt ∝ C^params, D_opt ∝ C^tokens (C = 6ND)."""
        total = self.alpha + self.beta
        return {"params": self.beta / total, "tokens": self.alpha / total}

    def optimal(self, compute):
        """(N_opt, D_opt) minimising L under 6 N D = compute (closed form of the Chinchilla paper)."""
        total = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / total)
        c = np.asarray(compute, dtype=float) / 6
        return g * c ** (self.beta / total), c ** (self.alpha / total) / g

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), **{f"{k}_exponent": v for k, v in self.exponents.items()}}


# The OpenOneRec technical report's fit and its stated compute-optimal split.  The stated split
# (tokens ∝ C^0.56, params ∝ C^0.44) is quoted as published; the closed form applied to the
# published (alpha, beta) gives params ∝ C^0.36, tokens ∝ C^0.64 — both are shown side by side.
PAPER_FIT = ScalingLaw(E=0.4232, A=502.32, alpha=0.3325, B=7.02, beta=0.1865)
PAPER_STATED_EXPONENTS = {"params": 0.44, "tokens": 0.56}

# Starting grid in (e, a, b, alpha, beta), the parameterisation the optimiser works in.
DEFAULT_GRID = {"e": (-1.0, -0.5, 0.0, 0.5), "a": (0.0, 5.0, 10.0, 15.0, 20.0), "b": (0.0, 5.0, 10.0, 15.0, 20.0),
                "alpha": (0.1, 0.3, 0.5, 1.0, 1.5), "beta": (0.1, 0.3, 0.5, 1.0, 1.5)}


@dataclass(frozen=True)
class Fit:
    law: ScalingLaw
    objective: float
    n_runs: int


def _lse_terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """The three log-terms (a - alpha log N, b - beta log D, e), shape (3, runs) or (3, starts, runs)."""
    e, a, b, alpha, beta = (np.asarray(t)[..., None] for t in theta)
    return np.stack(np.broadcast_arrays(a - alpha * log_n, b - beta * log_d, e + 0 * log_n))


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    quad = np.abs(r) <= delta
    return np.where(quad, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))


def _objective(theta: np.ndarray, log_n, log_d, log_l, delta: float) -> tuple[float, np.ndarray]:
    """Huber objective and its gradient in (e, a, b, alpha, beta)."""
    terms = _lse_terms(theta, log_n, log_d)
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    r = top + np.log(total) - log_l
    weights /= total
    dr = np.clip(r, -delta, delta)   # derivative of the Huber loss
    grad = np.array([(dr * weights[2]).sum(), (dr * weights[0]).sum(), (dr * weights[1]).sum(),
                     -(dr * weights[0] * log_n).sum(), -(dr * weights[1] * log_d).sum()])
    return float(_huber(r, delta).sum()), grad


def _grid_values(starts: np.ndarray, log_n, log_d, log_l, delta: float) -> np.ndarray:
    terms = _lse_terms(starts.T, log_n, log_d)          # (3, starts, runs)
    top = terms.max(axis=0)
    r = top + np.log(np.exp(terms - top).sum(axis=0)) - log_l
    return _huber(r, delta).sum(axis=1)


def _grid(grid: dict[str, Sequence[float]]) -> np.ndarray:
    return np.array(list(product(*(grid[k] for k in ("e", "a", "b", "alpha", "beta")))), dtype=float)


def fit(n_params: Sequence[float], tokens: Sequence[float], loss: Sequence[float], *, delta: float = 1e-3,
        grid: dict[str, Sequence[float]] | None = None, starts: int = 64,
        extra_starts: Iterable[np.ndarray] = ()) -> Fit:
    """Fit the five parameters; L-BFGS from the ``starts`` best points of the grid (and ``extra_starts``).

    The optimiser works on centred log N and log D (``a' = a - alpha * mean log N``, same for b):
    the same model, but without the strong a/alpha coupling that stalls L-BFGS on raw logs.
    BLAS runs single-threaded: the 5-parameter L-BFGS steps are tiny, and threaded BLAS on a
    busy machine made each fit ~10x slower (measured: 24 s vs 2.5 s on 2 shared cores).
    """
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    log_n, log_d, log_l = (np.log(np.asarray(x, dtype=float)) for x in (n_params, tokens, loss))
    if len(log_l) < 5:
        raise ScalingError(f"{len(log_l)} runs: fitting five parameters needs at least 5 (N, D, loss) runs")
    centre = np.array([0.0, log_n.mean(), log_d.mean(), 0.0, 0.0])

    def shift(theta: np.ndarray, sign: float) -> np.ndarray:
        return theta + sign * centre * np.r_[0.0, theta[3], theta[4], 0.0, 0.0]

    candidates = _grid(grid or DEFAULT_GRID)
    best_first = candidates[np.argsort(_grid_values(candidates, log_n, log_d, log_l, delta))[:starts]]
    best = None
    with threadpool_limits(1):
        for start in [*extra_starts, *best_first]:
            result = minimize(_objective, shift(np.asarray(start, dtype=float), -1.0),
                              args=(log_n - centre[1], log_d - centre[2], log_l, delta), jac=True,
                              method="L-BFGS-B", bounds=[(None, None)] * 3 + [(1e-3, 3.0)] * 2)
            if best is None or result.fun < best.fun:
                best = result
    e, a, b, alpha, beta = shift(best.x, 1.0)
    return Fit(ScalingLaw(E=math.exp(e), A=math.exp(a), alpha=float(alpha), B=math.exp(b), beta=float(beta)),
               objective=float(best.fun), n_runs=len(log_l))


def _theta(law: ScalingLaw) -> np.ndarray:
    return np.array([math.log(law.E), math.log(law.A), math.log(law.B), law.alpha, law.beta])


def bootstrap(n_params, tokens, loss, base: Fit, *, iterations: int = 200, seed: int = 0, level: float = 0.95,
              starts: int = 8, progress: bool = True) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every parameter and exponent over fits to resampled runs.

    Each resample starts from the full-data fit and the best few grid points, which finds the
    same basin as the full grid at a fraction of the cost.
    """
    rng = np.random.default_rng(seed)
    data = [np.asarray(x, dtype=float) for x in (n_params, tokens, loss)]
    rows: list[dict[str, float]] = []
    for _ in tqdm(range(iterations), desc="scaling: bootstrap", disable=not progress):
        pick = rng.integers(0, len(data[2]), len(data[2]))
        if len(set(data[0][pick])) < 2 or len(set(data[1][pick])) < 2:
            continue   # a resample with one model size (or one data size) cannot identify its exponent
        rows.append(fit(*(x[pick] for x in data), starts=starts, extra_starts=[_theta(base.law)]).law.as_dict())
    tail = (1 - level) / 2 * 100
    return {k: (float(np.percentile([r[k] for r in rows], tail)), float(np.percentile([r[k] for r in rows], 100 - tail)))
            for k in rows[0]} if rows else {}


# ---- reading runs ----------------------------------------------------------------------------------
def read_runs(paths: Sequence[str | Path]):
    """A DataFrame (name, n_params, tokens, loss) from CSV files and/or trainer output folders."""
    import pandas as pd

    frames = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix == ".csv":
            frames.append(_read_csv(path))
        elif path.is_file() and path.name == "trainer_state.json":
            frames.append(pd.DataFrame([_read_trainer_state(path)]))
        elif path.is_dir():
            states = _final_states(path)
            if not states:
                raise ScalingError(f"{path}: no trainer_state.json below this folder")
            frames.append(pd.DataFrame([_read_trainer_state(p) for p in states]))
        else:
            raise ScalingError(f"{path}: not a runs CSV, a trainer_state.json or a folder of training runs")
    runs = pd.concat(frames, ignore_index=True)
    bad = runs[(runs[["n_params", "tokens", "loss"]] <= 0).any(axis=1)]
    if len(bad):
        raise ScalingError(f"run {bad.iloc[0]['name']}: n_params, tokens and loss must be positive")
    return runs


def _read_csv(path: Path):
    import pandas as pd

    table = pd.read_csv(path)
    out = {"name": table["name"] if "name" in table else [f"{path.stem}:{i}" for i in range(len(table))]}
    for column, aliases in CSV_COLUMNS.items():
        found = next((a for a in aliases if a in table.columns), None)
        if found is None:
            raise ScalingError(f"{path}: no column {column!r} (accepted names: {', '.join(aliases)})")
        out[column] = pd.to_numeric(table[found], errors="raise").astype(float)
    return pd.DataFrame(out)


def _final_states(folder: Path) -> list[Path]:
    """One trainer_state.json per run: the run folder's own, else its latest checkpoint's."""
    runs: dict[Path, Path] = {}
    for state in sorted(folder.rglob("trainer_state.json")):
        run = _run_folder(state)
        if run not in runs or _step(state) >= _step(runs[run]):
            runs[run] = state
    return list(runs.values())


def _run_folder(state: Path) -> Path:
    return state.parent.parent if state.parent.name.startswith("checkpoint-") else state.parent


def _step(state: Path) -> float:
    """The checkpoint's step; the run folder's own final state counts as the latest."""
    name = state.parent.name
    return int(name.split("-")[-1]) if name.startswith("checkpoint-") else math.inf


def _read_trainer_state(path: Path) -> dict:
    history = json.loads(path.read_text(encoding="utf-8")).get("log_history", [])
    losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    tokens = [h["num_input_tokens_seen"] for h in history if h.get("num_input_tokens_seen")]
    if not losses:
        raise ScalingError(f"{path}: log_history has no eval_loss (train with an eval split and eval_strategy)")
    if not tokens:
        raise ScalingError(f"{path}: log_history has no num_input_tokens_seen "
                           "(train with include_num_input_tokens_seen=True)")
    run = _run_folder(path)
    return {"name": run.name, "n_params": float(_count_params(path.parent, run)), "tokens": float(tokens[-1]),
            "loss": float(losses[-1])}


def _count_params(*folders: Path) -> int:
    """Parameters of the architecture in config.json, counted on the meta device (no weights read)."""
    config_path = next((f / "config.json" for f in folders if (f / "config.json").exists()), None)
    if config_path is None:
        raise ScalingError(f"{folders[-1]}: no config.json to count the model's parameters")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_path.parent, trust_remote_code=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


# ---- report and plot ----------------------------------------------------------------------------
def report_table(ours: Fit, intervals: dict[str, tuple[float, float]], paper: ScalingLaw = PAPER_FIT) -> str:
    """Parameter | our fit [CI] | the paper's fit, with the compute-optimal exponents."""
    mine, theirs = ours.law.as_dict(), paper.as_dict()
    lines = [f"{'parameter':<18} {'ours':>10} {'95% CI':>22} {'paper':>10}"]
    for key in mine:
        low, high = intervals.get(key, (math.nan, math.nan))
        lines.append(f"{key:<18} {mine[key]:>10.4g} {f'[{low:.4g}, {high:.4g}]':>22} {theirs[key]:>10.4g}")
    stated = PAPER_STATED_EXPONENTS
    lines.append(f"paper's stated split: params ∝ C^{stated['params']}, tokens ∝ C^{stated['tokens']}")
    lines.append(f"runs: {ours.n_runs}, Huber objective {ours.objective:.3g}")
    return "\n".join(lines)


def plot(runs, ours: ScalingLaw, out_stem: Path, paper: ScalingLaw = PAPER_FIT) -> list[Path]:
    """Loss vs tokens per model size (fit and paper's law), and iso-compute lines; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    sizes = sorted(runs["n_params"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    d_grid = np.geomspace(runs["tokens"].min() / 2, runs["tokens"].max() * 2, 100)
    for size, color in zip(sizes, colors):
        own = runs[runs["n_params"] == size]
        left.scatter(own["tokens"], own["loss"], color=color, s=18)
        left.plot(d_grid, ours.loss(size, d_grid), color=color, label=f"N={size:.3g}")
        left.plot(d_grid, paper.loss(size, d_grid), color=color, ls=":", lw=1)
    left.set(xscale="log", xlabel="tokens D", ylabel="final eval loss",
             title="loss curves: our fit (solid), paper's fit (dotted)")
    left.legend(fontsize=7)

    run_compute = 6 * runs["n_params"] * runs["tokens"]
    computes = np.geomspace(run_compute.min(), run_compute.max(), 5)
    optima = ours.optimal(computes)[0]
    n_grid = np.geomspace(min(runs["n_params"].min(), optima.min()) / 4,
                          max(runs["n_params"].max(), optima.max()) * 4, 200)
    for c, color in zip(computes, plt.cm.plasma(np.linspace(0, 0.85, len(computes)))):
        right.plot(n_grid, ours.loss(n_grid, c / (6 * n_grid)), color=color, label=f"C={c:.2g}")
        n_opt, _ = ours.optimal(c)
        right.scatter([n_opt], [ours.loss(n_opt, c / (6 * n_opt))], color=color, marker="*", s=80, zorder=3)
    right.set(xscale="log", xlabel="parameters N", ylabel="predicted loss (our fit)",
              title=f"iso-compute (C = 6ND); ★ optimum, N ∝ C^{ours.exponents['params']:.2f}")
    right.legend(fontsize=7)
    fig.tight_layout()
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def analyse(paths: Sequence[str | Path], out_dir: Path, *, iterations: int = 200, seed: int = 0) -> dict:
    """Read runs, fit, bootstrap, plot; write ``scaling_fit.json`` and the figure into ``out_dir``."""
    runs = read_runs(paths)
    ours = fit(runs["n_params"], runs["tokens"], runs["loss"])
    intervals = bootstrap(runs["n_params"], runs["tokens"], runs["loss"], ours, iterations=iterations, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plot(runs, ours.law, out_dir / "scaling")
    document = {"fit": ours.law.as_dict(), "ci95": intervals, "bootstrap_iterations": iterations,
                "objective": ours.objective, "runs": runs.to_dict(orient="records"),
                "paper": {"fit": PAPER_FIT.as_dict(), "stated_exponents": PAPER_STATED_EXPONENTS},
                "figures": [p.name for p in figures]}
    (out_dir / "scaling_fit.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    print(report_table(ours, intervals))
    return document


# ---- recif-leaderboard scaling -----------------------------------------------------------------
HELP = "fit L(N, D) = E + A/N^alpha + B/D^beta to training runs (CSV or trainer_state.json), with the paper's fit"


def arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", type=Path,
                        help="runs CSV (n_params, tokens, loss), trainer_state.json, or folders of training runs")
    parser.add_argument("--out", type=Path, default=Path("site"), help="output folder; files go to OUT/scaling")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--seed", type=int, default=0)


def command(args) -> int:
    try:
        analyse(args.runs, args.out / "scaling", iterations=args.bootstrap, seed=args.seed)
    except ScalingError as exc:
        print(f"recif-leaderboard: {exc}", file=sys.stderr)
        return 2
    print(f"recif-leaderboard: wrote {args.out / 'scaling'} (scaling_fit.json, scaling.png, scaling.svg)",
          file=sys.stderr)
    return 0
