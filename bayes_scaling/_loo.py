"""PSIS-LOO and stacking weights in NumPy, as ArviZ computes them (tested against ArviZ 0.2x and 1.x).

Pareto-smoothed importance sampling (Vehtari et al. 2024, "Pareto smoothed importance sampling", JMLR 25(72))
and PSIS-LOO (Vehtari, Gelman & Gabry 2017), stacking of predictive distributions (Yao et al. 2018). The
review and :func:`bayes_scaling.compare` call these instead of ArviZ: importing ArviZ (and SciPy's stats
with it) costs a fresh process a second or more, and each ArviZ line computes slightly differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.special

from ._stats import _ess, _split

#: Fewer tail draws than this: no Pareto fit (k is infinite).
MIN_TAIL = 5


class Loo(NamedTuple):
    """A fit's PSIS-LOO estimate.

    Attributes
    ----------
    elpd : expected log pointwise predictive density, the sum of ``pointwise``.
    se : its standard error, ``sqrt(n * var(pointwise))``.
    p_loo : effective number of parameters, ``lppd - elpd``.
    pointwise : each observation's elpd, shape (n,).
    pareto_k : each observation's Pareto shape k, shape (n,).
    good_k : k above this makes the estimate unreliable: ``min(1 - 1 / log10(S), 0.7)``.
    log_weights : the Pareto-smoothed importance log weights of the draws for leaving out each observation,
        shape (n, S), each row normalized (:func:`psis`): LOO-PIT values weigh the draws with them.
    """

    elpd: float
    se: float
    p_loo: float
    pointwise: np.ndarray
    pareto_k: np.ndarray
    good_k: float
    log_weights: np.ndarray

    @property
    def warning(self) -> bool:
        """Some observation's Pareto k is above ``good_k``."""
        return bool(np.any(self.pareto_k > self.good_k))


def psis(log_ratios: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance log weights, normalized per observation, and each observation's Pareto k.

    Parameters
    ----------
    log_ratios : log importance ratios, shape (n, S) (for LOO: minus each draw's log likelihood).
    r_eff : relative efficiency of the draws (ESS / S): the tail holds ``min(S / 5, 3 sqrt(S / r_eff))`` draws.

    Returns
    -------
    (log weights, shape (n, S), each row summing to one in probability; k, shape (n,))
    """
    x = np.array(log_ratios, dtype=np.float64, ndmin=2)
    x -= x.max(axis=1, keepdims=True)
    n, s = x.shape
    length = int(np.ceil(min(s / 5.0, 3 * (s / r_eff) ** 0.5)))
    # Only the tail is ordered: the largest ``length + 1`` ratios of each row (the smallest of them the cutoff).
    top = np.sort(np.argpartition(x, s - length - 1, axis=1)[:, s - length - 1 :], axis=1)
    cutoff = np.maximum(np.take_along_axis(x, top, axis=1).min(axis=1), np.log(np.finfo(float).tiny))
    k = np.full(n, np.inf)
    for i in range(n):  # a tail is shorter than ``length`` where draws tie at the cutoff
        where = top[i][x[i, top[i]] > cutoff[i]]
        where = where[np.argsort(x[i, where], kind="stable")]  # ascending; ties in the draws' order
        if len(where) < MIN_TAIL:
            continue
        tail = x[i, where]
        k[i], sigma = _gpd_fit(np.exp(tail) - np.exp(cutoff[i]))
        if np.isfinite(k[i]):
            p = np.arange(0.5, len(tail)) / len(tail)
            smoothed = np.log(_gpd_quantile(p, k[i], sigma) + np.exp(cutoff[i]))
            x[i, where] = np.minimum(smoothed, 0.0)  # truncated at the largest raw weight
    return x - scipy.special.logsumexp(x, axis=1, keepdims=True), k


def _gpd_fit(x: np.ndarray) -> tuple[float, float]:
    """Generalized Pareto shape and scale of sorted positive exceedances ``x`` (Zhang & Stephens 2009's
    empirical Bayes estimate, with the weakly informative prior on k of Vehtari et al.: 10 pseudo-draws at 0.5)."""
    m = len(x)
    grid = 30 + int(m**0.5)
    b = 1 - np.sqrt(grid / (np.arange(1, grid + 1, dtype=float) - 0.5))
    b /= 3 * x[int(m / 4 + 0.5) - 1]
    b += 1 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    profile = m * (np.log(-(b / k)) - k - 1)
    with np.errstate(over="ignore"):  # a profile far below another's: weight 1 / inf = 0
        weights = 1 / np.exp(profile - profile[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    b, weights = b[keep], weights[keep] / weights[keep].sum()
    b_mean = float(np.sum(b * weights))
    k_mean = float(np.log1p(-b_mean * x).mean())
    sigma = -k_mean / b_mean
    return (m * k_mean + 10 * 0.5) / (m + 10), sigma


def _gpd_quantile(p: np.ndarray, k: float, sigma: float) -> np.ndarray:
    """Quantiles ``p`` of a generalized Pareto distribution of shape ``k`` and scale ``sigma`` (location 0)."""
    if sigma <= 0:
        return np.full_like(p, np.nan)
    if abs(k) < np.finfo(float).eps:
        return -sigma * np.log1p(-p)
    return sigma * np.expm1(-k * np.log1p(-p)) / k


def r_eff(posterior: Mapping[str, np.ndarray]) -> float:
    """The draws' relative efficiency as ArviZ's ``loo`` takes it: the mean ESS (of the mean, split chains)
    over every element of every posterior variable, over the number of draws. ``posterior``: arrays
    (chains, draws, ...); one chain: 1."""
    arrays = [np.asarray(v, dtype=np.float64) for v in posterior.values()]
    chains, draws = arrays[0].shape[:2]
    if chains == 1:
        return 1.0
    flat = np.concatenate([a.reshape(chains, draws, -1).transpose(2, 0, 1) for a in arrays])  # (B, chains, draws)
    return float(np.mean(_ess(_split(flat)))) / (chains * draws)


def loo(log_lik: np.ndarray, r_eff: float = 1.0) -> Loo:
    """PSIS-LOO of pointwise log likelihoods ``log_lik``, shape (S, n) (draws first)."""
    log_lik = np.asarray(log_lik, dtype=np.float64)
    s = log_lik.shape[0]
    log_w, k = psis(-log_lik.T, r_eff)
    pointwise = scipy.special.logsumexp(log_w + log_lik.T, axis=1)
    lppd = float(np.sum(scipy.special.logsumexp(log_lik, axis=0) - np.log(s)))
    elpd = float(pointwise.sum())
    se = float(np.sqrt(len(pointwise) * np.var(pointwise)))
    return Loo(elpd, se, lppd - elpd, pointwise, k, min(1 - 1 / np.log10(s), 0.7), log_w)


def stacking(pointwise: np.ndarray) -> np.ndarray:
    """Stacking weights of K predictive distributions from their pointwise elpd, shape (n, K): the weights on the
    simplex maximizing ``sum_i log sum_k w_k exp(elpd_ik)`` (Yao et al. 2018), by SciPy's constrained optimizer
    from equal weights, as ArviZ 0.2x finds them."""
    from scipy.optimize import Bounds, LinearConstraint, minimize

    p = np.exp(pointwise - pointwise.max(axis=1, keepdims=True))  # a factor per row changes no weight
    k = p.shape[1]

    def minus_score(w: np.ndarray) -> float:
        return -float(np.sum(np.log(p @ w)))

    def gradient(w: np.ndarray) -> np.ndarray:
        return -np.sum(p / (p @ w)[:, None], axis=0)

    found = minimize(
        minus_score,
        np.full(k, 1.0 / k),
        jac=gradient,
        bounds=Bounds(np.zeros(k), np.ones(k)),
        constraints=LinearConstraint(np.ones(k), 1.0, 1.0),
    )
    w = np.clip(found.x, 0.0, None)
    return w / w.sum()


def compare(named: Mapping[str, Loo]) -> pd.DataFrame:
    """PSIS-LOO comparison with stacking weights, best first, as ArviZ's ``compare(..., method="stacking")``.

    Columns: ``rank``, ``elpd_loo``, ``p_loo``, ``elpd_diff`` (the best's elpd minus this one's, zero or
    more), ``weight``, ``se``, ``dse`` (standard error of the difference to the best), ``warning`` (some
    Pareto k above ``good_k``).
    """
    names = sorted(named, key=lambda name: -named[name].elpd)
    matrix = np.stack([named[name].pointwise for name in names], axis=1)  # (n, K)
    weights = stacking(matrix)
    best = matrix[:, 0]
    rows = []
    for i, name in enumerate(names):
        diff = best - matrix[:, i]
        entry = named[name]
        rows.append(
            {
                "rank": i,
                "elpd_loo": entry.elpd,
                "p_loo": entry.p_loo,
                "elpd_diff": float(diff.sum()),
                "weight": float(weights[i]),
                "se": entry.se,
                "dse": float(np.sqrt(len(diff) * np.var(diff))),
                "warning": entry.warning,
            }
        )
    return pd.DataFrame(rows, index=pd.Index(names))
