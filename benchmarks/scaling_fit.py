"""Scaling-law fit: time and recovery error on synthetic sweeps drawn from the paper's law.

For each seed: 6 model sizes (0.1B-8B) x 10 checkpoints (1e8-1e11 tokens), loss = the paper's
L(N, D) times exp(noise); then one full fit (64 L-BFGS starts).  Prints the fit time and the
median / worst absolute error of every parameter and compute-optimal exponent over the seeds.

    python benchmarks/scaling_fit.py [--seeds 10] [--noise 0.002]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from leaderboard.scaling import PAPER_FIT, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.002, help="sd of the multiplicative log-loss noise")
    args = parser.parse_args()
    n, d = (x.ravel() for x in np.meshgrid(np.array([0.1, 0.3, 0.6, 1.7, 4.0, 8.0]) * 1e9, np.geomspace(1e8, 1e11, 10)))
    truth = PAPER_FIT.as_dict()
    errors: dict[str, list[float]] = {k: [] for k in truth}
    seconds = []
    for seed in range(args.seeds):
        loss = PAPER_FIT.loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, args.noise, n.size))
        start = time.perf_counter()
        law = fit(n, d, loss).law
        seconds.append(time.perf_counter() - start)
        for key, value in law.as_dict().items():
            errors[key].append(abs(value - truth[key]) / (truth[key] if key in ("A", "B") else 1))
    print(f"{args.seeds} sweeps of {n.size} runs, noise {args.noise}: fit {np.median(seconds):.2f} s median, "
          f"{max(seconds):.2f} s worst")
    print(f"{'parameter':<18} {'true':>9} {'median err':>11} {'worst err':>10}   (A, B: relative)")
    for key, errs in errors.items():
        print(f"{key:<18} {truth[key]:>9.4g} {np.median(errs):>11.4f} {max(errs):>10.4f}")


if __name__ == "__main__":
    main()
