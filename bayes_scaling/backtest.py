"""Backtests: fit below compute cutoffs, forecast the larger runs, score the bands against what happened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.special

from . import _calibration, laws
from ._geometry import axis, beyond
from ._model import design
from ._sampler import Settings
from .data import Dataset, checked_seed
from .fit import DataLike, _as_dataset, _fit, _needed
from .forecast import predictive
from .laws import Law
from .priors import PriorsLike, Spec, resolve
from .result import Result


def coverage_interval(covered: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) ``level`` interval of a coverage: ``covered`` of ``n`` held-out runs inside a band.

    With few runs the interval is wide (4 of 4 covered: 40% to 100%), so a coverage then says little.
    """
    a = (1.0 - level) / 2
    lo = 0.0 if covered == 0 else float(scipy.special.betaincinv(covered, n - covered + 1, a))
    hi = 1.0 if covered == n else float(scipy.special.betaincinv(covered + 1, n - covered, 1.0 - a))
    return lo, hi


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
        (how far the furthest held-out run lies beyond the fitted runs, along the
        extrapolation axis), ``n_train``, ``n_test``, ``coverage_50``, ``coverage_80``,
        ``coverage_90`` (share of held-out runs inside the band of a new run), ``covered_90``
        (how many) and ``coverage_90_lo``, ``coverage_90_hi`` (its exact 95% binomial interval,
        :func:`coverage_interval`),
        ``median_abs_rel_error`` (of the median forecast), ``interval_score_90`` (mean, in
        nats/token; lower is better); calibrated rows add ``kappa_<input>``, the posterior
        median of the learned error scale (per square root of a decade).
    runs : one row per held-out run, cutoff and mode: its inputs, the realized
        ``loss``, the forecast ``run_median`` and 90% band (``run_lo90``, ``run_hi90``).
    """

    table: pd.DataFrame
    runs: pd.DataFrame


def backtest(
    data: DataLike,
    law: str | Law = "chinchilla",
    cutoffs: Sequence[float] | float | None = None,
    *,
    priors: PriorsLike = None,
    settings: Settings | None = None,
    levels: Sequence[float] = (0.5, 0.8, 0.9),
    seed: int = 0,
    calibrate: bool = True,
    group: str | Sequence[str] | None = None,
    pooling: Mapping[str, str] | None = None,
    **options: object,
) -> Backtest:
    """Fit below each cutoff, forecast the runs above it, and score plain and calibrated forecasts.

    Parameters
    ----------
    data : the runs (a Dataset, DataFrame or path, as for :func:`bayes_scaling.fit`).
    law : the law to backtest.
    cutoffs : cutoffs along the extrapolation axis (compute, FLOP, where known); default: the runs' own
        (:func:`default_cutoffs`; the embedded runs': 8e19, 3e20, 9e20).
    priors, settings, options : as for :func:`bayes_scaling.fit`, for every refit.
    levels : band levels whose coverage is reported; 0.9 is always scored.
    calibrate : score the calibrated mode beside the plain one (False: plain only, one
        fit per cutoff instead of five).
    group, pooling : runs in groups, as for :func:`bayes_scaling.fit`; a group with too few runs
        below a cutoff sits that cutoff out.

    Returns
    -------
    :class:`Backtest`.
    """
    law = laws.get(law)
    settings = Settings.of(settings, **options)
    data = _as_dataset(data, law, group)
    spec = resolve(law, priors, pooling)
    cutoffs = default_cutoffs(data, law) if cutoffs is None else checked_cutoffs(cutoffs)
    return _backtest(data, law, spec, cutoffs, settings, levels, checked_seed(seed), calibrate)


def checked_cutoffs(cutoffs: Sequence[float] | float) -> list[float]:
    """Backtest cutoffs as positive floats (one number is one cutoff); anything else is an error that says so."""
    try:
        values = np.atleast_1d(np.asarray(cutoffs, np.float64)).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"cutoffs: expected numbers (compute, FLOP), got {cutoffs!r}") from None
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"cutoffs: expected positive numbers (compute, FLOP), got {cutoffs!r}")
    return [float(c) for c in values]


def default_cutoffs(data: Dataset, law: Law) -> list[float]:
    """Backtest cutoffs of a sweep: the 50%, 70% and 85% quantiles of its runs along the extrapolation axis
    (compute where known), each rounded to one significant digit (repeats dropped), ascending. The review's
    and ``bayes-scaling backtest``'s default."""
    values = data.frame[axis(data.frame, law.axes)].to_numpy(np.float64)
    return sorted({float(f"{c:.0e}") for c in np.quantile(values, [0.5, 0.7, 0.85])})


def split(data: Dataset, law: Law, spec: Spec, cutoffs: Sequence[float]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Each cutoff's runs to fit (below it along the extrapolation axis) and to forecast, as boolean masks:
    ``[(cutoff, train, test), ...]``; a cutoff that leaves too few runs on either side is an error.

    With groups, the groups with too few runs below a cutoff sit that cutoff out.
    """
    values = data.frame[axis(data.frame, law.axes)].to_numpy()
    splits = []
    for cutoff in cutoffs:
        train, test = values < cutoff, values >= cutoff
        if "group" in data.frame.columns:  # groups with too few runs below the cutoff sit this cutoff out
            plan = design(data.subset(train), law, spec)
            counts = data.frame.loc[train, "group"].value_counts()
            kept = data.frame["group"].isin(counts[counts >= _needed(law, plan)].index).to_numpy()
            train, test = train & kept, test & kept
        if train.sum() < law.min_runs or test.sum() < 1:
            raise ValueError(f"{data.source}: cutoff {cutoff:g} leaves {train.sum()} runs to fit, {test.sum()} to test")
        splits.append((cutoff, train, test))
    return splits


def _backtest(
    data: Dataset,
    law: Law,
    spec: Spec,
    cutoffs: Sequence[float],
    settings: Settings,
    levels: Sequence[float] = (0.5, 0.8, 0.9),
    seed: int = 0,
    calibrate: bool = True,
    *,
    pad: int | None = None,
    quiet: bool = False,
    keep: int | None = None,
) -> Backtest:
    """:func:`backtest` of a checked data set with resolved priors; the cutoffs' refits run in threads.

    ``pad``: rows to pad every refit to (:func:`bayes_scaling.fit._fit`; the review pads them to the
    whole sweep's length, so that they share the reviewed fit's compiled sampler); ``quiet``: no
    warnings from the refits; ``keep``: draws per chain each refit keeps (:func:`bayes_scaling.fit._fit`).
    """
    name = axis(data.frame, law.axes)
    levels = sorted(set(levels) | {0.9})
    splits = split(data, law, spec, cutoffs)

    def refit(train: np.ndarray) -> Result:
        return _fit(data.subset(train), law, spec, settings, seed, calibrate, pad=pad, quiet=quiet, keep=keep)

    with ThreadPoolExecutor(max(len(splits), 1)) as pool:
        fits = list(pool.map(refit, [train for _, train, _ in splits]))
    rows, details = [], []
    for (cutoff, train, test), result in zip(splits, fits, strict=True):
        points = data.frame[test].reset_index(drop=True)
        y = points["loss"].to_numpy()
        reach = float(beyond(data.frame[train], points, [name]).max())
        for mode in ("plain", "calibrated") if calibrate else ("plain",):
            draws = predictive(result, points, seed=seed, mode=mode)
            row = {"cutoff": cutoff, "mode": mode, "distance_decades": reach}
            row |= {"n_train": int(train.sum()), "n_test": int(test.sum())}
            for level in levels:
                lo, hi = draws.interval(level)
                row[f"coverage_{100 * level:g}"] = float(np.mean((lo <= y) & (y <= hi)))
            lo, hi = draws.interval(0.9)
            covered = int(np.sum((lo <= y) & (y <= hi)))
            row["covered_90"] = covered  # and its exact 95% interval: what this many held-out runs can tell
            row["coverage_90_lo"], row["coverage_90_hi"] = coverage_interval(covered, len(y))
            median = draws.median()
            row["median_abs_rel_error"] = float(np.median(np.abs(median / y - 1)))
            row["interval_score_90"] = float(np.mean(interval_score(y, lo, hi, 0.9)))
            if mode == "calibrated" and _calibration.calibrated(result):
                row.update(_calibration.kappa_medians(result))
            rows.append(row)
            detail = points[[name, "loss"]].assign(run_median=median, run_lo90=lo, run_hi90=hi)
            details.append(detail.assign(cutoff=cutoff, mode=mode))
    return Backtest(pd.DataFrame(rows), pd.concat(details, ignore_index=True))
