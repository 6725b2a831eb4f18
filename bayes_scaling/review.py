"""Extrapolation risk review: every reason a forecast far beyond the data may be wrong, on one page.

:func:`review` gathers, for one fitted law and one target: sampler health, the distance
from the data, the forecast and what drives its width, backtests (refit below compute
cutoffs, forecast the runs above), model-form and prior sensitivity, and posterior
predictive checks; then a verdict by a written rule. The :class:`Review` renders to
self-contained HTML (figures embedded as PNG) and Markdown, and keeps every table as a
DataFrame.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.special

from . import diagnostics, extrapolation
from .compare import compare, stacked
from .data import Dataset
from .forecast import LEVELS, draws_at, predict, targets
from .laws import get_law
from .plots import _figure, plot_backtest, plot_fit
from .result import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
#: Backtest 90% bands covering fewer held-out runs than this are miscalibrated.
COVERAGE_MIN = 0.7
#: A prior change that moves the forecast median by more than this share of the 95% band is flagged.
PRIOR_SHIFT_MAX = 0.25
#: A residual trend against log N, log D or log C with |slope / se| above this is flagged.
TREND_Z_MAX = 3.0
RULE = (
    "unusable if any sampler-health check fails. Otherwise one point each for: a sampler-health warning; "
    f"backtest 90% coverage below {COVERAGE_MIN:.0%} at any cutoff (two points: the central evidence); "
    "a target more than 2 decades of compute beyond the largest run; a target further beyond the data than "
    "the longest backtest reached; laws that disagree (stacked 95% band over 1.5x as wide as this law's, "
    "or another law's median outside it); a prior change moving the median by more than "
    f"{PRIOR_SHIFT_MAX:.0%} of the 95% band; a residual trend (|slope/se| > {TREND_Z_MAX:g}). "
    "0 points: low; 1-2: medium; 3 or more: high."
)


@dataclass
class Review:
    """An extrapolation risk review (see :func:`review`).

    Attributes
    ----------
    target : the target's ``target`` name, ``N``, ``D``, ``C``.
    verdict : ``"low"``, ``"medium"``, ``"high"`` or ``"unusable"``.
    reasons : the findings that scored points, one sentence each.
    tables : every table, by section key (``health``, ``distance``, ``forecast``, ``drivers``,
        ``backtests``, ``models``, ``priors``, ``residual_trends``, ``loo_pit``).
    figures : PNG images (bytes) by name.
    notes : a sentence per section, by section title.
    """

    target: dict
    verdict: str
    reasons: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    rule: str = RULE

    def to_json(self) -> dict:
        """``verdict``, ``rule``, ``reasons``, ``target`` and every table as a list of records."""
        tables = {k: json.loads(v.to_json(orient="records")) for k, v in self.tables.items()}
        return {"verdict": self.verdict, "rule": self.rule, "reasons": self.reasons, "target": self.target, **tables}

    def to_markdown(self, figure_dir: str = "figures") -> str:
        """Markdown, with figures linked as ``figure_dir/<name>.png``."""
        return self._render(markdown=True, figure_dir=figure_dir)

    def to_html(self) -> str:
        """A self-contained HTML page: figures embedded as base64 PNG, no external references."""
        return self._render(markdown=False)

    def save(self, out: str | Path) -> Path:
        """Write ``report.html``, ``report.md``, ``report.json`` and ``figures/*.png`` into ``out``."""
        out = Path(out)
        (out / "figures").mkdir(parents=True, exist_ok=True)
        for name, png in self.figures.items():
            (out / "figures" / f"{name}.png").write_bytes(png)
        (out / "report.html").write_text(self.to_html())
        (out / "report.md").write_text(self.to_markdown())
        (out / "report.json").write_text(json.dumps(self.to_json(), indent=1))
        return out

    def _render(self, markdown: bool, figure_dir: str = "figures") -> str:
        by_section = {
            "Sampler health": (["health"], []),
            "Distance": (["distance"], ["distance"]),
            "Forecast": (["forecast", "drivers"], ["fit"]),
            "Backtests": (["backtests"], ["backtest"]),
            "Model-form sensitivity": (["models"], []),
            "Prior sensitivity": (["priors"], []),
            "Posterior predictive checks": (["residual_trends"], ["ppc"]),
        }
        t = self.target
        title = f"Extrapolation risk review: {t['target']} (N={t['N']:.3g}, D={t['D']:.3g}, C={t['C']:.3g} FLOP)"
        parts = [f"# {title}" if markdown else f"<h1>{html.escape(title)}</h1>"]
        verdict = f"Verdict: {self.verdict.upper()} extrapolation risk"
        parts.append(f"**{verdict}**" if markdown else f"<p><b>{verdict}</b></p>")
        for section in SECTIONS:
            parts.append(f"## {section}" if markdown else f"<h2>{section}</h2>")
            note = self.notes.get(section, "")
            if section == "Verdict":
                note = f"{self.verdict.upper()}. Rule: {self.rule}"
                reasons = self.reasons or ["no finding scored a point"]
                items = [f"- {r}" for r in reasons] if markdown else [f"<li>{html.escape(r)}</li>" for r in reasons]
                body = "\n".join(items) if markdown else "<ul>" + "".join(items) + "</ul>"
                parts += [note if markdown else f"<p>{html.escape(note)}</p>", body]
                continue
            if note:
                parts.append(note if markdown else f"<p>{html.escape(note)}</p>")
            keys, figures = by_section[section]
            for key in keys:
                if key in self.tables:
                    table = self.tables[key]
                    parts.append(
                        _markdown_table(table) if markdown else table.to_html(index=False, float_format="%.4g")
                    )
            for name in figures:
                if name in self.figures:
                    if markdown:
                        parts.append(f"![{name}]({figure_dir}/{name}.png)")
                    else:
                        data = base64.b64encode(self.figures[name]).decode()
                        parts.append(f'<img alt="{name}" src="data:image/png;base64,{data}">')
        if markdown:
            return "\n\n".join(parts) + "\n"
        style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        style += "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}"
        return (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n"
        )


def review(
    result: Result,
    *,
    preset: str | None = None,
    N: float | None = None,
    D: float | None = None,
    flops: float | None = None,
    cutoffs: Sequence[float] | None = None,
    laws: Sequence[str] | None = None,
    prior_scales: Sequence[float] = (0.5, 2.0),
    seed: int = 0,
    **fit_kwargs: object,
) -> Review:
    """Review the risk of extrapolating ``result`` to one target.

    Parameters
    ----------
    result : the fit to review (its runs are refitted for backtests and sensitivity).
    preset, N, D, flops : the target: a preset name (``"gpt4"``: 2.1e25 FLOP), an (N, D)
        point, or a compute budget (split compute-optimally).
    cutoffs : backtest cutoffs in compute, FLOP (default: the 50%, 70% and 85% quantiles
        of the runs' compute, rounded to one significant digit).
    laws : other law families for the model-form section (default: those of
        ``chinchilla``, ``kaplan``, ``power-c`` that the data support, besides this one).
    prior_scales : factors applied to every prior's scale for the prior-sensitivity refits.
    seed : seeds every refit and forecast.
    fit_kwargs : sampler settings for the refits (chains, warmup, draws, ...).

    Returns
    -------
    Review. When a sampler-health check fails, the verdict is ``unusable`` and the
    sections that need refits are skipped.
    """
    point = targets(result, N=N, D=D, flops=flops, preset_names=preset)
    if len(point) != 1:
        raise ValueError("review takes exactly one target")
    target = point.iloc[0].to_dict()
    runs = result.data()
    data = Dataset(runs, "runs of the reviewed fit", {"N": "N", "D": "D", "C": "C", "loss": "loss"})
    mode = "calibrated" if extrapolation.calibrated(result) else "plain"
    rev = Review({k: (v if k == "target" else float(v)) for k, v in target.items()}, "low", [])
    points = point[["target", "N", "D", "C"]]
    score = 0

    health = _health(result)
    rev.tables["health"] = health
    rev.notes["Sampler health"] = "ArviZ diagnostics of the reviewed fit, each against its threshold."
    if (health["status"] == "fail").any():
        rev.verdict = "unusable"
        failed = ", ".join(health.loc[health["status"] == "fail", "check"])
        rev.reasons.append(f"THE SAMPLER FAILED ({failed}): do not use this forecast; refit with longer chains")
        for section in SECTIONS[3:7]:
            rev.notes[section] = "Skipped: the sampler failed; fix the fit before reviewing its extrapolation."
    elif (health["status"] == "warn").any():
        score += 1
        rev.reasons.append("sampler-health warning: " + ", ".join(health.loc[health["status"] == "warn", "check"]))

    distance = _distance(runs, target)
    rev.tables["distance"] = distance
    decades_c = float(distance.loc[distance["input"] == "C", "decades_beyond"].iloc[0])
    rev.notes["Distance"] = f"The target lies {decades_c:.2f} decades of compute beyond the largest run."
    rev.figures["distance"] = _png(_distance_plot(runs, target))
    if decades_c > 2:
        score += 1
        rev.reasons.append(f"the target is {decades_c:.1f} decades of compute beyond the largest run")

    table = predict(result, points, levels=LEVELS, seed=seed, mode=mode)
    e = float(np.median(result.draws()["E"])) if "E" in result.law.params else 0.0
    width = float(table["loss_hi95"].iloc[0] - table["loss_lo95"].iloc[0])
    table["band95_over_reducible"] = width / max(float(table["loss_median"].iloc[0]) - e, 1e-12)
    rev.tables["forecast"] = table
    rev.tables["drivers"] = _drivers(result, points, seed)
    rev.notes["Forecast"] = (
        f"Expected loss at the target ({mode} mode): {table['loss_median'].iloc[0]:.4f} "
        f"(95%: {table['loss_lo95'].iloc[0]:.4f}-{table['loss_hi95'].iloc[0]:.4f}); the 95% band is "
        f"{table['band95_over_reducible'].iloc[0]:.0%} of the reducible loss. Drivers: share of the "
        "predictive variance explained by each parameter alone (binned draws), plain mode."
    )
    rev.figures["fit"] = _png(plot_fit(result, table))

    if rev.verdict != "unusable":
        score += _backtests(rev, data, result, runs, cutoffs, mode, decades_c, seed, fit_kwargs)
        score += _models(rev, data, result, points, laws, mode, table, seed, fit_kwargs)
        score += _priors(rev, data, result, points, prior_scales, mode, table, seed, fit_kwargs)
        score += _ppc(rev, result)
        rev.verdict = "low" if score == 0 else "medium" if score <= 2 else "high"
    rev.notes["Verdict"] = rev.verdict
    return rev


def _health(result: Result) -> pd.DataFrame:
    post = result.idata.posterior
    x = np.stack([post[k].to_numpy() for k in result.params])
    stats = result.idata.sample_stats
    energy = stats["energy"].to_numpy()
    bfmi = diagnostics.bfmi(energy)
    divergent = float(stats["diverging"].to_numpy().mean())
    saturated = float((stats["tree_depth"].to_numpy() >= 10).mean()) if "tree_depth" in stats else 0.0
    rows = [
        ("max R-hat", float(np.nanmax(diagnostics.rhat_rank(x))), diagnostics.RHAT_MAX, 1.1, False),
        ("min bulk ESS", float(np.nanmin(diagnostics.ess_bulk(x))), diagnostics.ESS_MIN, 100, True),
        ("min tail ESS", float(np.nanmin(diagnostics.ess_tail(x))), diagnostics.ESS_MIN, 100, True),
        ("share of divergent draws", divergent, 0.0, 0.005, False),
        ("min E-BFMI", float(bfmi.min()), diagnostics.BFMI_MIN, 0.2, True),
        ("share of draws at tree depth 10", saturated, 0.0, 0.01, False),
    ]
    out = []
    for check, value, passing, warning, higher_is_better in rows:
        if higher_is_better:
            status = "pass" if value >= passing else "warn" if value >= warning else "fail"
            threshold = f">= {passing:g} (warn >= {warning:g})"
        else:
            status = "pass" if value <= passing else "warn" if value <= warning else "fail"
            threshold = f"<= {passing:g} (warn <= {warning:g})"
        out.append({"check": check, "value": value, "threshold": threshold, "status": status})
    return pd.DataFrame(out)


def _distance(runs: pd.DataFrame, target: dict) -> pd.DataFrame:
    rows = []
    for name in ("N", "D", "C"):
        largest = float(runs[name].max())
        rows.append(
            {
                "input": name,
                "largest_run": largest,
                "target": float(target[name]),
                "decades_beyond": float(np.log10(target[name] / largest)),
            }
        )
    return pd.DataFrame(rows)


def _distance_plot(runs: pd.DataFrame, target: dict) -> Figure:
    fig = _figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(runs["N"], runs["D"], c=np.log10(runs["C"]), s=12, cmap="viridis", label="runs")
    ax.scatter([target["N"]], [target["D"]], marker="*", s=180, color="C3", label=f"target: {target['target']}")
    fig.colorbar(points, ax=ax, label="log10 compute (FLOP)")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="training tokens D")
    ax.set_title("Where the target sits relative to the runs", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _drivers(result: Result, points: pd.DataFrame, seed: int) -> pd.DataFrame:
    """First-order share of the predictive variance of log loss explained by each parameter (binned draws)."""
    loss, _ = draws_at(result, points, seed=seed, mode="plain")
    y = np.log(loss[:, 0])
    draws = result.draws()
    total = float(np.var(y))
    rows = []
    for name in result.law.params:
        x = draws[name][: len(y)]
        edges = np.quantile(x, np.linspace(0, 1, 21))
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 19)
        means = np.array([y[idx == b].mean() for b in range(20) if np.any(idx == b)])
        counts = np.array([np.sum(idx == b) for b in range(20) if np.any(idx == b)])
        share = float(np.sum(counts * (means - y.mean()) ** 2) / len(y) / total) if total > 0 else 0.0
        rows.append({"parameter": name, "variance_share": share})
    return pd.DataFrame(rows).sort_values("variance_share", ascending=False, ignore_index=True)


def _backtests(rev, data, result, runs, cutoffs, mode, decades_c, seed, fit_kwargs) -> int:
    if cutoffs is None:
        q = np.quantile(runs["C"], [0.5, 0.7, 0.85])
        cutoffs = sorted({float(f"{c:.0e}") for c in q})
    if not cutoffs:
        rev.notes["Backtests"] = "Skipped: no cutoffs given."
        return 0
    calibrate = mode == "calibrated"
    bt = extrapolation.backtest(
        data, result.law, cutoffs, priors=result.spec, seed=seed, calibrate=calibrate, **fit_kwargs
    )
    table = bt.table.rename(columns={"cutoff": "cutoff_flops"})
    rev.tables["backtests"] = table
    rev.figures["backtest"] = _png(plot_backtest(bt.runs))
    used = table[table["mode"] == mode]
    worst = float(used["coverage_90"].min())
    furthest = float(used["distance_decades"].max())
    rev.notes["Backtests"] = (
        f"Refit below each compute cutoff, forecast the larger runs. In {mode} mode (the mode of this forecast) "
        f"the 90% bands covered at worst {worst:.0%} of held-out runs; the longest backtest reached "
        f"{furthest:.2f} decades, the target is {decades_c:.2f} decades out."
    )
    score = 0
    if worst < COVERAGE_MIN:
        score += 2
        rev.reasons.append(f"backtests miscalibrated: 90% bands covered only {worst:.0%} of held-out runs")
    if decades_c > furthest:
        score += 1
        rev.reasons.append(f"the target ({decades_c:.1f} decades) is further out than any backtest ({furthest:.1f})")
    return score


def _models(rev, data, result, points, laws, mode, table, seed, fit_kwargs) -> int:
    from .fit import fit

    if laws is None:
        laws = [n for n in ("chinchilla", "kaplan", "power-c") if n != result.law.name]
    fits = [result]
    for name in laws:
        law = get_law(name)
        if law.name == result.law.name or not set(law.inputs) <= {"N", "D", "C"}:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", diagnostics.ConvergenceWarning)
            fits.append(fit(data, law, seed=seed, calibrate=mode == "calibrated", **fit_kwargs))
    if len(fits) < 2:
        rev.notes["Model-form sensitivity"] = "No other law family applies to these runs."
        return 0
    weights = compare(fits)["weight"]
    rows = []
    for r in fits:
        band = predict(r, points, seed=seed, mode=mode).iloc[0]
        rows.append(
            {
                "law": r.law.name,
                "loo_weight": float(weights[r.law.name]),
                "converged": r.converged,
                "loss_median": band["loss_median"],
                "loss_lo95": band["loss_lo95"],
                "loss_hi95": band["loss_hi95"],
            }
        )
    mix = stacked(fits, weights, points, seed=seed).iloc[0]
    rows.append(
        {
            "law": "stacked",
            "loo_weight": 1.0,
            "converged": all(r.converged for r in fits),
            "loss_median": mix["loss_median"],
            "loss_lo95": mix["loss_lo95"],
            "loss_hi95": mix["loss_hi95"],
        }
    )
    models = pd.DataFrame(rows)
    rev.tables["models"] = models
    lo, hi = float(table["loss_lo95"].iloc[0]), float(table["loss_hi95"].iloc[0])
    ratio = (mix["loss_hi95"] - mix["loss_lo95"]) / (hi - lo)
    outside = [r["law"] for r in rows[1:-1] if not lo <= r["loss_median"] <= hi]
    rev.notes["Model-form sensitivity"] = (
        f"PSIS-LOO stacking weights of {len(fits)} law families; the stacked 95% band is {ratio:.2f}x as wide "
        "as this law's." + (f" Medians outside this law's 95% band: {', '.join(outside)}." if outside else "")
    )
    if ratio > 1.5 or outside:
        where = f"; medians of {', '.join(outside)} outside this law's 95% band" if outside else ""
        rev.reasons.append(f"law families disagree at the target (stacked band {ratio:.1f}x as wide{where})")
        return 1
    return 0


def _priors(rev, data, result, points, scales, mode, table, seed, fit_kwargs) -> int:
    from .fit import fit

    base = float(table["loss_median"].iloc[0])
    width = float(table["loss_hi95"].iloc[0] - table["loss_lo95"].iloc[0])
    rows = []
    if not scales:
        rev.notes["Prior sensitivity"] = "Skipped: no prior scales given."
        return 0
    for factor in scales:
        spec = result.spec.with_priors({k: p.scaled(factor) for k, p in result.spec.priors.items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", diagnostics.ConvergenceWarning)
            refit = fit(data, result.law, priors=spec, seed=seed, calibrate=mode == "calibrated", **fit_kwargs)
        band = predict(refit, points, seed=seed, mode=mode).iloc[0]
        shift = float(band["loss_median"]) - base
        rows.append(
            {
                "prior_scale": factor,
                "loss_median": float(band["loss_median"]),
                "loss_lo95": float(band["loss_lo95"]),
                "loss_hi95": float(band["loss_hi95"]),
                "shift": shift,
                "shift_over_band95": shift / width,
                "flagged": abs(shift / width) > PRIOR_SHIFT_MAX,
            }
        )
    priors = pd.DataFrame(rows)
    rev.tables["priors"] = priors
    rev.notes["Prior sensitivity"] = (
        "Every prior's scale multiplied by each factor, refitted; the shift of the forecast median as a share "
        f"of this forecast's 95% band (flagged above {PRIOR_SHIFT_MAX:.0%})."
    )
    if priors["flagged"].any():
        rev.reasons.append(
            "the forecast moves with the priors: "
            + ", ".join(
                f"scale x{r.prior_scale:g}: {r.shift_over_band95:+.0%} of the band"
                for r in priors.itertuples()
                if r.flagged
            )
        )
        return 1
    return 0


def _ppc(rev, result: Result) -> int:
    logs = {k: np.log(result.idata.constant_data[k].to_numpy()) for k in ("N", "D", "C")}
    y = result.idata.observed_data["log_loss"].to_numpy()
    draws = result.draws()
    x = {k: logs[k][None, :] for k in result.law.inputs}
    mean = np.asarray(result.law.mean({k: jnp.asarray(draws[k][:, None]) for k in result.law.params}, x))
    residual = y - np.median(mean, axis=0)
    rows = []
    for name, v in logs.items():
        slope, intercept = np.polyfit(v, residual, 1)
        fitted = intercept + slope * v
        se = np.sqrt(np.sum((residual - fitted) ** 2) / max(len(v) - 2, 1) / np.sum((v - v.mean()) ** 2))
        rows.append({"input": name, "slope_per_decade": slope * np.log(10), "z": slope / se})
    trends = pd.DataFrame(rows)
    trends["flagged"] = trends["z"].abs() > TREND_Z_MAX
    rev.tables["residual_trends"] = trends
    # LOO-PIT without simulated replicates: PSIS weights times the Student-t CDF of each draw.
    loglik = result.idata.log_likelihood["log_loss"].to_numpy().reshape(-1, len(y)).T  # (runs, draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        log_w, _ = az.psislw(-loglik)
    z = (y[:, None] - mean.T) / draws["sigma"][None, :]
    pit = np.sum(np.exp(log_w) * scipy.special.stdtr(result.spec.df, z), axis=1)
    rev.tables["loo_pit"] = pd.DataFrame({"loo_pit": pit})
    fig = _figure(figsize=(12, 3.2), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, (name, v) in zip(axes[:3], logs.items(), strict=True):
        ax.scatter(np.exp(v), residual, s=6)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=name, ylabel="residual log loss")
    axes[3].hist(pit, bins=10, range=(0, 1), color="C1")
    axes[3].set(xlabel="LOO-PIT", ylabel="runs", title="uniform if calibrated")
    rev.figures["ppc"] = _png(fig)
    flagged = list(trends.loc[trends["flagged"], "input"])
    rev.notes["Posterior predictive checks"] = (
        "Residuals (observed minus posterior median log loss) against each input, with a linear trend test; "
        "LOO-PIT values (uniform when the predictive distribution is calibrated)."
        + (f" Trend flagged against {', '.join(flagged)}." if flagged else "")
    )
    if flagged:
        rev.reasons.append(f"residuals trend against log {', log '.join(flagged)}: the law misses a bend")
        return 1
    return 0


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])
