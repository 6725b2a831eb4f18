"""Benchmark: the seconds a fresh process spends importing the package, against other library versions.

Run:  python benchmarks/bench_imports.py [--with DIR] [--rounds 9] [--out FILE]

Times fresh ``python -c "import bayes_scaling.cli"`` processes (what every ``bayes-scaling`` command imports
before its work) and prints the median and range, with the versions of numpy and ml_dtypes imported. With
``--with DIR``, the same alternating with processes that put DIR first on ``sys.path`` (libraries installed
there shadow the environment's), and the difference of the medians. For example, ml_dtypes 0.7 under NumPy
< 2.5 (the newest for Python 3.11), which ``pyproject.toml`` keeps out::

    pip install --no-deps --target /tmp/ml07 ml_dtypes==0.7.0
    python benchmarks/bench_imports.py --with /tmp/ml07
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import Report

SCRIPT = (
    "import time; t = time.perf_counter(); import bayes_scaling.cli; t = time.perf_counter() - t; "
    "import numpy, ml_dtypes; print(t, numpy.__version__, ml_dtypes.__version__)"
)


def imported(shadow: Path | None) -> tuple[float, str]:
    """Seconds of the imports in a fresh process (``shadow`` first on its path), and the versions it saw."""
    env = dict(os.environ)
    if shadow is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shadow), env.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", SCRIPT], check=True, capture_output=True, text=True, env=env)
    seconds, numpy, ml_dtypes = out.stdout.split()
    return float(seconds), f"numpy {numpy}, ml_dtypes {ml_dtypes}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with", dest="shadow", type=Path, help="a folder of libraries to time beside these")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    report = Report()
    extra = f" --with {args.shadow}" if args.shadow else ""
    report(f"# python benchmarks/bench_imports.py{extra} --rounds {args.rounds}")
    report(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    variants = {"environment": None} | ({f"with {args.shadow}": args.shadow} if args.shadow else {})
    imported(None)  # the first process reads the files from disk
    times: dict[str, list[float]] = {name: [] for name in variants}
    seen = {}
    for _ in range(args.rounds):  # alternating: both see the machine's load alike
        for name, shadow in variants.items():
            seconds, seen[name] = imported(shadow)
            times[name].append(seconds)
    report(f"import bayes_scaling.cli in a fresh process, {args.rounds} rounds: median (range)")
    for name, values in times.items():
        report(f"  {name:<28} {np.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})   {seen[name]}")
    if args.shadow:
        a, b = (np.median(values) for values in times.values())
        report(f"difference (with - environment): {b - a:+.3f} s")
    report.write(args.out)


if __name__ == "__main__":
    main()
