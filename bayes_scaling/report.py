"""A review as a page: self-contained HTML, Markdown, JSON and PNG figures, drawn from its tables.

Rendering reads a :class:`~bayes_scaling.review.Review` and nothing else: it never refits
or forecasts. ``save(review, "out/")`` writes ``report.html``, ``report.md``,
``report.json`` and ``figures/*.png``.
"""

from __future__ import annotations

import base64
import html as _html
import io
import json as _json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import plots
from ._outputs import atomic_file
from .forecast import column
from .review import SECTIONS, Review

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The tables and figures of each section, in order.
LAYOUT = {
    "Sampler health": (["health"], []),
    "Distance": (["distance"], ["distance"]),
    "Forecast": (["forecast", "drivers"], ["fit"]),
    "Backtests": (["backtests"], ["backtest"]),
    "Model-form sensitivity": (["models", "pooling", "parameter_counts"], []),
    "Prior sensitivity": (["priors"], []),
    "Posterior predictive checks": (["residual_trends"], ["ppc"]),
}
#: Tables kept for drawing figures, not shown as tables (nor written to JSON).
FIGURE_DATA = ("runs", "path", "backtest_runs", "residuals")


def figures(review: Review) -> dict[str, bytes]:
    """The review's figures as PNG images, by name (``distance``, ``fit``, ``backtest``, ``ppc``)."""
    t = review.tables
    metric = review.law.get("metric")
    out = {
        "distance": _png(plots.distance(t["runs"], review.target)),
        "fit": _png(
            plots.fit_from_tables(
                t["runs"],
                t["path"],
                t["forecast"],
                x=review.law["axis"],
                law=review.law["name"],
                title=review.law["formula"],
                metric=metric,
            )
        ),
    }
    if "backtest_runs" in t:
        out["backtest"] = _png(plots.backtest(t["backtest_runs"], metric=metric))
    if "residuals" in t:
        out["ppc"] = _png(plots.residuals(t["residuals"], t["loo_pit"]["loo_pit"].to_numpy()))
    return out


def json(review: Review) -> dict:
    """``verdict``, ``rule``, ``reasons``, ``target`` and every table as a list of records."""
    tables = {k: _json.loads(v.to_json(orient="records")) for k, v in review.tables.items() if k not in FIGURE_DATA}
    head = {"verdict": review.verdict, "rule": review.rule, "reasons": list(review.reasons), "target": review.target}
    return head | tables


def markdown(review: Review, figure_dir: str = "figures") -> str:
    """Markdown, with figures linked as ``figure_dir/<name>.png``."""
    return _render(review, None, figure_dir)


def html(review: Review, images: dict[str, bytes] | None = None) -> str:
    """A self-contained HTML page: figures embedded as base64 PNG, no external references.

    ``images``: the figures if already drawn (:func:`figures`).
    """
    return _render(review, figures(review) if images is None else images)


def save(review: Review, out: str | Path) -> Path:
    """Write ``report.html``, ``report.md``, ``report.json`` and ``figures/*.png`` into ``out``; return ``out``."""
    out = Path(out)
    images = figures(review)
    files = {f"figures/{name}.png": png for name, png in images.items()}
    files |= {"report.html": html(review, images).encode(), "report.md": markdown(review).encode()}
    files["report.json"] = _json.dumps(json(review), indent=1).encode()
    for name, content in files.items():
        with atomic_file(out / name) as partial:  # each file whole or absent
            partial.write_bytes(content)
    return out


def _anchor(section: str) -> str:
    return section.lower().replace(" ", "-")


def _summary(review: Review, markdown: bool) -> list[str]:
    """What a reader takes in at one glance: the verdict, the forecast with its 50% and 90% bands, the
    reasons with their numbers, and a link to each section."""
    parts = []
    verdict = f"Verdict: {review.verdict.upper()} extrapolation risk"
    forecast = review.tables.get("forecast")
    metric = review.law.get("metric")
    line = ""
    if forecast is not None and len(forecast):
        row = forecast.iloc[0]
        what, name = ("loss", "loss") if metric is None else ("score", metric)
        bands = [
            f"{100 * lv:g}% {row[column(what, 'lo', lv)]:.4g}-{row[column(what, 'hi', lv)]:.4g}"
            for lv in (0.5, 0.9)
            if column(what, "lo", lv) in forecast.columns
        ]
        group = f" (group {row['group']})" if "group" in forecast.columns else ""
        median = row[f"{what}_median"]
        line = f"Expected {name} at {review.target['target']}{group}: {median:.4g} ({'; '.join(bands)})"
    reasons = review.reasons or ("no finding scored a point",)
    if markdown:
        parts.append(f"**{verdict}**")
        if line:
            parts.append(line)
        parts.append("\n".join(f"- {r}" for r in reasons))
        parts.append(" · ".join(f"[{section}](#{_anchor(section)})" for section in SECTIONS))
        return parts
    colour = {"low": "#2e7d32", "medium": "#b26a00", "high": "#c62828", "unusable": "#6a1b9a"}.get(
        review.verdict, "#333"
    )
    items = "".join(f"<li>{_html.escape(r)}</li>" for r in reasons)
    links = " · ".join(f'<a href="#{_anchor(section)}">{section}</a>' for section in SECTIONS)
    parts.append(
        f'<div class="summary"><p class="verdict" style="color:{colour}"><b>{_html.escape(verdict)}</b></p>'
        + (f"<p>{_html.escape(line)}</p>" if line else "")
        + f"<ul>{items}</ul><p>{links}</p></div>"
    )
    return parts


def _render(review: Review, images: dict[str, bytes] | None, figure_dir: str = "figures") -> str:
    """Markdown when ``images`` is None (figures linked), else HTML (figures embedded)."""
    markdown = images is None
    t = review.target
    given = ", ".join(f"{k}={t[k]:.3g}" for k in ("N", "D", "C") if t.get(k) is not None and math.isfinite(t[k]))
    title = f"Extrapolation risk review: {t['target']} ({given} FLOP)"
    parts = [f"# {title}" if markdown else f"<h1>{_html.escape(title)}</h1>", *_summary(review, markdown)]
    for section in SECTIONS:
        parts.append(f"## {section}" if markdown else f'<h2 id="{_anchor(section)}">{section}</h2>')
        if section == "Verdict":
            note = f"{review.verdict.upper()}. Rule: {review.rule}"
            reasons = review.reasons or ("no finding scored a point",)
            items = [f"- {r}" for r in reasons] if markdown else [f"<li>{_html.escape(r)}</li>" for r in reasons]
            body = "\n".join(items) if markdown else "<ul>" + "".join(items) + "</ul>"
            parts += [note if markdown else f"<p>{_html.escape(note)}</p>", body]
            continue
        note = review.notes.get(section, "")
        if note:
            parts.append(note if markdown else f"<p>{_html.escape(note)}</p>")
        keys, names = LAYOUT[section]
        for key in keys:
            if key in review.tables:
                table = review.tables[key]
                if markdown:
                    parts.append(_markdown_table(table))
                else:  # a wide table scrolls inside its own box; the page never does
                    parts.append(f'<div class="table">{table.to_html(index=False, float_format="%.4g")}</div>')
        for name in names:
            if markdown:
                if name in _drawn(review):
                    parts.append(f"![{name}]({figure_dir}/{name}.png)")
            elif name in images:
                data = base64.b64encode(images[name]).decode()
                parts.append(f'<img alt="{name}" src="data:image/png;base64,{data}">')
    if markdown:
        return "\n\n".join(parts) + "\n"
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 12px}"
        ".summary{border:1px solid #bbb;border-radius:6px;padding:6px 14px;background:#fafafa}"
        ".verdict{font-size:130%}.table{overflow-x:auto;max-width:100%}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%;white-space:nowrap}"
        "img{max-width:100%;height:auto}p,li{overflow-wrap:anywhere}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{_html.escape(title)}</title><style>{style}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def _drawn(review: Review) -> set[str]:
    """Names of the figures :func:`figures` draws for this review (without drawing them)."""
    t = review.tables
    return (
        {"distance", "fit"}
        | ({"backtest"} if "backtest_runs" in t else set())
        | ({"ppc"} if "residuals" in t else set())
    )


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
