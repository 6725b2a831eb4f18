"""Extrapolation risk review: sections, rendering, verdicts on good, bending and badly mixed fits."""

import base64
import html
import json
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, healthy_fit

import bayes_scaling as bs
from bayes_scaling import Prior
from bayes_scaling.backtest import coverage_interval
from bayes_scaling.review import SECTIONS, backtest_points, model_points

TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
HMC = {"chains": 4, "warmup": 300, "draws": 500, "algorithm": "hmc"}
PNG = b"\x89PNG\r\n\x1a\n"


def sweep(bend: bool, seed: int = 0) -> pd.DataFrame:
    """A Chinchilla-law sweep over 1e7-1e10 parameters; with ``bend``, the reducible loss drops
    by (1 + C / 1e19)**-0.12 beyond 1e19 FLOP, below the largest runs."""
    runs = bs.datasets.sweep(n_range=(1e7, 1e10), tokens_per_param=(5.0, 100.0), sizes=10, ratios=6)
    data = bs.simulate(TRUTH, runs, sigma=0.005, seed=seed)
    if bend:
        reducible = data["loss"] - TRUTH["E"]
        data["loss"] = TRUTH["E"] + reducible * (1 + data["flops"] / 1e19) ** -0.12
    return data


@pytest.fixture(scope="module")
def embedded_review(epoch_fit, tmp_path_factory) -> tuple:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        report = bs.review(
            epoch_fit, preset="gpt4", cutoffs=(3e20,), laws=("power-c",), prior_scales=(2.0,), **FAST_REFIT
        )
    return report, bs.report.save(report, tmp_path_factory.mktemp("review"))


FAST_REFIT = {k: v for k, v in FAST.items() if k != "calibrate"}


def test_review_of_embedded_data_renders_every_section(embedded_review):
    report, out = embedded_review
    page = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    for section in SECTIONS:
        assert f">{section}</h2>" in page, section
        assert f"## {section}" in markdown, section
    # Self-contained: no external references (no http(s), no src= other than inline data).
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == PNG
    for name in ("distance", "fit", "backtest", "ppc"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == PNG
        assert f"(figures/{name}.png)" in markdown
    saved = json.loads((out / "report.json").read_text())
    assert saved["verdict"] in ("low", "medium", "high") and saved["verdict"] == report.verdict
    assert "rule" in saved and "unusable if any sampler-health check fails" in saved["rule"]
    record = saved["backtests"][0]
    for key in ("cutoff_flops", "coverage_50", "coverage_90", "median_abs_rel_error"):
        assert key in record
    assert record["cutoff_flops"] == 3e20
    # GPT-4 scale lies over 3 decades of compute beyond the largest embedded run (1.3e22 FLOP).
    distance = report.tables["distance"].set_index("input")
    assert distance.loc["C", "decades_beyond"] == pytest.approx(np.log10(2.1e25 / 1.2956e22), abs=0.01)
    assert set(report.tables["health"]["status"]) == {"pass"}
    # Variance shares are fractions; E (the floor) drives most of the width at GPT-4 scale.
    drivers = report.tables["drivers"].set_index("parameter")["variance_share"]
    assert drivers.between(0, 1).all() and drivers.idxmax() == "E"
    assert list(report.tables["models"]["law"]) == ["chinchilla", "power-c", "stacked"]
    assert report.tables["models"]["loo_weight"].iloc[:2].sum() == pytest.approx(1.0, abs=1e-6)
    pit = report.tables["loo_pit"]["loo_pit"]
    assert len(pit) == 240 and pit.between(0, 1).all()


def test_backtests_on_a_correct_law_cover_and_on_a_bending_law_flag_miscalibration():
    with warnings.catch_warnings():  # refits on the lower runs may mix marginally; coverage is the point
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        good = bs.backtest(sweep(bend=False), "chinchilla", cutoffs=(3e18, 1e19), calibrate=False, seed=0, **HMC)
        bent = healthy_fit(sweep(bend=True), (0, 1, 2), calibrate=False, **HMC)  # HMC mixes marginally here
        report = bs.review(bent, preset="gpt4", cutoffs=(3e18, 1e19), laws=(), prior_scales=(), **HMC)
    assert good.table["coverage_90"].between(0.75, 1.0).all(), good.table
    assert report.tables["backtests"]["coverage_90"].min() < 0.7
    assert any(r.startswith("backtests miscalibrated") for r in report.reasons)
    assert report.verdict != "low"


def test_a_short_badly_mixed_fit_is_unusable(epoch_fit):
    # The first 15 draws of 2 chains: far too few for R-hat and ESS.
    groups = {name: epoch_fit.group(name) for name in epoch_fit.groups()}
    for name in ("posterior", "sample_stats", "log_likelihood"):
        groups[name] = groups[name].isel(chain=slice(0, 2), draw=slice(0, 15))
    short = bs.Result(groups, epoch_fit.law, epoch_fit.spec)
    report = bs.review(short, preset="gpt4")
    health = report.tables["health"].set_index("check")
    assert health.loc["min bulk ESS", "status"] == "fail"
    assert report.verdict == "unusable"
    assert report.reasons[0].startswith("THE SAMPLER FAILED")
    assert "backtests" not in report.tables
    assert "Skipped: the sampler failed" in bs.report.markdown(report)


def test_prior_sensitivity_moves_towards_a_tight_wrong_prior():
    # E's prior pinned near 2.2, well above the truth 1.7: tightening it further pulls the
    # forecast up towards 2.2, widening it lets the data pull the forecast down.
    data = sweep(bend=False)
    wrong = {"E": Prior("lognormal", loc=np.log(2.2), scale=0.01)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = bs.fit(data, priors=wrong, calibrate=False, seed=0, **HMC)
        report = bs.review(result, flops=1e24, cutoffs=(), laws=(), prior_scales=(0.5, 4.0), **HMC)
    table = report.tables["priors"].set_index("prior_scale")
    assert table.loc[0.5, "shift"] > 0 > table.loc[4.0, "shift"]
    assert table.loc[4.0, "flagged"]
    assert any(r.startswith("the forecast moves with the priors") for r in report.reasons)


def test_rendering_reads_the_review_and_never_refits(embedded_review, monkeypatch):
    """A review is data: rendering it again draws the same page from its tables, with fitting switched off."""
    report, out = embedded_review

    def no(*args, **kwargs):
        raise AssertionError("rendering must not fit, forecast or sample")

    # Every fit samples, and every forecast evaluates the law at draws x points: both switched off.
    for module, name in (("bayes_scaling._sampler", "sample"), ("bayes_scaling._evaluate", "law_at")):
        monkeypatch.setattr(sys.modules[module], name, no)
    monkeypatch.setattr(sys.modules["bayes_scaling.forecast"], "law_at", no)
    again = bs.report.markdown(report)
    assert again == (out / "report.md").read_text()
    page = bs.report.html(report)
    assert page.count("<img ") == 4 and page.count("</h2>") == len(SECTIONS)
    assert bs.report.json(report)["verdict"] == report.verdict


def _backtest_row(cutoff: float, covered: int, n: int, decades: float) -> dict:
    lo, hi = coverage_interval(covered, n)
    return {
        "cutoff_flops": cutoff,
        "mode": "plain",
        "distance_decades": decades,
        "n_test": n,
        "covered_90": covered,
        "coverage_90": covered / n,
        "coverage_90_lo": lo,
        "coverage_90_hi": hi,
    }


def test_a_backtest_counts_only_with_enough_held_out_runs():
    # 2 of 4 held-out runs 0.017 decades out (a public sweep's case): 50%, but the exact 95% interval
    # 7%-93% holds 90%: no evidence either way, said so, no points.
    few = pd.DataFrame([_backtest_row(1e21, 2, 4, 0.017)])
    points, said = backtest_points(few, "plain", decades=0.01)
    assert points == ()
    assert "Too few held-out runs to tell at cutoff(s) 1e+21 (2 of 4 covered, 95% interval 7%-93%)" in said
    # 60 of 104 (58%, interval 48%-67%): significantly under 90%, two points naming the numbers.
    many = pd.DataFrame([_backtest_row(1e21, 2, 4, 0.017), _backtest_row(1e20, 60, 104, 2.1)])
    points, _ = backtest_points(many, "plain", decades=1.0)
    assert len(points) == 1 and points[0][0] == 2
    assert "cutoff 1e+20: 60 of 104 held-out runs (58%, 95% interval 48%-67%)" in points[0][1]
    assert "1e+21" not in points[0][1]
    # A target further out than every backtest: one point with both distances.
    points, _ = backtest_points(many, "plain", decades=3.2)
    assert points[-1] == (1, "the target (3.2 decades) is further out than any backtest (2.1)")


def test_laws_whose_fits_failed_do_not_vote():
    rows = [
        {"law": "chinchilla", "votes": True, "why_not": "", "loss_median": 1.90, "loss_lo95": 1.87, "loss_hi95": 1.92},
        {
            "law": "power-c",
            "votes": False,
            "why_not": "fit failed: R-hat of E is 1.3 (> 1.01)",
            "loss_median": 2.5,
            "loss_lo95": 2.0,
            "loss_hi95": 3.0,
        },
        {"law": "stacked", "votes": True, "why_not": "", "loss_median": 1.90, "loss_lo95": 1.87, "loss_hi95": 1.92},
    ]
    points, note = model_points(pd.DataFrame(rows), "chinchilla")
    assert points == ()  # power-c's median lies far outside, but its fit failed: it does not vote
    assert "Not voting: power-c (fit failed: R-hat of E is 1.3 (> 1.01))" in note
    rows[1] |= {"votes": True, "why_not": ""}
    points, _ = model_points(pd.DataFrame(rows), "chinchilla")
    assert points[0][0] == 1 and "power-c's median 2.5" in points[0][1] and "1.87-1.92" in points[0][1]
    # A law of -log(score): the reason quotes the score (exp(-loss), the band's ends swapped), the vote unchanged.
    points, note = model_points(pd.DataFrame(rows), "chinchilla", metric="HumanEval")
    assert f"power-c's median {np.exp(-2.5):.4g}" in points[0][1]
    assert f"95% band HumanEval {np.exp(-1.92):.4g}-{np.exp(-1.87):.4g}" in points[0][1]
    assert "on the fitted scale, -log(score)" in note


def test_laws_the_runs_rule_out_do_not_count_as_disagreement():
    own = {"law": "chinchilla", "votes": True, "why_not": "", "elpd_diff": 0.0, "dse": 0.0}
    rows = [
        own | {"loss_median": 1.90, "loss_lo95": 1.87, "loss_hi95": 1.92},
        {"law": "kaplan", "votes": True, "why_not": "", "loss_median": 1.37, "loss_lo95": 1.3, "loss_hi95": 1.45},
        {"law": "stacked", "votes": True, "why_not": "", "loss_median": 1.90, "loss_lo95": 1.87, "loss_hi95": 1.92},
    ]
    # Kaplan's median lies far outside; PSIS-LOO puts its elpd 35 below the best's (se 8): ruled out.
    rows[1] |= {"elpd_diff": 35.0, "dse": 8.0}
    points, note = model_points(pd.DataFrame(rows), "chinchilla")
    assert points == ()
    assert "Ruled out by PSIS-LOO (their medians do not count): kaplan (elpd lower than the best by 35.0" in note
    # Lower by 5 with a standard error of 3 (under two): not ruled out, its median counts.
    rows[1] |= {"elpd_diff": 5.0, "dse": 3.0}
    points, _ = model_points(pd.DataFrame(rows), "chinchilla")
    assert points[0][0] == 1 and "kaplan's median 1.37" in points[0][1]
    # Lower by 3 (under 4), however sure: not ruled out either.
    rows[1] |= {"elpd_diff": 3.0, "dse": 0.5}
    assert model_points(pd.DataFrame(rows), "chinchilla")[0][0][0] == 1


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
# Measures the page after it loads: its scroll width against the window's, and every image decoded.
PROBE = """<script>window.addEventListener("load", () => { const images = [...document.images];
document.title = JSON.stringify({scroll: document.documentElement.scrollWidth,
client: document.documentElement.clientWidth, images: images.length,
loaded: images.filter((i) => i.complete && i.naturalWidth > 0).length}); });</script>"""


@pytest.mark.skipif(BROWSER is None, reason="no Chromium: .ci/run installs Debian's chromium package")
def test_the_page_fits_1200_pixels_and_every_figure_loads_in_a_browser(embedded_review, tmp_path):
    _, out = embedded_review
    page = (out / "report.html").read_text()
    assert page.index('class="summary"') < page.index("<h2")  # the summary comes first
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += [
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shown = subprocess.run(
        [BROWSER, *flags, "--window-size=1200,900", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    measured = json.loads(html.unescape(re.search(r"<title>(\{.*?\})</title>", shown.stdout).group(1)))
    assert measured["scroll"] <= measured["client"], measured  # no horizontal overflow at 1200 px
    assert measured["images"] == 4 and measured["loaded"] == 4, measured


def test_the_review_refits_on_the_other_parameter_count():
    """Runs whose law holds on non-embedding parameters, fitted on them: the review refits on totals and shows
    how far the forecast moves, with the embeddings at the target extrapolated from the runs'."""
    runs = bs.datasets.sweep(n_range=(1e7, 1e9), tokens_per_param=(5.0, 100.0), sizes=8, ratios=5)
    runs = bs.simulate(TRUTH, runs, sigma=0.005, seed=3)
    emb = 32000 * 64.0 * (runs["params"] / 1e6) ** (1 / 3)  # vocabulary x width, width as N^(1/3)
    runs = runs.assign(params=runs["params"] + emb, embedding_params=emb).drop(columns="flops")
    result = bs.fit(bs.load_data(runs, fit_on="non-embedding"), **FAST)
    assert result.params_counted == "non-embedding"
    n, d = 1e10, 2e11
    report = bs.review(result, N=n, D=d, cutoffs=(), laws=(), prior_scales=(), **FAST_REFIT)
    table = report.tables["parameter_counts"]
    assert list(table["params"]) == ["non-embedding", "total"] and list(table["as_fitted"]) == [True, False]
    at_target = 32000 * 64.0 * (n / 1e6) ** (1 / 3)
    assert table["N_embedding"].iloc[0] == pytest.approx(at_target, rel=0.02)  # the runs' power, extrapolated
    assert table["N"].iloc[1] == pytest.approx(n + table["N_embedding"].iloc[0], rel=1e-12)
    truth = TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]
    assert table["loss_lo95"].iloc[0] <= truth <= table["loss_hi95"].iloc[0]  # the count the law holds on
    note = report.notes["Model-form sensitivity"]
    shift = table["loss_median"].iloc[1] / table["loss_median"].iloc[0] - 1
    assert "refitted on total ones" in note and f"moves by {shift:+.1%}" in note


def test_other_laws_need_their_inputs_at_the_target_too():
    """A law of compute alone reviewed at a compute budget: the runs give N and D, the target does not. The
    default families leave out the laws of N and D (their refits forecast NaN: the review stopped with "law
    'chinchilla' needs N, D at every point"), and naming one is an error before any refit."""
    result = healthy_fit(bs.datasets.chinchilla(drop_highest=5), range(3), law="power-c", **FAST)
    report = bs.review(result, flops=2.1e25, cutoffs=(), prior_scales=(), **FAST_REFIT)
    assert report.notes["Model-form sensitivity"] == "No other law family applies to these runs."
    with pytest.raises(ValueError, match=r"law 'chinchilla' needs N, D for every run and at the target, which gives C"):
        bs.review(result, flops=2.1e25, laws=("chinchilla",))


def test_cutoffs_are_checked_before_any_refit(epoch_fit, monkeypatch):
    """A cutoff below every run, or at zero, stopped the review only after its other refits had run (the
    backtests' thread raised last); now both are said before any refit."""
    import importlib

    review = importlib.import_module("bayes_scaling.review")  # the module (bs.review is the function)

    def no_refit(*args, **kwargs):
        raise AssertionError("refitted")

    monkeypatch.setattr(review, "_fit", no_refit)
    monkeypatch.setattr(review, "_backtest", no_refit)
    with pytest.raises(ValueError, match=r"runs of the reviewed fit: cutoff 1e\+15 leaves 0 runs to fit, 240 to test"):
        bs.review(epoch_fit, preset="gpt4", cutoffs=(1e15, 1e20))
    with pytest.raises(ValueError, match=r"cutoffs: expected positive numbers \(compute, FLOP\), got \(0, 1e\+20\)"):
        bs.review(epoch_fit, preset="gpt4", cutoffs=(0, 1e20))


def test_a_review_of_a_score_fitted_to_compute_alone(tmp_path):
    """Runs that give compute and a pass rate only (metric=True, the downstream law): the review's trends,
    distances and other laws use the inputs the runs give (it stopped in a least-squares fit over NaN), and the
    report states the forecast as the score, by its name, and draws it so."""
    truth = {"alpha": 2e3, "k": 0.15}
    runs = bs.simulate(
        truth, bs.datasets.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4), law="downstream", sigma=0.1, seed=5
    )
    frame = pd.DataFrame({"flops": runs["flops"], "HumanEval": np.exp(-runs["loss"])})
    data = bs.load_data(frame, loss="HumanEval", metric=True, needs=("C",))
    result = healthy_fit(data, range(3), law="downstream", **FAST)
    report = bs.review(result, flops=2.1e25, cutoffs=(1e21,), prior_scales=(), **FAST_REFIT)
    assert report.law["metric"] == "HumanEval"
    assert list(report.tables["residual_trends"]["input"]) == ["C"]
    assert list(report.tables["distance"]["input"]) == ["C"]
    assert list(report.tables["models"]["law"]) == ["downstream", "power-c", "stacked"]  # no law of N and D
    row = report.tables["forecast"].iloc[0]
    # The score's band is exp(-) of the loss's, its ends swapped; the true pass rate lies inside (95%).
    assert row["score_lo95"] == pytest.approx(np.exp(-row["loss_hi95"]), rel=1e-9)
    assert row["run_score_hi90"] == pytest.approx(np.exp(-row["run_lo90"]), rel=1e-9)
    assert row["score_lo95"] <= np.exp(-2e3 * 2.1e25**-0.15) <= row["score_hi95"]
    page = bs.report.markdown(report)
    title, summary = page.splitlines()[0], page.split("\n\n")[2]
    assert title == "# Extrapolation risk review: C=2.1e+25 (C=2.1e+25 FLOP)"
    assert summary.startswith(f"Expected HumanEval at C=2.1e+25: {row['score_median']:.4g} (50% ")
    figure = bs.plots.backtest(report.tables["backtest_runs"], metric="HumanEval")
    assert figure.axes[0].get_xlabel() == "realized HumanEval (score)"
    held = report.tables["backtest_runs"]
    held = held[held["mode"] == held["mode"].iloc[0]]  # the first panel's
    drawn = np.concatenate([np.asarray(c.lines[0].get_xdata(), float) for c in figure.axes[0].containers])
    np.testing.assert_allclose(np.sort(drawn), np.sort(np.exp(-held["loss"].to_numpy())), rtol=1e-12)
