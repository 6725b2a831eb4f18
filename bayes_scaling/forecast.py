"""Posterior forecasts with credible bands at any scale."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import pandas as pd

from . import extrapolation
from .cache import shared
from .laws import Law
from .model import padded_length
from .optimal import FLOPS_PER_PARAM_TOKEN, optimum
from .presets import Target, preset
from .result import Result
from .sampler import law_tag

LEVELS = (0.5, 0.8, 0.95)


def _suffix(level: float) -> str:
    return f"{100 * level:g}"


def targets(
    result: Result,
    *,
    N: Sequence[float] | float | None = None,
    D: Sequence[float] | float | None = None,
    flops: Sequence[float] | float | None = None,
    preset_names: Sequence[str] | str | None = None,
    k: float = FLOPS_PER_PARAM_TOKEN,
) -> pd.DataFrame:
    """Resolve forecast targets to concrete (N, D, C) rows.

    (N, D) pairs give C = k·N·D; a compute budget alone is split compute-optimally
    at the posterior median of the per-draw optimum ``log N_opt``.

    Returns
    -------
    DataFrame with columns ``target``, ``N``, ``D``, ``C``, one row per target.
    """
    rows: list[Target] = []
    if isinstance(preset_names, str):
        preset_names = [preset_names]
    rows += [preset(name) for name in preset_names or ()]
    if N is not None or D is not None:
        if N is None or D is None:
            raise ValueError("give both N and D (or flops alone)")
        n, d = np.broadcast_arrays(np.atleast_1d(np.asarray(N, np.float64)), np.atleast_1d(np.asarray(D, np.float64)))
        c = np.broadcast_to(np.atleast_1d(flops), n.shape) if flops is not None else [None] * n.size
        rows += [Target(f"N={a:.3g}, D={b:.3g}", N=a, D=b, C=cc) for a, b, cc in zip(n, d, c, strict=True)]
    elif flops is not None:
        rows += [Target(f"C={c:.3g}", C=float(c)) for c in np.atleast_1d(flops)]
    if not rows:
        raise ValueError("no forecast target: give a preset, N and D, or flops")

    n = np.array([np.nan if t.N is None else t.N for t in rows])
    d = np.array([np.nan if t.D is None else t.D for t in rows])
    c = np.array([k * t.N * t.D if t.C is None else t.C for t in rows])
    split = np.isnan(n)
    if split.any() and {"N", "D"} & set(result.law.inputs):
        log_n, _ = optimum(result.law, result.draws(), c[split], k)
        n[split] = np.exp(np.median(log_n, axis=0))
        d[split] = c[split] / (k * n[split])
    return pd.DataFrame({"target": [t.name for t in rows], "N": n, "D": d, "C": c})


def draws_at(
    result: Result, points: pd.DataFrame, *, seed: int = 0, mode: str = "calibrated"
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws of the loss at given points.

    Parameters
    ----------
    points : DataFrame with the law's inputs among columns ``N``, ``D``, ``C``, t rows.
    seed : seeds the observation noise of a new run.
    mode : ``"calibrated"`` adds the learned extrapolation error (a random walk of scale ``kappa``
        beyond the data; nothing inside it) when the fit has one; ``"plain"`` gives
        the parameter uncertainty of the law alone.

    Returns
    -------
    (expected loss, loss of a new run), each of shape (s, t) for s posterior draws;
    a new run adds the fitted Student-t noise on log loss.
    """
    law = result.law
    missing = [k for k in law.inputs if k not in points.columns or not np.isfinite(points[k]).all()]
    if missing:
        raise ValueError(f"law {law.name!r} needs {', '.join(missing)} at every point to forecast")
    if mode not in ("plain", "calibrated"):
        raise ValueError(f"mode must be 'plain' or 'calibrated', got {mode!r}")
    draws = result.draws()
    log_mean = _log_mean(result.law, draws, points)
    # Noise in NumPy: no compilation per shape, and the same seed gives the same draws.
    rng = np.random.default_rng(seed)
    noise = rng.standard_t(result.spec.df, log_mean.shape)
    if mode == "calibrated" and extrapolation.calibrated(result):
        share = extrapolation.reducible(law, draws, log_mean)
        log_mean = log_mean + extrapolation.error_scale(result, points, share) * rng.standard_normal(log_mean.shape)
    return np.exp(log_mean), np.exp(log_mean + draws["sigma"][:, None] * noise)


def _log_mean(law: Law, draws: dict[str, np.ndarray], points: pd.DataFrame) -> np.ndarray:
    """Log expected loss of every draw at every point, shape (s, t), float64.

    Points are padded to a power of two (at least 64) before the compiled law sees
    them, so forecasts at any number of points share a few compilations.
    """
    t = len(points)
    size = padded_length(max(t, 1))
    x = {}
    for k in law.inputs:
        values = np.log(points[k].to_numpy(np.float64))
        x[k] = np.concatenate([values, np.full(size - t, values[0] if t else 0.0)])
    p = {k: draws[k] for k in law.params}
    tag = law_tag(law, None, None)
    return np.asarray(shared(_law_at, tag and f"law at points {tag}", law)(p, x), np.float64)[:, :t]


def _law_at(law: Law, p: dict, x: dict) -> jax.Array:
    """``law.mean`` of every draw (s,) at every point (t,), shape (s, t)."""
    return law.mean({k: v[:, None] for k, v in p.items()}, {k: v[None, :] for k, v in x.items()})


def bands(points: pd.DataFrame, loss: np.ndarray, run: np.ndarray, levels: Sequence[float] = LEVELS) -> pd.DataFrame:
    """``points`` with the median and central bands of draws of the loss (s, t) and of a new run (s, t)."""
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"credible levels must lie in (0, 1), got {level}")
    out = points.copy()
    for name, values in (("loss", loss), ("run", run)):
        out[f"{name}_median"] = np.median(values, axis=0)
        for level in levels:
            lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
            out[f"{name}_lo{_suffix(level)}"] = lo
            out[f"{name}_hi{_suffix(level)}"] = hi
    return out


def predict(
    result: Result,
    points: pd.DataFrame,
    *,
    levels: Sequence[float] = LEVELS,
    seed: int = 0,
    mode: str = "calibrated",
) -> pd.DataFrame:
    """Posterior median and central credible bands of the loss at given points.

    Parameters
    ----------
    points : DataFrame with the law's inputs among columns ``N``, ``D``, ``C``, shape (t, ...).
    levels : central credible levels in (0, 1), e.g. (0.5, 0.8, 0.95).
    seed : seeds the observation noise of the ``run_*`` columns.
    mode : ``"calibrated"`` (default; used when the fit learned ``kappa``) or ``"plain"``.

    Returns
    -------
    ``points`` with added columns ``mode`` (the mode used) and ``loss_median``, ``loss_lo{p}``, ``loss_hi{p}``
    (expected loss: the law's uncertainty) and ``run_median``, ``run_lo{p}``,
    ``run_hi{p}`` (a new observed run: law plus Student-t noise), per level p in %.
    """
    used = "calibrated" if mode == "calibrated" and extrapolation.calibrated(result) else "plain"
    return bands(points.assign(mode=used), *draws_at(result, points, seed=seed, mode=mode), levels)


def forecast(
    result: Result,
    *,
    N: Sequence[float] | float | None = None,
    D: Sequence[float] | float | None = None,
    flops: Sequence[float] | float | None = None,
    preset: Sequence[str] | str | None = None,
    levels: Sequence[float] = LEVELS,
    k: float = FLOPS_PER_PARAM_TOKEN,
    seed: int = 0,
    mode: str = "calibrated",
) -> pd.DataFrame:
    """Forecast the loss at (N, D) points, compute budgets or named presets.

    Examples
    --------
    >>> forecast(result, preset=["gpt3", "chinchilla", "gpt4"])   # doctest: +SKIP
    >>> forecast(result, N=[1e9, 7e9], D=[2e10, 1.4e11])          # doctest: +SKIP
    >>> forecast(result, flops=1e24, levels=(0.9,))               # doctest: +SKIP

    Returns
    -------
    DataFrame, one row per target: ``target``, ``N``, ``D``, ``C``,
    ``tokens_per_param`` and the bands of :func:`predict`.
    """
    points = targets(result, N=N, D=D, flops=flops, preset_names=preset, k=k)
    points["tokens_per_param"] = points["D"] / points["N"]
    return predict(result, points, levels=levels, seed=seed, mode=mode)
