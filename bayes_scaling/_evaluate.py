"""A law at many points for many posterior draws: the one place a law meets draws x points.

Dtype policy: inputs arrive on their natural scales as NumPy values, their logs are taken
in NumPy float64, and the law is evaluated in float64 (JAX's 64-bit mode, for this
computation only); results come back as NumPy float64. Losses are compared to each other
(regrets, optima) and to data at the 1e-4 level, where float32 would show.

Everything here works for any registered law: a law's compute-optimal split comes from
its record (:attr:`bayes_scaling.laws.Law.optimum`) when it declares one, else from a
vectorized search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._programs import PROGRAMS
from .data import FLOPS_PER_PARAM_TOKEN
from .laws import Law, complete

#: Points are padded to a power of two, at least this many, so that forecasts at any number
#: of points share a few compiled programs; more points are evaluated in chunks of at most
#: :data:`CHUNK`.
PAD, CHUNK = 64, 4096


def _x64() -> object:
    """Context in which JAX computes in float64."""
    return jax.enable_x64(True)


def law_at(law: Law, params: Mapping[str, ArrayLike], inputs: Mapping[str, ArrayLike]) -> np.ndarray:
    """Log expected loss of every draw at every point, float64 of shape (s, t).

    Parameters
    ----------
    law : the law.
    params : the law's parameters on their natural scales, each of shape (s,) (s draws).
    inputs : every input the law reads (``N``, ``D``, ``C``; unique tokens ``U`` where given, else
        ``D``: see :func:`~bayes_scaling.laws.complete`) on its natural scale, each of shape (t,) (the
        same points for every draw) or (s, t) (points per draw).

    Returns
    -------
    ``log L`` of shape (s, t).
    """
    missing = [k for k in law.axes if k not in inputs]
    if missing:
        raise ValueError(f"law {law.name!r} needs {', '.join(missing)} to be evaluated")
    p = {k: np.asarray(params[k], np.float64).reshape(-1) for k in law.params}
    s = len(next(iter(p.values())))
    x = {k: np.log(v) for k, v in complete(law, inputs).items()}
    t = max(v.shape[-1] for v in x.values()) if x else 0
    x = {k: np.broadcast_to(v, (s, t) if v.ndim == 2 else (t,)) for k, v in x.items()}
    program = PROGRAMS.get(("law at", law), lambda: partial(_outer, law.mean), law.tag and f"law at {law.tag}")
    out = np.empty((s, t))
    for start in range(0, t, CHUNK):
        piece = {k: v[..., start : start + CHUNK] for k, v in x.items()}
        m = next(iter(piece.values())).shape[-1]
        size = max(PAD, 1 << (m - 1).bit_length()) if m else PAD
        piece = {k: np.concatenate([v, np.repeat(v[..., :1], size - m, axis=-1)], axis=-1) for k, v in piece.items()}
        with _x64():
            out[:, start : start + m] = np.asarray(program(p, piece), np.float64)[:, :m]
    return out


def _outer(mean: Callable, p: dict, x: dict) -> jax.Array:
    """``mean`` of every draw (s,) at every point ((t,) or (s, t)), shape (s, t)."""
    return mean({k: v[:, None] for k, v in p.items()}, {k: v if v.ndim == 2 else v[None, :] for k, v in x.items()})


def log_likelihood(
    law: Law,
    params: Mapping[str, ArrayLike],
    sigma: ArrayLike,
    df: float,
    inputs: Mapping[str, ArrayLike],
    loss: ArrayLike,
) -> np.ndarray:
    """Pointwise log likelihood of every draw at every run, float32 of shape (s, n).

    ``log p(log loss | draw) = StudentT(df, log L(draw), sigma)``, with the law evaluated as in
    :func:`law_at` (float64) and the density computed :data:`CHUNK` runs at a time, so that
    memory beyond the result stays bounded however many runs there are.

    Parameters
    ----------
    params : each of shape (s,): the law's parameters.
    sigma : the noise scale on log loss, shape (s,), or (s, n) for a scale per draw and run.
    inputs : the law's inputs at the n runs, natural scale, each (n,).
    loss : the runs' losses, shape (n,).
    """
    y = np.log(np.asarray(loss, np.float64))
    sigma = np.asarray(sigma, np.float64)
    sigma = sigma.reshape(-1, 1) if sigma.ndim == 1 else sigma
    out = np.empty((sigma.shape[0], y.size), np.float32)
    for start in range(0, y.size, CHUNK):
        part = slice(start, start + CHUNK)
        scale = sigma if sigma.shape[1] == 1 else sigma[:, part]
        mu = law_at(law, params, {k: np.asarray(v)[part] for k, v in inputs.items()})
        out[:, part] = student_t(df, mu, scale, y[part])
    return out


def student_t(df: float, mu: ArrayLike, scale: ArrayLike, y: ArrayLike, xp: ModuleType = np) -> ArrayLike:
    """Student-t log density of ``y`` with ``df`` degrees of freedom, location ``mu`` and scale ``scale``
    (broadcast against each other), in NumPy or, with ``xp=jnp``, in JAX (inside a compiled program)."""
    const = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    z = (y - mu) / scale
    return const - xp.log(scale) - 0.5 * (df + 1) * xp.log1p(z * z / df)


def optimum(
    law: Law,
    params: Mapping[str, ArrayLike],
    flops: ArrayLike,
    k: float = FLOPS_PER_PARAM_TOKEN,
    unique: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal log N and log D per draw and budget, float64 of shape (s, t).

    The law's closed form (:attr:`~bayes_scaling.laws.Law.optimum`) when it declares one and data
    are unlimited, else :func:`numeric_optimum`.

    Parameters
    ----------
    params : each shape (s,) for s draws.
    flops : compute budgets C in FLOP, shape (t,), split as C = k·N·D.
    unique : unique training tokens available at each budget, shape (t,) (or one number): tokens
        beyond them repeat the data (for a law that reads ``U``); None: unlimited.
    """
    if not {"N", "D"} <= set(law.inputs):
        raise ValueError(f"law {law.name!r} is not a function of N and D, so it has no compute-optimal split")
    log_nd = np.log(np.asarray(flops, np.float64).reshape(-1) / k)
    if unique is not None and "U" in law.inputs:
        log_n = numeric_optimum(law, params, flops, k, unique)
    elif law.optimum is None:
        log_n = numeric_optimum(law, params, flops, k)
    else:
        p = {name: np.asarray(params[name], np.float64).reshape(-1) for name in law.params}
        t = log_nd.size
        padded = np.concatenate([log_nd, np.full(max(PAD, 1 << max(t - 1, 0).bit_length()) - t, log_nd[0])])
        tag = law.tag and f"optimum {law.tag}"
        program = PROGRAMS.get(("optimum", law), lambda: partial(_closed_form, law.optimum), tag)
        with _x64():
            log_n = np.asarray(program(p, padded), np.float64)[:, :t]
    return log_n, log_nd[None, :] - log_n


def _closed_form(optimum: Callable, p: dict, log_nd: jax.Array) -> jax.Array:
    """A law's closed-form optimum for every draw (s,) and budget (t,), shape (s, t)."""
    n = optimum({k: v[:, None] for k, v in p.items()}, log_nd[None, :])
    return jnp.broadcast_to(n, (next(iter(p.values())).shape[0], log_nd.shape[0]))


def numeric_optimum(
    law: Law,
    params: Mapping[str, ArrayLike],
    flops: ArrayLike,
    k: float = FLOPS_PER_PARAM_TOKEN,
    unique: ArrayLike | None = None,
) -> np.ndarray:
    """Compute-optimal log N of any law of N and D, per draw, by a vectorized 1-D search, shape (s, t).

    For each draw and budget, minimizes ``law.mean`` over ``u = log N`` with
    ``log D = log(C/k) - u`` (and unique tokens ``unique``, shape (t,) or one number; None:
    unlimited): a 256-point grid over N in [10, C/(10k)], then 40 bisection steps on the sign of
    the slope inside the best grid cells; vectorized over draws and budgets with ``jax.vmap``.
    """
    log_ck = np.log(np.asarray(flops, np.float64).reshape(-1) / k)
    log_u = np.broadcast_to(np.log(np.asarray(np.inf if unique is None else unique, np.float64)), log_ck.shape)
    p = {n: np.asarray(params[n], np.float64).reshape(-1) for n in law.params}
    program = PROGRAMS.get(("numeric optimum", law, k), lambda: lambda p, c, u: _search(law, k, p, c, u))
    with _x64():
        return np.asarray(program(p, log_ck, np.ascontiguousarray(log_u)), np.float64)


def _search(law: Law, k: float, p: dict, log_ck: jax.Array, log_u: jax.Array) -> jax.Array:
    def one(draw: Mapping[str, jax.Array], lck: jax.Array, lu: jax.Array) -> jax.Array:
        def f(u: jax.Array) -> jax.Array:
            x = {"N": u, "D": lck - u, "C": lck + jnp.log(k), "U": lu}  # U above D reads as D: every token fresh
            return law.mean(draw, {n: x[n] for n in law.inputs})

        grid = jnp.linspace(jnp.log(10.0), lck - jnp.log(10.0), 256)
        i = jnp.argmin(f(grid))
        slope = jax.grad(f)

        # Bisect on the sign of df/du: the slope keeps full precision near the optimum,
        # where f itself is flat to rounding.
        def bisect(_: int, bracket: tuple) -> tuple:
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            rising = slope(mid) > 0
            return jnp.where(rising, lo, mid), jnp.where(rising, mid, hi)

        bracket = (grid[jnp.maximum(i - 1, 0)], grid[jnp.minimum(i + 1, 255)])
        lo, hi = jax.lax.fori_loop(0, 40, bisect, bracket)
        return 0.5 * (lo + hi)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)), in_axes=(0, None, None))(p, log_ck, log_u)
