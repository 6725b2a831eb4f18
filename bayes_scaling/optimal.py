"""Compute-optimal allocation: how to split a compute budget C = k·N·D between N and D."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .laws import Law

#: FLOP per parameter per training token (forward and backward pass), C = k·N·D.
FLOPS_PER_PARAM_TOKEN = 6.0


def chinchilla_optimum(
    params: Mapping[str, np.ndarray], flops: np.ndarray, k: float = FLOPS_PER_PARAM_TOKEN
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form compute-optimal N and D of the Chinchilla law, per draw.

    ``N_opt = G · (C/k)**(beta/(alpha+beta))`` with ``G = (alpha·A / (beta·B))**(1/(alpha+beta))``
    and ``D_opt = (C/k) / N_opt`` (Hoffmann et al. 2022, Appendix D.2).

    Parameters
    ----------
    params : ``A``, ``B``, ``alpha``, ``beta``, each shape (s,) for s draws.
    flops : compute budgets in FLOP, shape (t,).
    k : FLOP per parameter per token.

    Returns
    -------
    log N_opt and log D_opt, float64 arrays of shape (s, t).
    """
    a, b = (np.asarray(params[n], np.float64)[:, None] for n in ("alpha", "beta"))
    log_a, log_b = (np.log(np.asarray(params[n], np.float64))[:, None] for n in ("A", "B"))
    log_ck = np.log(np.asarray(flops, np.float64) / k)[None, :]
    log_g = (np.log(a) + log_a - np.log(b) - log_b) / (a + b)
    log_n = log_g + b / (a + b) * log_ck
    return log_n, log_ck - log_n


def numeric_optimum(
    law: Law, params: Mapping[str, np.ndarray], flops: np.ndarray, k: float = FLOPS_PER_PARAM_TOKEN
) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal N and D of any law of N and D, per draw, by a vectorized 1-D search.

    For each draw and budget, minimizes ``law.mean`` over ``u = log N`` with
    ``log D = log(C/k) - u``: a 256-point grid over N in [10, C/(10k)], then 40
    bisection steps on the sign of the slope inside the best grid cells;
    vectorized over draws and budgets with ``jax.vmap``.

    Returns
    -------
    log N_opt and log D_opt, arrays of shape (s, t).
    """
    log_ck = np.log(np.asarray(flops, np.float64) / k)
    p = {n: jnp.asarray(v) for n, v in params.items()}

    def one(draw: Mapping[str, jax.Array], lck: jax.Array) -> jax.Array:
        def f(u: jax.Array) -> jax.Array:
            x = {"N": u, "D": lck - u, "C": lck + jnp.log(k)}
            return law.mean(draw, {n: x[n] for n in law.inputs})

        grid = jnp.linspace(jnp.log(10.0), lck - jnp.log(10.0), 256)
        i = jnp.argmin(f(grid))
        slope = jax.grad(f)

        # Bisect on the sign of df/du: the slope keeps full float32 precision near the
        # optimum, where f itself is flat to rounding.
        def bisect(_: int, bracket: tuple) -> tuple:
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            rising = slope(mid) > 0
            return jnp.where(rising, lo, mid), jnp.where(rising, mid, hi)

        bracket = (grid[jnp.maximum(i - 1, 0)], grid[jnp.minimum(i + 1, 255)])
        lo, hi = jax.lax.fori_loop(0, 40, bisect, bracket)
        return 0.5 * (lo + hi)

    per_budget = jax.vmap(one, in_axes=(None, 0))
    log_n = np.asarray(jax.jit(jax.vmap(per_budget, in_axes=(0, None)))(p, jnp.asarray(log_ck)), np.float64)
    return log_n, log_ck[None, :] - log_n


def optimum(
    law: Law, params: Mapping[str, np.ndarray], flops: np.ndarray, k: float = FLOPS_PER_PARAM_TOKEN
) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal log N and log D per draw, shape (s, t): closed form where known, else numerical."""
    if not {"N", "D"} <= set(law.inputs):
        raise ValueError(f"law {law.name!r} is not a function of N and D, so it has no compute-optimal split")
    if law.name == "chinchilla":
        return chinchilla_optimum(params, flops, k)
    return numeric_optimum(law, params, flops, k)


def _x64():
    """Context manager for float64 in JAX (regrets are differences of nearly equal losses)."""
    return jax.enable_x64(True) if hasattr(jax, "enable_x64") else jax.experimental.enable_x64()


def losses(law: Law, params: Mapping[str, np.ndarray], n: np.ndarray, d: np.ndarray, k: float) -> np.ndarray:
    """Expected loss per draw at allocations (n, d), float64, shape (s, m) for s draws and m allocations."""
    with _x64():
        p = {name: jnp.asarray(np.asarray(v, np.float64))[:, None] for name, v in params.items()}
        x = {"N": np.log(n), "D": np.log(d), "C": np.log(k * n * d)}
        x = {name: jnp.asarray(np.asarray(x[name], np.float64))[None, :] for name in law.inputs}
        return np.exp(np.asarray(law.mean(p, x), np.float64))


def _interval(values: np.ndarray, ci: float) -> tuple[float, float, float]:
    lo, med, hi = np.quantile(values, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return float(med), float(lo), float(hi)
