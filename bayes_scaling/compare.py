"""Comparing law families: PSIS-LOO and stacking weights (a stacked forecast: ``forecast(fits, weights=...)``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import _loo
from .result import Result

#: Pareto k above this marks a run whose PSIS-LOO estimate is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def compare(results: Sequence[Result], names: Sequence[str] | None = None) -> pd.DataFrame:
    """PSIS-LOO comparison of fits to the same runs (of different laws, or of one law pooled differently
    across groups), with stacking weights.

    Computed in NumPy as ArviZ's ``compare(..., ic="loo", method="stacking")`` (:mod:`bayes_scaling._loo`,
    tested against ArviZ 0.2x and 1.x): the same numbers under either ArviZ line.

    Parameters
    ----------
    results : the fits, each of the same runs.
    names : a name per fit (default: its law's name; fits of one law need names).

    Returns
    -------
    The comparison table indexed by law name, best first: ``rank``, ``elpd_loo``, ``p_loo``,
    ``elpd_diff`` (the best's elpd minus this one's), ``weight`` (stacking), ``se``, ``dse``,
    ``warning``, plus ``pareto_k_high`` (runs with Pareto k > 0.7; ``warning`` is True when any),
    ``ruled_out`` (:func:`ruled_out`) and ``stack_weight``: the stacking weights of the fits not ruled out,
    renormalized, the weights of a stacked forecast (``forecast(results, weights=table["stack_weight"])``):
    a law the runs reject can keep a few percent of stacking weight (Student-t tails) and would stretch the
    stacked band with forecasts the data do not support.
    """
    names = list(names) if names is not None else [r.law.name for r in results]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"compare needs at least two fits with different names (laws), got {names}")
    y = results[0].group("observed_data")["log_loss"].to_numpy()
    for name, r in zip(names[1:], results[1:], strict=True):
        other = r.group("observed_data")["log_loss"].to_numpy()
        if other.shape != y.shape or not np.allclose(other, y, rtol=1e-12, atol=0.0):
            raise ValueError(f"fits {names[0]!r} and {name!r} are not of the same runs; LOO needs the same")
    shapes = {r.group("log_likelihood")["log_loss"].shape[2:] for r in results}
    if len(shapes) > 1:
        raise ValueError(
            "the fits' log likelihoods are over different observations (runs for some, configurations of "
            "replicated runs for others): compare fits of one design"
        )
    estimates = {name: loo(r) for name, r in zip(names, results, strict=True)}
    table = _loo.compare(estimates)
    table["pareto_k_high"] = [int((estimates[name].pareto_k > PARETO_K_MAX).sum()) for name in table.index]
    table["warning"] = table["warning"] | (table["pareto_k_high"] > 0)
    table["ruled_out"] = [ruled_out(d, e) for d, e in zip(table["elpd_diff"], table["dse"], strict=True)]
    kept = table["weight"].where(~table["ruled_out"], 0.0)
    table["stack_weight"] = kept / kept.sum() if kept.sum() > 0 else (~table["ruled_out"]) / (~table["ruled_out"]).sum()
    table.index.name = "law"
    return table


def ruled_out(elpd_diff: float, dse: float) -> bool:
    """PSIS-LOO clearly prefers another fit: elpd lower than the best's by more than 4 and by more than two
    standard errors of the difference (NaN, as for the best fit itself: not ruled out)."""
    return bool(elpd_diff > 4 and elpd_diff > 2 * max(dse, 1e-9))


def loo(result: Result) -> _loo.Loo:
    """PSIS-LOO of a fit from its pointwise log likelihood (draws of every chain), with the relative efficiency
    of its posterior draws as ArviZ's ``loo`` takes it. Computed once per result (``result.memo``)."""
    if "loo" not in result.memo:
        log_lik = result.group("log_likelihood")["log_loss"].to_numpy()  # (chains, draws, ...observations)
        posterior = result.group("posterior")
        efficiency = _loo.r_eff({name: posterior[name].to_numpy() for name in posterior.data_vars})
        result.memo["loo"] = _loo.loo(log_lik.reshape(log_lik.shape[0] * log_lik.shape[1], -1), efficiency)
    return result.memo["loo"]
