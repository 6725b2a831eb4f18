"""The numeric core of the convergence checks: R-hat, ESS, MCSE, E-BFMI, in NumPy or in JAX.

Rank-normalized split R-hat and bulk/tail ESS (Vehtari et al. 2021), vectorized over a
leading batch axis. Each function runs on the array module of its input: on JAX arrays
(inside the batched sampler's program, so that K fits are checked in one compiled pass on
the device that holds their draws; float32 unless JAX runs in 64-bit mode) or on NumPy
arrays (a single fit's draws on the host: milliseconds, and nothing to compile). They follow
ArviZ's definitions (tested against ``az.rhat``, ``az.ess`` and ``az.mcse``). The verdicts
drawn from them (thresholds, pass/warn/fail) live in :mod:`bayes_scaling.diagnostics`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
import scipy.special
from jax.typing import ArrayLike


def _xp(x: ArrayLike) -> ModuleType:
    """The array module of ``x``: ``jax.numpy`` for JAX arrays (and tracers), else NumPy."""
    return jnp if isinstance(x, jax.Array) else np


def _host(fn: Callable) -> Callable:
    """``fn`` of one array, run on a float64 copy of a NumPy input without floating-point warnings (a constant
    or non-finite series gives NaN, as ArviZ); a JAX input passes through."""

    @functools.wraps(fn)
    def run(x: ArrayLike) -> object:
        if isinstance(x, jax.Array):
            return fn(x)
        with np.errstate(all="ignore"):
            return fn(np.asarray(x, np.float64))

    return run


def health(
    x: ArrayLike, diverging: ArrayLike, energy: ArrayLike, n_steps: ArrayLike | None, max_steps: int | None
) -> dict[str, ArrayLike]:
    """Every convergence statistic of one fit.

    The checks run where the draws are: inside the batched sampler's program (vmapped over
    the fits of each device, in JAX), and for a single fit on the host (in NumPy).

    Parameters
    ----------
    x : draws, shape (P, chains, draws): P scalar parameters.
    diverging, energy : sampler statistics, each (chains, draws).
    n_steps : leapfrog steps per draw (chains, draws), or None.
    max_steps : the step cap whose draws count as saturated (ignored without ``n_steps``).

    Returns
    -------
    ``rhat``, ``ess_bulk``, ``ess_tail`` (P,); counts ``divergent``, ``saturated`` and
    ``draws`` (); ``bfmi`` (chains,).
    """
    xp = _xp(x)
    saturated = xp.zeros((), xp.int32) if n_steps is None else xp.sum(n_steps >= max_steps)
    return {
        **rank_stats(x),
        "divergent": xp.sum(diverging),
        "saturated": saturated,
        "draws": xp.asarray(diverging.size),
        "bfmi": bfmi(energy),
    }


def site_health(samples: dict, stats: dict, checked: tuple[str, ...], max_steps: int) -> dict[str, ArrayLike]:
    """:func:`health` of every component of the sample sites ``checked``, in order.

    ``samples`` maps site names to draws of shape (chains, draws, ...); ``stats`` holds
    ``diverging``, ``energy`` and ``n_steps``, each (chains, draws).
    """
    xp = _xp(stats["diverging"])
    chains, draws = stats["diverging"].shape
    x = xp.concatenate([samples[k].reshape(chains, draws, -1) for k in checked], -1)
    return health(xp.moveaxis(x, -1, 0), stats["diverging"], stats["energy"], stats["n_steps"], max_steps)


@_host
def bfmi(energy: ArrayLike) -> ArrayLike:
    """E-BFMI of each chain, as ArviZ: energy of shape (..., chains, draws) -> (..., chains)."""
    xp = _xp(energy)
    return xp.square(xp.diff(energy, axis=-1)).mean(-1) / xp.var(energy, axis=-1, ddof=1)


def _split(x: ArrayLike) -> ArrayLike:
    """(B, chains, n) -> (B, 2 chains, n // 2): each chain's first and last halves."""
    half = x.shape[-1] // 2
    return _xp(x).concatenate([x[..., :half], x[..., -half:]], axis=-2)


def _ranks(flat: ArrayLike, ordered: ArrayLike) -> ArrayLike:
    """Ranks from 1 along the last axis, ties sharing their average rank; shape (B, n) -> (B, n).

    ``ordered`` is ``flat`` sorted along its last axis. The same as
    ``scipy.stats.rankdata(method="average", axis=-1)``: a value's average rank is
    ``(#smaller + #smaller-or-equal + 1) / 2``, both counts read off the sorted row.
    """
    if _xp(flat) is np:
        return _average_ranks(flat)
    count = jax.vmap(lambda row, v, side: jnp.searchsorted(row, v, side=side), (0, 0, None))
    return (count(ordered, flat, "left") + count(ordered, flat, "right") + 1).astype(flat.dtype) / 2


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """:func:`_ranks` in NumPy, (B, n) -> (B, n): one argsort, each tie block's first and last position read
    off the sorted rows by running maxima and minima (no loop over rows)."""
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, -1)
    n = s.shape[-1]
    position = np.broadcast_to(np.arange(n), s.shape)
    change = s[:, 1:] != s[:, :-1]
    edge = np.ones_like(s[:, :1], bool)
    start = np.maximum.accumulate(np.where(np.concatenate([edge, change], -1), position, 0), axis=-1)
    end = np.minimum.accumulate(np.where(np.concatenate([change, edge], -1), position, n - 1)[:, ::-1], axis=-1)
    ranks = np.empty(s.shape, x.dtype)
    np.put_along_axis(ranks, order, (start + end[:, ::-1]) / 2 + 1, -1)
    return ranks


def _rhat(x: ArrayLike) -> ArrayLike:
    xp = _xp(x)
    n = x.shape[-1]
    between = n * xp.var(x.mean(-1), axis=-1, ddof=1)
    within = xp.mean(xp.var(x, axis=-1, ddof=1), axis=-1)
    return xp.sqrt((between / within + n - 1) / n)  # constant draws: NaN, as ArviZ


def _quantile(ordered: ArrayLike, p: float) -> ArrayLike:
    """Quantile ``p`` of each sorted row, interpolated linearly (NumPy's default): (B, n) -> (B,)."""
    position = p * (ordered.shape[-1] - 1)
    below = int(np.floor(position))
    above = min(below + 1, ordered.shape[-1] - 1)
    return ordered[:, below] + (position - below) * (ordered[:, above] - ordered[:, below])


@_host
def rank_stats(x: ArrayLike) -> dict[str, ArrayLike]:
    """Rank-normalized split R-hat and bulk and tail ESS of B series, shape (B, chains, draws) -> (B,) each.

    ``rhat``: the larger of the R-hat of the rank-normalized split chains and of their
    folded version (distance from the median). ``ess_bulk``: ESS of the rank-normalized
    split chains. ``ess_tail``: the smaller ESS of the 5% and 95% quantile indicators.
    NaN for a series with a non-finite draw. Two sorts and one autocorrelation pass for
    all of it, which keeps the compiled program small.
    """
    xp = _xp(x)
    ndtri = jax.scipy.special.ndtri if xp is jnp else scipy.special.ndtri
    b, _, n = x.shape
    split = _split(x)
    pooled = split.reshape(b, -1)
    ordered = xp.sort(pooled, axis=-1)
    folded = xp.abs(pooled - _quantile(ordered, 0.5)[:, None])
    both = xp.concatenate([pooled, folded])
    scores = (_ranks(both, xp.concatenate([ordered, xp.sort(folded, axis=-1)])) - 0.375) / (both.shape[1] + 0.25)
    z = ndtri(scores).reshape(2 * b, *split.shape[1:])
    # Tail quantiles are those of every draw (with an odd draw count, splitting drops the middle ones).
    every = ordered if n % 2 == 0 else xp.sort(x.reshape(b, -1), axis=-1)
    low, high = ((split <= _quantile(every, q)[:, None, None]).astype(x.dtype) for q in (0.05, 0.95))
    ess = _ess(xp.concatenate([z[:b], low, high]))
    valid = xp.isfinite(x).reshape(b, -1).all(-1)
    return {
        "rhat": xp.where(valid, xp.maximum(_rhat(z[:b]), _rhat(z[b:])), xp.nan),
        "ess_bulk": xp.where(valid, ess[:b], xp.nan),
        "ess_tail": xp.where(valid, xp.minimum(ess[b : 2 * b], ess[2 * b :]), xp.nan),
    }


@_host
def mcse(x: ArrayLike) -> dict[str, ArrayLike]:
    """Monte Carlo standard errors of the mean and of the sd, as ArviZ, (B, chains, draws) -> (B,) each.

    ``mcse_mean = sd / sqrt(ESS)`` and ``mcse_sd = sqrt(var(s) / (4 mean(s) ESS_s))``,
    ``s`` the squared deviations from the mean, each ESS that of the split raw chains.
    """
    xp = _xp(x)
    b = x.shape[0]
    squares = (x - x.mean((1, 2), keepdims=True)) ** 2
    ess = _ess(xp.concatenate([_split(x), _split(squares)]))
    sd = x.reshape(b, -1).std(-1, ddof=1)
    mean_sq = squares.reshape(b, -1).mean(-1)
    var_sq = (squares**2).reshape(b, -1).mean(-1) - mean_sq**2
    return {"mcse_mean": sd / xp.sqrt(ess[:b]), "mcse_sd": xp.sqrt(var_sq / ess[b:] / mean_sq / 4)}


def _ess(x: ArrayLike) -> ArrayLike:
    """Effective sample size with Geyer's initial monotone sequence, (B, chains, n) -> (B,).

    ArviZ walks the autocorrelations a pair of lags at a time; here the same sequence is read
    off whole arrays. With pair sums ``S_k = rho_2k + rho_2k+1`` (``rho_0 = 1``), the walk
    stops at the first ``S_k <= 0`` (or at lag ``n - 3``): ``K`` pairs. The monotone sequence
    is the running minimum of ``S``, ``tau = -1 + 2 * sum_{k<K} min(S_0..S_k) + rho_2K``
    (``rho_2K`` kept only if positive or if ``S_K >= 0``), and ESS = chains * n / tau.
    """
    xp = _xp(x)
    _, m, n = x.shape
    fast = 1 << (2 * n - 1).bit_length()
    centred = x - x.mean(-1, keepdims=True)
    f = xp.fft.rfft(centred, n=fast, axis=-1)
    acov = xp.fft.irfft(f * xp.conj(f), n=fast, axis=-1)[..., :n] / n
    mean_var = acov[..., 0].mean(-1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + xp.var(x.mean(-1), axis=-1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov.mean(1)) / var_plus[:, None]  # (B, n)
    half = n // 2
    even = xp.concatenate([xp.ones_like(rho[:, :1]), rho[:, 2 : 2 * half : 2]], axis=1)  # rho_0 = 1
    pairs = even + rho[:, 1 : 2 * half : 2]  # (B, half)
    last_pair = (n - 3) // 2  # the walk reads lags up to n - 3
    stop = xp.where((pairs <= 0).any(-1), xp.argmax(pairs <= 0, -1), half)
    kept = xp.minimum(stop, last_pair)  # K
    monotone = jax.lax.cummin(pairs, axis=1) if xp is jnp else np.minimum.accumulate(pairs, axis=1)
    head = xp.sum(xp.where(xp.arange(half) < kept[:, None], monotone, 0.0), -1)
    even_k = xp.take_along_axis(even, kept[:, None], 1)[:, 0]
    pair_k = xp.take_along_axis(pairs, kept[:, None], 1)[:, 0]
    tau = -1.0 + 2.0 * head + xp.where((pair_k >= 0) | (even_k > 0), even_k, 0.0)
    tau = xp.maximum(tau, 1.0 / np.log10(m * n))
    ess = xp.where(xp.isnan(rho).any(-1), xp.nan, m * n / tau)
    # A constant series (ArviZ's test: a range under float64's resolution, 1e-15, whatever the dtype; float32's
    # 1e-6 would call the squared deviations of a small parameter, sigma ~ 5e-3, constant).
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(np.float64).resolution
    return xp.where(constant, float(m * n), ess)
