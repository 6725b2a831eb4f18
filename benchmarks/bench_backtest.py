"""Backtest of the Chinchilla law on the embedded runs: plain vs calibrated forecasts.

Run:  python benchmarks/bench_backtest.py      (same as `bayes-scaling backtest --cutoffs 1e20,3e20,1e21`)

Fits the law below compute cutoffs 1e20, 3e20 and 1e21 FLOP (default sampler settings), forecasts the
larger runs and prints, for each cutoff and mode, the coverage of the 50/80/90% bands of a new run, the
median absolute relative error and the mean 90% interval score.
"""

from __future__ import annotations

import platform
import time
import warnings

import pandas as pd

import bayes_scaling as bs


def main() -> None:
    warnings.simplefilter("ignore", FutureWarning)
    print(f"machine: {platform.machine()}, bayes_scaling {bs.__version__}")
    start = time.perf_counter()
    result = bs.backtest(bs.datasets.chinchilla(), "chinchilla", cutoffs=(1e20, 3e20, 1e21), seed=0)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(result.table.to_string(index=False))
    print(f"\n{time.perf_counter() - start:.0f} s; reproduce: python benchmarks/bench_backtest.py")


if __name__ == "__main__":
    main()
