"""The data-constrained family (Muennighoff et al. 2023): recovery on simulated studies, PSIS-LOO against the
Chinchilla law, single-epoch runs, forecasts with unique tokens, and the allocation under a data limit.

Its own file (the law's other tests are in test_laws.py and test_data.py): the ten-study fixture is fitted once per
test worker, and the suite's files spread over the workers.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, MUENNIGHOFF, healthy_fit, repeated_runs

import bayes_scaling as bs
from bayes_scaling._evaluate import law_at
from bayes_scaling.cli import _one_target, _parser
from bayes_scaling.fit import _as_dataset


def test_data_constrained_law_recovers_the_decay_of_repeated_data_and_beats_chinchilla(constrained_fits):
    # Usable fits (a warning, such as an R-hat of 1.013 with 4 x 500 draws, is usable: the package's health words).
    assert all(r.health().level != "fail" for r in constrained_fits), [r.problems for r in constrained_fits]
    covered = {}
    for name in ("Rstar_D", "Rstar_N"):
        inside = [
            lo <= MUENNIGHOFF[name] <= hi
            for lo, hi in (np.quantile(r.draws()[name], [0.05, 0.95]) for r in constrained_fits)
        ]
        covered[name] = sum(inside)
    # 90% intervals of 10 studies x 2 constants: 18 of 20 expected; a true 90% coverage gives fewer than 16 in 4%
    # of such sets, and each constant alone at least 7 (here: R*_D 10, R*_N 7). benchmarks/bench_constrained.py
    # measures the coverage over many more studies.
    assert sum(covered.values()) >= 16 and min(covered.values()) >= 7, covered
    # Read as fresh tokens, the same runs are far worse explained: PSIS-LOO prefers the data-constrained law.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DataWarning)  # "runs repeat their data, but law 'chinchilla' ..."
        plain = healthy_fit(repeated_runs(0), (0, 1, 2), law="chinchilla", **FAST)  # the wrong law: may mix poorly
    table = bs.compare([constrained_fits[0], plain])
    assert table.index[0] == "data-constrained"
    assert table.loc["chinchilla", "elpd_diff"] > 4 * table.loc["chinchilla", "dse"]
    # Forecasts take unique tokens: 64 epochs of 1e9 tokens against the same 6.4e10 tokens fresh, 10x beyond the
    # largest model; each band holds the true loss.
    got = bs.forecast(constrained_fits[0], N=1e10, D=6.4e10, U=[6.4e10, 1e9], levels=(0.95,), mode="plain")
    truth = [
        float(
            np.exp(
                law_at(
                    bs.laws.get("data-constrained"),
                    {k: [v] for k, v in MUENNIGHOFF.items()},
                    {"N": [1e10], "D": [6.4e10], "U": [u]},
                )[0, 0]
            )
        )
        for u in (6.4e10, 1e9)
    ]
    assert (got["loss_lo95"] <= truth).all() and (truth <= got["loss_hi95"]).all(), (got, truth)
    assert got["loss_median"].iloc[1] > got["loss_median"].iloc[0] * 1.02  # repeats are worth less
    assert list(got["target"]) == ["N=1e+10, D=6.4e+10, U=6.4e+10", "N=1e+10, D=6.4e+10, U=1e+09"]
    with pytest.raises(ValueError, match=r"unique tokens U must be positive and at most the tokens D"):
        bs.forecast(constrained_fits[0], N=1e10, D=6.4e10, U=1e11)


def test_data_constrained_law_on_single_epoch_runs_is_the_chinchilla_fit(epoch_fit):
    """No run repeats data: the law is the Chinchilla law, and its fit agrees within Monte Carlo error."""
    data = bs.datasets.chinchilla(drop_highest=5)
    result = bs.fit(data, "data-constrained", seed=1, **{**FAST, "draws": 300})  # MCSE below sets the tolerance
    assert result.converged, result.problems
    mine, theirs = result.summary(), epoch_fit.summary()
    for name in ("E", "A", "B", "alpha", "beta"):
        mcse = np.hypot(mine.loc[name, "mcse_mean"], theirs.loc[name, "mcse_mean"])
        assert abs(mine.loc[name, "mean"] - theirs.loc[name, "mean"]) < 4 * mcse, name
        assert mine.loc[name, "sd"] == pytest.approx(theirs.loc[name, "sd"], rel=0.15), name
    # The decay constants are not in the likelihood: their posterior is their prior (median 15.4, 5.3).
    assert np.median(result.draws()["Rstar_D"]) == pytest.approx(15.4, rel=0.15)


def test_data_limited_allocation_matches_a_brute_force_grid_over_the_draws(constrained_fits):
    """Muennighoff et al.'s question: with U = 1e11 unique tokens and C = 1e22 FLOP, how big a model, how many
    epochs? The package's search per draw against an exhaustive NumPy grid, with the law written out by hand."""
    result = constrained_fits[0]
    c, u, k = 1e22, 1e11, 6.0
    row = bs.optimal.constrained(result, c, u, ci=0.9).iloc[0]
    p = {name: v[:, None] for name, v in result.draws().items()}
    n = np.geomspace(5e9, 5e10, 2001)[None, :]  # steps of 0.12% in N
    d = c / (k * n)
    repeats = np.maximum(d / u - 1, 0)
    d_eff = np.minimum(u, d) * (1 + p["Rstar_D"] * (1 - np.exp(-repeats / p["Rstar_D"])))
    base = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / p["alpha"]) * np.minimum(u, d) ** (
        p["beta"] / p["alpha"]
    )
    base = np.minimum(base, n)
    n_paper = base * (1 + p["Rstar_N"] * (1 - np.exp(-(n / base - 1) / p["Rstar_N"])))
    share = 1 - np.minimum(u, d) / d
    n_eff = (1 - share) * n + share * n_paper
    loss = p["E"] + p["A"] / n_eff ** p["alpha"] + p["B"] / d_eff ** p["beta"]
    best = np.argmin(loss, axis=1)
    n_best = n[0, best]
    epochs = c / (k * n_best) / u
    for name, values in (("N_opt", n_best), ("epochs", epochs), ("loss_opt", loss[np.arange(len(best)), best])):
        lo, med, hi = np.quantile(values, [0.05, 0.5, 0.95])
        np.testing.assert_allclose([row[f"{name}_lo"], row[name], row[f"{name}_hi"]], [lo, med, hi], rtol=2e-3)
    assert 1.0 < row["epochs"] < row["epochs_hi"]  # the budget buys more than one pass over the unique data
    assert row["loss_opt"] > row["loss_unlimited"]  # and the limit costs loss
    table = bs.optimal.decide(result, c, unique_tokens=u)
    assert (table["regret_mean"] >= 0).all()
    assert table.loc["bayes", "expected_loss"] <= table[["expected_loss"]].drop("bayes").min().item()
    assert table.loc["one epoch", "epochs"] == pytest.approx(1.0)


def test_a_review_and_a_design_read_the_target_s_unique_tokens(constrained_fits):
    """A planned run that repeats its data: `review(..., U=)` and `--target N=..,D=..,U=..` forecast it with its
    epochs (the command line dropped U and reviewed a single-epoch run), and so does a design's target."""
    result = constrained_fits[0]
    n, d, u = 3e9, 3e11, 3e10  # ten epochs
    report = bs.review(result, N=n, D=d, U=u, cutoffs=(), laws=(), prior_scales=(), chains=4, warmup=300, draws=500)
    assert report.target["U"] == u and report.target["target"] == "N=3e+09, D=3e+11, U=3e+10"
    repeated = bs.forecast(result, N=n, D=d, U=u, levels=(0.5, 0.8, 0.9, 0.95), mode="plain")["loss_median"].iloc[0]
    fresh = bs.forecast(result, N=n, D=d, mode="plain")["loss_median"].iloc[0]
    assert report.tables["forecast"]["loss_median"].iloc[0] == pytest.approx(repeated, rel=1e-9)
    assert repeated > fresh + 0.01  # ten epochs are worth far fewer fresh tokens
    args = _parser().parse_args(["review", "--law", "data-constrained", "--target", f"N={n},D={d},U={u}"])
    assert _one_target(args, "review") == {"N": n, "D": d, "U": u, "group": None}
    picks = bs.design(result, {"N": n, "D": d, "U": u}, k=1)
    assert picks.attrs["target"]["target"].iloc[0] == "N=3e+09, D=3e+11, U=3e+10"
    with pytest.raises(ValueError, match=r"a planned run that repeats its data alone"):
        bs.design(result, pd.DataFrame({"N": [n], "D": [d], "U": [u]}), k=1)


def test_a_law_that_reads_every_token_as_fresh_says_so_when_targets_repeat_data(epoch_fit, constrained_fits):
    """The Chinchilla law given runs that repeat their data forecasts them as single-epoch ones (and allocates as if
    data were unlimited): the forecast and the allocation warn, naming the law; a law of unique tokens does not."""
    runs = repeated_runs(0)
    repeats = int((runs["unique_tokens"] < runs["tokens"]).sum())
    with pytest.warns(bs.DataWarning, match=rf"your DataFrame: {repeats} run\(s\) repeat their data .* 'chinchilla'"):
        _as_dataset(runs, bs.laws.get("chinchilla"))
    with pytest.warns(bs.DataWarning, match=r"forecast: 1 target\(s\) repeat their data .* law 'chinchilla' reads"):
        bs.forecast(epoch_fit, N=[1e9, 1e9], D=[2e10, 2e10], U=[1e9, 2e10], levels=(0.9,))
    with pytest.warns(bs.DataWarning, match=r"allocation: 1 budget\(s\) repeat their data .* 'chinchilla'"):
        bs.optimal.constrained(epoch_fit, 1e22, 1e10)
    with pytest.warns(bs.DataWarning, match=r"allocation: 1 budget\(s\) repeat their data"):
        bs.optimal.decide(epoch_fit, 1e22, unique_tokens=1e10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.DataWarning)
        bs.forecast(epoch_fit, N=1e9, D=2e10, U=2e10, levels=(0.9,))  # one epoch: nothing to say
        bs.optimal.constrained(epoch_fit, 1e22, 1e13)  # more unique tokens than the optimum sees
        bs.forecast(constrained_fits[0], N=1e9, D=2e10, U=1e9, levels=(0.9,), mode="plain")
        bs.optimal.constrained(constrained_fits[0], 1e22, 1e10)
