"""ArviZ, whichever line is installed: 0.2x (``InferenceData``) or 1.x (an ``xarray.DataTree``, arviz-stats).

The package itself needs ArviZ only to hand a result to ArviZ (:func:`inference_data`); its own
diagnostics are its own (:mod:`._stats`), and so are PSIS-LOO and stacking (:mod:`._loo`); saved files
are plain netCDF groups that both lines read. ArviZ is imported only inside these functions (importing
it costs seconds a fit or a review does not need). The rest give ArviZ's reference values, for tests:
:func:`rhat`, :func:`ess` and :func:`mcse` of one parameter's draws, :func:`psis_log_weights`,
:func:`pareto_k` and :func:`compare`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Mapping
from importlib.metadata import version

import numpy as np
import pandas as pd
import xarray as xr


@functools.cache
def major() -> int:
    """The installed ArviZ's major version: 0 (InferenceData) or 1 and later (DataTree)."""
    return int(version("arviz").split(".")[0])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ArviZ's own chatter: 0.2x's daily refactor notice, pandas deprecations inside it, high-k notes
    (the package reports Pareto k itself)."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def inference_data(groups: Mapping[str, xr.Dataset]) -> object:
    """What the installed ArviZ calls InferenceData, holding ``groups``: an ``az.InferenceData`` under
    0.2x, an ``xarray.DataTree`` with one child per group under 1.x."""
    if major() >= 1:
        return xr.DataTree.from_dict({name: groups[name] for name in groups})
    with _quiet():
        import arviz as az

        return az.InferenceData(**{name: groups[name] for name in groups})


def pareto_k(idata: object) -> np.ndarray:
    """PSIS-LOO's Pareto k of every observation, shape (n,)."""
    with _quiet():
        import arviz as az

        return np.asarray(az.loo(idata, pointwise=True).pareto_k).reshape(-1)


def compare(named: Mapping[str, object]) -> pd.DataFrame:
    """PSIS-LOO comparison with stacking weights, best first, the same columns under either line.

    Columns: ``rank``, ``elpd_loo``, ``p_loo``, ``elpd_diff`` (the best's elpd minus this one's,
    zero or more), ``weight``, ``se``, ``dse``, ``warning`` (ArviZ flagged the estimate).
    """
    with _quiet():
        import arviz as az

        if major() >= 1:
            table = az.compare(dict(named), method="stacking", round_to="none")
            table = table.rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
            table["elpd_diff"] = table["elpd_loo"].max() - table["elpd_loo"]
            table["warning"] = False
        else:
            table = az.compare(dict(named), ic="loo", method="stacking", scale="log")
    columns = ["rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "warning"]
    return table[columns].astype({"warning": bool})


def psis_log_weights(log_ratios: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed importance log weights, normalized along the last axis, and Pareto k;
    ``log_ratios`` (n, s) -> ((n, s), (n,)). (ArviZ 1.x's ``psislw`` takes the log likelihood, minus the log
    ratios: it negates its input.)"""
    with _quiet():
        if major() >= 1:
            from arviz_stats.base import array_stats

            log_w, k = array_stats.psislw(-np.asarray(log_ratios), r_eff=r_eff, axis=-1)
        else:
            import arviz as az

            log_w, k = az.psislw(np.asarray(log_ratios), r_eff)
    return np.asarray(log_w), np.asarray(k)


def _array(name: str, x: np.ndarray, **kwargs: object) -> float:
    """ArviZ's ``name`` (rhat, ess, mcse) of one parameter's draws, shape (chains, draws).

    ArviZ 0.23's ``mcse`` of an array returns an array of one value, which NumPy 2.4 no longer converts to a
    float: each answer is squeezed to a scalar first; where numba is installed, ArviZ 0.23 converts one itself
    (its ``sd`` path), so these reference values are computed with ArviZ's numba switched off.
    """
    if major() >= 1:
        from arviz_stats.base import array_stats

        value = getattr(array_stats, name)(np.asarray(x), chain_axis=-2, draw_axis=-1, **kwargs)
    else:
        with _quiet():
            import arviz as az

            numba = az.Numba.numba_flag
            az.Numba.disable_numba()
            try:
                value = getattr(az, name)(np.asarray(x), **kwargs)
            finally:
                if numba:
                    az.Numba.enable_numba()
    return float(np.asarray(value).squeeze())


def rhat(x: np.ndarray) -> float:
    """ArviZ's rank-normalized split R-hat of draws (chains, draws)."""
    return _array("rhat", x, method="rank")


def ess(x: np.ndarray, method: str) -> float:
    """ArviZ's effective sample size (``"bulk"``, ``"tail"``, ``"mean"``, ``"sd"``) of draws (chains, draws).

    The tail ESS is the smaller of the ESS of the 5% and 95% quantiles (1.x's array interface asks for them).
    """
    extra = {"prob": (0.05, 0.95)} if method == "tail" and major() >= 1 else {}
    return _array("ess", x, method=method, **extra)


def mcse(x: np.ndarray, method: str = "mean") -> float:
    """ArviZ's Monte Carlo standard error (``"mean"`` or ``"sd"``) of draws (chains, draws)."""
    return _array("mcse", x, method=method)
