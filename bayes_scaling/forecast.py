"""Posterior forecasts with credible bands at any scale, from one fit or a weighted mixture of fits."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _calibration
from ._evaluate import law_at, optimum
from ._geometry import axis, beyond_own
from .data import FLOPS_PER_PARAM_TOKEN, _column, at_ratio, checked_seed, warn_repeats
from .laws import Law
from .presets import Target, preset
from .result import Result

#: Default central credible levels of a forecast's bands.
LEVELS = (0.5, 0.8, 0.95)
MODES = ("calibrated", "plain")
#: Targets more decades of compute than this beyond the largest run get an :class:`ExtrapolationWarning`.
FAR = 6.0


class ExtrapolationWarning(UserWarning):
    """A forecast far beyond the data: further than any scaling law has been checked (see :data:`FAR`)."""


def column(of: str, side: str, level: float) -> str:
    """Name of a band's column in a forecast table: ``column("run", "lo", 0.9) == "run_lo90"``.

    Parameters
    ----------
    of : ``"loss"`` (the expected loss), ``"run"`` (a new observed run), or ``"score"`` and ``"run_score"`` for
        the same as a score (:func:`with_scores`).
    side : ``"lo"`` or ``"hi"``.
    level : the band's central credible level in (0, 1).
    """
    return f"{of}_{side}{100 * level:g}"


@dataclass(frozen=True)
class Predictive:
    """Posterior predictive draws at t points.

    Attributes
    ----------
    points : the points (one row each), with the inputs the law reads.
    loss : draws of the expected loss, shape (s, t) (with replicates, the law's misfit at a new
        configuration included).
    run : draws of the loss of a new run (the expected loss plus the run-to-run noise), shape (s, t).
    mode : ``"calibrated"``, ``"plain"`` or ``"stacked"`` (a mixture of fits).
    share : the reducible share ``1 - E/L`` of the law's expected loss per draw and point (s, t),
        where known.
    """

    points: pd.DataFrame
    loss: np.ndarray
    run: np.ndarray
    mode: str
    share: np.ndarray | None = None

    def median(self, of: str = "run") -> np.ndarray:
        """Posterior median at each point, shape (t,)."""
        return np.median(getattr(self, of), axis=0)

    def interval(self, level: float, of: str = "run") -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` credible interval at each point, two arrays of shape (t,)."""
        if not 0 < level < 1:
            raise ValueError(f"credible levels must lie in (0, 1), got {level}")
        lo, hi = np.quantile(getattr(self, of), [(1 - level) / 2, (1 + level) / 2], axis=0)
        return lo, hi

    def table(self, levels: Sequence[float] = LEVELS) -> pd.DataFrame:
        """``points`` with ``mode`` and, for the expected loss and a new run, the median and each band.

        Columns ``loss_median``, ``loss_lo{p}``, ``loss_hi{p}``, ``run_median``, ``run_lo{p}``,
        ``run_hi{p}`` for each level p in % (:func:`column` names them).
        """
        for level in levels:
            if not 0 < level < 1:
                raise ValueError(f"credible levels must lie in (0, 1), got {level}")
        out = self.points.assign(mode=self.mode)
        for of in ("loss", "run"):
            out[f"{of}_median"] = self.median(of)
            for level in levels:
                out[column(of, "lo", level)], out[column(of, "hi", level)] = self.interval(level, of)
        return out


def targets(
    result: Result,
    *,
    N: Sequence[float] | float | None = None,
    D: Sequence[float] | float | None = None,
    flops: Sequence[float] | float | None = None,
    preset: Sequence[str] | str | None = None,
    k: float = FLOPS_PER_PARAM_TOKEN,
    group: str | None = None,
    tokens_per_param: Sequence[float] | float | None = None,
    U: Sequence[float] | float | None = None,
) -> pd.DataFrame:
    """Resolve forecast targets to concrete (N, D, C) rows.

    (N, D) pairs give C = k·N·D; a compute budget alone is split compute-optimally
    at the posterior median of the per-draw optimum ``log N_opt`` (for a law of N and D;
    with groups, ``group``'s optimum), or, with ``tokens_per_param`` M, at that ratio:
    N = sqrt(C / (k·M)), D = M·N (over-training, when M is above the compute-optimal ratio;
    budgets and ratios broadcast against each other).

    ``U``: unique tokens of (N, D) runs that repeat their data over D/U epochs (with ``N`` and ``D``).

    Returns
    -------
    DataFrame with columns ``target``, ``N``, ``D``, ``C`` (and ``U`` when given), one row per target.
    """
    rows: list[Target] = _named(preset)
    if U is not None and (N is None or D is None):
        raise ValueError("U (unique tokens) belongs to runs given by N and D: give N, D and U")
    if tokens_per_param is not None and flops is None:
        raise ValueError("tokens_per_param splits a compute budget: give flops with it")
    if N is not None or D is not None:
        if N is None or D is None:
            raise ValueError("give both N and D (or flops alone)")
        given = [np.atleast_1d(np.asarray(v, np.float64)) for v in (N, D, np.nan if U is None else U)]
        n, d, unique = np.broadcast_arrays(*given)
        c = np.broadcast_to(np.atleast_1d(flops), n.shape) if flops is not None else [None] * n.size
        rows += [Target(f"N={a:.3g}, D={b:.3g}", N=a, D=b, C=cc) for a, b, cc in zip(n, d, c, strict=True)]
    elif flops is not None and tokens_per_param is not None:
        c, m = np.broadcast_arrays(np.atleast_1d(np.asarray(flops, np.float64)), np.atleast_1d(tokens_per_param))
        n, d = at_ratio(c, m, k)
        rows += [Target(f"C={a:.3g}, M={b:.3g}", N=nn, D=dd, C=a) for a, b, nn, dd in zip(c, m, n, d, strict=True)]
    elif flops is not None:
        rows += [Target(f"C={c:.3g}", C=float(c)) for c in np.atleast_1d(flops)]
    if not rows:
        raise ValueError("no forecast target: give a preset, N and D, or flops")

    n = np.array([np.nan if t.N is None else t.N for t in rows])
    d = np.array([np.nan if t.D is None else t.D for t in rows])
    c = np.array([k * t.N * t.D if t.C is None else t.C for t in rows])
    split = np.isnan(n)
    if split.any() and {"N", "D"} <= set(result.law.inputs):
        log_n, _ = optimum(result.law, result.draws(group), c[split], k)
        n[split] = np.exp(np.median(log_n, axis=0))
        d[split] = c[split] / (k * n[split])
    out = pd.DataFrame({"target": [t.name for t in rows], "N": n, "D": d, "C": c})
    if U is not None:
        u = np.full(len(out), np.nan)
        u[len(out) - len(unique) :] = unique  # the (N, D) rows come after any presets
        if not (np.nan_to_num(u, nan=1.0) > 0).all() or (u > d * (1 + 1e-9)).any():
            raise ValueError("unique tokens U must be positive and at most the tokens D of their run")
        out["U"] = u
        out["target"] = [f"{t}, U={v:.3g}" if np.isfinite(v) else t for t, v in zip(out["target"], u, strict=True)]
    return out


def _named(names: Sequence[str] | str | None) -> list[Target]:
    if isinstance(names, str):
        names = [names]
    return [preset(name) for name in names or ()]


def predictive(
    result: Result, points: pd.DataFrame, *, group: str | None = None, seed: int = 0, mode: str = "calibrated"
) -> Predictive:
    """Posterior predictive draws of the loss at given points.

    Parameters
    ----------
    points : DataFrame with the law's inputs among columns ``N``, ``D``, ``C``, t rows (for a
        fit of runs in groups, a ``group`` column may name each point's group).
    group : for a fit of runs in groups, the group of every point (a label, or ``"new"`` for a
        group drawn from the population), unless ``points`` has a ``group`` column.
    seed : seeds the observation noise of a new run (and the calibrated mode's error).
    mode : ``"calibrated"`` adds the learned extrapolation error (a random walk of scale
        ``kappa`` beyond the data; nothing inside it) when the fit has one; ``"plain"`` gives
        the parameter uncertainty of the law alone.
    """
    law = result.law
    if mode not in MODES:
        raise ValueError(f"mode must be 'plain' or 'calibrated', got {mode!r}")
    missing = [k for k in law.axes if k not in points.columns or not np.isfinite(points[k]).all()]
    if missing:
        raise ValueError(f"law {law.name!r} needs {', '.join(missing)} at every point to forecast")
    blocks = _blocks(result, points, group)
    log_mean, share, noise_scales = _law(result, points, blocks, seed)
    # Noise in NumPy: no compilation per shape, and the same seed gives the same draws.
    rng = np.random.default_rng(seed)
    noise = rng.standard_t(result.spec.df, log_mean.shape)
    used = "calibrated" if mode == "calibrated" and _calibration.calibrated(result) else "plain"
    if used == "calibrated":
        scale = np.empty_like(log_mean)
        for rows, label in blocks:
            part = points.iloc[rows]
            scale[:, rows] = _calibration.error_scale(result, part, share[:, rows], result.data(label))
        log_mean = log_mean + scale * rng.standard_normal(log_mean.shape)
    if "sigma_misfit" in noise_scales:  # the law's misfit at a new configuration belongs to its expected loss
        log_mean = log_mean + noise_scales["sigma_misfit"][:, None] * rng.standard_t(result.spec.df, log_mean.shape)
    run = np.exp(log_mean + noise_scales["sigma"][:, None] * noise)
    return Predictive(points, np.exp(log_mean), run, used, share)


def expected(result: Result, points: pd.DataFrame, *, group: str | None = None, seed: int = 0) -> np.ndarray:
    """The law's log expected loss of every draw at every point, shape (s, t), with no error or noise added.

    ``points`` and ``group`` as for :func:`predictive` (each point with its group's draws).
    """
    return _law(result, points, _blocks(result, points, group), seed)[0]


def _law(result: Result, points: pd.DataFrame, blocks: list, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(log expected loss, reducible share, the noise scales' draws), each point with its group's draws."""
    law = result.law
    inputs = {k: points[k].to_numpy() for k in law.inputs if k in points.columns}
    draws = {label: result.draws(label, seed=seed) for _, label in blocks}
    s = len(next(iter(draws.values()))["sigma"])
    log_mean, share = np.empty((s, len(points))), np.empty((s, len(points)))
    for rows, label in blocks:
        log_mean[:, rows] = law_at(law, draws[label], {k: v[rows] for k, v in inputs.items()})
        share[:, rows] = _calibration.reducible(law, draws[label], log_mean[:, rows])
    return log_mean, share, next(iter(draws.values()))  # sigma and sigma_misfit are shared by every group


def _blocks(result: Result, points: pd.DataFrame, group: str | None) -> list[tuple[np.ndarray, str | None]]:
    """The points in blocks of one group each: (row indices, group label; None without groups)."""
    everything = np.arange(len(points))
    if not result.labels:
        return [(everything, None)]
    if "group" in points.columns and points["group"].notna().all():
        labels = points["group"].astype(str).to_numpy()
        return [(np.flatnonzero(labels == label), label) for label in dict.fromkeys(labels)]
    if group is None:
        raise ValueError(
            f"this fit has groups ({', '.join(result.labels)}): give group=... (or 'new' for a group drawn from "
            "the population), or a group column in the points"
        )
    return [(everything, group)]


def stacked(
    results: Sequence[Result],
    weights: Mapping[str, float] | pd.Series,
    points: pd.DataFrame,
    *,
    draws: int = 4000,
    seed: int = 0,
    mode: str = "calibrated",
) -> Predictive:
    """Predictive draws of a mixture of fits: draws taken from each in proportion to its weight.

    Parameters
    ----------
    weights : mixture weights by law name (the ``weight`` column of :func:`bayes_scaling.compare`).
    points : the targets, with every input the laws need.
    draws : draws in the mixture.
    """
    weights = pd.Series(weights, dtype=float)
    if (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("stacking weights must be non-negative and not all zero")
    by_name = {r.law.name: r for r in results}
    missing = [name for name in weights.index if name not in by_name]
    if missing:
        raise ValueError(f"no fit of law {missing[0]!r} among {list(by_name)}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(draws, (weights / weights.sum()).to_numpy())
    loss, run = [], []
    for name, count in zip(weights.index, counts, strict=True):
        if count:
            one = predictive(by_name[name], points, seed=seed, mode=mode)
            pick = rng.integers(0, one.loss.shape[0], count)
            loss.append(one.loss[pick])
            run.append(one.run[pick])
    return Predictive(points, np.concatenate(loss), np.concatenate(run), "stacked")


def forecast(
    result: Result | Sequence[Result],
    points: pd.DataFrame | None = None,
    *,
    N: Sequence[float] | float | None = None,
    D: Sequence[float] | float | None = None,
    flops: Sequence[float] | float | None = None,
    preset: Sequence[str] | str | None = None,
    weights: Mapping[str, float] | pd.Series | None = None,
    group: str | None = None,
    levels: Sequence[float] = LEVELS,
    k: float = FLOPS_PER_PARAM_TOKEN,
    seed: int = 0,
    mode: str = "calibrated",
    tokens_per_param: Sequence[float] | float | None = None,
    U: Sequence[float] | float | None = None,
) -> pd.DataFrame:
    """Forecast the loss at given points, (N, D) pairs, compute budgets or named presets.

    Examples
    --------
    >>> forecast(result, preset=["gpt3", "chinchilla", "gpt4"])   # doctest: +SKIP
    >>> forecast(result, N=[1e9, 7e9], D=[2e10, 1.4e11])          # doctest: +SKIP
    >>> forecast(result, flops=1e24, levels=(0.9,))               # doctest: +SKIP
    >>> forecast(result, flops=1e24, tokens_per_param=[20, 200])  # doctest: +SKIP
    >>> forecast(result, N=7e9, D=1e12, U=1e11)                   # doctest: +SKIP
    >>> forecast(result, runs_frame)                              # doctest: +SKIP
    >>> forecast([fit1, fit2], weights=compare([fit1, fit2])["stack_weight"], preset="gpt4")  # doctest: +SKIP

    Parameters
    ----------
    result : a fit, or several fits of different laws with ``weights`` (a stacked forecast).
    points : a DataFrame with the law's inputs among columns ``N``, ``D``, ``C`` (and ``U``); or None
        and targets named by ``N`` and ``D``, ``flops`` or ``preset`` (a budget alone is
        split compute-optimally, see :func:`targets`).
    weights : mixture weights by law name, for several fits (``compare(...)["stack_weight"]``: the stacking
        weights of the laws PSIS-LOO does not rule out).
    group : for a fit of runs in groups: the group forecast (a label), or ``"new"`` for a group
        not in the data, drawn from the population (every parameter that varies must be pooled).
        Points may instead carry a ``group`` column.
    levels : central credible levels in (0, 1).
    k : FLOP per parameter per token, C = k·N·D.
    seed : seeds the observation noise of the ``run_*`` columns.
    mode : ``"calibrated"`` (the default; used when the fit learned ``kappa``) or ``"plain"``.
    tokens_per_param : with ``flops``, split each budget at this ratio M = D/N instead of
        compute-optimally (over-training: M far above the optimal ~20).
    U : with ``N`` and ``D``, the unique tokens of each run (its data repeated over D/U epochs; read by
        laws of unique tokens such as ``data-constrained``; without it every token is fresh).

    Returns
    -------
    DataFrame, one row per point: ``law`` (the law's name, or ``stacked``), the points (with
    targets: ``target``, ``N``, ``D``, ``C``, ``tokens_per_param``), ``decades_beyond`` (decades
    of compute beyond the largest run; an :class:`ExtrapolationWarning` names every point more
    than :data:`FAR` out), ``mode``, and ``loss_median``, ``loss_lo{p}``, ``loss_hi{p}``
    (expected loss: the law's uncertainty) and ``run_median``, ``run_lo{p}``, ``run_hi{p}``
    (a new observed run: law plus Student-t noise), per level p in %.
    """
    seed = checked_seed(seed)
    many = not isinstance(result, Result)
    fits = list(result) if many else [result]
    if many and weights is None:
        raise ValueError("a forecast from several fits needs their weights (the 'weight' column of compare)")
    if points is None:
        splitter = next((r for r in fits if {"N", "D"} <= set(r.law.inputs)), fits[0])
        points = targets(
            splitter, N=N, D=D, flops=flops, preset=preset, k=k, group=group, tokens_per_param=tokens_per_param, U=U
        )
        points["tokens_per_param"] = points["D"] / points["N"]
    points = points.copy()
    for name in [c for c in ("N", "D", "C", "U") if c in points.columns]:  # empty (NaN): a law that needs it says so
        _column(points, name, "your DataFrame", blank=True)  # the runs' checks: numeric, finite, positive
    if {"U", "D"} <= set(points.columns):
        for law in {r.law.name: r.law for r in fits}.values():
            warn_repeats(law, points["U"], points["D"], "forecast", "target(s)")
    if fits[0].labels and group is not None and "group" not in points.columns:
        points.insert(0, "group", group)
    points = _far(fits[0], points)
    points.insert(0, "law", "stacked" if many else fits[0].law.name)
    if many:
        draws = stacked(fits, weights, points, seed=seed, mode=mode)
    else:
        draws = predictive(result, points, group=group, seed=seed, mode=mode)
    return draws.table(levels)


def _far(result: Result, points: pd.DataFrame) -> pd.DataFrame:
    """``points`` with ``decades_beyond`` (along the runs' extrapolation axis); warns of points beyond :data:`FAR`."""
    runs = result.data()
    name = axis(runs, result.law.axes)
    if name not in points.columns or not np.isfinite(points[name].to_numpy(np.float64)).all():
        return points.assign(decades_beyond=np.nan)
    decades = beyond_own(runs, points, [name])[:, 0]  # from the runs of each point's own group
    far = decades > FAR
    if far.any():
        labels = points["target"] if "target" in points.columns else pd.Series(range(len(points)), dtype=str)
        named = ", ".join(f"{t} ({d:.1f} decades)" for t, d in zip(labels[far], decades[far], strict=True))
        warnings.warn(
            f"FORECAST FAR BEYOND THE DATA: {named} beyond the largest run along {name}. No scaling law has been "
            f"checked more than a few decades out: read these bands as the law's arithmetic, not a forecast",
            ExtrapolationWarning,
            stacklevel=3,
        )
    return points.assign(decades_beyond=decades)


def on_score_scale(table: pd.DataFrame) -> pd.DataFrame:
    """A table of runs, bands or forecasts of a law fitted to ``-log(score)`` (runs read with ``metric=True``) on
    the score's own scale: every ``loss``, ``loss_*`` and ``run_*`` column as ``exp(-value)``, each lower bound
    trading places with its upper (the map reverses order: the score's low end is the loss's high end)."""
    out = table.copy()
    for name in table.columns:
        if name == "loss" or name.startswith(("loss_", "run_")):
            twin = name.replace("_lo", "_hi") if "_lo" in name else name.replace("_hi", "_lo")
            out[name] = np.exp(-table[twin].to_numpy(np.float64))
    return out


def score_name(name: str) -> str:
    """The score's name for a loss column: ``loss_*`` -> ``score_*``, ``run_*`` -> ``run_score_*``."""
    return name.replace("loss_", "score_").replace("run_", "run_score_")


def with_scores(table: pd.DataFrame) -> pd.DataFrame:
    """A forecast table of a law fitted to ``-log(score)`` with the score's own columns beside the loss ones:
    ``score_*`` for each ``loss_*`` and ``run_score_*`` for each ``run_*`` (:func:`on_score_scale`)."""
    score = on_score_scale(table).rename(columns=score_name)
    return pd.concat([table, score.filter(regex="^(run_)?score_")], axis=1)


def axis_of(law: Law) -> str:
    """The input a law's curve is drawn against: compute for a law of N and D or of C, else its input."""
    return "C" if {"N", "D"} <= set(law.inputs) or "C" in law.inputs else law.axes[0]


def curve(
    result: Result,
    upto: float | None = None,
    *,
    levels: Sequence[float] = LEVELS,
    size: int = 60,
    group: str | None = None,
) -> pd.DataFrame:
    """Bands of the expected loss along the law's curve, from the smallest run to ``1.5 * upto``.

    For a law of N and D the curve follows the compute-optimal path (each compute budget
    split at the posterior median optimum); otherwise it runs along the law's input
    (:func:`axis_of`).

    Parameters
    ----------
    upto : the curve's far end before the 1.5x margin, on the axis's scale (default: the largest run).
    group : with groups, the group whose curve (from its smallest run).

    Returns
    -------
    The forecast table of ``size`` points (:meth:`Predictive.table`), log-spaced along the axis.
    """
    runs = result.data(group)
    x = axis_of(result.law)
    grid = np.geomspace(runs[x].min(), max(runs[x].max(), upto or 0.0) * 1.5, size)
    if {"N", "D"} <= set(result.law.inputs):
        points = targets(result, flops=grid, group=group)
    else:
        points = pd.DataFrame({"N": np.nan, "D": np.nan, "C": np.nan, x: grid})
    return predictive(result, points, group=group).table(levels)
