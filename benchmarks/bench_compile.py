"""Benchmark: how long XLA takes to compile a fit's programs, the floor of a first run.

Run:  python benchmarks/bench_compile.py

Compiles (ahead of time, in memory: no cache) the three programs of a chunked NUTS fit
(``begin``: the mode search and the chains' start; ``advance``: a chunk of NUTS iterations;
``finish``; ``advance`` also for a part of 2 chains, vectorized and mapped as a split fit samples them)
for the Chinchilla law on the 245 embedded runs, then for a 6-parameter standard
normal (NumPyro's NUTS kernel with nothing of the law in it), and the kappa grid of the
calibrated mode; prints the seconds of tracing and of XLA compilation of each, one after
another on one thread.
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
from bayes_scaling._model import model_data, target
from bayes_scaling.priors import resolve


def timed(name: str, fn: Callable, *args: object) -> object:
    """Trace and compile ``jax.jit(fn)`` for ``args``; print both times; return the compiled program."""
    t = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    traced = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    print(f"{name:<56} trace {traced:5.2f} s   XLA compile {time.perf_counter() - t:5.2f} s")
    return compiled


def pieces(name: str, model: Callable, initial: Callable, data: object) -> None:
    """The chunked sampler's three programs for ``model``, compiled one after another."""
    settings = bs.Settings()
    begin, advance, finish = _sampler._pieces(model, initial, settings, ())
    size = -(-(settings.warmup + settings.draws) // _sampler.CHUNKS)
    key = jax.random.key(0)
    state, start = timed(f"{name}: begin", begin, key, data)(key, data)
    step = timed(f"{name}: advance ({size} iterations)", partial(advance, n=size), state, data, np.int32(0))
    _, trace = step(state, data, np.int32(0))
    two = jax.tree.map(lambda a: a[:2], state)  # a part of a split fit: its chains vectorized, or mapped (as sampled)
    for how, mapped in (("vectorized", 0), ("mapped", _sampler.MAPPED)):
        _, part, _ = _sampler._pieces(model, initial, settings, (), mapped=mapped)
        timed(f"{name}: advance, 2 chains {how}", partial(part, n=size), two, data, np.int32(0))
    chunks = len(range(0, settings.warmup + settings.draws, size))
    timed(f"{name}: finish", finish, data, start, [[trace] * chunks])


def normal(data: dict) -> None:
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([6]).to_event(1))


def main() -> None:
    print(
        f"# python benchmarks/bench_compile.py  ({platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__})"
    )
    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    model = target(law, spec)
    pieces("Chinchilla law, 245 runs", model.model, model.initial, model_data(bs.datasets.chinchilla(), law, spec))
    pieces("standard normal, 6 parameters", normal, lambda data, key: {"x": jnp.zeros(6)}, {"y": jnp.zeros(3)})
    evidence = _calibration.Evidence.empty(("N", "D"))
    data = _calibration._kappa_data(evidence, 4.0)
    timed(
        "kappa grid (2 inputs, 4000 draws)", partial(_calibration._grid_posterior, size=4000), jax.random.key(0), data
    )
    print("\nreproduce: python benchmarks/bench_compile.py")


if __name__ == "__main__":
    main()
