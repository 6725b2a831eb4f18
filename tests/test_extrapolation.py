import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.extrapolation import _internal_backtest, distance, distances, interval_score, reducible
from bayes_scaling.fit import as_dataset
from bayes_scaling.sampler import Settings

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
SHORT = {k: v for k, v in FAST.items() if k != "calibrate"}  # FAST's sampler settings: one compiled sampler
WIDE = bs.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4)  # 64 runs over 10 decades of compute


@pytest.fixture(scope="module")
def calibrated_fit() -> bs.Result:
    """Data simulated exactly from a Chinchilla law (Student-t noise, as the model assumes)."""
    runs = bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=7)
    return bs.fit(runs, seed=0, **{**FAST, "calibrate": True, "draws": 1000, "target_accept": 0.95})


def test_calibrated_fit_keeps_its_extrapolation_evidence(calibrated_fit, tmp_path):
    group = calibrated_fit.idata["extrapolation"]
    assert group["kappa"].shape == (4, 1000, 2) and (group["kappa"] >= 0).all()
    assert list(group["input"].values) == ["N", "D"]
    # Two refits along each input: lower 50% and 70% by N, then by D.
    internal = pd.DataFrame({"input": group["internal_input"].values, "split": group["internal_split"].values})
    assert sorted(set(map(tuple, internal.to_numpy()))) == [("D", 0.5), ("D", 0.7), ("N", 0.5), ("N", 0.7)]
    assert (group["internal_distance"] >= 0).all()
    assert ((group["internal_reducible"] > 0) & (group["internal_reducible"] < 1)).all()
    back = bs.load(calibrated_fit.save(tmp_path / "fit.nc"))
    np.testing.assert_array_equal(back.idata["extrapolation"]["kappa"], group["kappa"])


def test_internal_refits_run_in_threads_give_what_each_gives_alone(calibrated_fit):
    """The refits run in threads beside the main fit; one redone alone in this thread matches bit for bit."""
    runs = as_dataset(bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=7), calibrated_fit.law)
    settings = Settings(chains=4, warmup=FAST["warmup"], draws=1000, target_accept=0.95)
    train = runs.frame["D"].to_numpy() <= np.quantile(runs.frame["D"], 0.7)
    alone, problems = _internal_backtest(
        runs, calibrated_fit.law, calibrated_fit.spec, settings, 0, 1000, "D", 0.7, train
    )
    group = calibrated_fit.group("extrapolation")
    mine = (group["internal_input"].values == "D") & (group["internal_split"].values == 0.7)
    assert mine.sum() == (~train).sum() == len(alone) and not problems
    np.testing.assert_array_equal(group["internal_residual"].values[mine], alone["residual"])
    np.testing.assert_array_equal(group["internal_scale"].values[mine], alone["scale"])


def test_calibrated_mode_does_not_widen_bands_inside_the_data(calibrated_fit):
    inside = calibrated_fit.data().iloc[::7][["N", "D", "C"]].reset_index(drop=True)
    assert (distance(calibrated_fit, inside) == 0).all()
    plain = bs.predict(calibrated_fit, inside, mode="plain")
    calibrated = bs.predict(calibrated_fit, inside, mode="calibrated")
    assert (calibrated["mode"] == "calibrated").all() and (plain["mode"] == "plain").all()
    cols = [c for c in plain.columns if c.startswith(("loss_", "run_"))]
    np.testing.assert_array_equal(calibrated[cols].to_numpy(), plain[cols].to_numpy())


def test_calibrated_bands_stay_sharp_when_the_law_is_right(calibrated_fit):
    runs = calibrated_fit.data()
    big = runs.loc[runs["C"].idxmax()]
    beyond = pd.DataFrame({"N": [big["N"] * 10**0.5], "D": [big["D"] * 10**0.5]})
    beyond["C"] = 6 * beyond["N"] * beyond["D"]
    assert distance(calibrated_fit, beyond)[0] == pytest.approx(1.0, abs=0.01)  # one decade beyond
    plain = bs.predict(calibrated_fit, beyond, mode="plain").iloc[0]
    calibrated = bs.predict(calibrated_fit, beyond, mode="calibrated").iloc[0]
    for level in ("50", "80", "95"):
        width_plain = plain[f"run_hi{level}"] - plain[f"run_lo{level}"]
        width_calibrated = calibrated[f"run_hi{level}"] - calibrated[f"run_lo{level}"]
        assert width_calibrated <= 1.25 * width_plain, level


def test_distances_count_decades_beyond_every_run_that_is_larger_in_all_inputs():
    runs = pd.DataFrame({"N": [1e8, 1e9, 1e10], "D": [1e11, 1e10, 1e9]})
    points = pd.DataFrame({"N": [1e9, 1e9, 1e10, 1e11], "D": [1e10, 1e11, 1e10, 1e12]})
    got = distances(runs, points, ["N", "D"])
    # (1e9, 1e10) is a run: inside. (1e9, 1e11): 1 decade more N than the run (1e8, 1e11), or
    # 1 decade more D than (1e9, 1e10): the nearest shortfall is one decade along one input.
    # (1e10, 1e10) lies within each input's range, yet no run has that many parameters and tokens.
    # (1e11, 1e12): beyond all; nearest is (1e9, 1e10) or (1e10, 1e9), norm sqrt(2**2 + 2**2) vs sqrt(1 + 9).
    np.testing.assert_allclose(got[0], [0, 0])
    assert np.linalg.norm(got[1]) == pytest.approx(1.0)
    assert np.linalg.norm(got[2]) == pytest.approx(1.0)
    np.testing.assert_allclose(got[3], [2, 2])
    one = distances(runs, points, ["N"])
    np.testing.assert_allclose(one[:, 0], [0, 0, 0, 1])


def test_reducible_share_is_one_minus_e_over_loss():
    law = bs.get_law("chinchilla")
    share = reducible(law, {"E": np.array([1.5, 2.0])}, np.log(np.array([[3.0, 2.0], [4.0, 2.5]])))
    np.testing.assert_allclose(share, [[0.5, 0.25], [0.5, 0.2]])
    np.testing.assert_array_equal(reducible(bs.get_law("downstream"), {}, np.zeros((2, 3))), np.ones((2, 3)))


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
    assert table.loc["plain", "distance_decades"] == pytest.approx(np.log10(runs["flops"].max() / 1e18))
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
        str(tmp_path),
        "--chains",
        "4",
        "--warmup",
        "300",
        "--draws",
        "1000",
        "--target-accept",
        "0.95",
    ]
    assert main(args) == 0
    assert "coverage_90" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "backtest.csv")
    assert list(table["mode"]) == ["plain", "calibrated"] and list(table["cutoff"]) == [1e18, 1e18]
    assert (tmp_path / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "backtest_runs.csv")) == 2 * table["n_test"].iloc[0]
    assert main(["backtest", str(path), "--cutoffs", "1e30", "--out", str(tmp_path)]) == 2


def test_too_few_runs_for_calibration_warn_and_stay_plain():
    # 24 runs: fewer than the 30 the 70% internal split needs for the Chinchilla law.
    runs = bs.simulate({"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}, bs.sweep(sizes=6, ratios=4))
    with pytest.warns(bs.DataWarning, match=r"24 runs are too few for the internal backtests.*at least 30"):
        with warnings.catch_warnings():  # 2 x 30 draws do not converge; not the point here
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            result = bs.fit(runs, chains=2, warmup=30, draws=30, algorithm="hmc")
    assert "extrapolation" not in result.idata.groups()
