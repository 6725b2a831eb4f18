"""Comparing law families: PSIS-LOO and stacking weights (a stacked forecast: ``forecast(fits, weights=...)``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

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
