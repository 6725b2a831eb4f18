"""Benchmark: how many draws the internal backtests' refits keep and how long they warm up, against the
calibrated fit's time and kappa.

Run:  python benchmarks/bench_refits.py [--draws 500 250] [--warmups short whole] [--rounds 5] [--seeds 6]

For each value of ``bayes_scaling.fit.REFIT_DRAWS`` (draws per chain a refit keeps) and each refit warm-up
(``short``: the chains enter the warm-up at ``bayes_scaling._sampler.refit_entry``, iteration 300 of 500, as
refits do; ``whole``: all 500 iterations, as refits did before), on the embedded Chinchilla runs with the
default settings: the warm in-process calibrated ``fit`` (the variants alternating, ``--rounds`` rounds, median
and range), then ``--seeds`` fits (seeds 0, 1, ...) with the median of each input's ``kappa`` draws, and how
many refits failed a check on their kept draws and went on to all of them.
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
from bayes_scaling._model import padded_length
from bayes_scaling.priors import resolve

fit_module = sys.modules["bayes_scaling.fit"]
sampler = sys.modules["bayes_scaling._sampler"]
ENTRY = sampler.refit_entry
WARMUPS = {"short": ENTRY, "whole": lambda settings: 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[500, 250])
    parser.add_argument("--warmups", nargs="+", choices=list(WARMUPS), default=list(WARMUPS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--cutoff", type=float, default=9e20, help="compute cutoff of the plain refits, FLOP")
    args = parser.parse_args()
    print(f"# python benchmarks/bench_refits.py {' '.join(sys.argv[1:])}".rstrip())
    now = fit_module.REFIT_DRAWS
    print(f"# {platform.platform()}, {os.cpu_count()} cores; jax {jax.__version__}, REFIT_DRAWS now {now}")
    warnings.simplefilter("ignore")
    bs.enable_cache()
    runs = bs.datasets.chinchilla()
    failing = fit_module._short
    went_on = []

    def counted(out: object, depth: int, bar: str = "fail") -> bool:
        failed = failing(out, depth, bar)
        went_on.append(failed)
        return failed

    fit_module._short = counted
    variants = [(k, w) for k in args.draws for w in args.warmups]

    def use(variant: tuple[int, str]) -> None:
        fit_module.REFIT_DRAWS, sampler.refit_entry = variant[0], WARMUPS[variant[1]]

    try:
        times: dict[tuple[int, str], list[float]] = {v: [] for v in variants}
        for v in variants:  # compile and read every program first
            use(v)
            bs.fit(runs, seed=0)
        for _ in range(args.rounds):
            for v in variants:
                use(v)
                started = time.perf_counter()
                bs.fit(runs, seed=0)
                times[v].append(time.perf_counter() - started)
        print(
            "\nrefit draws  warm-up  warm calibrated fit: median (range)  refits gone on  kappa medians (N, D) by seed"
        )
        for v in variants:
            use(v)
            went_on.clear()
            medians = []
            for seed in range(args.seeds):
                kappa = bs.fit(runs, seed=seed).group("extrapolation")["kappa"].to_numpy().reshape(-1, 2)
                medians.append(np.median(kappa, axis=0))
            shown = " ".join(f"({n:.4f}, {d:.4f})" for n, d in medians)
            t = np.array(times[v])
            print(
                f"{v[0]:11d}  {v[1]:>7s}  {np.median(t):6.3f} s ({t.min():.3f}-{t.max():.3f})"
                f"{sum(went_on):>19d} of {len(went_on):<3d}  {shown}"
            )
        print(f"\nrefits below {args.cutoff:g} FLOP (plain), forecasting the runs above: 90% band of a new run")
        print("refit draws  warm-up  mean log width  share inside  health by seed")
        below = (runs.frame["C"] < args.cutoff).to_numpy()
        train, held = runs.subset(below), runs.frame[~below]
        law, spec = bs.laws.get("chinchilla"), resolve(bs.laws.get("chinchilla"))
        settings, pad = bs.Settings(), padded_length(len(runs))
        for v in variants:
            use(v)
            widths, inside, levels = [], [], []
            for seed in range(args.seeds):
                refit = fit_module._fit(train, law, spec, settings, seed, False, pad=pad, quiet=True, keep=v[0])
                band = bs.forecast(refit, held[["N", "D"]], levels=(0.9,), mode="plain")
                lo, hi = band["run_lo90"].to_numpy(), band["run_hi90"].to_numpy()
                loss = held["loss"].to_numpy()
                widths.append(float(np.mean(np.log(hi / lo))))
                inside.append(float(np.mean((lo <= loss) & (loss <= hi))))
                levels.append(refit.health().level)
            print(f"{v[0]:11d}  {v[1]:>7s}  {np.mean(widths):14.5f}  {np.mean(inside):12.3f}  {' '.join(levels)}")
    finally:
        fit_module._short = failing
        use((now, "short"))
    print("\nreproduce: python benchmarks/bench_refits.py")


if __name__ == "__main__":
    main()
