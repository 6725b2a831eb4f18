"""The numeric core of the convergence checks, in JAX: R-hat, ESS, MCSE, E-BFMI.

Rank-normalized split R-hat and bulk/tail ESS (Vehtari et al. 2021), vectorized over a
leading batch axis and free of Python loops, so that K fits are checked in one compiled
pass on the device that holds their draws. They follow ArviZ's definitions (tested against
``az.rhat``, ``az.ess`` and ``az.mcse``); in float32 unless JAX runs in 64-bit mode. The
verdicts drawn from them (thresholds, pass/warn/fail) live in :mod:`bayes_scaling.diagnostics`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jax.typing import ArrayLike


def health(
    x: jax.Array, diverging: jax.Array, energy: jax.Array, n_steps: jax.Array | None, max_steps: int | None
) -> dict[str, jax.Array]:
    """Every convergence statistic of one fit, as JAX array operations.

    The checks run where the draws are: inside the batched sampler's program (vmapped over
    the fits of each device), and for a single fit in a compiled step right after its
    sampler, shared by every sampler with the same shape of draws.

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
    saturated = jnp.zeros((), jnp.int32) if n_steps is None else jnp.sum(n_steps >= max_steps)
    return {
        **rank_stats(x),
        "divergent": jnp.sum(diverging),
        "saturated": saturated,
        "draws": jnp.asarray(diverging.size),
        "bfmi": bfmi(energy),
    }


def site_health(samples: dict, stats: dict, checked: tuple[str, ...], max_steps: int) -> dict[str, jax.Array]:
    """:func:`health` of every component of the sample sites ``checked``, in order.

    ``samples`` maps site names to draws of shape (chains, draws, ...); ``stats`` holds
    ``diverging``, ``energy`` and ``n_steps``, each (chains, draws).
    """
    chains, draws = stats["diverging"].shape
    x = jnp.concatenate([samples[k].reshape(chains, draws, -1) for k in checked], -1)
    return health(jnp.moveaxis(x, -1, 0), stats["diverging"], stats["energy"], stats["n_steps"], max_steps)


def bfmi(energy: ArrayLike) -> jax.Array:
    """E-BFMI of each chain, as ArviZ: energy of shape (..., chains, draws) -> (..., chains)."""
    energy = jnp.asarray(energy)
    return jnp.square(jnp.diff(energy, axis=-1)).mean(-1) / jnp.var(energy, axis=-1, ddof=1)


def _split(x: jax.Array) -> jax.Array:
    """(B, chains, n) -> (B, 2 chains, n // 2): each chain's first and last halves."""
    half = x.shape[-1] // 2
    return jnp.concatenate([x[..., :half], x[..., -half:]], axis=-2)


def _ranks(flat: jax.Array, ordered: jax.Array) -> jax.Array:
    """Ranks from 1 along the last axis, ties sharing their average rank; shape (B, n) -> (B, n).

    ``ordered`` is ``flat`` sorted along its last axis. The same as
    ``scipy.stats.rankdata(method="average", axis=-1)``: a value's average rank is
    ``(#smaller + #smaller-or-equal + 1) / 2``, both counts read off the sorted row.
    """
    count = jax.vmap(lambda row, v, side: jnp.searchsorted(row, v, side=side), (0, 0, None))
    return (count(ordered, flat, "left") + count(ordered, flat, "right") + 1).astype(flat.dtype) / 2


def _rhat(x: jax.Array) -> jax.Array:
    n = x.shape[-1]
    between = n * jnp.var(x.mean(-1), axis=-1, ddof=1)
    within = jnp.mean(jnp.var(x, axis=-1, ddof=1), axis=-1)
    return jnp.sqrt((between / within + n - 1) / n)  # constant draws: NaN, as ArviZ


def _quantile(ordered: jax.Array, p: float) -> jax.Array:
    """Quantile ``p`` of each sorted row, interpolated linearly (NumPy's default): (B, n) -> (B,)."""
    position = p * (ordered.shape[-1] - 1)
    below = int(np.floor(position))
    above = min(below + 1, ordered.shape[-1] - 1)
    return ordered[:, below] + (position - below) * (ordered[:, above] - ordered[:, below])


@jax.jit
def rank_stats(x: ArrayLike) -> dict[str, jax.Array]:
    """Rank-normalized split R-hat and bulk and tail ESS of B series, shape (B, chains, draws) -> (B,) each.

    ``rhat``: the larger of the R-hat of the rank-normalized split chains and of their
    folded version (distance from the median). ``ess_bulk``: ESS of the rank-normalized
    split chains. ``ess_tail``: the smaller ESS of the 5% and 95% quantile indicators.
    NaN for a series with a non-finite draw. Two sorts and one autocorrelation pass for
    all of it, which keeps the compiled program small.
    """
    x = jnp.asarray(x)
    b, _, n = x.shape
    split = _split(x)
    pooled = split.reshape(b, -1)
    ordered = jnp.sort(pooled, axis=-1)
    folded = jnp.abs(pooled - _quantile(ordered, 0.5)[:, None])
    both = jnp.concatenate([pooled, folded])
    scores = (_ranks(both, jnp.concatenate([ordered, jnp.sort(folded, axis=-1)])) - 0.375) / (both.shape[1] + 0.25)
    z = ndtri(scores).reshape(2 * b, *split.shape[1:])
    # Tail quantiles are those of every draw (with an odd draw count, splitting drops the middle ones).
    every = ordered if n % 2 == 0 else jnp.sort(x.reshape(b, -1), axis=-1)
    low, high = ((split <= _quantile(every, q)[:, None, None]).astype(x.dtype) for q in (0.05, 0.95))
    ess = _ess(jnp.concatenate([z[:b], low, high]))
    valid = jnp.isfinite(x).reshape(b, -1).all(-1)
    return {
        "rhat": jnp.where(valid, jnp.maximum(_rhat(z[:b]), _rhat(z[b:])), jnp.nan),
        "ess_bulk": jnp.where(valid, ess[:b], jnp.nan),
        "ess_tail": jnp.where(valid, jnp.minimum(ess[b : 2 * b], ess[2 * b :]), jnp.nan),
    }


@jax.jit
def mcse(x: ArrayLike) -> dict[str, jax.Array]:
    """Monte Carlo standard errors of the mean and of the sd, as ArviZ, (B, chains, draws) -> (B,) each.

    ``mcse_mean = sd / sqrt(ESS)`` and ``mcse_sd = sqrt(var(s) / (4 mean(s) ESS_s))``,
    ``s`` the squared deviations from the mean, each ESS that of the split raw chains.
    """
    x = jnp.asarray(x)
    b = x.shape[0]
    squares = (x - x.mean((1, 2), keepdims=True)) ** 2
    ess = _ess(jnp.concatenate([_split(x), _split(squares)]))
    sd = x.reshape(b, -1).std(-1, ddof=1)
    mean_sq = squares.reshape(b, -1).mean(-1)
    var_sq = (squares**2).reshape(b, -1).mean(-1) - mean_sq**2
    return {"mcse_mean": sd / jnp.sqrt(ess[:b]), "mcse_sd": jnp.sqrt(var_sq / ess[b:] / mean_sq / 4)}


def rhat_rank(x: ArrayLike) -> jax.Array:
    """Rank-normalized split R-hat (see :func:`rank_stats`), shape (B, chains, draws) -> (B,)."""
    return rank_stats(x)["rhat"]


def ess_bulk(x: ArrayLike) -> jax.Array:
    """Bulk effective sample size (see :func:`rank_stats`), shape (B, chains, draws) -> (B,)."""
    return rank_stats(x)["ess_bulk"]


def ess_tail(x: ArrayLike) -> jax.Array:
    """Tail effective sample size (see :func:`rank_stats`), shape (B, chains, draws) -> (B,)."""
    return rank_stats(x)["ess_tail"]


def _ess(x: jax.Array) -> jax.Array:
    """Effective sample size with Geyer's initial monotone sequence, (B, chains, n) -> (B,).

    ArviZ walks the autocorrelations a pair of lags at a time; here the same sequence is read
    off whole arrays. With pair sums ``S_k = rho_2k + rho_2k+1`` (``rho_0 = 1``), the walk
    stops at the first ``S_k <= 0`` (or at lag ``n - 3``): ``K`` pairs. The monotone sequence
    is the running minimum of ``S``, ``tau = -1 + 2 * sum_{k<K} min(S_0..S_k) + rho_2K``
    (``rho_2K`` kept only if positive or if ``S_K >= 0``), and ESS = chains * n / tau.
    """
    _, m, n = x.shape
    fast = 1 << (2 * n - 1).bit_length()
    centred = x - x.mean(-1, keepdims=True)
    f = jnp.fft.rfft(centred, n=fast, axis=-1)
    acov = jnp.fft.irfft(f * jnp.conj(f), n=fast, axis=-1)[..., :n] / n
    mean_var = acov[..., 0].mean(-1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + jnp.var(x.mean(-1), axis=-1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov.mean(1)) / var_plus[:, None]  # (B, n)
    half = n // 2
    even = rho[:, 0 : 2 * half : 2].at[:, 0].set(1.0)
    pairs = even + rho[:, 1 : 2 * half : 2]  # (B, half)
    last_pair = (n - 3) // 2  # the walk reads lags up to n - 3
    stop = jnp.where((pairs <= 0).any(-1), jnp.argmax(pairs <= 0, -1), half)
    kept = jnp.minimum(stop, last_pair)  # K
    monotone = jax.lax.cummin(pairs, axis=1)
    head = jnp.sum(jnp.where(jnp.arange(half) < kept[:, None], monotone, 0.0), -1)
    even_k = jnp.take_along_axis(even, kept[:, None], 1)[:, 0]
    pair_k = jnp.take_along_axis(pairs, kept[:, None], 1)[:, 0]
    tau = -1.0 + 2.0 * head + jnp.where((pair_k >= 0) | (even_k > 0), even_k, 0.0)
    tau = jnp.maximum(tau, 1.0 / np.log10(m * n))
    ess = jnp.where(jnp.isnan(rho).any(-1), jnp.nan, m * n / tau)
    # A constant series (ArviZ's test: a range under float64's resolution, 1e-15, whatever the dtype; float32's
    # 1e-6 would call the squared deviations of a small parameter, sigma ~ 5e-3, constant).
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(np.float64).resolution
    return jnp.where(constant, float(m * n), ess)
