"""Figures: log axes carry plain-text labels a reader can read a value from, whatever the span of the data."""

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs


def labels(axis) -> list[str]:
    """The non-empty tick labels of ``axis`` inside its view, as drawn."""
    axis.axes.figure.canvas.draw()
    lo, hi = sorted(axis.get_view_interval())
    ticks = zip(axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True)
    return [label.get_text() for loc, label in ticks if label.get_text() and lo <= loc <= hi]


@pytest.mark.parametrize(("lo", "hi"), [(2e8, 7e8), (1e7, 3e10)])
def test_review_figures_label_log_axes_in_plain_text_at_any_span(lo, hi):
    n = np.geomspace(lo, hi, 12)
    runs = pd.DataFrame({"N": n, "D": 20 * n, "C": 120 * n**2, "residual": np.linspace(-0.01, 0.01, 12)})
    fig = bs.plots.residuals(runs, np.linspace(0.05, 0.95, 12))
    for ax in fig.axes[:3]:
        shown = labels(ax.xaxis)
        assert len(shown) >= 2, shown  # enough labels to read a value (a narrow span gets round values)
        assert not any("$" in s for s in shown), shown  # no mathtext: its parser costs half a second to build
        assert not ax.xaxis.get_minor_locator()()  # no minor ticks: each costs layout and drawing time
    target = {"N": 1e12, "D": 2e13, "target": "far"}
    fig = bs.plots.distance(runs, target)
    shown = labels(fig.axes[0].xaxis)
    assert len(shown) >= 3 and all(s.startswith("10") for s in shown), shown  # decades up to the target


@pytest.mark.parametrize(("decades", "minor"), [(7, False), (2, True)])
def test_the_fit_figure_drops_minor_ticks_only_over_many_decades(decades, minor):
    c = np.geomspace(1e18, 10.0 ** (18 + decades), 30)
    loss = 1.7 + 40 * c**-0.08
    runs = pd.DataFrame({"C": c[:20], "loss": loss[:20]})
    band = pd.DataFrame({"C": c, "loss_median": loss, "loss_lo90": 0.98 * loss, "loss_hi90": 1.02 * loss})
    fig = bs.plots.fit_from_tables(runs, band, None, x="C", law="chinchilla", title="test")
    ax = fig.axes[0]
    shown = labels(ax.xaxis)
    assert len(shown) >= 2 and all(s.startswith("10") for s in shown), shown  # each decade, in plain text
    assert bool(len(ax.xaxis.get_minor_locator()())) is minor


def test_a_fit_to_a_score_is_drawn_as_the_score_with_its_name():
    """Runs read with metric=True: the law fits -log(score); the figure shows the score, never a loss in nats."""
    c = np.geomspace(1e20, 1e24, 30)
    loss = 2e3 * c**-0.15  # -log(pass rate)
    runs = pd.DataFrame({"C": c[:20], "loss": loss[:20]})
    band = pd.DataFrame({"C": c, "loss_median": loss, "loss_lo90": 0.9 * loss, "loss_hi90": 1.1 * loss})
    target = pd.DataFrame({"C": [1e24], "target": ["far"], "run_median": [loss[-1]]})
    target = target.assign(run_lo90=0.8 * loss[-1], run_hi90=1.2 * loss[-1])
    fig = bs.plots.fit_from_tables(runs, band, target, x="C", law="downstream", title="t", metric="HumanEval")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "HumanEval (score)" and ax.get_yscale() == "linear"
    (points,) = [c for c in ax.collections if c.get_label().endswith("training runs")]
    np.testing.assert_allclose(points.get_offsets()[:, 1], np.exp(-loss[:20]), rtol=1e-12)
    (marker,) = [bar for bar in ax.containers if bar.get_label().startswith("far")]
    assert marker.lines[0].get_ydata()[0] == pytest.approx(np.exp(-loss[-1]), rel=1e-12)
    # The 90% band of the score runs from exp(-hi) to exp(-lo) of the loss: its text names the score's band.
    assert f"{np.exp(-1.2 * loss[-1]):.3f}-{np.exp(-0.8 * loss[-1]):.3f}" in marker.get_label()
