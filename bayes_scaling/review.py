"""Extrapolation risk review: every reason a forecast far beyond the data may be wrong, as tables.

:func:`review` gathers, for one fitted law and one target: sampler health, the distance
from the data, the forecast and what drives its width, backtests (refit below compute
cutoffs, forecast the runs above), model-form and prior sensitivity, and posterior
predictive checks; then a verdict by a written rule. It returns a :class:`Review`: plain
data (every table a DataFrame, a note per section, the reasons and the verdict). Turning
it into a page (HTML, Markdown, JSON, figures) is :mod:`bayes_scaling.report`'s job, which
never refits.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.special

from . import _calibration
from ._geometry import beyond
from ._model import design, padded_length
from ._sampler import Settings
from .backtest import _backtest, checked_cutoffs, default_cutoffs, split
from .compare import compare, loo, ruled_out
from .data import Dataset, checked_seed
from .diagnostics import Health, Thresholds
from .fit import REFIT_DRAWS, _as_dataset, _fit
from .forecast import FAR, axis_of, curve, expected, forecast, predictive, stacked, targets, with_scores
from .laws import Law
from .laws import get as get_law
from .priors import resolve
from .result import NEW, Result

SECTIONS = (
    "Sampler health",
    "Distance",
    "Forecast",
    "Backtests",
    "Model-form sensitivity",
    "Prior sensitivity",
    "Posterior predictive checks",
    "Verdict",
)
#: A prior change that moves the forecast median by more than this share of the 95% band is flagged.
PRIOR_SHIFT_MAX = 0.25
#: A residual trend against log N, log D or log C with |slope / se| above this is flagged.
TREND_Z_MAX = 3.0
RULE = (
    "unusable if any sampler-health check fails. Otherwise one point each for: a sampler-health warning; "
    "backtest 90% bands covering significantly fewer than 90% of held-out runs at any cutoff (the exact 95% "
    "interval of the coverage lies below 90%; two points: the central evidence); "
    "a target more than 2 decades of compute beyond the largest run (two points beyond 6 decades); a target "
    "further beyond the data than "
    "the longest backtest reached; laws that disagree (stacked 95% band over 1.5x as wide as this law's, "
    "or the median of another law that PSIS-LOO does not rule out outside it: ruled out means elpd below the "
    "best's by over 4 and over 2 standard errors); a prior change moving the median by more than "
    f"{PRIOR_SHIFT_MAX:.0%} of the 95% band; a residual trend (|slope/se| > {TREND_Z_MAX:g}). "
    "0 points: low; 1-2: medium; 3 or more: high."
)


@dataclass(frozen=True)
class Review:
    """An extrapolation risk review (see :func:`review`): data only; :mod:`bayes_scaling.report` renders it.

    Attributes
    ----------
    target : the target's ``target`` name, ``N``, ``D``, ``C``.
    verdict : ``"low"``, ``"medium"``, ``"high"`` or ``"unusable"``.
    reasons : the findings that scored points (or made the fit unusable), one sentence each.
    rule : the written rule the verdict follows.
    law : the reviewed law's ``name``, ``formula``, the ``axis`` its curve is drawn against, and the ``metric``:
        for a law fitted to ``-log(score)``, the score's name (None for a loss); its ``forecast`` table then
        also holds the forecast as the score (``score_*``, ``run_score_*``), and the report draws it so.
    tables : every table, by key: ``health``, ``distance``, ``forecast``, ``drivers``,
        ``backtests``, ``backtest_runs``, ``models``, ``priors``, ``residual_trends``,
        ``residuals`` (per run: inputs and residual log loss), ``loo_pit``, and for the
        figures ``runs`` (the fitted runs) and ``path`` (bands along the law's curve).
    notes : a sentence per section, by section title.
    """

    target: dict
    verdict: str
    reasons: tuple[str, ...]
    rule: str
    law: dict[str, str | None]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class Finding(NamedTuple):
    """What one section found: its tables, its note, and the points it scores with their reasons."""

    tables: dict[str, pd.DataFrame]
    note: str
    points: tuple[tuple[int, str], ...] = ()


class Context(NamedTuple):
    """What every section reads: the fit, its runs, the target, and how to refit and forecast."""

    result: Result
    data: Dataset
    points: pd.DataFrame
    mode: str
    forecast: pd.DataFrame
    settings: Settings
    seed: int
    pad: int
    group: str | None = None


def review(
    result: Result,
    *,
    preset: str | None = None,
    N: float | None = None,
    D: float | None = None,
    flops: float | None = None,
    U: float | None = None,
    cutoffs: Sequence[float] | float | None = None,
    laws: Sequence[str] | None = None,
    prior_scales: Sequence[float] = (0.5, 2.0),
    seed: int = 0,
    settings: Settings | None = None,
    thresholds: Thresholds | None = None,
    group: str | None = None,
    **options: object,
) -> Review:
    """Review the risk of extrapolating ``result`` to one target.

    Parameters
    ----------
    result : the fit to review (its runs are refitted for backtests and sensitivity).
    preset, N, D, flops : the target: a preset name (``"gpt4"``: 2.1e25 FLOP), an (N, D)
        point, or a compute budget (split compute-optimally).
    U : the target's unique tokens, with N and D: a run that repeats its data over D/U epochs (read by the
        ``data-constrained`` law; the other families see D).
    cutoffs : backtest cutoffs in compute, FLOP (default: the 50%, 70% and 85% quantiles
        of the runs' compute, rounded to one significant digit: :func:`~bayes_scaling.backtest.default_cutoffs`).
    laws : other law families for the model-form section (default: those of ``chinchilla``, ``kaplan``,
        ``power-c`` whose inputs every run and the target give, besides this one; a family named here
        that needs an input they do not give is an error, raised before any refit).
    prior_scales : factors applied to every prior's scale for the prior-sensitivity refits.
    seed : seeds every refit and forecast.
    settings, options : sampler settings of the refits (default: the reviewed fit's own).
    thresholds : the convergence thresholds of the health section (default: the package's).
    group : for a fit of runs in groups, the group whose target is reviewed (or ``"new"``); the
        model-form section then also compares sharing, pooling and separating by PSIS-LOO.

    Returns
    -------
    Review. When a sampler-health check fails, the verdict is ``unusable`` and the
    sections that need refits are skipped.
    """
    seed = checked_seed(seed)
    cutoffs = None if cutoffs is None else checked_cutoffs(cutoffs)  # before any refit
    point = targets(result, N=N, D=D, flops=flops, preset=preset, group=group, U=U)
    if len(point) != 1:
        raise ValueError("review takes exactly one target")
    everything = result.data()
    given = set(_given(everything)) & set(_given(point))  # the inputs every run and the target give
    if laws is None:  # the default families that can forecast this target (a score's runs may give compute only)
        defaults = ("chinchilla", "kaplan", "power-c")
        laws = [n for n in defaults if n != result.law.name and {*get_law(n).inputs} <= given]
    for name in laws:  # before any refit: a family named that cannot forecast this target
        missing = [k for k in get_law(name).inputs if k not in given]
        if missing:
            raise ValueError(
                f"law {name!r} needs {', '.join(missing)} for every run and at the target, which "
                f"{'give' if len(given) != 1 else 'gives'} {', '.join(sorted(given)) or 'none of N, D, C'} only; "
                "leave it out of laws, or give the target as N and D"
            )
    points = point[["target", "N", "D", "C", *(["U"] if U is not None else [])]]
    if result.labels:
        points = points.assign(group=group)
    mode = "calibrated" if _calibration.calibrated(result) else "plain"
    table = forecast(result, points, levels=(0.5, 0.8, 0.9, 0.95), seed=seed, mode=mode)
    columns = {"N": "N", "D": "D", "C": "C", "loss": "loss", "group": "group" if result.labels else None}
    ctx = Context(
        result,
        Dataset(everything, "runs of the reviewed fit", columns),
        points,
        mode,
        table,
        Settings.of(settings if settings is not None else result.settings, **options),
        seed,
        padded_length(len(everything)),
        group,
    )
    cutoffs = default_cutoffs(ctx.data, result.law) if cutoffs is None else cutoffs
    split(ctx.data, result.law, result.spec, cutoffs)  # a cutoff that leaves too few runs: said before any refit
    runs = result.data(group)
    target = {k: (v if k == "target" else float(v)) for k, v in point.iloc[0].to_dict().items()}
    health = result.health(thresholds)
    found = {
        "Sampler health": _health(health),
        "Distance": _distance(ctx),
        "Forecast": _forecast(ctx),
    }
    decades = float(found["Distance"].tables["distance"].set_index("input").loc["C", "decades_beyond"])
    if health.level == "fail":
        failed = ", ".join(c.check for c in health.checks if c.status == "fail")
        reasons = (f"THE SAMPLER FAILED ({failed}): do not use this forecast; refit with longer chains",)
        skipped = "Skipped: the sampler failed; fix the fit before reviewing its extrapolation."
        found |= {section: Finding({}, skipped) for section in SECTIONS[3:7]}
        verdict = "unusable"
    else:
        # The refitting sections run at once, in threads (compiled programs release Python's lock): on a
        # machine with several cores their refits share it. Refits of one law share one compiled sampler.
        with ThreadPoolExecutor(3) as pool:
            pending = {
                "Backtests": pool.submit(_backtests, ctx, cutoffs, decades),
                "Model-form sensitivity": pool.submit(_models, ctx, laws),
                "Prior sensitivity": pool.submit(_priors, ctx, prior_scales),
            }
            checks = _ppc(ctx)
            found |= {section: job.result() for section, job in pending.items()}
        found["Posterior predictive checks"] = checks
        scored = [p for f in found.values() for p in f.points]
        score = sum(n for n, _ in scored)
        reasons = tuple(reason for _, reason in scored)
        verdict = "low" if score == 0 else "medium" if score <= 2 else "high"
    tables = {"runs": runs, "path": curve(result, target["C"], group=group)}
    for f in found.values():
        tables |= f.tables
    notes = {section: f.note for section, f in found.items()} | {"Verdict": verdict}
    law = {
        "name": result.law.name,
        "formula": result.law.formula or result.law.name,
        "axis": axis_of(result.law),
        "metric": result.metric,
    }
    return Review(target, verdict, reasons, RULE, law, tables, notes)


def _as_read(law: Law, points: pd.DataFrame) -> pd.DataFrame:
    """``points`` as ``law`` reads them: without unique tokens for a law that reads every token as fresh (the
    reviewed law's forecast said so once; its refits and the other families need not say it again)."""
    return points if "U" in law.inputs else points.drop(columns="U", errors="ignore")


def _health(health: Health) -> Finding:
    points = ()
    if health.level == "warn":
        warned = ", ".join(
            f"{c.check} {c.value:.4g} (passes {c.threshold.split(' (')[0]})"
            for c in health.checks
            if c.status == "warn"
        )
        points = ((1, f"sampler-health warning: {warned}"),)
    return Finding(
        {"health": health.table()}, "Convergence checks of the reviewed fit, each against its threshold.", points
    )


def _distance(ctx: Context) -> Finding:
    runs = ctx.result.data(ctx.group)
    target = ctx.points.iloc[0]
    rows = [
        {
            "input": name,
            "largest_run": float(runs[name].max()),
            "target": float(target[name]),
            "decades_beyond": float(beyond(runs, ctx.points, [name])[0, 0]),
        }
        for name in ("N", "D", "C")
        if np.isfinite(target[name]) and runs[name].notna().any()  # runs of a law of C alone may give only C
    ]
    table = pd.DataFrame(rows)
    decades = float(table.set_index("input").loc["C", "decades_beyond"])
    points = ()
    if decades > FAR:
        far = (
            f"THE TARGET LIES {decades:.1f} DECADES OF COMPUTE BEYOND THE LARGEST RUN, further than any scaling law "
            "has been checked: read the bands as the law's arithmetic, not a forecast"
        )
        points = ((2, far),)
    elif decades > 2:
        points = ((1, f"the target is {decades:.1f} decades of compute beyond the largest run"),)
    return Finding(
        {"distance": table}, f"The target lies {decades:.2f} decades of compute beyond the largest run.", points
    )


def _forecast(ctx: Context) -> Finding:
    result, table = ctx.result, ctx.forecast.copy()
    floor = result.law.irreducible
    e = float(np.median(result.draws(ctx.group)[floor])) if floor is not None else 0.0
    width = float(table["loss_hi95"].iloc[0] - table["loss_lo95"].iloc[0])
    table["band95_over_reducible"] = width / max(float(table["loss_median"].iloc[0]) - e, 1e-12)
    note = (
        f"Expected loss at the target ({ctx.mode} mode): {table['loss_median'].iloc[0]:.4f} "
        f"(95%: {table['loss_lo95'].iloc[0]:.4f}-{table['loss_hi95'].iloc[0]:.4f}); the 95% band is "
        f"{table['band95_over_reducible'].iloc[0]:.0%} of the reducible loss. Drivers: share of the "
        "predictive variance explained by each parameter alone (binned draws), plain mode."
    )
    if result.metric is not None:
        table = with_scores(table)
        note = (
            f"The law is fitted to -log({result.metric}): as the score, the target's expected "
            f"{result.metric} is {table['score_median'].iloc[0]:.4f} (95%: {table['score_lo95'].iloc[0]:.4f}-"
            f"{table['score_hi95'].iloc[0]:.4f}; the score_* and run_score_* columns); every other number of this "
            f"review is on the fitted scale, -log({result.metric}). "
        ) + note
    return Finding({"forecast": table, "drivers": _drivers(ctx)}, note)


def _drivers(ctx: Context) -> pd.DataFrame:
    """First-order share of the predictive variance of log loss explained by each parameter (binned draws)."""
    loss = predictive(ctx.result, ctx.points, seed=ctx.seed, mode="plain").loss
    y = np.log(loss[:, 0])
    draws = ctx.result.draws(ctx.group)
    total = float(np.var(y))
    rows = []
    for name in ctx.result.law.params:
        x = draws[name][: len(y)]
        edges = np.quantile(x, np.linspace(0, 1, 21))
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 19)
        means = np.array([y[idx == b].mean() for b in range(20) if np.any(idx == b)])
        counts = np.array([np.sum(idx == b) for b in range(20) if np.any(idx == b)])
        share = float(np.sum(counts * (means - y.mean()) ** 2) / len(y) / total) if total > 0 else 0.0
        rows.append({"parameter": name, "variance_share": share})
    return pd.DataFrame(rows).sort_values("variance_share", ascending=False, ignore_index=True)


def _backtests(ctx: Context, cutoffs: Sequence[float], decades: float) -> Finding:
    if not cutoffs:
        return Finding({}, "Skipped: no cutoffs given.")
    bt = _backtest(
        ctx.data,
        ctx.result.law,
        ctx.result.spec,
        cutoffs,
        ctx.settings,
        seed=ctx.seed,
        calibrate=ctx.mode == "calibrated",
        pad=ctx.pad,
        quiet=True,
        keep=REFIT_DRAWS,
    )
    table = bt.table.rename(columns={"cutoff": "cutoff_flops"})
    points, said = backtest_points(table, ctx.mode, decades)
    note = (
        f"Refit below each compute cutoff ({REFIT_DRAWS} draws per chain), forecast the larger runs, in {ctx.mode} "
        "mode (the mode of this forecast). A cutoff counts as miscalibrated only when the exact 95% interval of its "
        f"90% bands' coverage (coverage_90_lo to coverage_90_hi) lies below 90%. {said}"
    )
    return Finding({"backtests": table, "backtest_runs": bt.runs}, note, points)


def backtest_points(table: pd.DataFrame, mode: str, decades: float) -> tuple[tuple[tuple[int, str], ...], str]:
    """The verdict's points from backtests (the rows of ``mode``), each with the numbers behind it, and a sentence.

    Two points when some cutoff's 90% bands covered significantly fewer held-out runs than 90% (the exact
    95% interval of the coverage lies below 90%); a cutoff with too few held-out runs to tell counts for
    nothing either way. One point when the target lies further out than every backtest reached.
    """
    used = table[table["mode"] == mode]
    points = []
    low = used[used["coverage_90_hi"] < 0.9]
    if len(low):
        named = "; ".join(
            f"cutoff {r.cutoff_flops:.3g}: {r.covered_90} of {r.n_test} held-out runs ({r.coverage_90:.0%}, 95% "
            f"interval {r.coverage_90_lo:.0%}-{r.coverage_90_hi:.0%})"
            for r in low.itertuples()
        )
        points.append((2, f"backtests miscalibrated: the 90% bands covered significantly under 90% ({named})"))
    furthest = float(used["distance_decades"].max())
    if decades > furthest:
        points.append((1, f"the target ({decades:.1f} decades) is further out than any backtest ({furthest:.1f})"))
    weak = used[(used["coverage_90_lo"] < 0.9) & (used["coverage_90_hi"] >= 0.9) & (used["coverage_90"] < 0.9)]
    said = f"The longest backtest reached {furthest:.2f} decades, the target is {decades:.2f} decades out."
    if len(weak):
        said += " Too few held-out runs to tell at cutoff(s) " + ", ".join(
            f"{r.cutoff_flops:.3g} ({r.covered_90} of {r.n_test} covered, 95% interval {r.coverage_90_lo:.0%}-"
            f"{r.coverage_90_hi:.0%})"
            for r in weak.itertuples()
        )
        said += ": they count for nothing."
    return tuple(points), said


def _models(ctx: Context, names: Sequence[str]) -> Finding:
    """Other law families, pooling choices (groups) and, when the runs know their embedding parameters, the
    other parameter count: each refitted and forecast at the target."""
    found = _laws(ctx, names)
    if "N_embedding" not in ctx.data.frame.columns or "N" not in ctx.result.law.inputs:
        return found
    table, said = _param_counts(ctx)
    return Finding(found.tables | {"parameter_counts": table}, f"{found.note} {said}".strip(), found.points)


def _param_counts(ctx: Context) -> tuple[pd.DataFrame, str]:
    """The reviewed law refitted on the other parameter count (total or non-embedding), forecast at the target.

    The embedding parameters at the target are extrapolated from the runs' (a power of N fitted by least
    squares on log scales); the target keeps its D and compute.
    """
    result, runs = ctx.result, ctx.data.frame
    counted = result.params_counted
    other = "non-embedding" if counted == "total" else "total"
    sign = -1.0 if counted == "total" else 1.0
    emb = runs["N_embedding"].to_numpy()
    slope, intercept = np.polyfit(np.log(runs["N"].to_numpy()), np.log(emb), 1)
    n = float(ctx.points["N"].iloc[0])
    at_target = float(np.exp(intercept + slope * np.log(n)))
    rows = [{"params": counted, "as_fitted": True, "N": n, "N_embedding": at_target, **_band(ctx.forecast)}]
    moved, n_other = runs.assign(N=runs["N"].to_numpy() + sign * emb), n + sign * at_target
    if n_other <= 0 or not (moved["N"] > 0).all():
        return pd.DataFrame(rows), f"Not refitted on {other} parameter counts: the embeddings exceed the count."
    data = Dataset(moved, f"{ctx.data.source} ({other} parameters)", ctx.data.columns | {"params": other})
    refit = _fit(data, result.law, result.spec, ctx.settings, ctx.seed, ctx.mode == "calibrated", quiet=True)
    band = forecast(refit, _as_read(refit.law, ctx.points.assign(N=n_other)), seed=ctx.seed, mode=ctx.mode)
    rows.append({"params": other, "as_fitted": False, "N": n_other, "N_embedding": at_target, **_band(band)})
    table = pd.DataFrame(rows)
    own, moved_to = rows[0]["loss_median"], rows[1]["loss_median"]
    width = rows[0]["loss_hi95"] - rows[0]["loss_lo95"]
    said = (
        f"Fitted on {counted} parameter counts; refitted on {other} ones (embedding parameters at the target "
        f"extrapolated from the runs as N^{slope:.2f}: {at_target:.3g}), the forecast median moves by "
        f"{moved_to / own - 1:+.1%} ({(moved_to - own) / width:+.0%} of this forecast's 95% band)."
    )
    return table, said


def _band(table: pd.DataFrame) -> dict[str, float]:
    """The median and 95% band of a one-row forecast table."""
    row = table.iloc[0]
    return {k: float(row[k]) for k in ("loss_median", "loss_lo95", "loss_hi95")}


def _laws(ctx: Context, names: Sequence[str]) -> Finding:
    result = ctx.result
    fits = [result]
    others = [law for law in map(get_law, names) if law.name != result.law.name]

    def refit(law: Law) -> Result:
        data, spec = _as_dataset(ctx.data, law), resolve(law)
        # A law that reads the runs as other observations (replicates of shared configurations, or not) cannot
        # vote: PSIS-LOO compares fits of the same observations. Its band is shown from a plain fit, without
        # the internal refits of the calibrated mode. Each keeps REFIT_DRAWS draws per chain, as a refit (its
        # band and PSIS-LOO from 4 x 250 draws), and goes on to all where those so much as warn: the table
        # shows its health.
        votes = design(data, law, spec).replicates == result.design.replicates
        calibrate = votes and ctx.mode == "calibrated"
        return _fit(data, law, spec, ctx.settings, ctx.seed, calibrate, quiet=True, keep=REFIT_DRAWS, bar="warn")

    with ThreadPoolExecutor(max(len(others), 1)) as pool:
        fits += list(pool.map(refit, others))
    if len(fits) < 2:
        if not result.labels:
            return Finding({}, "No other law family applies to these runs.")
        pooling, said, points = _pooling(ctx)
        return Finding({"pooling": pooling}, "No other law family compared. " + said, points)
    health = [r.health() for r in fits]
    why_not = {}
    for r, h in zip(fits, health, strict=True):
        if r is result:
            continue
        if h.level == "fail":
            why_not[r.law.name] = f"fit failed: {h.problems[0]}"
        elif r.design.replicates != result.design.replicates:
            # PSIS-LOO compares fits of the same observations: a law of fewer inputs may read runs that share
            # them (runs of one compute budget, for a law of C) as replicates of one configuration, or not.
            why_not[r.law.name] = (
                "reads the runs as "
                + ("replicates of shared configurations" if r.design.replicates else "distinct configurations")
                + f", unlike {result.law.name}: LOO compares fits of the same observations only"
            )
    voters = [r for r in fits if r.law.name not in why_not]
    alone = {"weight": [1.0], "elpd_diff": [0.0], "dse": [0.0], "ruled_out": [False]}
    scores = compare(voters) if len(voters) > 1 else pd.DataFrame(alone, index=[result.law.name])
    weights = scores["weight"]
    rows = []
    for r, h in zip(fits, health, strict=True):
        mode = "calibrated" if _calibration.calibrated(r) else "plain"
        band = forecast(r, _as_read(r.law, ctx.points), seed=ctx.seed, mode=mode).iloc[0]
        rows.append(
            {
                "law": r.law.name,
                "mode": mode,
                "health": h.level,
                "votes": r.law.name in weights.index,
                "why_not": why_not.get(r.law.name, ""),
                "loo_weight": float(weights.get(r.law.name, np.nan)),
                "elpd_diff": float(scores["elpd_diff"].get(r.law.name, np.nan)),
                "dse": float(scores["dse"].get(r.law.name, np.nan)),
                "loss_median": band["loss_median"],
                "loss_lo95": band["loss_lo95"],
                "loss_hi95": band["loss_hi95"],
            }
        )
    # The stacked band mixes the voting laws that PSIS-LOO does not rule out (their stacking weights,
    # renormalized): a law the runs reject can hold a few percent of stacking weight (Student-t tails) and
    # would stretch the band with a forecast the data do not support.
    kept = weights[~scores["ruled_out"]]  # as compare's stack_weight, not yet normalized
    kept = kept if kept.sum() > 0 else pd.Series(1.0, index=kept.index)
    mix = stacked(voters, kept, ctx.points, seed=ctx.seed, mode=ctx.mode).table().iloc[0]
    rows.append(
        {
            "law": "stacked",
            "mode": ctx.mode,
            "health": "",
            "votes": True,
            "why_not": "",
            "loo_weight": 1.0,
            "elpd_diff": np.nan,
            "dse": np.nan,
            "loss_median": mix["loss_median"],
            "loss_lo95": mix["loss_lo95"],
            "loss_hi95": mix["loss_hi95"],
        }
    )
    table = pd.DataFrame(rows)
    points, note = model_points(table, result.law.name, result.metric)
    tables = {"models": table}
    if result.labels:
        pooling, said, more = _pooling(ctx)
        tables["pooling"] = pooling
        note += " " + said
        points += more
    return Finding(tables, note, points)


def _pooling(ctx: Context) -> tuple[pd.DataFrame, str, tuple[tuple[int, str], ...]]:
    """The reviewed fit beside the same law with every parameter shared, and with what varies separate:
    PSIS-LOO weights and forecasts. One point when the data clearly prefer another choice."""
    result = ctx.result
    varying = [p for p in result.law.params if result.design.mode(p) != "shared"]
    variants = {"as fitted": result}
    choices = {"all shared": dict.fromkeys(result.law.params, "shared")}
    if varying:
        choices[f"{', '.join(varying)} separate"] = dict.fromkeys(varying, "separate")
    for name, pooling in choices.items():
        spec = result.spec.with_pooling(pooling)
        try:
            variants[name] = _fit(ctx.data, result.law, spec, ctx.settings, ctx.seed, False, quiet=True)
        except ValueError:  # too few runs in some group for what it would have of its own
            continue
    table = compare(list(variants.values()), names=list(variants))
    rows = []
    none = pd.Series(np.nan, index=["loss_median", "loss_lo95", "loss_hi95"])
    for name, r in variants.items():
        # A parameter separate per group has no population value: no forecast for a new group (LOO still compares).
        alone = ctx.group == NEW and any(r.design.mode(p) == "separate" for p in r.law.params)
        band = none if alone else forecast(r, _as_read(r.law, ctx.points), seed=ctx.seed, mode="plain").iloc[0]
        entry = table.loc[name]
        rows.append(
            {
                "pooling": name,
                "elpd_loo": float(entry["elpd_loo"]),
                "elpd_diff": float(entry["elpd_diff"]),
                "dse": float(entry["dse"]),
                "loo_weight": float(entry["weight"]),
                "health": r.health().level,
                "loss_median": band["loss_median"],
                "loss_lo95": band["loss_lo95"],
                "loss_hi95": band["loss_hi95"],
            }
        )
    pooling = pd.DataFrame(rows)
    own = pooling.set_index("pooling").loc["as fitted"]
    said = (
        "Pooling across groups compared by PSIS-LOO (plain forecasts): "
        + "; ".join(f"{r.pooling} elpd {r.elpd_loo:.1f} (weight {r.loo_weight:.2f})" for r in pooling.itertuples())
        + "."
        + (" A fit with separate parameters forecasts no new group." if pooling["loss_median"].isna().any() else "")
    )
    points = ()
    if ruled_out(float(own["elpd_diff"]), float(own["dse"])):
        best = table.index[0]
        points = (
            (
                1,
                f"the data prefer '{best}' to the pooling fitted: elpd lower by {own['elpd_diff']:.1f} "
                f"(standard error {own['dse']:.1f})",
            ),
        )
    return pooling, said, points


def model_points(table: pd.DataFrame, law: str, metric: str | None = None) -> tuple[tuple[tuple[int, str], ...], str]:
    """The verdict's point from the model-form section, with the numbers behind it, and a sentence.

    ``table`` has a row per law (``law``, ``votes``, ``why_not``, ``loss_median``, ``loss_lo95``,
    ``loss_hi95``, and from PSIS-LOO ``elpd_diff`` and ``dse``, each law's elpd below the best's and the
    standard error of that difference) and a ``stacked`` row (the mixture of the laws that vote and that
    PSIS-LOO does not rule out). Only laws
    whose fits passed or only warned on the convergence checks, and that read the runs as the same
    observations (a law of compute alone may read runs of one budget as replicates), vote; the others are
    listed with their reason. One point when the stacked 95% band is over 1.5x as wide as ``law``'s, or
    the median of another voting law that the runs do not rule out (:func:`ruled_out`) lies outside
    ``law``'s 95% band: a law the data clearly reject says little about where the loss goes beyond them.
    ``metric``: the score's name for a law fitted to ``-log(score)``: the sentences quote bands and medians
    as the score (``exp(-loss)``; the width ratio stays the fitted scale's).
    """
    rows = table.set_index("law")
    own, mix = rows.loc[law], rows.loc["stacked"]
    lo, hi = float(own["loss_lo95"]), float(own["loss_hi95"])
    ratio = (mix["loss_hi95"] - mix["loss_lo95"]) / (hi - lo)

    def value(v: float) -> str:
        return f"{np.exp(-v):.4g}" if metric else f"{v:.4g}"

    def band(a: float, b: float) -> str:
        return f"{metric} {value(b)}-{value(a)}" if metric else f"{value(a)}-{value(b)}"

    others = rows.drop(index=[law, "stacked"])
    voting, silent = others[others["votes"]], others[~others["votes"].astype(bool)]
    rejected = [
        name
        for name, row in voting.iterrows()
        if ruled_out(float(row.get("elpd_diff", np.nan)), float(row.get("dse", np.nan)))
    ]
    counted = voting.drop(index=rejected)
    outside = counted[(counted["loss_median"] < lo) | (counted["loss_median"] > hi)]
    families = "family that votes" if voting.empty else "families that vote"
    note = (
        f"PSIS-LOO stacking weights of the {len(voting) + 1} law {families}; the stacked 95% "
        f"band ({band(mix['loss_lo95'], mix['loss_hi95'])}) is {ratio:.2f}x as wide as this law's "
        f"({band(lo, hi)})" + (" on the fitted scale, -log(score)." if metric else ".")
    )
    if len(silent):
        note += " Not voting: " + "; ".join(f"{name} ({row.why_not})" for name, row in silent.iterrows()) + "."
    if rejected:
        note += (
            " Ruled out by PSIS-LOO (their medians do not count): "
            + "; ".join(
                f"{name} (elpd lower than the best by {voting.loc[name, 'elpd_diff']:.1f}, standard error "
                f"{voting.loc[name, 'dse']:.1f}; median {value(voting.loc[name, 'loss_median'])})"
                for name in rejected
            )
            + "."
        )
    points = ()
    if ratio > 1.5 or len(outside):
        where = "; ".join(f"{name}'s median {value(row.loss_median)}" for name, row in outside.iterrows())
        where = f"; outside this law's 95% band {band(lo, hi)}: {where}" if where else ""
        points = ((1, f"law families disagree at the target (stacked 95% band {ratio:.1f}x as wide{where})"),)
    return points, note


def _priors(ctx: Context, scales: Sequence[float]) -> Finding:
    if not scales:
        return Finding({}, "Skipped: no prior scales given.")
    result = ctx.result
    # The refits are plain (no internal backtests): a prior moves the law's parameters, and with them the
    # median; the learned extrapolation error widens the band about it. So the shift is read between plain
    # medians, as a share of this forecast's own 95% band.
    base = float(forecast(result, _as_read(result.law, ctx.points), seed=ctx.seed, mode="plain")["loss_median"].iloc[0])
    width = float(ctx.forecast["loss_hi95"].iloc[0] - ctx.forecast["loss_lo95"].iloc[0])

    def refit(factor: float) -> Result:
        spec = result.spec.with_priors({k: p.scaled(factor) for k, p in result.spec.priors.items()})
        return _fit(
            ctx.data, result.law, spec, ctx.settings, ctx.seed, False, pad=ctx.pad, quiet=True, keep=REFIT_DRAWS
        )

    with ThreadPoolExecutor(len(scales)) as pool:
        refits = list(pool.map(refit, scales))
    rows = []
    for factor, refit in zip(scales, refits, strict=True):
        band = forecast(refit, _as_read(refit.law, ctx.points), seed=ctx.seed, mode="plain").iloc[0]
        shift = float(band["loss_median"]) - base
        rows.append(
            {
                "prior_scale": factor,
                "mode": "plain",
                "loss_median": float(band["loss_median"]),
                "loss_lo95": float(band["loss_lo95"]),
                "loss_hi95": float(band["loss_hi95"]),
                "shift": shift,
                "shift_over_band95": shift / width,
                "flagged": abs(shift / width) > PRIOR_SHIFT_MAX,
            }
        )
    priors = pd.DataFrame(rows)
    note = (
        f"Every prior's scale multiplied by each factor, refitted (plain fits, {REFIT_DRAWS} draws per chain: the "
        "priors move the law's parameters); the shift of the plain forecast median from this fit's plain median, "
        f"as a share of this forecast's 95% band (flagged above {PRIOR_SHIFT_MAX:.0%})."
    )
    points = ()
    if priors["flagged"].any():
        moved = ", ".join(
            f"scale x{r.prior_scale:g}: {r.shift_over_band95:+.0%} of the band"
            for r in priors.itertuples()
            if r.flagged
        )
        points = ((1, f"the forecast moves with the priors: {moved}"),)
    return Finding({"priors": priors}, note, points)


def _given(runs: pd.DataFrame) -> list[str]:
    """The inputs among N, D, C that every run gives (runs of a law of compute alone may give C only)."""
    return [k for k in ("N", "D", "C") if runs[k].notna().all()]


def _ppc(ctx: Context) -> Finding:
    result = ctx.result
    runs = result.data()
    logs = {k: np.log(runs[k].to_numpy(np.float64)) for k in _given(runs)}
    logs = {k: v for k, v in logs.items() if np.ptp(v) > 0}  # trends against the inputs that vary
    y = np.log(runs["loss"].to_numpy())
    mean = expected(result, runs)  # (s, n): each run with its group's draws
    sigma = result.draws(result.labels[0] if result.labels else None)["sigma"]
    residual = y - np.median(mean, axis=0)
    rows = []
    for name, v in logs.items():
        slope, intercept = np.polyfit(v, residual, 1)
        fitted = intercept + slope * v
        se = np.sqrt(np.sum((residual - fitted) ** 2) / max(len(v) - 2, 1) / np.sum((v - v.mean()) ** 2))
        rows.append({"input": name, "slope_per_decade": slope * np.log(10), "z": slope / se})
    trends = pd.DataFrame(rows)
    trends["flagged"] = trends["z"].abs() > TREND_Z_MAX
    # LOO-PIT without simulated replicates: PSIS weights times the Student-t CDF of each draw (per run;
    # with replicated runs the likelihood is per configuration, and no per-run PIT exists).
    loglik = result.group("log_likelihood")["log_loss"]
    pit = np.full(len(y), np.nan)
    if "run" in loglik.dims:
        log_w = loo(result).log_weights  # (runs, draws): the model-form section's PSIS-LOO, computed once
        z = (y[:, None] - mean.T) / sigma[None, :]
        pit = np.sum(np.exp(log_w) * scipy.special.stdtr(result.spec.df, z), axis=1)
    flagged = list(trends.loc[trends["flagged"], "input"])
    note = (
        "Residuals (observed minus posterior median log loss) against each input, with a linear trend test; "
        "LOO-PIT values (uniform when the predictive distribution is calibrated)."
        + (f" Trend flagged against {', '.join(flagged)}." if flagged else "")
    )
    points = ()
    if flagged:
        points = ((1, f"residuals trend against log {', log '.join(flagged)}: the law misses a bend"),)
    tables = {
        "residual_trends": trends,
        "residuals": runs[list(logs)].assign(residual=residual),
        "loo_pit": pd.DataFrame({"loo_pit": pit}),
    }
    return Finding(tables, note, points)
