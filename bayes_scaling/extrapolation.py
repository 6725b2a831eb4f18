"""Honest extrapolation: internal backtests, a learned extrapolation-error scale, and backtests.

A posterior band of one law measures the parameters' uncertainty *under that law*.
Beyond the data the law itself may be wrong, and that error grows with distance.
The calibrated mode learns how fast from the fitted runs themselves:

1. internal backtests: refit the law on the runs below the 50% and 70%
   quantiles of log compute and forecast the rest; record each held-out run's residual in
   log loss, the plain predictive sd there, and its distance beyond the refit's
   data (decades of compute);
2. a small NumPyro model, fitted with NUTS, explains those residuals as
   ``r ~ StudentT(df, 0, sqrt(sd**2 + (kappa * distance**power)**2))``, ``kappa ~
   HalfNormal(0.05)``, ``power ~ Uniform(0.5, 2)``: ``kappa`` is the extrapolation
   error of log loss one decade beyond the data, ``power`` how fast it grows;
3. a calibrated forecast adds ``kappa * distance**power * z`` to the log loss of every
   draw (``z`` standard normal, ``distance`` in decades beyond the data, zero
   inside the data's range): bands inside the data are unchanged, bands beyond
   widen as fast as the law's own errors did when it was extrapolated before.

Where the law is right, internal residuals match the plain bands, ``kappa`` stays
near zero, and the calibrated bands stay as sharp as the plain ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from .data import Dataset
from .result import Result

#: Fractions of the runs (ordered by compute) on which the internal backtests refit.
INTERNAL_SPLITS = (0.5, 0.7)


def axis(result_or_data: Result | Dataset) -> str:
    """The extrapolation axis: compute ``C`` when known for every run, else the law's first input."""
    frame = result_or_data.data() if isinstance(result_or_data, Result) else result_or_data.frame
    if np.isfinite(frame["C"]).all():
        return "C"
    law = result_or_data.law if isinstance(result_or_data, Result) else None
    return law.inputs[0] if law is not None else "N"


def distance(result: Result, points: pd.DataFrame) -> np.ndarray:
    """Decades beyond the fitted runs along the extrapolation axis, zero inside their range; shape (t,)."""
    name = axis(result)
    reach = np.log10(result.data()[name].max())
    return np.maximum(np.log10(points[name].to_numpy(np.float64)) - reach, 0.0)


def _kappa_model(residual: np.ndarray, sd: np.ndarray, dist_: np.ndarray, df: float) -> None:
    kappa = numpyro.sample("kappa", dist.HalfNormal(0.05))
    power = numpyro.sample("power", dist.Uniform(0.5, 2.0))
    scale = jnp.sqrt(sd**2 + (kappa * dist_**power) ** 2)
    numpyro.sample("r", dist.StudentT(df, 0.0, scale), obs=residual)


def internal_backtests(result: Result, data: Dataset, fit_kwargs: dict) -> pd.DataFrame:
    """Residuals of forecasts from refits on the lower 50% and 70% of the runs (by compute).

    Returns
    -------
    DataFrame, one row per held-out run and split: ``split``, ``residual`` (log loss
    minus the median forecast), ``sd`` (plain predictive sd of the log loss of a new
    run), ``distance`` (decades beyond the refit's data).
    """
    from .fit import fit  # a refit is a fit: import here, fit imports this module
    from .forecast import draws_at

    name = axis(data)
    values = data.frame[name].to_numpy()
    rows = []
    for q in INTERNAL_SPLITS:
        cut = np.quantile(values, q)
        train, test = values <= cut, values > cut
        if train.sum() < 3 * result.law.min_runs or test.sum() < 1:
            continue  # too few runs to refit reliably (three per parameter, sigma and one)
        subset = data.subset(train)
        subset = Dataset(subset.frame, f"{data.source} (internal backtest, lower {q:.0%} by {name})", subset.columns)
        part = fit(subset, result.law, priors=result.spec, calibrate=False, **fit_kwargs)
        points = data.frame[test].reset_index(drop=True)
        _, run = draws_at(part, points, seed=int(q * 100), mode="plain")
        log_run = np.log(run)
        rows.append(
            pd.DataFrame(
                {
                    "split": q,
                    "residual": np.log(points["loss"].to_numpy()) - np.median(log_run, axis=0),
                    "sd": log_run.std(axis=0),
                    "distance": distance(part, points),
                }
            )
        )
    if not rows:
        raise ValueError(f"{data.source}: too few runs for internal backtests")
    return pd.concat(rows, ignore_index=True)


def fit_kappa(table: pd.DataFrame, df: float, chains: int, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Posterior draws of ``kappa`` and ``power``, each of shape (chains, draws).

    The extrapolation error of log loss at ``d`` decades beyond the data has scale
    ``kappa * d**power``: ``power`` 1 is linear growth, 0.5 a random walk, 2 a
    missed curvature; its prior is uniform on [0.5, 2] and the residuals of the
    internal backtests inform it where they reach far enough.
    """
    kernel = numpyro.infer.NUTS(_kappa_model)
    mcmc = numpyro.infer.MCMC(
        kernel, num_warmup=500, num_samples=draws, num_chains=chains, chain_method="vectorized", progress_bar=False
    )
    mcmc.run(
        jax.random.key(seed), table["residual"].to_numpy(), table["sd"].to_numpy(), table["distance"].to_numpy(), df
    )
    samples = mcmc.get_samples(group_by_chain=True)
    return {name: np.asarray(samples[name], np.float64) for name in ("kappa", "power")}


def attach(result: Result, draws: dict[str, np.ndarray], table: pd.DataFrame) -> Result:
    """A copy of ``result`` whose InferenceData holds the ``extrapolation`` group (draws and residuals)."""
    idata = result.idata.copy()
    group = az.from_dict(posterior=draws).posterior
    for column in ("residual", "sd", "distance", "split"):
        group[f"internal_{column}"] = ("internal_run", table[column].to_numpy(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a group outside ArviZ's schema
        idata.add_groups({"extrapolation": group})
    return Result(idata, result.law, result.spec, result.problems)


def calibrated(result: Result) -> bool:
    """Whether the fit learned an extrapolation error (the calibrated mode is available)."""
    return "extrapolation" in result.idata.groups()


def error_scale(result: Result, points: pd.DataFrame) -> np.ndarray:
    """Scale of the extrapolation error of log loss at each point, per draw, shape (s, t).

    ``kappa * d**power`` with ``d`` the decades beyond the data (zero inside); the
    draws of ``kappa`` and ``power`` are recycled to the posterior's number of draws.
    """
    group = result.idata["extrapolation"]
    size = result.idata.posterior.sizes["chain"] * result.idata.posterior.sizes["draw"]
    k, p = (np.resize(group[name].to_numpy().reshape(-1), size).astype(np.float64) for name in ("kappa", "power"))
    return k[:, None] * distance(result, points)[None, :] ** p[:, None]


def interval_score(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float) -> np.ndarray:
    """Interval score of central ``level`` intervals (Gneiting and Raftery 2007); lower is better.

    ``(hi - lo) + 2/a * (lo - y) * [y < lo] + 2/a * (y - hi) * [y > hi]`` with ``a = 1 - level``.
    """
    a = 1.0 - level
    return (hi - lo) + 2 / a * np.maximum(lo - y, 0) + 2 / a * np.maximum(y - hi, 0)


@dataclass(frozen=True)
class Backtest:
    """Backtest results.

    Attributes
    ----------
    table : one row per cutoff and mode: ``cutoff``, ``mode``, ``distance_decades``
        (how far the largest held-out run lies beyond the cutoff), ``n_train``,
        ``n_test``, ``coverage_50``, ``coverage_80``, ``coverage_90`` (share of held-out
        runs inside the band of a new run), ``median_abs_rel_error`` (of the median
        forecast), ``interval_score_90`` (mean, in nats/token; lower is better).
    runs : one row per held-out run, cutoff and mode: its inputs, the realized
        ``loss``, the forecast ``run_median`` and 90% band.
    """

    table: pd.DataFrame
    runs: pd.DataFrame


def backtest(
    data: Dataset,
    law: str = "chinchilla",
    cutoffs: Sequence[float] = (1e20, 3e20, 1e21),
    *,
    levels: Sequence[float] = (0.5, 0.8, 0.9),
    seed: int = 0,
    calibrate: bool = True,
    **fit_kwargs: object,
) -> Backtest:
    """Fit below each cutoff, forecast the runs above it, and score plain and calibrated forecasts.

    Parameters
    ----------
    data : the runs (a Dataset, DataFrame or path, as for :func:`bayes_scaling.fit`).
    law : the law to backtest.
    cutoffs : cutoffs along the extrapolation axis (compute, FLOP, where known).
    levels : band levels whose coverage is reported; 0.9 is always scored.
    calibrate : score the calibrated mode beside the plain one (False: plain only, one
        fit per cutoff instead of three).
    fit_kwargs : passed to :func:`bayes_scaling.fit` (chains, warmup, draws, priors, ...).

    Returns
    -------
    :class:`Backtest`.
    """
    from .fit import as_dataset, fit
    from .forecast import bands, draws_at
    from .laws import get_law

    law = get_law(law)
    data = as_dataset(data, law)
    name = axis(data)
    values = data.frame[name].to_numpy()
    levels = sorted(set(levels) | {0.9})
    rows, details = [], []
    for cutoff in cutoffs:
        train, test = values < cutoff, values >= cutoff
        if train.sum() < law.min_runs or test.sum() < 1:
            raise ValueError(f"{data.source}: cutoff {cutoff:g} leaves {train.sum()} runs to fit, {test.sum()} to test")
        result = fit(data.subset(train), law, calibrate=calibrate, seed=seed, **fit_kwargs)
        points = data.frame[test].reset_index(drop=True)
        y = points["loss"].to_numpy()
        for mode in ("plain", "calibrated") if calibrate else ("plain",):
            band = bands(points, *draws_at(result, points, seed=seed, mode=mode), levels)
            row = {
                "cutoff": cutoff,
                "mode": mode,
                "distance_decades": float(np.log10(values[test].max() / cutoff)),
                "n_train": int(train.sum()),
                "n_test": int(test.sum()),
            }
            for level in levels:
                s = f"{100 * level:g}"
                row[f"coverage_{s}"] = float(np.mean((band[f"run_lo{s}"] <= y) & (y <= band[f"run_hi{s}"])))
            row["median_abs_rel_error"] = float(np.median(np.abs(band["run_median"] / y - 1)))
            row["interval_score_90"] = float(np.mean(interval_score(y, band["run_lo90"], band["run_hi90"], 0.9)))
            rows.append(row)
            details.append(band[[name, "loss", "run_median", "run_lo90", "run_hi90"]].assign(cutoff=cutoff, mode=mode))
    return Backtest(pd.DataFrame(rows), pd.concat(details, ignore_index=True))
