"""Benchmark: many Chinchilla fits at once with ``fit_many``, against single fits in a loop.

Each data set is simulated from a known Chinchilla law (8 model sizes x 8 tokens-per-parameter
ratios, 1e7-3e9 parameters, noise 0.01 on log loss, its own noise seed). Prints the machine, the
time of a first call (compilation included), of a second call, and of the compiled sampler
alone (its convergence statistics included, computed on the device), and how many fits
converged (every parameter with bulk ESS >= 400 and R-hat <= 1.01; and by the full check: also
tail ESS, divergences, E-BFMI).

    python benchmarks/bench_many.py                           # 64 fits: fit_many vs a loop of fit(), 2 CPU devices
    python benchmarks/bench_many.py --fits 1024 --singles 0   # on a GPU machine
    python benchmarks/bench_many.py --fits 1024 --singles 0 --gpu-graphs      # GPU, while loops in CUDA graphs
    python benchmarks/bench_many.py --fits 1024 --against-cpu --cpu-devices 16 # GPU vs 16 CPU cores, one process
    JAX_PLATFORMS=cpu python benchmarks/bench_many.py --fits 1024 --singles 0 --cpu-devices 16
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--fits", type=int, default=64)
parser.add_argument("--singles", type=int, default=None, help="single fits to time in a loop (default: --fits)")
parser.add_argument("--algorithm", default="hmc,nuts", help="comma-separated: hmc, nuts")
parser.add_argument("--cpu-devices", type=int, default=os.cpu_count(), help="CPU cores exposed as JAX devices")
parser.add_argument("--warmup", type=int, default=300)
parser.add_argument("--draws", type=int, default=500)
parser.add_argument(
    "--gpu-graphs",
    action="store_true",
    help="let XLA capture while loops and conditionals in CUDA graphs (command buffers): fewer host round trips",
)
parser.add_argument(
    "--against-cpu", action="store_true", help="only: hmc fits on the default devices and on every CPU core, alternated"
)
args = parser.parse_args()
FLAGS = f"--xla_force_host_platform_device_count={args.cpu_devices}"
if args.gpu_graphs:
    FLAGS += " --xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUDNN,CUSTOM_CALL,CONDITIONAL,WHILE"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FLAGS).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

import bayes_scaling as bs  # noqa: E402
from bayes_scaling._model import stack_data, target  # noqa: E402
from bayes_scaling._sampler import sample_many  # noqa: E402
from bayes_scaling.fit import _as_dataset  # noqa: E402
from bayes_scaling.priors import resolve  # noqa: E402

warnings.simplefilter("ignore", bs.ConvergenceWarning)
TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}


def counted(results: list[bs.Result]) -> tuple[int, int]:
    """Fits whose every parameter has bulk ESS >= 400 and R-hat <= 1.01; fits passing every check."""
    bar = [not any(p.startswith(("R-hat", "bulk ESS")) for p in r.problems) for r in results]
    return sum(bar), sum(r.converged for r in results)


def against_cpu(sets: list, kw: dict, repeats: int = 3) -> None:
    """The same fit_many call on the default devices (a GPU) and on every CPU core, in one process.

    Calls alternate between the two, so that both see the same machine load; prints each
    first call (compilation included), the median of ``repeats`` later calls and their ratio.
    """
    targets = {"default": jax.local_devices(), "cpu": jax.local_devices(backend="cpu")}
    first, later = {}, {name: [] for name in targets}
    for name, devices in targets.items():
        t0 = time.perf_counter()
        results = bs.fit_many(sets, algorithm="hmc", devices=devices, **kw)
        first[name] = time.perf_counter() - t0
        print(
            f"{name}: {len(devices)} x {devices[0].device_kind}, first call {first[name]:.2f} s, "
            f"ESS+R-hat ok {counted(results)[0]}, all ok {counted(results)[1]}"
        )
    for _ in range(repeats):
        for name, devices in targets.items():
            t0 = time.perf_counter()
            bs.fit_many(sets, algorithm="hmc", devices=devices, **kw)
            later[name].append(time.perf_counter() - t0)
    for name in targets:
        times = ", ".join(f"{t:.2f}" for t in later[name])
        print(f"{name}: later calls {times} s, median {np.median(later[name]):.2f} s")
    ratio = np.median(later["cpu"]) / np.median(later["default"])
    print(f"ratio of medians (CPU / default devices): {ratio:.1f}x; first calls {first['cpu'] / first['default']:.1f}x")


def main() -> None:
    runs = bs.datasets.sweep(n_range=(1e7, 3e9), sizes=8, ratios=8)
    sets = [bs.simulate(TRUTH, runs, sigma=0.01, seed=i) for i in range(args.fits)]
    kw = {"chains": 4, "warmup": args.warmup, "draws": args.draws}
    devices = jax.local_devices()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores")
    print(f"jax {jax.__version__}: {len(devices)} x {devices[0].device_kind} ({devices[0].platform})")
    print(f"{args.fits} fits of {len(runs)} runs each; 4 chains x ({args.warmup} warm-up + {args.draws} draws)")
    print(f"XLA_FLAGS={os.environ['XLA_FLAGS']}\n")
    if args.against_cpu:
        against_cpu(sets, kw)
        return
    rows = []
    for algorithm in args.algorithm.split(","):
        t0 = time.perf_counter()
        results = bs.fit_many(sets, algorithm=algorithm, **kw)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = bs.fit_many(sets, algorithm=algorithm, **kw)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        built = [r.idata for r in results]  # InferenceData are built on first access: time building all
        print(f"{algorithm}: building all {len(built)} InferenceData after the call {time.perf_counter() - t0:.2f} s")
        law = bs.laws.get("chinchilla")
        batch = stack_data([_as_dataset(d, law) for d in sets], law, resolve(law))
        keys = jax.vmap(jax.random.key)(np.arange(len(sets)))
        settings = bs.Settings(**kw, algorithm=algorithm)
        t0 = time.perf_counter()
        jax.block_until_ready(sample_many(target(law, resolve(law)), settings, keys, batch))
        sampler = time.perf_counter() - t0
        rows.append((f"fit_many {algorithm}", cold, warm, sampler, *counted(results)))
    singles = args.fits if args.singles is None else args.singles
    if singles:
        bs.fit(sets[0], calibrate=False, **kw)  # compile once
        t0 = time.perf_counter()
        results = [bs.fit(d, seed=i, calibrate=False, **kw) for i, d in enumerate(sets[:singles])]
        loop = time.perf_counter() - t0
        rows.append((f"{singles} x fit() nuts", float("nan"), loop, float("nan"), *counted(results)))
    print(f"{'method':<20}{'first call s':>13}{'second s':>10}{'sampler s':>11}{'ESS+Rhat ok':>13}{'all ok':>8}")
    for name, cold, warm, sampler, good, full in rows:
        print(f"{name:<20}{cold:>13.2f}{warm:>10.2f}{sampler:>11.2f}{good:>13d}{full:>8d}")
    if singles:
        loop = rows[-1][2] * args.fits / singles
        for name, _, warm, *_ in rows[:-1]:
            print(f"speed-up of {name} over {args.fits} single fits (second calls): {loop / warm:.1f}x")


if __name__ == "__main__":
    main()
