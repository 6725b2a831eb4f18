"""Backtests: fit below compute cutoffs, forecast the larger runs, score plain and calibrated bands."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import bayes_scaling as bs
from bayes_scaling.backtest import checked_cutoffs, default_cutoffs, interval_score
from bayes_scaling.cli import main

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
SHORT = {k: v for k, v in FAST.items() if k != "calibrate"}  # FAST's sampler settings: one compiled sampler
WIDE = bs.datasets.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4)  # 64 runs over 10 decades of compute


def test_calibrated_backtest_on_the_embedded_runs():
    """Issue 5: calibrated forecasts of the larger Chinchilla runs, fitted below 1e20, 3e20 and 1e21 FLOP."""
    with warnings.catch_warnings():  # the fits below 1e20 FLOP report sampler warnings (README)
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = bs.backtest(bs.datasets.chinchilla(), cutoffs=(1e20, 3e20, 1e21), seed=0, **SHORT)
    table = result.table.set_index(["mode", "cutoff"])
    calibrated, plain = table.loc["calibrated"], table.loc["plain"]
    # Measured with these short chains: 90% bands cover 94.2%, 95.2%, 91.3% (plain: 58%, 56%, 57%); seeds 1-3
    # gave 93.3-95.2%, 95.2%, 87.0% on one CPU, seed 1 gave 94.2%, 96.8%, 87.0% on another (AVX-512: other
    # float32 rounding). The issue asks for 80% to 97% at every cutoff.
    assert ((calibrated["coverage_90"] >= 0.80) & (calibrated["coverage_90"] <= 0.97)).all(), calibrated
    assert (calibrated["median_abs_rel_error"] < 0.01).all()
    assert (calibrated["interval_score_90"] < plain["interval_score_90"]).all()
    assert (plain["coverage_90"] < 0.65).all()  # the plain bands are the problem the mode solves


def test_interval_score_rewards_narrow_bands_and_punishes_misses():
    y = np.array([1.0, 1.0, 1.0])
    lo, hi = np.array([0.9, 0.99, 1.05]), np.array([1.1, 1.01, 1.2])
    # Width alone when covered; width plus 2/alpha times the miss otherwise (alpha = 0.1).
    np.testing.assert_allclose(interval_score(y, lo, hi, 0.9), [0.2, 0.02, 0.15 + 20 * 0.05])


def test_backtest_on_a_correct_law_covers_and_scores_both_modes():
    runs = bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=8)
    with warnings.catch_warnings():  # an internal refit may sit at R-hat 1.011; coverage is the point here
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        result = bs.backtest(
            runs, "chinchilla", cutoffs=[1e18], seed=0, chains=4, warmup=300, draws=1000, target_accept=0.95
        )
    table = result.table.set_index("mode")
    assert list(table.index) == ["plain", "calibrated"]
    assert table.loc["plain", "n_train"] + table.loc["plain", "n_test"] == 64
    for mode in ("plain", "calibrated"):
        assert 0.75 <= table.loc[mode, "coverage_90"] <= 1.0
        assert table.loc[mode, "coverage_50"] <= table.loc[mode, "coverage_80"] <= table.loc[mode, "coverage_90"]
        # The noise alone has a median |error| of 0.74% (Student-t, 4 df, scale 1%); forecasts add a little.
        assert table.loc[mode, "median_abs_rel_error"] < 0.015
    # How far the largest held-out run lies beyond the largest fitted one, in decades of compute.
    fitted = runs.loc[runs["flops"] < 1e18, "flops"].max()
    assert table.loc["plain", "distance_decades"] == pytest.approx(np.log10(runs["flops"].max() / fitted))
    assert len(result.runs) == 2 * table.loc["plain", "n_test"]


def test_backtest_cli_writes_table_runs_and_plot(tmp_path, capsys):
    runs = bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=8)
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    args = [
        "backtest",
        str(path),
        "--cutoffs",
        "1e18",
        "--out",
        str(tmp_path / "out"),
        "--chains",
        "4",
        "--warmup",
        "300",
        "--draws",
        "1000",
        "--target-accept",
        "0.95",
    ]
    with warnings.catch_warnings():  # as above: an internal refit may sit at the R-hat threshold
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        assert main(args) == 0
    assert "coverage_90" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "backtest.csv")
    assert list(table["mode"]) == ["plain", "calibrated"] and list(table["cutoff"]) == [1e18, 1e18]
    assert (tmp_path / "out" / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "out" / "backtest_runs.csv")) == 2 * table["n_test"].iloc[0]
    assert main(["backtest", str(path), "--cutoffs", "1e30", "--out", str(tmp_path / "out")]) == 2


def test_default_cutoffs_are_the_runs_own():
    """Without cutoffs a backtest (and the review) cuts at the 50/70/85% quantiles of the runs' compute, one
    significant digit: inside every sweep, whatever its scale (the fixed 1e20, 3e20, 1e21 left Porian et al.'s
    runs, all below 2.6e19 FLOP, nothing to forecast)."""
    chinchilla = bs.laws.get("chinchilla")
    assert default_cutoffs(bs.datasets.chinchilla(), chinchilla) == [8e19, 3e20, 9e20]
    porian = bs.datasets.porian(("rw",))
    cuts = default_cutoffs(porian, chinchilla)
    compute = porian.frame["C"].to_numpy()
    assert len(cuts) == 3 and all(compute.min() < c < compute.max() for c in cuts)
    for cut, q in zip(cuts, (0.5, 0.7, 0.85), strict=True):
        share = np.mean(compute < cut)
        assert abs(share - q) < 0.2, (cut, share)
    # A law of N alone, runs without compute: cut along N.
    runs = pd.DataFrame({"params": np.geomspace(1e7, 1e9, 20), "loss": np.linspace(3.0, 2.5, 20)})
    data = bs.load_data(runs, c=None, needs=("N",))
    assert default_cutoffs(data, bs.laws.get("power-n")) == sorted(
        {float(f"{c:.0e}") for c in np.quantile(runs["params"], [0.5, 0.7, 0.85])}
    )


def test_cutoffs_are_numbers_one_or_many():
    """One number is one cutoff (``cutoffs=1e20`` stopped on 'float' object is not iterable); text that is not a
    number, or a cutoff at or below zero, is an error naming the argument, raised before any refit."""
    assert checked_cutoffs(1e20) == [1e20] and checked_cutoffs(["1e20", 3e20]) == [1e20, 3e20]
    assert checked_cutoffs(()) == []
    with pytest.raises(ValueError, match=r"cutoffs: expected numbers \(compute, FLOP\), got 'soon'"):
        bs.backtest(bs.datasets.chinchilla(), cutoffs="soon")
    with pytest.raises(ValueError, match=r"cutoffs: expected positive numbers \(compute, FLOP\), got \[1e\+20, 0\]"):
        bs.backtest(bs.datasets.chinchilla(), cutoffs=[1e20, 0])
