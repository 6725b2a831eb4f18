"""Comparing law families: PSIS-LOO and stacking weights (a stacked forecast: ``forecast(fits, weights=...)``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import _arviz
from .result import Result

#: Pareto k above this marks a run whose PSIS-LOO estimate is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def compare(results: Sequence[Result]) -> pd.DataFrame:
    """PSIS-LOO comparison of fits of different laws to the same runs, with stacking weights.

    Works with either ArviZ line (0.2x or 1.x), with the same columns.

    Returns
    -------
    The comparison table indexed by law name, best first: ``rank``, ``elpd_loo``, ``p_loo``,
    ``elpd_diff`` (the best's elpd minus this one's), ``weight`` (stacking), ``se``, ``dse``,
    ``warning``, plus ``pareto_k_high`` (runs with Pareto k > 0.7; ``warning`` is True when any).
    """
    names = [r.law.name for r in results]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"compare needs fits of at least two different laws, got {names}")
    y = results[0].group("observed_data")["log_loss"].to_numpy()
    for r in results[1:]:
        other = r.group("observed_data")["log_loss"].to_numpy()
        if other.shape != y.shape or not np.allclose(other, y, rtol=1e-12, atol=0.0):
            raise ValueError(f"fits of {names[0]!r} and {r.law.name!r} are not of the same runs; LOO needs the same")
    idata = {r.law.name: r.idata for r in results}
    high = {name: int((_arviz.pareto_k(data) > PARETO_K_MAX).sum()) for name, data in idata.items()}
    table = _arviz.compare(idata)
    table["pareto_k_high"] = [high[name] for name in table.index]
    table["warning"] = table["warning"] | (table["pareto_k_high"] > 0)
    table.index.name = "law"
    return table
