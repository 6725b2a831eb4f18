"""Benchmark: the default Chinchilla fit on the embedded data, against plain NumPyro ``MCMC.run``.

Run:  python benchmarks/bench_fit.py
      python benchmarks/bench_fit.py --against DIR [--rounds 5] [--kinds calibrated,plain]
      (DIR: a source checkout of another version; --kinds: which rows, default all)

Prints, for a fresh ``bayes-scaling fit`` process (an empty cache, then the median of five
with the cache of compiled and traced programs warm; plain and calibrated, each its own cache),
a first and a second fit in one process, and NumPyro's ``MCMC.run`` on the same
model with the same chains and draws: wall time, min bulk ESS over E, A, B, alpha,
beta, ESS per second and max R-hat, and the machine.

With ``--against DIR`` it instead times this tree and the version in DIR in one run,
alternating between them (so both see the same machine load): a fresh calibrated and a fresh
plain ``bayes-scaling fit`` into an empty cache, the same with a warm cache (each version its own),
the first in-process ``fit(calibrate=False)`` of a Python session (no disk cache: traced and
compiled) and then warm, and a warm ``fit_many`` of 64 sweeps (ungrouped, HMC, both cores as
devices); medians of the rounds and the ratio this / other (with more than 3 rounds also the median and
quartiles of each round's own ratio: the machine's load moves both versions of a round alike). Both trees'
sources are compiled first, as ``pip install`` leaves them.
To compare with an earlier commit: ``git archive COMMIT | tar -x -C /tmp/before``.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import arviz as az
import jax
import numpy as np
import numpyro

import bayes_scaling as bs
from bayes_scaling._model import model_data, target
from bayes_scaling.priors import resolve

ROOT = Path(__file__).resolve().parent.parent

PARAMS = ["E", "A", "B", "alpha", "beta"]


def health(idata: az.InferenceData) -> tuple[float, float]:
    ess = az.ess(idata, var_names=PARAMS, method="bulk")
    rhat = az.rhat(idata, var_names=PARAMS)
    return min(float(ess[p]) for p in PARAMS), max(float(rhat[p]) for p in PARAMS)


def row(name: str, seconds: float, idata: az.InferenceData | None) -> None:
    if idata is None:
        print(f"{name:<46} {seconds:8.2f} s")
        return
    ess, rhat = health(idata)
    print(f"{name:<46} {seconds:8.2f} s   min bulk ESS {ess:7.0f}   {ess / seconds:8.0f} ESS/s   max R-hat {rhat:.4f}")


def fresh_cli(cache: str, *extra: str, source: Path | None = None) -> float:
    """Seconds of a fresh ``bayes-scaling fit`` process (of the package in ``source``, default: as installed)."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, BAYES_SCALING_CACHE=cache)
        if source is not None:
            env["PYTHONPATH"] = str(source)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bayes_scaling.cli", "fit", "--out", out, *extra],
            check=True,
            capture_output=True,
            env=env,
            cwd=out,
        )
        return time.perf_counter() - t


# In-process fits (no disk cache): the first (traces and compiles), then five warm ones (seeds 1-5); prints the
# first's seconds and the median of the five.
WARM = """
import time, warnings, numpy as np, bayes_scaling as bs
warnings.simplefilter("ignore")
t = time.perf_counter(); bs.fit(seed=0, calibrate=False); first = time.perf_counter() - t
times = []
for seed in range(1, 6):
    t = time.perf_counter(); bs.fit(seed=seed, calibrate=False); times.append(time.perf_counter() - t)
print(first, np.median(times))
"""


# Warm fit_many: 64 simulated sweeps (8 x 8 runs) on both cores as devices, HMC, 4 x (300 + 500); compile
# with a first call, then time the second. Prints seconds.
MANY = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import time, warnings, bayes_scaling as bs
warnings.simplefilter("ignore")
sweep = bs.datasets.sweep if hasattr(bs, "datasets") and hasattr(bs.datasets, "sweep") else bs.sweep
runs = sweep(n_range=(1e7, 3e9), sizes=8, ratios=8)
truth = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
sets = [bs.simulate(truth, runs, sigma=0.01, seed=i) for i in range(64)]
kw = dict(algorithm="hmc", chains=4, warmup=300, draws=500)
bs.fit_many(sets, **kw)
t = time.perf_counter(); bs.fit_many(sets, **kw); print(time.perf_counter() - t)
"""


def last_line(script: str, source: Path) -> list[str]:
    """The words of the last line that ``script`` prints, run by ``python -c`` with the package in ``source``."""
    run = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(source)),
        cwd=source,  # not the caller's: ``python -c`` imports from the working directory before PYTHONPATH
    )
    return run.stdout.strip().splitlines()[-1].split()


def warm_many(source: Path) -> float:
    return float(last_line(MANY, source)[0])


def warm_fit(source: Path) -> tuple[float, float]:
    """Seconds of the first in-process fit and median of five warm ones."""
    first, warm = last_line(WARM, source)
    return float(first), float(warm)


KINDS = ("cold", "cold plain", "calibrated", "plain", "first fit", "warm fit", "fit_many")


def against(other: Path, rounds: int = 5, kinds: tuple[str, ...] = KINDS) -> None:
    """This tree and ``other`` timed alternately in one run (the rows ``kinds`` of :data:`KINDS`); medians, ratios,
    and the paired ratio of each round (this / other in the same round)."""
    versions = {"this": ROOT, "other": other}
    for source in versions.values():  # as `pip install` does: no version compiles its sources in every process
        compileall.compile_dir(source / "bayes_scaling", quiet=1)
    times = {(v, what): [] for v in versions for what in kinds}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        caches = {"this": a, "other": b}
        for name, source in versions.items():  # fill each version's cache for the warm rows asked for
            for what, extra in (("calibrated", ()), ("plain", ("--plain",))):
                if what in kinds:
                    fresh_cli(caches[name], *extra, source=source)
        for _ in range(rounds):
            for name, source in versions.items():
                if "cold" in kinds:
                    with tempfile.TemporaryDirectory() as empty:  # the first run of a new user: nothing compiled
                        times[name, "cold"].append(fresh_cli(empty, source=source))
                if "cold plain" in kinds:
                    with tempfile.TemporaryDirectory() as empty:
                        times[name, "cold plain"].append(fresh_cli(empty, "--plain", source=source))
                if "calibrated" in kinds:
                    times[name, "calibrated"].append(fresh_cli(caches[name], source=source))
                if "plain" in kinds:
                    times[name, "plain"].append(fresh_cli(caches[name], "--plain", source=source))
                if "first fit" in kinds or "warm fit" in kinds:
                    first, warm = warm_fit(source)
                    for what, seconds in (("first fit", first), ("warm fit", warm)):
                        if what in kinds:
                            times[name, what].append(seconds)
                if "fit_many" in kinds:
                    times[name, "fit_many"].append(warm_many(source))
    print(f"this: {ROOT}\nother: {other}\n{rounds} rounds, alternating; medians (range)")
    labels = {
        "cold": "fresh `bayes-scaling fit`, empty cache",
        "cold plain": "fresh `bayes-scaling fit --plain`, empty cache",
        "calibrated": "fresh `bayes-scaling fit`",
        "plain": "fresh `bayes-scaling fit --plain`",
        "first fit": "fit(calibrate=False), first in a process",
        "warm fit": "fit(calibrate=False), warm, median of 5",
        "fit_many": "fit_many, 64 sweeps, hmc, warm",
    }
    for what in kinds:
        label = labels[what]
        this, other_ = (np.median(times[v, what]) for v in versions)
        spans = [f"{min(times[v, what]):.2f}-{max(times[v, what]):.2f}" for v in versions]
        ratio = this / other_
        paired = np.array(times["this", what]) / np.array(times["other", what])
        quartiles = f"paired {np.median(paired):.2f} ({np.quantile(paired, 0.25):.2f}-{np.quantile(paired, 0.75):.2f})"
        print(
            f"{label:<42} this {this:6.2f} s ({spans[0]})  other {other_:6.2f} s ({spans[1]})  ratio {ratio:.2f}"
            + (f"  {quartiles}" if rounds > 3 else "")
        )


# A fresh process doing what `bayes-scaling fit [--plain]` does, one step after another, timing each.
STEPS = """
import sys, time
t = [time.perf_counter()]
def lap(name):
    t.append(time.perf_counter())
    print(f"{name} {t[-1] - t[-2]:.2f}", end="; ")
import bayes_scaling as bs
bs.enable_cache(sys.argv[1]); lap("import")
result = bs.fit(calibrate=sys.argv[3] == "True"); lap("fit (read stored programs, sample)")
result.summary(); lap("summary")
forecast = bs.forecast(result, preset=["gpt3", "chinchilla", "gpt4"]); lap("forecast")
result.save(sys.argv[2] + "/posterior.nc"); lap("netCDF")
bs.plots.fit(result, forecast, path=sys.argv[2] + "/fit.png"); lap("figure")
"""


def steps(cache: str, calibrate: bool) -> str:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", STEPS, cache, out, str(calibrate)]
        run = subprocess.run(command, check=True, capture_output=True, text=True)
        return run.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="a source checkout of another version to time beside this one")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --against (each version once a round)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"rows of --against, comma-separated (default all: {','.join(KINDS)})"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    if args.against is not None:
        kinds = tuple(k.strip() for k in args.kinds.split(","))
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            parser.error(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(KINDS)}")
        against(args.against.resolve(), args.rounds, kinds)
        only = "" if kinds == KINDS else f" --kinds '{args.kinds}'"
        print(f"\nreproduce: python benchmarks/bench_fit.py --against {args.against} --rounds {args.rounds}{only}")
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, numpyro {numpyro.__version__}"
    )
    print("model: Chinchilla law, 245 embedded runs, 4 chains x (500 warm-up + 1000 draws), dense mass matrix\n")
    for name, extra in (("--plain", ("--plain",)), ("(calibrated default)", ())):
        with tempfile.TemporaryDirectory() as cache:  # each command its own cache, empty at first
            row(f"fresh `bayes-scaling fit {name}`, empty cache", fresh_cli(cache, *extra), None)
            times = sorted(fresh_cli(cache, *extra) for _ in range(5))
            span = f"{times[0]:.1f}-{times[-1]:.1f} s"
            row(f"fresh `bayes-scaling fit {name}`, warm cache, median of 5 ({span})", times[2], None)
            calibrate = not extra
            print(f"  a fresh fit (calibrate={calibrate}) step by step, warm cache: {steps(cache, calibrate)}")

    t = time.perf_counter()
    result = bs.fit(seed=0, calibrate=False)
    row("fit(calibrate=False), first call (compiles)", time.perf_counter() - t, result.idata)
    # Warm calls: the median of five (seeds 1-5) and the worst health among them; one call is noisy here.
    times, fits = [], []
    for seed in range(1, 6):
        t = time.perf_counter()
        fits.append(bs.fit(seed=seed, calibrate=False))
        times.append(time.perf_counter() - t)
    worst = min(fits, key=lambda r: health(r.idata)[0])
    row(f"fit(calibrate=False), warm, median of 5 ({min(times):.2f}-{max(times):.2f} s)", sorted(times)[2], worst.idata)
    bs.fit(seed=1)  # compile the internal refits
    t = time.perf_counter()
    result = bs.fit(seed=0)
    row("fit() default: + 4 internal refits + kappa, warm", time.perf_counter() - t, result.idata)

    law = bs.laws.get("chinchilla")
    model = target(law, resolve(law)).model
    data = model_data(bs.datasets.chinchilla(), law, resolve(law))
    for call in ("first", "second"):
        mcmc = numpyro.infer.MCMC(
            numpyro.infer.NUTS(model, dense_mass=True),
            num_warmup=1000,
            num_samples=1000,
            num_chains=4,
            chain_method="sequential",
            progress_bar=False,
        )
        t = time.perf_counter()
        mcmc.run(jax.random.key(0), data)
        jax.block_until_ready(mcmc.get_samples())
        seconds = time.perf_counter() - t
        row(f"numpyro MCMC.run (1000 warm-up), {call} call", seconds, az.from_numpyro(mcmc))
    print("\nreproduce: python benchmarks/bench_fit.py")


if __name__ == "__main__":
    main()
