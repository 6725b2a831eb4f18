"""Comparing law families: PSIS-LOO, stacking weights and a stacked forecast."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .forecast import LEVELS, bands, draws_at
from .result import Result

#: Pareto k above this marks a run whose PSIS-LOO estimate is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def compare(results: Sequence[Result]) -> pd.DataFrame:
    """PSIS-LOO comparison of fits of different laws to the same runs, with stacking weights.

    Returns
    -------
    ArviZ's comparison table indexed by law name, best first: ``rank``, ``elpd_loo``,
    ``p_loo``, ``elpd_diff``, ``weight`` (stacking), ``se``, ``dse``, ``warning``, plus
    ``pareto_k_high`` (runs with Pareto k > 0.7; ``warning`` is True when any).
    """
    import arviz as az  # here: importing ArviZ takes seconds that fits without comparisons do not need

    names = [r.law.name for r in results]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"compare needs fits of at least two different laws, got {names}")
    y = results[0].idata.observed_data["log_loss"].to_numpy()
    for r in results[1:]:
        other = r.idata.observed_data["log_loss"].to_numpy()
        if other.shape != y.shape or not np.allclose(other, y, rtol=1e-12, atol=0.0):
            raise ValueError(f"fits of {names[0]!r} and {r.law.name!r} are not of the same runs; LOO needs the same")
    high = {}
    with warnings.catch_warnings():
        # ArviZ warns on high Pareto k; we count and flag them in the table instead.
        warnings.simplefilter("ignore", UserWarning)
        # ArviZ 0.23 calls pandas APIs that pandas 3 deprecates; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for r in results:
            high[r.law.name] = int((az.loo(r.idata, pointwise=True).pareto_k > PARETO_K_MAX).sum())
        table = az.compare({r.law.name: r.idata for r in results}, ic="loo", method="stacking", scale="log")
    table["pareto_k_high"] = [high[name] for name in table.index]
    table["warning"] = table["warning"] | (table["pareto_k_high"] > 0)
    table.index.name = "law"
    return table


def stacked(
    results: Sequence[Result],
    weights: Mapping[str, float] | pd.Series,
    points: pd.DataFrame,
    *,
    levels: Sequence[float] = LEVELS,
    draws: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """Forecast from a mixture of laws: draws taken from each law's posterior in proportion to its weight.

    Parameters
    ----------
    weights : stacking weights by law name (the ``weight`` column of :func:`compare`).
    points : the targets, with every input the laws need (``N``, ``D``, ``C``).
    draws : draws in the mixture.

    Returns
    -------
    ``points`` with the bands of :func:`bayes_scaling.predict`.
    """
    weights = pd.Series(weights, dtype=float)
    if (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("stacking weights must be non-negative and not all zero")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(draws, (weights / weights.sum()).to_numpy())
    loss, run = [], []
    for result, count in zip((_by_name(results, n) for n in weights.index), counts, strict=True):
        if count:
            mean, new = draws_at(result, points, seed=seed)
            pick = rng.integers(0, mean.shape[0], count)
            loss.append(mean[pick])
            run.append(new[pick])
    return bands(points, np.concatenate(loss), np.concatenate(run), levels)


def _by_name(results: Sequence[Result], name: str) -> Result:
    for r in results:
        if r.law.name == name:
            return r
    raise ValueError(f"no fit of law {name!r} among {[r.law.name for r in results]}")
