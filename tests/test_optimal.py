import warnings

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling._evaluate import numeric_optimum, optimum
from bayes_scaling.cli import main
from bayes_scaling.data import at_ratio
from bayes_scaling.optimal import _overtrained

# Hoffmann et al. (2022), eq. 10, as a point mass.
HOFFMANN = {k: np.array([v]) for k, v in {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}.items()}


def test_closed_form_optimum_at_chinchilla_compute():
    c, k = 5.76e23, 6.0
    log_n, log_d = optimum(bs.laws.get("chinchilla"), HOFFMANN, np.array([c]))  # the law's own closed form
    a, b = 0.34, 0.28
    g = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))
    n = g * (c / k) ** (b / (a + b))
    assert np.exp(log_n[0, 0]) == pytest.approx(n, rel=1e-6)
    assert np.exp(log_d[0, 0]) == pytest.approx(c / k / n, rel=1e-6)


def test_numeric_optimum_agrees_with_closed_form():
    law = bs.laws.get("chinchilla")
    flops = np.array([1e20, 5.76e23, 2.1e25])
    exact, _ = optimum(law, HOFFMANN, flops)
    numeric = numeric_optimum(law, HOFFMANN, flops)
    np.testing.assert_allclose(np.exp(numeric), np.exp(exact), rtol=1e-3)


def test_embedded_exponents_and_tokens_per_param(epoch_fit):
    exps = bs.optimal.exponents(epoch_fit)
    for name in ("a", "b"):
        assert abs(exps.loc[name, "median"] - 0.5) <= 0.1
        assert exps.loc[name, "lo"] < exps.loc[name, "median"] < exps.loc[name, "hi"]
    row = bs.optimal.frontier(epoch_fit, 5.76e23, ci=0.9).iloc[0]
    assert row["tokens_per_param_lo"] < row["tokens_per_param"] < row["tokens_per_param_hi"]
    # Hoffmann et al. report about 20 tokens per parameter at this compute; Epoch's refit is close.
    assert 10 < row["tokens_per_param"] < 30
    np.testing.assert_allclose(row["N_opt"] * row["D_opt"] * 6, 5.76e23, rtol=0.05)


def test_isoflop_exponent_is_reported_beside_the_parametric_one(epoch_fit):
    table, a = bs.optimal.isoflop(bs.datasets.chinchilla(drop_highest=5))
    assert a["groups"] >= 5 and len(table) == a["groups"]
    assert a["a_lo"] < a["a"] < a["a_hi"]
    # Hoffmann et al. (2022) Approach 2 found a = 0.49; the two approaches agree within their intervals here.
    assert 0.4 < a["a"] < 0.6
    parametric = bs.optimal.exponents(epoch_fit).loc["a"]
    assert a["a_lo"] <= parametric["hi"] and parametric["lo"] <= a["a_hi"]


def test_regret_is_never_negative_and_bayes_is_best(epoch_fit):
    for flops in (1e21, 5.76e23, 2.1e25):
        table = bs.optimal.decide(epoch_fit, flops)
        assert (table["regret_mean"] >= 0).all() and (table["regret_lo"] >= 0).all()
        assert table.loc["bayes", "expected_loss"] <= table.loc["plug-in", "expected_loss"]
        assert table.loc["bayes", "expected_loss"] <= table.loc["20 tokens/param", "expected_loss"]


def test_budget_with_prices_satisfies_the_constraint_and_beats_plug_in(epoch_fit):
    prices = {"price_n": 2e-3, "price_d": 1e-4, "price_c": 1e-18}
    table = bs.optimal.budget(epoch_fit, 1e6, **prices)
    for choice in ("bayes", "plug-in"):
        row = table.loc[choice]
        cost = prices["price_n"] * row["N"] + prices["price_d"] * row["D"] + prices["price_c"] * 6 * row["N"] * row["D"]
        assert cost <= 1e6 * (1 + 1e-9)
        assert row["cost"] == pytest.approx(cost, rel=1e-9)
    assert table.loc["bayes", "expected_loss"] <= table.loc["plug-in", "expected_loss"]
    with pytest.raises(ValueError, match="prices leave N or D free"):
        bs.optimal.budget(epoch_fit, 1e6, price_n=1.0, price_d=0.0, price_c=0.0)


def test_cheapest_allocation_reaches_the_target_with_the_asked_probability(epoch_fit):
    spend = bs.optimal.cheapest(epoch_fit, 2.0, prob=0.9)
    assert spend["prob"] >= 0.9
    losses = bs.optimal.losses(epoch_fit.law, epoch_fit.draws(), np.array([spend["N"]]), np.array([spend["D"]]), 6.0)
    assert np.mean(losses <= 2.0) >= 0.9
    # A tenth of that compute, however split, falls short.
    assert bs.optimal.budget(epoch_fit, spend["C"] / 10).loc["bayes", "loss_hi"] > 2.0
    with pytest.raises(ValueError, match="below the irreducible loss E"):
        bs.optimal.cheapest(epoch_fit, 1.5)


def test_overtrained_runs_cost_loss_and_compute(epoch_fit):
    """Along a fixed tokens-per-parameter ratio M: C = 6·N·D and D/N = M exactly; no ratio beats the
    compute-optimal run (extra loss >= 0, multiplier >= 1); near the optimal ratio both vanish."""
    c = 5.76e23
    ratio = bs.optimal.frontier(epoch_fit, c).loc[0, "tokens_per_param"]
    table = bs.optimal.overtrained(epoch_fit, c, [ratio, 100.0, 500.0])
    np.testing.assert_allclose(6 * table["N"] * table["D"], c, rtol=1e-12)
    np.testing.assert_allclose(table["D"] / table["N"], [ratio, 100.0, 500.0], rtol=1e-12)
    assert (table["extra_loss_lo"] >= -1e-9).all() and (table["compute_multiplier_lo"] >= 1.0).all()
    at_optimum, m100, m500 = (table.iloc[i] for i in range(3))
    assert at_optimum["extra_loss"] < 1e-3 and at_optimum["compute_multiplier"] < 1.02
    assert m500["extra_loss"] > m100["extra_loss"] > 0.001 and m500["compute_multiplier"] > m100["compute_multiplier"]


def test_the_compute_multiplier_reaches_the_optimal_loss():
    """Hoffmann et al.'s point estimate: at M = 500 with the multiplier's extra compute, the loss equals
    L*(C) of the compute-optimal run (1e-9 relative)."""
    law, c, m = bs.laws.get("chinchilla"), np.array([5.76e23]), np.array([500.0])
    loss, best, multiplier = _overtrained(law, HOFFMANN, *at_ratio(c, m), c, 6.0, 1000.0)
    assert loss[0, 0] > best[0, 0] and 1.1 < multiplier[0, 0] < 10  # 1.24 here
    n = np.sqrt(c * multiplier[0] / (6 * m))
    reached = bs.optimal.losses(law, HOFFMANN, n, m * n, 6.0)[0, 0]
    assert reached == pytest.approx(best[0, 0], rel=1e-9)


def test_forecasts_along_a_ratio(epoch_fit):
    table = bs.forecast(epoch_fit, flops=[1e22, 1e24], tokens_per_param=[20, 200], mode="plain")
    np.testing.assert_allclose(table["tokens_per_param"], [20, 200])
    np.testing.assert_allclose(6 * table["N"] * table["D"], [1e22, 1e24], rtol=1e-12)
    assert list(table["target"]) == ["C=1e+22, M=20", "C=1e+24, M=200"]
    with pytest.raises(ValueError, match="tokens_per_param splits a compute budget: give flops with it"):
        bs.forecast(epoch_fit, N=1e9, D=2e10, tokens_per_param=20)


def test_budgets_that_are_not_positive_are_named(epoch_fit, capsys):
    """`optimal --flops -1` printed a table of NaN and exited 0 (bs.optimal.frontier likewise); a zero ratio,
    unique-token count or number of runs to pick was said only after the fit. Now the functions refuse such
    budgets, and the command line refuses each at parsing, before any fit."""
    with pytest.raises(ValueError, match=r"compute budgets must be positive numbers of FLOP, got -1"):
        bs.optimal.frontier(epoch_fit, -1)
    with pytest.raises(ValueError, match=r"compute budgets must be positive numbers of FLOP, got nan"):
        bs.optimal.decide(epoch_fit, float("nan"))
    for args, message in [
        (["optimal", "--flops", "-1"], "argument --flops: expected a positive number, got '-1'"),
        (["optimal", "--tokens-per-param", "0"], "argument --tokens-per-param: expected a positive number"),
        (["optimal", "--unique-tokens", "0"], "argument --unique-tokens: expected a positive number"),
        (["optimal", "--price-c", "-1"], "argument --price-c: expected zero or more, got '-1'"),
        (["fit", "--target-flops", "inf"], "argument --target-flops: expected a positive number, got 'inf'"),
        (["design", "--k", "0"], "argument --k: expected one or more, got 0"),
        (["design", "--budget", "-5"], "argument --budget: expected a positive number, got '-5'"),
    ]:
        with pytest.raises(SystemExit):
            main(args)
        assert message in capsys.readouterr().err, args


def test_budgets_far_outside_the_runs_are_said(epoch_fit):
    """`optimal --budget 1e6` (money, read at the default price of 1 per FLOP) chose a 1000-parameter model 12
    decades below the runs, loss 400 nats, without a word; budgets far beyond the runs said nothing either."""
    with pytest.warns(
        bs.ExtrapolationWarning, match=r"a budget of 1e\+06 buys compute far outside the runs: 1e\+06 FLOP"
    ):
        bs.optimal.budget(epoch_fit, 1e6)
    with pytest.warns(
        bs.ExtrapolationWarning, match=r"budgets far outside the runs: 1e\+30 FLOP, [0-9.]+ decades beyond"
    ):
        bs.optimal.frontier(epoch_fit, [1e22, 1e30])
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.ExtrapolationWarning)
        bs.optimal.frontier(epoch_fit, [1e18, 2.1e25])  # within a decade below and six above: nothing to say
        bs.optimal.decide(epoch_fit, 5.76e23)
