"""Figures drawn from fitted results and from tables (nothing here refits).

Each figure is a function of a result or of the tables other modules return: the fit with
its bands and forecasts (:func:`fit`, or :func:`fit_from_tables` from a review's tables),
the compute-optimal frontier, IsoFLOP profiles, backtests, simulation-based calibration,
and the review's distance and residual figures. ``path=`` saves a figure as PNG or SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._outputs import atomic_file
from .data import FLOPS_PER_PARAM_TOKEN
from .forecast import axis_of, column, curve, on_score_scale
from .presets import PRESETS
from .result import Result
from .sbc import Calibration

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: importing it costs half a second
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure


def _figure(**kwargs: object) -> Figure:
    """A new matplotlib Figure (not attached to pyplot: nothing to close)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _scalar(axis: Axis) -> None:
    """Plain numbers on a log axis (major and minor ticks)."""
    from matplotlib.ticker import ScalarFormatter

    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(ScalarFormatter())


def _readable(axis: Axis, lo: float, hi: float, count: int = 7) -> None:
    """About ``count`` labelled ticks, evenly spaced on a log scale, at round values between ``lo`` and ``hi``
    (a log axis spanning less than a decade otherwise shows one label or two)."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullLocator

    digits = 2 if hi / lo > 1.5 else 3
    ticks = [float(f"{v:.{digits}g}") for v in np.geomspace(lo, hi, count)]
    axis.set_major_locator(FixedLocator(sorted(set(t for t in ticks if lo <= t <= hi))))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_locator(NullLocator())


def save(fig: Figure, path: str | Path | None) -> Figure:
    """Save ``fig`` as PNG or SVG (by the path's suffix) when a path is given; a stopped save leaves no half file."""
    if path is not None:
        path = Path(path)
        kind = path.suffix.lower()[1:]
        if kind not in ("png", "svg"):
            raise ValueError(f"{path}: figures are written as .png or .svg")
        with atomic_file(path) as partial:
            fig.savefig(partial, format=kind, dpi=120, bbox_inches="tight")
    return fig


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def _decades(axis: Axis, minor: bool = True) -> None:
    """Label a log axis ``10\u00b2\u2070`` at each decade, in plain text; ``minor``: keep the unlabelled minor ticks
    (False: none, nor their grid lines: over many decades they are clutter, and each costs drawing time).

    Matplotlib's default labels are mathtext, whose parser costs about half a second to
    build in a fresh process; superscript digits look the same and cost nothing.
    """

    def label(value: float, _: int) -> str:
        if value <= 0:
            return ""
        power = float(np.log10(value))
        return "10" + str(round(power)).translate(_SUPERSCRIPT) if abs(power - round(power)) < 1e-9 else ""

    from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(NullFormatter())
    if not minor:
        axis.set_minor_locator(NullLocator())


def _log_labels(axis: Axis, values: np.ndarray) -> None:
    """Plain-text labels on a log axis showing ``values``, and no minor ticks (each costs a figure's layout and
    drawing time): each decade (:func:`_decades`) when they span two decades or more, else about seven round
    values (:func:`_readable`)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi / lo >= 100:
        _decades(axis, minor=False)
    else:
        _readable(axis, lo, hi)


def fit(
    result: Result,
    forecast: pd.DataFrame | None = None,
    *,
    path: str | Path | None = None,
    levels: tuple[float, ...] = (0.5, 0.8, 0.95),
) -> Figure:
    """Credible-interval plot: the runs, the law along the compute-optimal path, and the forecast.

    Parameters
    ----------
    result : the fit.
    forecast : a table from :func:`bayes_scaling.forecast`; its targets are marked
        with their widest band, and the path is carried out to the largest one.
    path : save the figure there (``.png`` or ``.svg``).
    levels : shaded credible levels of the expected loss along the path.

    Returns
    -------
    matplotlib Figure: loss against training compute, both axes logarithmic.
    """
    if forecast is not None and "law" in forecast.columns and set(forecast["law"]) - {result.law.name}:
        raise ValueError(
            f"the forecast table is of law {', '.join(sorted(set(forecast['law'])))}, the fit of "
            f"{result.law.name!r}: draw each law's forecast with its own fit"
        )
    x = axis_of(result.law)
    upto = None if forecast is None else float(forecast[x].max())
    if result.labels:  # a band per group, each from its own runs
        band = pd.concat([curve(result, upto, levels=levels, group=g).assign(group=g) for g in result.labels])
    else:
        band = curve(result, upto, levels=levels)
    title = result.law.formula or result.law.name
    data = result.data()
    return fit_from_tables(data, band, forecast, x=x, law=result.law.name, title=title, path=path, metric=result.metric)


def fit_from_tables(
    runs: pd.DataFrame,
    band: pd.DataFrame,
    forecast: pd.DataFrame | None,
    *,
    x: str,
    law: str,
    title: str,
    path: str | Path | None = None,
    levels: Sequence[float] | None = None,
    metric: str | None = None,
) -> Figure:
    """:func:`fit` drawn from tables: the runs, bands along the law's curve (:func:`bayes_scaling.forecast.curve`)
    and the forecast table; ``x`` is the axis (``"C"``, ``"N"`` or ``"D"``). ``metric``: the name of the score
    whose ``-log`` was fitted; the runs, bands and forecasts are then drawn as that score, on a linear axis."""
    if metric is not None:
        runs, band = on_score_scale(runs), on_score_scale(band)
        forecast = None if forecast is None else on_score_scale(forecast)
    if levels is None:
        levels = sorted({float(c[len("loss_lo") :]) / 100 for c in band.columns if c.startswith("loss_lo")})
    fig = _figure(figsize=(7, 4.5))
    ax = fig.subplots()
    if "group" in band.columns:
        _groups(ax, runs, band, forecast, x, law, max(levels))
    else:
        grid = band[x].to_numpy()
        for level, alpha in zip(sorted(levels, reverse=True), np.linspace(0.15, 0.45, len(levels)), strict=True):
            lo, hi = column("loss", "lo", level), column("loss", "hi", level)
            ax.fill_between(
                grid, band[lo], band[hi], color="C0", alpha=alpha, lw=0, label=f"{100 * level:g}% credible band"
            )
        ax.plot(grid, band["loss_median"], color="C0", lw=1.5, label=f"{law} law, posterior median")
        ax.scatter(runs[x], runs["loss"], s=10, color="0.25", alpha=0.7, label=f"{len(runs)} training runs", zorder=3)
    if forecast is not None and "group" not in band.columns:
        wide = max(levels)
        lo, hi = column("run", "lo", wide), column("run", "hi", wide)
        # One marker and legend entry per target (no labels beside the markers: close targets overlapped).
        for i, (_, row) in enumerate(forecast.iterrows()):
            band_text = f", {100 * wide:g}% {row[lo]:.3f}-{row[hi]:.3f}" if lo in forecast.columns else ""
            yerr = [[row["run_median"] - row[lo]], [row[hi] - row["run_median"]]] if lo in forecast.columns else None
            ax.errorbar(
                [row[x]],
                [row["run_median"]],
                yerr=yerr,
                fmt="DosP^v<>"[i % 8],
                color=f"C{3 + i % 7}",
                capsize=4,
                zorder=4,
                label=f"{row['target']}: {row['run_median']:.3f}{band_text}",
            )
    ax.set_xscale("log")
    span = np.concatenate([band[x].to_numpy(np.float64), runs[x].to_numpy(np.float64)])
    _decades(ax.xaxis, minor=span.max() / span.min() < 1e4)  # minor ticks over at most four decades
    if metric is None:
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        if hi / lo < 10:
            _readable(ax.yaxis, lo, hi)
        else:
            _scalar(ax.yaxis)
    ax.set_xlabel({"C": "training compute C (FLOP)", "N": "parameters N", "D": "training tokens D"}[x])
    ax.set_ylabel("loss (nats/token)" if metric is None else f"{metric} (score)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right" if metric is None else "upper left")  # a score rises with scale
    ax.grid(True, which="both", alpha=0.2)
    # No tight_layout: `save` crops to the drawn artists, and a layout pass (drawing every tick
    # label once more) cost 0.1-0.2 s of a fresh command-line run.
    return save(fig, path)


def _groups(
    ax: object, runs: pd.DataFrame, band: pd.DataFrame, forecast: pd.DataFrame | None, x: str, law: str, level: float
) -> None:
    """A colour per group: its runs, its law's median and ``level`` band, its forecasts."""
    lo, hi = column("loss", "lo", level), column("loss", "hi", level)
    for i, label in enumerate(dict.fromkeys(band["group"])):
        color = f"C{i % 10}"
        part = band[band["group"] == label]
        ax.fill_between(part[x], part[lo], part[hi], color=color, alpha=0.18, lw=0)
        ax.plot(part[x], part["loss_median"], color=color, lw=1.3, label=f"{label}")
        mine = runs[runs["group"] == label]
        ax.scatter(mine[x], mine["loss"], s=8, color=color, alpha=0.7, zorder=3)
        if forecast is not None and "group" in forecast.columns:
            ahead = forecast[forecast["group"] == label]
            rlo, rhi = column("run", "lo", level), column("run", "hi", level)
            if len(ahead) and rlo in ahead.columns:
                yerr = [ahead["run_median"] - ahead[rlo], ahead[rhi] - ahead["run_median"]]
                ax.errorbar(ahead[x], ahead["run_median"], yerr=yerr, fmt="D", color=color, capsize=3, zorder=4)
    ax.plot([], [], color="0.4", lw=0, marker="D", label=f"forecasts, {100 * level:g}% band of a new run")
    ax.fill_between([], [], [], color="0.4", alpha=0.18, lw=0, label=f"{law} law per group, {100 * level:g}% band")


def frontier(result: Result, table: pd.DataFrame, *, path: str | Path | None = None) -> Figure:
    """Compute-optimal N and D against compute, with bands, the fitted runs and the presets.

    Parameters
    ----------
    table : from :func:`bayes_scaling.optimal.frontier` over a range of budgets.
    """
    runs = result.data()
    fig = _figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name, color in (("N_opt", "C0"), ("D_opt", "C1")):
        ax.fill_between(table["C"], table[f"{name}_lo"], table[f"{name}_hi"], color=color, alpha=0.3, lw=0)
        ax.plot(table["C"], table[name], color=color, label=f"{name} (median, credible band)")
    ax.scatter(runs["C"], runs["N"], s=6, color="C0", alpha=0.4, label="runs: N")
    ax.scatter(runs["C"], runs["D"], s=6, color="C1", alpha=0.4, label="runs: D")
    named = [t for t in PRESETS.values() if t.N is not None]
    cs = [FLOPS_PER_PARAM_TOKEN * t.N * t.D for t in named]
    ax.scatter(cs, [t.N for t in named], marker="*", s=90, color="C0", edgecolor="k", zorder=4, label="named models: N")
    ax.scatter(cs, [t.D for t in named], marker="^", s=60, color="C1", edgecolor="k", zorder=4, label="named models: D")
    for t, c in zip(named, cs, strict=True):
        ax.annotate(t.name, (c, t.N), textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _decades(ax.xaxis)
    _decades(ax.yaxis)
    ax.set_xlabel("training compute C (FLOP)")
    ax.set_ylabel("parameters N, tokens D")
    ax.set_title("compute-optimal allocation: parameters N and tokens D")
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def isoflop(data: pd.DataFrame, table: pd.DataFrame, labels: np.ndarray, *, path: str | Path | None = None) -> Figure:
    """IsoFLOP curves: each budget's runs, fitted parabola in log N and its minimum.

    Parameters
    ----------
    data : runs with columns ``N``, ``loss`` (a Dataset's ``frame``).
    table : from :func:`bayes_scaling.optimal.isoflop`.
    labels : group labels from :func:`bayes_scaling.optimal.isoflop_groups`, shape (n,).
    """
    fig = _figure(figsize=(7, 4.5))
    ax = fig.subplots()
    from matplotlib import colormaps

    colors = colormaps["viridis"](np.linspace(0, 0.9, len(table)))
    for color, (_, row) in zip(colors, table.iterrows(), strict=True):
        part = data[labels == row["label"]]
        ax.scatter(part["N"], part["loss"], s=10, color=color)
        u = np.linspace(np.log(part["N"].min()) - row["centre"], np.log(part["N"].max()) - row["centre"], 100)
        ax.plot(
            np.exp(u + row["centre"]),
            np.exp(row["coef0"] + row["coef1"] * u + row["coef2"] * u**2),
            color=color,
            label=f"C = {row['C']:.2g}",
        )
        ax.errorbar(
            [row["N_opt"]],
            [row["loss_opt"]],
            xerr=[[row["N_opt"] - row["N_opt_lo"]], [row["N_opt_hi"] - row["N_opt"]]],
            fmt="o",
            color=color,
            mec="k",
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _decades(ax.xaxis)
    _scalar(ax.yaxis)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("IsoFLOP profiles: parabola in log N per budget, minimum with 90% interval")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save(fig, path)


def backtest(runs: pd.DataFrame, *, path: str | Path | None = None, metric: str | None = None) -> Figure:
    """Forecast against realized loss for held-out runs, one panel per mode, one colour per cutoff.

    Parameters
    ----------
    runs : the ``runs`` table of :func:`bayes_scaling.backtest` (``loss``, ``run_median``,
        ``run_lo90``, ``run_hi90``, ``cutoff``, ``mode``).
    metric : the name of the score whose ``-log`` was fitted: realized runs and forecasts drawn as that score.
    """
    if metric is not None:
        runs = on_score_scale(runs)
    modes = list(dict.fromkeys(runs["mode"]))
    fig = _figure(figsize=(5 * len(modes), 4.5))
    axes = np.atleast_1d(fig.subplots(1, len(modes), sharex=True, sharey=True))
    lims = [runs[["loss", "run_lo90"]].min().min() * 0.99, runs[["loss", "run_hi90"]].max().max() * 1.01]
    for ax, mode in zip(axes, modes, strict=True):
        part = runs[runs["mode"] == mode]
        for color, cutoff in zip(("C0", "C1", "C2", "C3", "C4"), dict.fromkeys(part["cutoff"]), strict=False):
            sel = part[part["cutoff"] == cutoff]
            inside = np.mean((sel["run_lo90"] <= sel["loss"]) & (sel["loss"] <= sel["run_hi90"]))
            ax.errorbar(
                sel["loss"],
                sel["run_median"],
                yerr=[sel["run_median"] - sel["run_lo90"], sel["run_hi90"] - sel["run_median"]],
                fmt="o",
                ms=3,
                color=color,
                alpha=0.6,
                lw=0.8,
                label=f"cutoff {cutoff:.2g}: {100 * inside:.0f}% inside 90% band",
            )
        ax.plot(lims, lims, color="k", lw=0.8)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_xlabel("realized loss" if metric is None else f"realized {metric} (score)")
        ax.set_title(f"{mode} forecasts of held-out runs")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("forecast (median, 90% band of a new run)")
    fig.tight_layout()
    return save(fig, path)


def sbc(calibration: Calibration, *, path: str | Path | None = None) -> Figure:
    """Rank histograms of :func:`bayes_scaling.sbc.calibrate`, one panel per parameter: the expected count
    (solid) and its 99% band (dashed)."""
    from scipy import stats

    names = list(calibration.ranks.columns)
    fig = _figure(figsize=(2.6 * len(names), 2.6), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    n = len(calibration.ranks)
    expected = n / calibration.bins
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / calibration.bins)
    edges = np.linspace(0, calibration.draws + 1, calibration.bins + 1)
    for ax, name in zip(axes, names, strict=True):
        ax.hist(calibration.ranks[name], bins=edges, color="C0", alpha=0.7)
        ax.axhline(expected, color="k", lw=0.8)
        for level in (lo, hi):  # 99% band of one bin's count under uniform ranks
            ax.axhline(level, color="k", lw=0.8, ls="--")
        row = calibration.table.loc[name]
        ax.set_title(f"{name}: p = {row['p_value']:.2g}", fontsize=9, color="k" if row["passed"] else "C3")
        ax.set_xlabel("rank of the true value")
    axes[0].set_ylabel("simulations")
    fig.suptitle(f"Simulation-based calibration: {n} simulations, {calibration.draws} draws each", fontsize=10)
    return save(fig, path)


def distance(runs: pd.DataFrame, target: dict, *, path: str | Path | None = None) -> Figure:
    """Where a target sits relative to the runs, over parameters and tokens, coloured by compute."""
    fig = _figure(figsize=(5.5, 4.2), layout="tight")
    ax = fig.subplots()
    points = ax.scatter(runs["N"], runs["D"], c=np.log10(runs["C"]), s=12, cmap="viridis", label="runs")
    ax.scatter([target["N"]], [target["D"]], marker="*", s=180, color="C3", label=f"target: {target['target']}")
    fig.colorbar(points, ax=ax, label="log10 compute (FLOP)")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="training tokens D")
    _log_labels(ax.xaxis, np.append(runs["N"].to_numpy(np.float64), target["N"]))
    _log_labels(ax.yaxis, np.append(runs["D"].to_numpy(np.float64), target["D"]))
    ax.set_title("Where the target sits relative to the runs", fontsize=10)
    ax.legend(fontsize=8)
    return save(fig, path)


def residuals(table: pd.DataFrame, pit: np.ndarray, *, path: str | Path | None = None) -> Figure:
    """Posterior predictive checks: residual log loss against N, D and C, and the LOO-PIT histogram.

    Parameters
    ----------
    table : one row per run with ``residual`` (observed minus posterior median log loss) and the inputs
        ``N``, ``D``, ``C`` it has (a panel each).
    pit : LOO-PIT value of each run.
    """
    names = [name for name in ("N", "D", "C") if name in table.columns]
    fig = _figure(figsize=(3 * len(names) + 3, 3.2), layout="tight")
    axes = fig.subplots(1, len(names) + 1)
    for ax, name in zip(axes[:-1], names, strict=True):
        ax.scatter(table[name], table["residual"], s=6)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=name, ylabel="residual log loss")
        _log_labels(ax.xaxis, table[name].to_numpy(np.float64))
    axes[-1].hist(pit, bins=10, range=(0, 1), color="C1")
    axes[-1].set(xlabel="LOO-PIT", ylabel="runs", title="uniform if calibrated")
    return save(fig, path)


def design(table: pd.DataFrame, runs: pd.DataFrame, *, path: str | Path | None = None) -> Figure:
    """The candidate map of a sweep design over N and D, coloured by expected gain per FLOP, with the runs and picks.

    Parameters
    ----------
    table : the picks from :func:`bayes_scaling.design.design` (its ``attrs["candidates"]`` hold
        every candidate's first-round ``gain_per_flop``).
    runs : the fitted runs, columns ``N``, ``D`` (and ``C``).
    """
    from matplotlib.colors import LogNorm

    pool = table.attrs["candidates"]
    by_compute = not np.isfinite(pool["N"].to_numpy(np.float64)).all()
    x, y = ("C", "gain_per_flop") if by_compute else ("N", "D")
    fig = _figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    gain = pool["gain_per_flop"].to_numpy(np.float64)
    useful = gain > 0
    if useful.any():
        norm = LogNorm(vmin=gain[useful].min(), vmax=gain[useful].max())
        points = ax.scatter(
            pool[x][useful], pool[y][useful], c=gain[useful], norm=norm, s=18, cmap="viridis", marker="s", lw=0
        )
        fig.colorbar(points, ax=ax, label=f"expected drop of the {table.attrs['objective']} per FLOP (first pick)")
    ax.scatter(pool[x][~useful], pool[y][~useful], s=10, color="0.85", marker="s", lw=0, label="no gain / too dear")
    if not by_compute:
        ax.scatter(runs["N"], runs["D"], s=8, color="k", alpha=0.6, label="runs so far")
        ax.scatter(table["N"], table["D"], marker="*", s=200, color="C3", edgecolor="k", zorder=4, label="picks")
        for _, row in table.iterrows():
            ax.annotate(str(int(row["pick"])), (row["N"], row["D"]), textcoords="offset points", xytext=(6, 4))
        ax.set(xlabel="parameters N", ylabel="training tokens D")
    else:
        ax.scatter(table["C"], table["gain_per_flop"], marker="*", s=200, color="C3", edgecolor="k", label="picks")
        ax.set(xlabel="training compute C (FLOP)", ylabel="expected gain per FLOP")
    ax.set(xscale="log", yscale="log")
    target = table.attrs["target"].iloc[0]
    before, after = table.attrs["width90_before"], table["width90_after"]
    last = f" -> {after.iloc[-1]:.3g} after {len(table)} runs ({table['C'].sum():.3g} FLOP)" if len(table) else ""
    ax.set_title(f"next runs for {target['target']}: 90% band width {before:.3g}{last} nats", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return save(fig, path)


def overtrained(table: pd.DataFrame, *, path: str | Path | None = None) -> Figure:
    """Loss against compute along fixed tokens-per-parameter ratios M, beside the compute-optimal frontier.

    Parameters
    ----------
    table : from :func:`bayes_scaling.optimal.overtrained` over a range of budgets and a few ratios.
    """
    fig = _figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    first = table[table["tokens_per_param"] == table["tokens_per_param"].iloc[0]]
    left.fill_between(first["C"], first["loss_opt_lo"], first["loss_opt_hi"], color="k", alpha=0.15, lw=0)
    left.plot(first["C"], first["loss_opt"], color="k", lw=2, label="compute-optimal")
    for i, (m, rows) in enumerate(table.groupby("tokens_per_param")):
        color = f"C{i}"
        left.fill_between(rows["C"], rows["loss_lo"], rows["loss_hi"], color=color, alpha=0.2, lw=0)
        left.plot(rows["C"], rows["loss"], color=color, label=f"M = {m:g} tokens/param")
        right.fill_between(
            rows["C"], rows["compute_multiplier_lo"], rows["compute_multiplier_hi"], color=color, alpha=0.2, lw=0
        )
        right.plot(rows["C"], rows["compute_multiplier"], color=color, label=f"M = {m:g}")
    left.set(xscale="log", xlabel="training compute C (FLOP)", ylabel="expected loss (nats/token)")
    left.set_title("loss along fixed tokens-per-parameter ratios", fontsize=10)
    right.set(xscale="log", yscale="log", xlabel="training compute C (FLOP)", ylabel="compute multiplier")
    _readable(right.yaxis, table["compute_multiplier_lo"].min(), table["compute_multiplier_hi"].max(), count=6)
    right.set_title("compute needed at ratio M to match the compute-optimal loss", fontsize=10)
    for ax in (left, right):
        _decades(ax.xaxis)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)
