"""Benchmark: simulation-based calibration of the Chinchilla law at scale (Talts et al. 2018).

Draws parameters from a prior around the published Chinchilla fits (the same as in
tests/test_sbc.py), simulates an 8 x 8 sweep from each draw, fits every sweep in one
``fit_many`` batch, and tests the uniformity of the ranks of the true values. Prints the
machine, the time, the chi-square table and the count of converged fits; writes the rank
histograms to ``--plot``. Also runs the deliberately broken setting (data 3x noisier than
the model) unless ``--no-broken``.

    python benchmarks/bench_sbc.py --sims 1000 --plot sbc.png            # GPU machine: about a minute
    python benchmarks/bench_sbc.py --sims 200                            # 2-core CPU
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

import bayes_scaling as bs
from bayes_scaling.sbc import REGIME, calibrate

PRIORS = REGIME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--algorithm", default="hmc")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--no-broken", action="store_true")
    args = parser.parse_args()
    devices = jax.local_devices()
    print(f"machine: {platform.node()}, {os.cpu_count()} CPU cores; jax {jax.__version__}: ", end="")
    print(f"{len(devices)} x {devices[0].device_kind} ({devices[0].platform})")
    settings = {"n_sims": args.sims, "priors": PRIORS, "warmup": 300, "draws": 500, "algorithm": args.algorithm}
    for label, noise in [("model", 1.0)] + ([] if args.no_broken else [("broken: noise x3", 3.0)]):
        t0 = time.perf_counter()
        cal = calibrate("chinchilla", noise_scale=noise, seed=1, **settings)
        seconds = time.perf_counter() - t0
        print(f"\nSBC, {label}: {args.sims} simulations, {args.algorithm}, 4 chains x (300 + 500), {seconds:.1f} s")
        print(f"ranks among {cal.draws} draws, {cal.bins} bins; {cal.converged} fits passed every health check")
        print(cal.table.round(4).to_string())
        print("PASSED" if cal.passed else "FAILED", f"(family-wise alpha {cal.alpha})")
        if args.plot and noise == 1.0:
            bs.plots.sbc(cal, path=args.plot)


if __name__ == "__main__":
    main()
