"""Benchmark: how many draws the internal backtests' refits keep, against the calibrated fit's time and kappa.

Run:  python benchmarks/bench_refits.py [--draws 500 250] [--rounds 5] [--seeds 6]

For each value of ``bayes_scaling.fit.REFIT_DRAWS`` (draws per chain a refit keeps), on the embedded
Chinchilla runs with the default settings: the warm in-process calibrated ``fit`` (the values alternating,
``--rounds`` rounds, median and range), then ``--seeds`` fits (seeds 0, 1, ...) with the median of each
input's ``kappa`` draws, and how many refits failed a check on their kept draws and went on to all of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import jax
import numpy as np

import bayes_scaling as bs

fit_module = sys.modules["bayes_scaling.fit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[500, 250])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    print(f"# python benchmarks/bench_refits.py {' '.join(sys.argv[1:])}".rstrip())
    now = fit_module.REFIT_DRAWS
    print(f"# {platform.platform()}, {os.cpu_count()} cores; jax {jax.__version__}, REFIT_DRAWS now {now}")
    warnings.simplefilter("ignore")
    bs.enable_cache()
    runs = bs.datasets.chinchilla()
    failing = fit_module._failing
    went_on = []

    def counted(out: object, depth: int) -> bool:
        failed = failing(out, depth)
        went_on.append(failed)
        return failed

    fit_module._failing = counted
    try:
        times: dict[int, list[float]] = {k: [] for k in args.draws}
        for k in args.draws:  # compile and read every program first
            fit_module.REFIT_DRAWS = k
            bs.fit(runs, seed=0)
        for _ in range(args.rounds):
            for k in args.draws:
                fit_module.REFIT_DRAWS = k
                started = time.perf_counter()
                bs.fit(runs, seed=0)
                times[k].append(time.perf_counter() - started)
        print("\nrefit draws  warm calibrated fit: median (range)  refits gone on  kappa medians (N, D) by seed")
        for k in args.draws:
            fit_module.REFIT_DRAWS = k
            went_on.clear()
            medians = []
            for seed in range(args.seeds):
                kappa = bs.fit(runs, seed=seed).group("extrapolation")["kappa"].to_numpy().reshape(-1, 2)
                medians.append(np.median(kappa, axis=0))
            shown = " ".join(f"({n:.4f}, {d:.4f})" for n, d in medians)
            t = np.array(times[k])
            print(
                f"{k:11d}  {np.median(t):6.3f} s ({t.min():.3f}-{t.max():.3f})"
                f"{sum(went_on):>19d} of {len(went_on):<3d}  {shown}"
            )
    finally:
        fit_module._failing = failing
    print("\nreproduce: python benchmarks/bench_refits.py")


if __name__ == "__main__":
    main()
