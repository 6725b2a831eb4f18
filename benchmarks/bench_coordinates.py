"""How well NUTS mixes on the power-c law (E + A / C^alpha) and the Chinchilla law fitted to parts of the embedded runs.

Run:  python benchmarks/bench_coordinates.py
      PYTHONPATH=DIR python benchmarks/bench_coordinates.py    (DIR: a source checkout of another version)

The lower part of the embedded Chinchilla runs by compute is where E, A and alpha trade off most (a decade or
two of compute leaves the curvature loose): the fits of a review's internal backtests. For the runs below the
50% and 70% quantiles of compute and for all runs: a plain fit (4 chains x (500 + 1000), seed 0), its mean
leapfrog steps per draw, worst R-hat and bulk ESS of E, A and alpha, divergent draws, health and wall time
(warm: each fit once to compile, then timed). Then the Chinchilla law on all runs and on the lower halves by N
and by D, and on 12 random subsets of 20 runs (how many pass, warn or fail their checks).
"""

from __future__ import annotations

import os
import platform
import time
import warnings

import numpy as np
import pandas as pd

import bayes_scaling as bs


def mixing(data: pd.DataFrame, law: str) -> str:
    """A plain fit of ``law`` (seed 0, timed warm): leapfrog steps a draw, worst R-hat and bulk ESS of the law's
    parameters, divergent draws, health and wall time, as one line's text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bs.fit(data, law, seed=0, calibrate=False)  # compiles
        t = time.perf_counter()
        result = bs.fit(data, law, seed=0, calibrate=False)
        seconds = time.perf_counter() - t
    stats = result.group("sample_stats")
    table = result.summary().loc[list(result.law.params)]
    return (
        f"{float(stats['n_steps'].mean()):.1f} leapfrog steps a draw, max R-hat {table['r_hat'].max():.3f}, min bulk "
        f"ESS {table['ess_bulk'].min():.0f}, {int(stats['diverging'].sum())} divergent, health "
        f"{result.health().level}, {seconds:.2f} s"
    )


def main() -> None:
    print(f"# bench_coordinates: {platform.machine()}, {os.cpu_count()} cores, bayes_scaling from {bs.__file__}")
    bs.enable_cache()
    chinchilla = bs.datasets.chinchilla().frame.rename(columns={"N": "params", "D": "tokens", "C": "flops"})
    for q in (0.5, 0.7, 1.0):
        low = chinchilla[chinchilla["flops"] <= np.quantile(chinchilla["flops"], q)]
        print(f"runs below the {q:.0%} quantile of compute ({len(low)}): {mixing(low, 'power-c')}")
    parts = {
        "all runs": chinchilla,
        "lower half by N": chinchilla[chinchilla["params"] <= chinchilla["params"].median()],
        "lower half by D": chinchilla[chinchilla["tokens"] <= chinchilla["tokens"].median()],
    }
    for label, data in parts.items():
        print(f"Chinchilla law, {label} ({len(data)}): {mixing(data, 'chinchilla')}")
    levels, steps = [], []
    for seed in range(12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bs.fit(chinchilla.sample(20, random_state=seed), seed=0, calibrate=False)
        levels.append(result.health().level)
        steps.append(float(result.group("sample_stats")["n_steps"].mean()))
    counts = ", ".join(f"{levels.count(k)} {k}" for k in ("pass", "warn", "fail"))
    print(f"Chinchilla law, 12 random subsets of 20 runs: {counts}; {np.mean(steps):.1f} leapfrog steps a draw")
    print("\nreproduce: python benchmarks/bench_coordinates.py")


if __name__ == "__main__":
    main()
