"""Sampler health: the one place for convergence thresholds and the checks that use them."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
from scipy import special

#: A chain set with any parameter above this split R-hat has not converged (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Minimum bulk and tail effective sample size over the chains together.
ESS_MIN = 400
#: E-BFMI below this means the momentum resampling explores energy poorly.
BFMI_MIN = 0.3


class ConvergenceWarning(UserWarning):
    """The sampler did not converge: divergences, R-hat above 1.01 or ESS below 400."""


def problems(idata: az.InferenceData, var_names: list[str], max_tree_depth: int | None = None) -> list[str]:
    """Sampler-health problems of a fit, one sentence each (empty when healthy).

    Parameters
    ----------
    idata : InferenceData with ``posterior`` and ``sample_stats`` (``diverging``,
        ``energy``, optionally ``n_steps``).
    var_names : the parameters to check.
    max_tree_depth : flag draws whose trajectory hit this NUTS depth.
    """
    post = {k: idata.posterior[k].to_numpy()[None] for k in var_names}
    stats = {k: v.to_numpy()[None] for k, v in idata.sample_stats.data_vars.items()}
    return batch_problems(post, stats, max_tree_depth)[0]


def batch_problems(
    posterior: dict[str, np.ndarray], stats: dict[str, np.ndarray], max_tree_depth: int | None = None
) -> list[list[str]]:
    """Sampler-health problems of K fits at once (see :func:`problems`).

    Parameters
    ----------
    posterior : scalar parameters, each of shape (K, chains, draws).
    stats : sampler statistics ``diverging``, ``energy`` and optionally ``n_steps``, each (K, chains, draws).
    max_tree_depth : flag draws whose trajectory hit this NUTS depth.

    Returns
    -------
    K lists of sentences, empty for a healthy fit.
    """
    names = list(posterior)
    x = np.stack([np.asarray(posterior[k], np.float64) for k in names], axis=1)  # (K, P, chains, draws)
    k, p, c, n = x.shape
    flat = x.reshape(k * p, c, n)
    rhat, bulk, tail = (f(flat).reshape(k, p) for f in (rhat_rank, ess_bulk, ess_tail))
    divergent = np.asarray(stats["diverging"]).reshape(k, -1).sum(1)
    energy = np.asarray(stats["energy"], np.float64)
    chain_bfmi = bfmi(energy)  # (K, chains)
    found: list[list[str]] = []
    for i in range(k):
        out = []
        if divergent[i]:
            out.append(f"{int(divergent[i])} of {c * n} draws diverged")
        for j, name in enumerate(names):
            if not rhat[i, j] <= RHAT_MAX:
                out.append(f"R-hat of {name} is {rhat[i, j]:.3f} (> {RHAT_MAX})")
            if not bulk[i, j] >= ESS_MIN:
                out.append(f"bulk ESS of {name} is {bulk[i, j]:.0f} (< {ESS_MIN})")
            if not tail[i, j] >= ESS_MIN:
                out.append(f"tail ESS of {name} is {tail[i, j]:.0f} (< {ESS_MIN})")
        if np.any(chain_bfmi[i] < BFMI_MIN):
            out.append(f"E-BFMI {float(chain_bfmi[i].min()):.2f} (< {BFMI_MIN}) in some chain")
        if max_tree_depth is not None and "n_steps" in stats:
            saturated = int((np.asarray(stats["n_steps"][i]) >= 2**max_tree_depth - 1).sum())
            if saturated:
                out.append(f"{saturated} draws hit the maximum tree depth {max_tree_depth}")
        found.append(out)
    return found


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain, as ArviZ: energy of shape (..., chains, draws) -> (..., chains)."""
    return np.square(np.diff(energy, axis=-1)).mean(-1) / np.var(energy, axis=-1, ddof=1)


# Rank-normalized split R-hat and bulk/tail ESS (Vehtari et al. 2021), vectorized over a
# leading batch axis. They follow ArviZ's definitions step by step (tested against
# ``az.rhat`` and ``az.ess``), so that K fits are checked in one pass rather than K * P calls.


def _split(x: np.ndarray) -> np.ndarray:
    """(B, chains, n) -> (B, 2 chains, n // 2): each chain's first and last halves."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=-2)


def _ranks(flat: np.ndarray) -> np.ndarray:
    """Ranks from 1 along the last axis, ties sharing their average rank; shape (B, n) -> (B, n).

    The same as ``scipy.stats.rankdata(method="average", axis=-1)``, several times faster: one
    sort per row, and each run of equal values (rejected HMC proposals repeat a draw) gets the
    mean of its first and last position.
    """
    order = np.argsort(flat, axis=-1)
    s = np.take_along_axis(flat, order, axis=-1)
    n = s.shape[-1]
    index = np.broadcast_to(np.arange(n), s.shape)
    differs = s[:, 1:] != s[:, :-1]
    starts = np.concatenate([np.ones((len(s), 1), bool), differs], axis=-1)
    ends = np.concatenate([differs, np.ones((len(s), 1), bool)], axis=-1)
    first = np.maximum.accumulate(np.where(starts, index, 0), axis=-1)
    last = np.minimum.accumulate(np.where(ends, index, n)[:, ::-1], axis=-1)[:, ::-1]
    ranks = np.empty_like(s, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=-1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks of each batch member, same shape as ``x``."""
    flat = x.reshape(x.shape[0], -1)
    return special.ndtri((_ranks(flat) - 0.375) / (flat.shape[1] + 0.25)).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    between = n * np.var(x.mean(-1), axis=-1, ddof=1)
    within = np.mean(np.var(x, axis=-1, ddof=1), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant draws: NaN, as ArviZ
        return np.sqrt((between / within + n - 1) / n)


def _valid(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).reshape(x.shape[0], -1).all(-1)


def rhat_rank(x: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat (the larger of bulk and folded), shape (B, chains, draws) -> (B,)."""
    split = _split(x)
    folded = np.abs(split - np.median(split.reshape(len(x), -1), axis=-1)[:, None, None])
    out = np.maximum(_rhat(_z_scale(split)), _rhat(_z_scale(folded)))
    return np.where(_valid(x), out, np.nan)


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk effective sample size, shape (B, chains, draws) -> (B,)."""
    return np.where(_valid(x), _ess(_z_scale(_split(x))), np.nan)


def ess_tail(x: np.ndarray) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of the 5% and 95% quantile indicators, (B, c, n) -> (B,)."""
    q = np.quantile(x.reshape(len(x), -1), [0.05, 0.95], axis=-1)  # (2, B)
    low, high = (_ess(_split((x <= qi[:, None, None]).astype(np.float64))) for qi in q)
    return np.where(_valid(x), np.minimum(low, high), np.nan)


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size with Geyer's initial monotone sequence, (B, chains, n) -> (B,)."""
    b, m, n = x.shape
    size = 2 * n
    fast = 1 << (size - 1).bit_length()
    centred = x - x.mean(-1, keepdims=True)
    f = np.fft.rfft(centred, n=fast, axis=-1)
    acov = np.fft.irfft(f * np.conjugate(f), n=fast, axis=-1)[..., :n] / n
    mean_var = acov[..., 0].mean(-1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + np.var(x.mean(-1), axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(1)) / var_plus[:, None]  # (B, n)
    rows = np.arange(b)
    out = np.zeros((b, n))
    out[:, 0] = 1.0
    out[:, 1] = rho[:, 1]
    even, odd = np.ones(b), rho[:, 1].copy()
    steps = np.zeros(b, dtype=np.int64)
    active = np.ones(b, dtype=bool)
    t = 1
    while t < n - 3:  # Geyer's initial positive sequence, one pair of lags at a time
        active &= (even + odd) > 0.0
        if not active.any():
            break
        even = np.where(active, rho[:, t + 1], even)
        odd = np.where(active, rho[:, t + 2], odd)
        keep = active & (even + odd >= 0)
        out[keep, t + 1] = even[keep]
        out[keep, t + 2] = odd[keep]
        steps += active
        t += 2
    max_t = 2 * steps - 1
    improve = even > 0
    out[rows[improve], max_t[improve] + 1] = even[improve]
    t = 1
    while t <= max_t.max() - 2:  # Geyer's initial monotone sequence
        live = t <= max_t - 2
        later, earlier = out[:, t + 1] + out[:, t + 2], out[:, t - 1] + out[:, t]
        fix = live & (later > earlier)
        out[fix, t + 1] = out[fix, t + 2] = earlier[fix] / 2.0
        t += 2
    lags = np.arange(n)[None, :]
    tau = -1.0 + 2.0 * np.sum(np.where(lags <= max_t[:, None], out, 0.0), -1)
    tau += np.where(max_t + 1 < n, out[rows, np.minimum(max_t + 1, n - 1)], 0.0)
    tau = np.maximum(tau, 1.0 / np.log10(m * n))
    ess = m * n / tau
    ess = np.where(np.isnan(out).any(-1), np.nan, ess)
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
    return np.where(constant, float(m * n), ess)


def warn(found: list[str], where: str) -> None:
    """Raise one :class:`ConvergenceWarning` listing every problem, loudly."""
    if found:
        warnings.warn(
            f"{where}: THE SAMPLER DID NOT CONVERGE; do not trust this fit: " + "; ".join(found),
            ConvergenceWarning,
            stacklevel=3,
        )
