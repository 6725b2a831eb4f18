"""Every law family: parameter recovery, LOO comparison, and a family defined outside the package."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAST

import bayes_scaling as bs

WIDE = bs.datasets.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4)  # compute over 10 decades, 64 runs

# Known truths; Student-t noise (4 degrees of freedom, as the model assumes) of scale 1% on log loss
# (10% for the downstream metric). Fixed seeds: a regression check; calibration is tested by SBC.
CASES = {
    "power-n": ({"E": 1.8, "A": 200.0, "alpha": 0.3}, WIDE, 0.01),
    "power-d": ({"E": 1.8, "A": 900.0, "alpha": 0.33}, WIDE, 0.01),
    "power-c": ({"E": 1.7, "A": 3000.0, "alpha": 0.17}, WIDE, 0.01),
    "kaplan": ({"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}, bs.datasets.sweep(), 0.01),
    "broken": ({"E": 1.7, "A": 40.0, "alpha": 0.05, "c1": 0.4, "d1": 1e18, "f1": 0.5}, WIDE, 0.01),
    "downstream": ({"alpha": 2e3, "k": 0.15}, WIDE, 0.1),
    "downstream-offset": ({"E": 0.05, "alpha": 2e3, "k": 0.15}, WIDE, 0.1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_family_recovers_its_parameters(name):
    truth, runs, sigma = CASES[name]
    runs = bs.simulate(truth, runs, law=name, sigma=sigma, df=4.0, seed=1)
    if name.startswith("downstream"):  # a score in (0, 1]: fitted as -log(score)
        runs["loss"] = np.exp(-runs["loss"])
        data = bs.load_data(runs, loss="loss", needs=("C",), metric=True)
    else:
        data = runs
    result = bs.fit(data, name, seed=0, target_accept=0.95, **FAST)
    # Usable (no check fails): an R-hat of 1.011 in 4 short chains is a warning that float32 rounding on one
    # stack or another may give.
    assert result.health().level != "fail", result.problems
    for param, value in truth.items():
        lo, hi = np.quantile(result.group("posterior")[param].to_numpy(), [0.05, 0.95])
        assert lo <= value <= hi, (param, lo, value, hi)


def test_broken_law_wins_on_broken_data_and_not_on_a_single_power_law():
    truth = CASES["broken"][0]
    bent = bs.simulate(truth, WIDE, law="broken", sigma=0.01, seed=2)
    fits = [bs.fit(bent, law, seed=0, target_accept=0.95, **FAST) for law in ("broken", "power-c")]
    table = bs.compare(fits)
    assert table.index[0] == "broken"
    assert table.loc["power-c", "elpd_diff"] > 2 * table.loc["power-c", "dse"]

    straight = bs.simulate(CASES["power-c"][0], WIDE, law="power-c", sigma=0.01, seed=2)
    with warnings.catch_warnings():
        # The break is not identified in straight data: the broken law may mix poorly; LOO is still read.
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        fits = [bs.fit(straight, law, seed=0, target_accept=0.95, **FAST) for law in ("broken", "power-c")]
    table = bs.compare(fits)
    if table.index[0] == "broken":
        assert table.loc["power-c", "elpd_diff"] <= table.loc["power-c", "dse"]


#: Settings of the embedded runs' kaplan and power-c fits (one compiled sampler per law for the tests below).
EMBEDDED = {"target_accept": 0.95, **FAST, "draws": 1000}


def test_comparison_on_embedded_data_and_stacked_gpt4_forecast(epoch_fit):
    data = bs.datasets.chinchilla(drop_highest=5)
    fits = [epoch_fit] + [bs.fit(data, law, seed=0, **EMBEDDED) for law in ("kaplan", "power-c")]
    table = bs.compare(fits)
    assert set(table.index) == {"chinchilla", "kaplan", "power-c"}
    assert table.index[0] == "chinchilla"
    assert (table["pareto_k_high"] >= 0).all() and table["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    singles = [bs.forecast(r, preset="gpt4")["loss_median"].iloc[0] for r in fits]
    mix = bs.forecast(fits, weights=table["weight"], preset="gpt4").iloc[0]  # a stacked forecast
    assert mix["mode"] == "stacked" and min(singles) <= mix["loss_median"] <= max(singles)
    with pytest.raises(ValueError, match="needs their weights"):
        bs.forecast(fits, preset="gpt4")
    with pytest.raises(ValueError, match=r"no fit of law 'broken'"):
        bs.forecast(fits, weights={"broken": 1.0}, preset="gpt4")


def test_power_c_on_the_lower_compute_of_the_embedded_runs_mixes_in_short_trees():
    """E + A / C^alpha on the 171 embedded runs below the 70% quantile of compute: E, A and alpha trade off along
    a curved ridge. Sampled by the curve at the centre of the data (``_model._sample_curve``), every check passes
    in trees of about 6 leapfrog steps; sampled as (log E, log A_c, log alpha), the default fit took 58 steps a
    draw and 60 of its 4000 draws diverged (``benchmarks/bench_coordinates.py``, results/coordinates_cpu2.txt)."""
    runs = bs.datasets.chinchilla().frame
    low = runs[runs["C"] <= np.quantile(runs["C"], 0.7)]
    data = low.rename(columns={"N": "params", "D": "tokens", "C": "flops"})
    result = bs.fit(data, "power-c", seed=0, **EMBEDDED)  # padded to 256 rows, as the comparison's 240
    assert result.health().level == "pass", result.health().problems
    assert float(result.group("sample_stats")["n_steps"].mean()) < 15
    posterior = result.group("posterior")
    assert {"log_L_c", "share_logit_A", "log_slope_A", "E", "A", "alpha", "log_A_c"} <= set(posterior.data_vars)
    # E lies below the smallest loss of these runs, alpha within its usual range on them (0.12-0.18 at 90%).
    assert float(posterior["E"].max()) < low["loss"].min()
    assert 0.1 < float(posterior["alpha"].median()) < 0.2


def test_intrinsic_dimension_is_four_over_the_data_exponent(epoch_fit):
    d = epoch_fit.intrinsic_dimension()
    beta = epoch_fit.group("posterior")["beta"].to_numpy()
    assert d["exponent"] == "beta"
    assert d["median"] == pytest.approx(np.median(4 / beta), rel=1e-9)
    with pytest.raises(ValueError, match="no data-scaling exponent"):
        bs.Result(epoch_fit.source, bs.laws.get("power-c"), epoch_fit.spec).intrinsic_dimension()


def test_a_family_defined_outside_the_package(monkeypatch):
    def saturating(p, x):
        """L(N) = E + A / (1 + N / N_0): a made-up law, with its own priors in Python."""
        return jnp.log(p["E"] + p["A"] / (1 + jnp.exp(x["N"] - jnp.log(p["N_0"]))))

    # Registered for this test only: later tests in this process see the package's laws alone (a law without a
    # prior file would fail test_fit's check of every registered law's file).
    monkeypatch.setattr(bs.laws, "_REGISTRY", dict(bs.laws._REGISTRY))
    law = bs.laws.register(bs.Law("saturating", saturating, params=("E", "A", "N_0"), inputs=("N",)))
    priors = {
        "E": bs.Prior("lognormal", loc=0.5, scale=0.5),
        "A": bs.Prior("lognormal", loc=0.0, scale=1.0),
        "N_0": bs.Prior("lognormal", loc=18.0, scale=2.0),
        "sigma": bs.Prior("halfnormal", scale=0.1),
    }
    truth = {"E": 2.0, "A": 1.5, "N_0": 1e8}
    runs = bs.simulate(truth, bs.datasets.sweep(), law=law, sigma=0.01, seed=4)
    result = bs.fit(runs, law, priors=priors, seed=0, **FAST)
    assert result.converged, result.problems
    for param, value in truth.items():
        lo, hi = np.quantile(result.group("posterior")[param].to_numpy(), [0.05, 0.95])
        assert lo <= value <= hi, (param, lo, value, hi)
    row = bs.forecast(result, N=1e11, D=1e12).iloc[0]
    true = 2.0 + 1.5 / (1 + 1e11 / 1e8)
    assert row["loss_lo95"] <= true <= row["loss_hi95"]


def test_a_law_of_n_alone_is_plotted_against_n(tmp_path):
    truth, runs, sigma = CASES["power-n"]
    result = bs.fit(
        bs.simulate(truth, runs, law="power-n", sigma=sigma, df=4.0, seed=1),
        "power-n",
        seed=0,
        target_accept=0.95,
        **FAST,
    )
    table = bs.forecast(result, N=1e12, D=2e13)
    fig = bs.plots.fit(result, table, path=tmp_path / "fit.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "parameters N" and ax.get_xlim()[1] >= 1e12
    assert (tmp_path / "fit.png").read_bytes()[:4] == b"\x89PNG"
