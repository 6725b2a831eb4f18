"""Large sweeps on the command line: wall time and peak memory of `bayes-scaling fit`, and the 1,000,000-run stop.

Run:  python benchmarks/bench_large.py [--runs 100000]

Simulates a Chinchilla-law sweep of about ``--runs`` runs (a square grid of model sizes by
tokens-per-parameter ratios, 1e7-1e10 parameters), writes it as CSV and times fresh
``bayes-scaling fit --plain`` and ``bayes-scaling fit`` (calibrated default) processes on it,
each with the cache of compiled programs warmed by one run first; peak memory is the
process's maximum resident set size. Then a 1,000,000-run CSV: the command must stop at
once with a message that says what to do.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bayes_scaling as bs

TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}

# Runs one command as a child and prints the child's peak resident memory (kB) last.
PEAK = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
PEAK += "print(r.stdout[-3000:] + r.stderr[-3000:]); "
PEAK += "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def timed(*command: str) -> tuple[float, float, int, str]:
    """(seconds, peak GB, exit status, output tail) of one fresh process."""
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t
    *text, last = run.stdout.rstrip().splitlines()
    status, peak = last.split()
    return seconds, int(peak) / 1e6, int(status), "\n".join(text)


def sweep(runs: int, path: Path) -> int:
    side = int(np.ceil(np.sqrt(runs)))
    grid = bs.datasets.sweep(n_range=(1e7, 1e10), sizes=side, ratios=side)
    bs.simulate(TRUTH, grid, sigma=0.01, seed=1).to_csv(path, index=False)
    return len(grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; bayes_scaling {bs.__version__}")
    cli = [sys.executable, "-m", "bayes_scaling.cli", "fit"]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        n = sweep(args.runs, work / "runs.csv")
        print(f"{n:,} simulated runs ({(work / 'runs.csv').stat().st_size / 1e6:.1f} MB of CSV)\n")
        for name, extra in (("--plain", ["--plain"]), ("(calibrated default)", [])):
            command = [*cli, str(work / "runs.csv"), "--out", str(work / "out"), *extra]
            timed(*command)  # warm the cache of compiled programs
            seconds, peak, status, _ = timed(*command)
            print(f"bayes-scaling fit {name:<22} {seconds:7.1f} s   peak {peak:5.2f} GB   exit {status}")
        m = sweep(1_000_000, work / "million.csv")
        seconds, peak, status, text = timed(*cli, str(work / "million.csv"), "--out", str(work / "out"))
        said = next(line for line in text.splitlines() if "error" in line)
        print(f"\n{m:,} runs: stopped after {seconds:.1f} s (peak {peak:.2f} GB, exit {status}):\n  {said}")
    print(f"\nreproduce: python benchmarks/bench_large.py --runs {args.runs}")


if __name__ == "__main__":
    main()
