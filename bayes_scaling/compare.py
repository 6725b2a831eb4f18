"""Comparing law families: PSIS-LOO and stacking weights (a stacked forecast: ``forecast(fits, weights=...)``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import _arviz
from .result import Result

#: Pareto k above this marks a run whose PSIS-LOO estimate is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def compare(results: Sequence[Result], names: Sequence[str] | None = None) -> pd.DataFrame:
    """PSIS-LOO comparison of fits to the same runs (of different laws, or of one law pooled differently
    across groups), with stacking weights.

    Works with either ArviZ line (0.2x or 1.x), with the same columns.

    Parameters
    ----------
    results : the fits, each of the same runs.
    names : a name per fit (default: its law's name; fits of one law need names).

    Returns
    -------
    The comparison table indexed by law name, best first: ``rank``, ``elpd_loo``, ``p_loo``,
    ``elpd_diff`` (the best's elpd minus this one's), ``weight`` (stacking), ``se``, ``dse``,
    ``warning``, plus ``pareto_k_high`` (runs with Pareto k > 0.7; ``warning`` is True when any).
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
    idata = {name: r.idata for name, r in zip(names, results, strict=True)}
    high = {name: int((_arviz.pareto_k(data) > PARETO_K_MAX).sum()) for name, data in idata.items()}
    table = _arviz.compare(idata)
    table["pareto_k_high"] = [high[name] for name in table.index]
    table["warning"] = table["warning"] | (table["pareto_k_high"] > 0)
    table.index.name = "law"
    return table
