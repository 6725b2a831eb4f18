"""The calibrated mode: internal backtests, the learned extrapolation error, and bands beyond the data."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import bayes_scaling as bs
from bayes_scaling._calibration import reducible
from bayes_scaling._geometry import beyond
from bayes_scaling.fit import _as_dataset, _internal_backtest

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
WIDE = bs.datasets.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4)  # 64 runs over 10 decades of compute


@pytest.fixture(scope="module")
def calibrated_fit() -> bs.Result:
    """Data simulated exactly from a Chinchilla law (Student-t noise, as the model assumes)."""
    runs = bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=7)
    return bs.fit(runs, seed=0, **{**FAST, "calibrate": True, "draws": 1000, "target_accept": 0.95})


def test_calibrated_fit_keeps_its_extrapolation_evidence(calibrated_fit, tmp_path):
    group = calibrated_fit.group("extrapolation")
    assert group["kappa"].shape == (4, 1000, 2) and (group["kappa"] >= 0).all()
    assert list(group["input"].values) == ["N", "D"]
    # Two refits along each input: lower 50% and 70% by N, then by D.
    internal = pd.DataFrame({"input": group["internal_input"].values, "split": group["internal_split"].values})
    assert sorted(set(map(tuple, internal.to_numpy()))) == [("D", 0.5), ("D", 0.7), ("N", 0.5), ("N", 0.7)]
    assert (group["internal_distance"] >= 0).all()
    assert ((group["internal_reducible"] > 0) & (group["internal_reducible"] < 1)).all()
    back = bs.load(calibrated_fit.save(tmp_path / "fit.nc"))
    np.testing.assert_array_equal(back.group("extrapolation")["kappa"], group["kappa"])


def test_internal_refits_run_in_threads_give_what_each_gives_alone(calibrated_fit):
    """The refits run in threads beside the main fit; one redone alone in this thread matches bit for bit."""
    runs = _as_dataset(bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=7), calibrated_fit.law)
    settings = bs.Settings(chains=4, warmup=FAST["warmup"], draws=1000, target_accept=0.95)
    train = runs.frame["D"].to_numpy() <= np.quantile(runs.frame["D"], 0.7)
    alone, health = _internal_backtest(
        runs, calibrated_fit.law, calibrated_fit.spec, settings, 0, 1000, "D", 0.7, train
    )
    group = calibrated_fit.group("extrapolation")
    mine = (group["internal_input"].values == "D") & (group["internal_split"].values == 0.7)
    assert mine.sum() == (~train).sum() == alone.rows and health.level == "pass"
    np.testing.assert_array_equal(group["internal_residual"].values[mine], alone.residual)
    np.testing.assert_array_equal(group["internal_scale"].values[mine], alone.scale)


def test_calibrated_mode_does_not_widen_bands_inside_the_data(calibrated_fit):
    inside = calibrated_fit.data().iloc[::7][["N", "D", "C"]].reset_index(drop=True)
    assert (beyond(calibrated_fit.data(), inside, ["N", "D"]) == 0).all()
    plain = bs.forecast(calibrated_fit, inside, mode="plain")
    calibrated = bs.forecast(calibrated_fit, inside, mode="calibrated")
    assert (calibrated["mode"] == "calibrated").all() and (plain["mode"] == "plain").all()
    cols = [c for c in plain.columns if c.startswith(("loss_", "run_"))]
    np.testing.assert_array_equal(calibrated[cols].to_numpy(), plain[cols].to_numpy())


def test_calibrated_bands_stay_sharp_when_the_law_is_right(calibrated_fit):
    runs = calibrated_fit.data()
    big = runs.loc[runs["C"].idxmax()]
    out = pd.DataFrame({"N": [big["N"] * 10**0.5], "D": [big["D"] * 10**0.5]})
    out["C"] = 6 * out["N"] * out["D"]
    assert beyond(runs, out, ["C"])[0, 0] == pytest.approx(1.0, abs=0.01)  # one decade of compute beyond
    plain = bs.forecast(calibrated_fit, out, mode="plain").iloc[0]
    calibrated = bs.forecast(calibrated_fit, out, mode="calibrated").iloc[0]
    for level in ("50", "80", "95"):
        width_plain = plain[f"run_hi{level}"] - plain[f"run_lo{level}"]
        width_calibrated = calibrated[f"run_hi{level}"] - calibrated[f"run_lo{level}"]
        assert width_calibrated <= 1.25 * width_plain, level


def test_reducible_share_is_one_minus_e_over_loss():
    law = bs.laws.get("chinchilla")
    share = reducible(law, {"E": np.array([1.5, 2.0])}, np.log(np.array([[3.0, 2.0], [4.0, 2.5]])))
    np.testing.assert_allclose(share, [[0.5, 0.25], [0.5, 0.2]])
    np.testing.assert_array_equal(reducible(bs.laws.get("downstream"), {}, np.zeros((2, 3))), np.ones((2, 3)))


def test_too_few_runs_for_calibration_warn_and_stay_plain():
    # 24 runs: fewer than the 30 the 70% internal split needs for the Chinchilla law.
    runs = bs.simulate(
        {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}, bs.datasets.sweep(sizes=6, ratios=4)
    )
    with pytest.warns(bs.DataWarning, match=r"24 runs are too few for the internal backtests.*at least 30"):
        with warnings.catch_warnings():  # 2 x 30 draws do not converge; not the point here
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            result = bs.fit(runs, chains=2, warmup=30, draws=30, algorithm="hmc")
    assert "extrapolation" not in result.groups()
