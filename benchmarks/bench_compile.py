"""Benchmark: how long XLA takes to compile a fit's programs, the floor of a first run.

Run:  python benchmarks/bench_compile.py

Compiles (ahead of time, in memory: no cache) the three programs of a chunked NUTS fit
(``begin``: the mode search and the chains' start; ``advance``: a chunk of NUTS iterations;
``finish``; ``advance`` also for a part of 2 chains, vectorized and mapped as a split fit samples them)
for the Chinchilla law on the 245 embedded runs, then for a 6-parameter standard
normal (NumPyro's NUTS kernel with nothing of the law in it); prints the seconds of tracing and of XLA
compilation of each, one after
another on one thread: compiled with XLA's default options and with those the package gives that
program (``bayes_scaling._programs.compiler_options``), one right after the other, and the
milliseconds one call of each compiled program takes (the median of 10). Last, the milliseconds of the
calibrated mode's kappa grid (in NumPy, not compiled: before, a program that took about a second to compile for
each number of inputs) on the embedded runs' internal backtests.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import bayes_scaling as bs
from bayes_scaling import _calibration, _sampler
from bayes_scaling._model import Target, model_data, target
from bayes_scaling._programs import compiler_options
from bayes_scaling.priors import resolve


def timed(name: str, fn: Callable, *args: object, options: dict | None = None) -> object:
    """Trace and compile ``jax.jit(fn)`` for ``args``, with XLA's defaults and with ``options`` (None: once,
    with the defaults); print the times and a call's (the trace is JAX's, shared by both); return the first
    compiled."""
    results = []
    for label, chosen in (("XLA defaults", None), ("options", options))[: 2 if options else 1]:
        t = time.perf_counter()
        lowered = jax.jit(fn, compiler_options=chosen).lower(*args)
        traced = time.perf_counter() - t
        t = time.perf_counter()
        compiled = lowered.compile()
        seconds = time.perf_counter() - t
        calls = []
        for _ in range(10):
            t = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            calls.append(time.perf_counter() - t)
        results.append(compiled)
        print(
            f"{name:<56} {label:<12} trace {traced:5.2f} s   XLA compile {seconds:5.2f} s   "
            f"call {1000 * np.median(calls):7.1f} ms"
        )
    return results[0]


def pieces(name: str, model: Target, data: object) -> None:
    """The chunked sampler's three programs for ``model``, compiled one after another."""
    settings = bs.Settings()
    begin, advance, finish = _sampler._pieces(model, settings, ())
    size = _sampler._chunk(settings)
    key = jax.random.key(0)
    state, start = timed(f"{name}: begin", begin, key, data, options=compiler_options(once=True))(key, data)
    hot = compiler_options()
    step = timed(
        f"{name}: advance ({size} iterations)", partial(advance, n=size), state, data, np.int32(0), options=hot
    )
    _, trace = step(state, data, np.int32(0))
    two = jax.tree.map(lambda a: a[:2], state)  # a part of a split fit: its chains vectorized, or mapped (as sampled)
    for how, mapped in (("vectorized", 0), ("mapped", _sampler.MAPPED)):
        _, part, _ = _sampler._pieces(model, settings, (), mapped=mapped)
        timed(f"{name}: advance, 2 chains {how}", partial(part, n=size), two, data, np.int32(0), options=hot)
    chunks = len(range(0, settings.warmup + settings.draws, size))
    timed(f"{name}: finish", finish, data, start, [[trace] * chunks], options=compiler_options(once=True))


def normal(data: dict) -> None:
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([6]).to_event(1))


def main() -> None:
    print(
        f"# python benchmarks/bench_compile.py  ({platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__})"
    )
    print(f"# options: the sampler's steps {compiler_options()}; programs run once per fit {compiler_options(True)}")
    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    model = target(law, spec)
    pieces("Chinchilla law, 245 runs", model, model_data(bs.datasets.chinchilla(), law, spec))
    normal6 = Target(normal, lambda data, key: {"x": jnp.zeros(6)}, ("x",), "normal", None)
    pieces("standard normal, 6 parameters", normal6, {"y": jnp.zeros(3)})
    result = bs.fit(bs.datasets.chinchilla(), seed=0, progress=False)
    g = result.group("extrapolation")
    evidence = _calibration.Evidence(
        tuple(map(str, g["input"].to_numpy())),
        *(g[k].to_numpy() for k in ("internal_input", "internal_split", "internal_residual", "internal_scale")),
        g["internal_reducible"].to_numpy(),
        g["internal_distance"].to_numpy(),
    )
    prior = _calibration.kappa_prior(result.spec, result.law.axes)
    calls = []
    for seed in range(10):
        t = time.perf_counter()
        _calibration.fit_kappa(evidence, result.spec.df, (4, 1000), seed, prior)
        calls.append(time.perf_counter() - t)
    name = f"kappa grid (NumPy; {evidence.rows} rows, 2 inputs, 4000 draws)"
    print(f"{name:<56} {'':<12} {'':<42} call {1000 * np.median(calls):7.1f} ms")
    print("\nreproduce: python benchmarks/bench_compile.py")


if __name__ == "__main__":
    main()
