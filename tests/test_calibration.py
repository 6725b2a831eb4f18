"""The calibrated mode: internal backtests, the learned extrapolation error, and bands beyond the data."""

import dataclasses
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import FAST, healthy_fit

import bayes_scaling as bs
from bayes_scaling import _corpus
from bayes_scaling._calibration import PER_REFIT, Evidence, fit_kappa, learn_population, reducible, weights
from bayes_scaling._geometry import beyond
from bayes_scaling._model import padded_length
from bayes_scaling.data import Dataset
from bayes_scaling.fit import _as_dataset, _internal_backtest

fit_module = sys.modules["bayes_scaling.fit"]  # the module (bs.fit is the function)

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
WIDE = bs.datasets.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4)  # 64 runs over 10 decades of compute


#: The sampler settings of :func:`calibrated_fit` (tests below redo parts of it).
SETTINGS = bs.Settings(chains=4, warmup=FAST["warmup"], draws=1000, target_accept=0.95)


def simulated_runs(law: bs.Law) -> Dataset:
    """The runs of :func:`calibrated_fit`, checked for ``law``: data simulated exactly from a
    Chinchilla law (Student-t noise, as the model assumes)."""
    return _as_dataset(bs.simulate(TRUTH, WIDE, sigma=0.01, df=4.0, seed=7), law)


@pytest.fixture(scope="module")
def calibrated_fit() -> bs.Result:
    return bs.fit(simulated_runs(bs.laws.get("chinchilla")), seed=0, settings=SETTINGS)


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
    runs, settings = simulated_runs(calibrated_fit.law), SETTINGS
    train = runs.frame["D"].to_numpy() <= np.quantile(runs.frame["D"], 0.7)
    pad = padded_length(len(runs))
    alone, health = _internal_backtest(
        runs, calibrated_fit.law, calibrated_fit.spec, settings, 0, 1000, pad, "D", 0.7, train
    )
    group = calibrated_fit.group("extrapolation")
    mine = (group["internal_input"].values == "D") & (group["internal_split"].values == 0.7)
    assert mine.sum() == (~train).sum() == alone.rows
    # A refit keeps 4 x 250 draws: its ESS may fall under the 400 a fit must reach to pass, or its R-hat (noisier
    # on short chains) just over 1.01 (here 1.011): warnings, which a refit does not act on. No check fails, else
    # it would have gone on to all the draws.
    assert health.level != "fail", health
    np.testing.assert_array_equal(group["internal_residual"].values[mine], alone.residual)
    np.testing.assert_array_equal(group["internal_scale"].values[mine], alone.scale)


def test_a_refit_failing_on_its_first_draws_is_judged_and_used_on_all_of_them(calibrated_fit, monkeypatch):
    """Refits keep the first REFIT_DRAWS draws of each chain; one whose checks fail on them (here 4 x 5 draws:
    ESS under 100) goes on to every draw of the fit: its evidence is that of a refit keeping them all."""
    runs, settings = simulated_runs(calibrated_fit.law), SETTINGS
    train = runs.frame["D"].to_numpy() <= np.quantile(runs.frame["D"], 0.7)
    common = (runs, calibrated_fit.law, calibrated_fit.spec, settings, 0, 1000, padded_length(len(runs)), "D", 0.7)
    monkeypatch.setattr(fit_module, "REFIT_DRAWS", 1000)
    every, _ = _internal_backtest(*common, train)
    monkeypatch.setattr(fit_module, "REFIT_DRAWS", 500)
    first, _ = _internal_backtest(*common, train)
    assert not np.array_equal(first.scale, every.scale)  # 500 draws: other quartiles
    monkeypatch.setattr(fit_module, "REFIT_DRAWS", 5)
    again, health = _internal_backtest(*common, train)
    assert health.level != "fail"
    np.testing.assert_array_equal(again.residual, every.residual)
    np.testing.assert_array_equal(again.scale, every.scale)


def test_a_calibrated_fit_keeping_fewer_draws_holds_the_first_draws_of_the_full_fit(calibrated_fit):
    """A review's backtest and prior refits keep 250 draws per chain (``keep``): the same programs and seed, so the
    first draws of each chain of the refit that kept them all (a refit's shorter warm-up: not the fit's draws),
    ``kappa`` with them; the internal refits (refits either way) give the fit's own evidence."""
    data = simulated_runs(calibrated_fit.law)
    law, spec = calibrated_fit.law, calibrated_fit.spec
    fewer = fit_module._fit(data, law, spec, SETTINGS, 0, True, keep=250, quiet=True)
    every = fit_module._fit(data, law, spec, SETTINGS, 0, True, keep=SETTINGS.draws, quiet=True)
    assert fewer.settings.draws == 250 and fewer.group("posterior")["E"].shape == (4, 250)
    for name in ("E", "alpha", "beta"):
        np.testing.assert_array_equal(fewer.group("posterior")[name], every.group("posterior")[name][:, :250])
    assert not np.array_equal(every.group("posterior")["E"], calibrated_fit.group("posterior")["E"])
    full, short = calibrated_fit.group("extrapolation"), fewer.group("extrapolation")
    np.testing.assert_array_equal(short["kappa"], full["kappa"][:, :250])
    np.testing.assert_array_equal(short["internal_residual"], full["internal_residual"])


def test_a_fit_whose_kept_draws_warn_goes_on_to_all_of_them_when_told(calibrated_fit):
    """A review's fits of the other law families keep 250 draws per chain and go on to all where those so much as
    warn (``bar="warn"``; the models table shows their health); other refits go on only where they fail. Here
    the fewest kept draws of 4 x 40, 60, 80, 120 whose checks warn (an ESS between 100 and 400; which one depends
    on the platform's float32 rounding: 40 on JAX 0.10, x86-64)."""
    data = simulated_runs(calibrated_fit.law)
    law, spec = calibrated_fit.law, calibrated_fit.spec
    for keep in (40, 60, 80, 120):
        kept = fit_module._fit(data, law, spec, SETTINGS, 0, False, keep=keep, quiet=True)
        if kept.settings.draws == keep and kept.health().level == "warn":
            break
    else:
        pytest.fail("no number of kept draws tried warned without failing")
    told = fit_module._fit(data, law, spec, SETTINGS, 0, False, keep=keep, quiet=True, bar="warn")
    every = fit_module._fit(data, law, spec, SETTINGS, 0, False, keep=SETTINGS.draws, quiet=True)
    assert told.settings.draws == SETTINGS.draws
    for name in ("E", "alpha", "beta"):  # the same chains, gone on from where they stopped
        np.testing.assert_array_equal(told.group("posterior")[name], every.group("posterior")[name])
        np.testing.assert_array_equal(kept.group("posterior")[name], every.group("posterior")[name][:, :keep])


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


def test_too_few_runs_for_calibration_warn_and_stay_plain_without_a_learned_prior():
    # 18 runs: fewer than the 20 whose lower 70% holds the 14 runs (REFIT_RUNS x 7) a Chinchilla refit needs.
    runs = bs.simulate(
        {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}, bs.datasets.sweep(sizes=6, ratios=3)
    )
    spec = bs.priors.resolve(bs.laws.get("chinchilla"))
    alone = dataclasses.replace(spec, extrapolation={})  # a prior file without an [extrapolation] table
    with pytest.warns(bs.DataWarning, match=r"18 runs are too few for the internal backtests.*at least 20"):
        with warnings.catch_warnings():  # 2 x 30 draws do not converge; not the point here
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            result = bs.fit(runs, priors=alone, chains=2, warmup=30, draws=30, algorithm="hmc")
    assert "extrapolation" not in result.groups()


def embedded_subset(runs: int):
    """``runs`` of the embedded runs, evenly by compute."""
    data = bs.datasets.chinchilla(drop_highest=5)
    order = np.argsort(data.frame["C"].to_numpy(), kind="stable")
    return data.subset(np.isin(np.arange(len(data)), order[np.linspace(0, len(data) - 1, runs).round().astype(int)]))


def calibrated_widening(result: bs.Result, level: int = 80, **target: object) -> float:
    """The calibrated ``level``% band of a new run over the plain one at ``target`` (forecast's keywords; default
    GPT-4 scale, three decades beyond, where the reducible share is small: the learned error adds to the runs'
    own spread)."""
    target = target or {"preset": "gpt4"}
    rows = {
        mode: bs.forecast(result, **target, levels=(level / 100,), mode=mode).iloc[0]
        for mode in ("plain", "calibrated")
    }
    assert rows["calibrated"]["mode"] == "calibrated"
    width = {mode: row[f"run_hi{level}"] - row[f"run_lo{level}"] for mode, row in rows.items()}
    return width["calibrated"] / width["plain"]


def test_a_sweep_of_20_runs_updates_the_error_learned_across_studies_with_its_own_backtests():
    """20 of the embedded runs: the lower 70% by N and by D (14 runs each) are refitted and forecast the other 6;
    kappa is the [extrapolation] prior updated by those 12 held-out runs."""
    # 20 runs pin the five parameters loosely: a fit fails its convergence check for about one seed in
    # fifteen (chains together or split across cores alike).
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.DataWarning)  # no "too few runs": the fit is calibrated
        result = healthy_fit(embedded_subset(20), range(3), **{**FAST, "warmup": 500, "calibrate": True})
    evidence = result.group("extrapolation")
    assert evidence.sizes["internal_run"] == 12
    assert set(evidence["internal_split"].values) == {0.7}  # the lower 50% (10 runs) is too few to refit
    assert sorted(evidence["internal_input"].values.tolist()) == ["D"] * 6 + ["N"] * 6
    spec = bs.priors.resolve(bs.laws.get("chinchilla"))
    # The Chinchilla law misfits its own runs' extrapolations along N (the corpus' study "chinchilla" learned
    # kappa_N 0.033 from its 183 runs): the backtests raise kappa_N from the prior's median 0.025 to about 0.05
    # (0.047-0.057 over three seeds).
    kappa_n = np.median(evidence["kappa"].values[..., 0])
    assert kappa_n > 1.5 * np.exp(dict(spec.extrapolation["N"].args)["loc"])
    assert calibrated_widening(result) > 1.05  # 1.13-1.15 over three seeds


def test_clean_backtests_of_a_20_run_sweep_narrow_the_error_learned_across_studies():
    """A simulated 20-run sweep of a law that holds (as benchmarks/bench_corpus.py's small sweeps): its two
    backtests miss by no more than their plain bands say, so kappa falls below the prior's median (150 such
    sweeps: 0.033 along D at the median against 0.077), and the calibrated bands 1-2 decades out come out
    near the plain ones instead of at the prior's full width."""
    grid = bs.datasets.sweep(n_range=(1e7, 1e8), tokens_per_param=(5.0, 80.0), sizes=5, ratios=4)
    truth = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
    runs = bs.simulate(truth, grid, sigma=0.01, df=4.0, seed=0)
    result = healthy_fit(runs, range(3), **{**FAST, "warmup": 500, "calibrate": True})
    spec = bs.priors.resolve(bs.laws.get("chinchilla"))
    kappa = result.group("extrapolation")["kappa"].values
    for i, axis in enumerate(("N", "D")):  # 0.013-0.016 and 0.030-0.037 over three sweeps x two seeds
        assert np.median(kappa[..., i]) < 0.8 * np.exp(dict(spec.extrapolation[axis].args)["loc"]), axis
    n = np.sqrt(10**1.5 * runs["flops"].max() / 120)  # 1.5 decades beyond, 20 tokens per parameter
    assert 1.0 < calibrated_widening(result, 90, N=n, D=20 * n) < 1.4  # 1.02-1.21 over three sweeps x two seeds


def test_a_smaller_sweep_leans_on_the_error_learned_across_studies_alone():
    """17 of the embedded runs: too few for internal backtests; kappa comes from the [extrapolation] prior alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.DataWarning)  # no "too few runs": the fit is calibrated
        result = healthy_fit(embedded_subset(17), range(3), **{**FAST, "warmup": 500, "calibrate": True})
    spec = bs.priors.resolve(bs.laws.get("chinchilla"))
    kappa = result.group("extrapolation")["kappa"]
    assert kappa.shape == (4, 500, 2) and result.group("extrapolation").sizes["internal_run"] == 0
    for i, axis in enumerate(("N", "D")):  # draws of the shipped LogNormal prior: median exp(loc)
        loc = dict(spec.extrapolation[axis].args)["loc"]
        assert np.median(kappa[..., i]) == pytest.approx(np.exp(loc), rel=0.1)
    assert calibrated_widening(result) > 1.1  # 1.15-1.18 over three seeds


def test_the_population_of_studies_is_recovered_from_simulated_evidence():
    """Eight studies, each with its own kappa along one input from LogNormal(log 0.05, 0.5); residuals of held-out
    runs 0.1-1.5 decades beyond, drawn as the model says: the population's location and each study's kappa."""
    rng = np.random.default_rng(3)
    truth = np.exp(np.log(0.05) + 0.5 * rng.standard_normal(8))
    evidence = {}
    for s, kappa in enumerate(truth):
        reach = rng.uniform(0.1, 1.5, (60, 1))
        scale, share = np.full(60, 0.01), np.full(60, 0.6)
        sd = np.sqrt(scale**2 + share**2 * kappa**2 * reach[:, 0])
        residual = sd * rng.standard_t(4.0, 60)
        evidence[f"s{s}"] = Evidence(("D",), np.full(60, "C"), np.full(60, 0.5), residual, scale, share, reach)
    settings = bs.Settings(chains=4, warmup=500, draws=500, target_accept=0.95)
    prior, draws, health = learn_population(evidence, 4.0, settings, seed=0, per_refit=np.inf)  # rows as drawn
    assert health.level != "fail", health.problems
    loc, scale = prior["D"]
    assert loc == pytest.approx(np.log(0.05), abs=0.35)  # within 0.35 in log: a factor 1.4
    assert 0.2 < scale < 1.2
    medians = np.median(draws[..., 0], axis=1)  # (studies,)
    assert np.corrcoef(np.log(medians), np.log(truth))[0, 1] > 0.7


def test_each_refit_weighs_as_a_few_independent_rows():
    """Rows are grouped by refit (input split on, share kept; and study): each refit's rows weigh per_refit in all."""
    split_on, split = np.array(["N"] * 40 + ["D"] * 10 + ["N"] * 4), np.array([0.5] * 50 + [0.7] * 4)
    evidence = Evidence(("N", "D"), split_on, split, *(np.zeros(54) for _ in range(3)), np.zeros((54, 2)))
    w = weights(evidence, per_refit=8.0)
    np.testing.assert_allclose(w, [0.2] * 40 + [0.8] * 10 + [1.0] * 4)  # 8/40, 8/10, and never above 1
    study = np.repeat([0, 1], 27)  # the same split in two studies: two refits
    np.testing.assert_allclose(weights(evidence, study, 8.0)[:27].sum(), 8.0)
    np.testing.assert_allclose(weights(evidence, study, 8.0)[27:40].sum(), 8.0)  # study 1, N at 0.5: 13 rows


def test_clean_backtests_of_a_large_sweep_do_not_overrule_the_learned_prior():
    """Four refits x 120 held-out runs whose residuals are plain noise (the law holds within the sweep): counted as
    independent, they pin kappa near zero whatever the prior; weighted per refit, the prior learned across studies
    keeps a say (the issue: bands must show what other studies missed even when a sweep's backtests look clean)."""
    rng = np.random.default_rng(0)
    rows = 480
    split_on, split = np.repeat(["N", "N", "D", "D"], 120), np.tile(np.repeat([0.5, 0.7], 120), 2)[:rows]
    reach = rng.uniform(0.0, 1.2, (rows, 2))
    scale, share = np.full(rows, 0.01), np.full(rows, 0.3)
    evidence = Evidence(("N", "D"), split_on, split, scale * rng.standard_t(4.0, rows), scale, share, reach)
    prior = np.array([[1.0, np.log(0.02), 1.0], [1.0, np.log(0.08), 1.0]], np.float32)
    q = {}
    for per_refit in (np.inf, 8.0):
        kappa, health = fit_kappa(evidence, 4.0, (4, 500), 0, prior, per_refit=per_refit)
        assert health.level != "fail", health.problems
        q[per_refit] = np.quantile(kappa.reshape(-1, 2)[:, 1], [0.5, 0.95])  # kappa_D
    # Counted as 480 independent rows, kappa_D falls to an eighth of the prior's median 0.08 (95% bound under 0.02,
    # measured 0.017 with this seed); weighted (32 rows in all), twice that (measured 0.020, 95% bound 0.039).
    assert q[np.inf][1] < 0.02 and q[8.0][1] > 0.03
    assert q[8.0][0] > 1.6 * q[np.inf][0]


def test_kappa_grid_posterior_without_evidence_is_its_prior():
    """No held-out runs: the grid's draws follow the prior exactly (LogNormal along N, HalfNormal along D). 40,000
    independent draws: each quantile within 5% (its Monte Carlo error 0.6-1.5%; measured 0.5-2%)."""
    from scipy import stats

    prior = np.array([[1.0, np.log(0.05), 0.8], [0.0, 0.1, 0.0]], np.float32)
    kappa, health = fit_kappa(Evidence.empty(("N", "D")), 4.0, (4, 10_000), 3, prior)
    assert kappa.shape == (4, 10_000, 2) and health.level == "pass"
    q = np.array([0.1, 0.5, 0.9])
    for got, want in zip(
        np.quantile(kappa.reshape(-1, 2), q, axis=0).T,
        [stats.lognorm(0.8, scale=0.05).ppf(q), stats.halfnorm(scale=0.1).ppf(q)],
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=0.05)
    again, _ = fit_kappa(Evidence.empty(("N", "D")), 4.0, (4, 10_000), 3, prior)
    np.testing.assert_array_equal(again, kappa)  # the same seed, the same draws


def test_kappa_grids_density_is_the_one_the_population_model_samples():
    """The grid evaluates the kappa model's log density in NumPy; the population model samples its likelihood
    written in JAX (``_log_likelihood``). The grid's density against that likelihood plus the prior (SciPy) and the
    Jacobian of ``kappa = exp(u)``, at 200 points of each of two models (LogNormal and HalfNormal priors; one and
    two inputs): equal to 1e-5 of the density's range (float32 sums of 300 rows; measured 1e-7)."""
    import jax
    import jax.numpy as jnp
    from scipy import stats

    from bayes_scaling._calibration import _kappa_data, _log_likelihood, _log_posterior

    rng = np.random.default_rng(4)
    rows = 300
    for prior in (
        np.array([[1.0, np.log(0.05), 0.8], [0.0, 0.1, 0.0]], np.float32),
        np.array([[0.0, 0.2, 0.0]], np.float32),
    ):
        d = len(prior)
        evidence = Evidence(
            ("N", "D")[:d] if d == 2 else ("C",),
            np.repeat(["a", "b", "c"], rows // 3),
            np.full(rows, 0.5),
            0.03 * rng.standard_t(4.0, rows),
            rng.uniform(0.005, 0.02, rows),
            rng.uniform(0.1, 0.9, rows),
            rng.uniform(0.0, 2.0, (rows, d)),
        )
        u = rng.uniform(np.log(1e-4), np.log(2.0), (200, d))
        got = _log_posterior(u, evidence, weights(evidence), 4.0, prior)
        data = _kappa_data(evidence, 4.0, prior)

        likelihood = jax.vmap(lambda u, data=data: _log_likelihood(data, jnp.exp(u)))(jnp.asarray(u, jnp.float32))
        kappa = np.exp(u)
        log_prior = [
            stats.lognorm(p[2], scale=np.exp(p[1])).logpdf(k) if p[0] > 0 else stats.halfnorm(scale=p[1]).logpdf(k)
            for p, k in zip(prior.astype(np.float64), kappa.T, strict=True)
        ]
        want = np.asarray(likelihood, np.float64) + np.sum(log_prior, 0) + u.sum(1)
        np.testing.assert_allclose(got, want, atol=1e-5 * np.ptp(want))


def test_kappa_grid_says_when_the_posterior_runs_off_its_range():
    """Residuals only a drift of 150 per square root of a decade could explain: the posterior piles up at the grid's
    upper end, and the check fails naming it (instead of returning draws cut off at the end)."""
    rows = 40
    evidence = Evidence(
        ("C",),
        np.full(rows, "C"),
        np.full(rows, 0.5),
        np.full(rows, 5.0),
        np.full(rows, 0.01),
        np.ones(rows),
        np.full((rows, 1), 1e-3),
    )
    prior = np.array([[1.0, 0.0, 2.0]], np.float32)  # LogNormal(0, 2): kappa of 10 is not ruled out a priori
    _, health = fit_kappa(evidence, 4.0, (4, 1000), 0, prior, per_refit=np.inf)
    assert health.level == "fail"
    assert health.problems[0] == "1 of kappa's draws lie above 5, near its grid's end 10"


def test_far_evidence_of_a_real_study_holds_every_run_above_its_cutoff():
    """The corpus's far backtest (what the shipped prior is learned from): the runs above the cutoff, each
    beyond the refit's runs along some input, weighing as one refit."""
    data = _corpus.studies()["porian/rw/base/short/chinchilla/standard"]
    settings = bs.Settings(chains=4, warmup=300, draws=500)
    evidence, _ = _corpus.far_evidence(data, settings=settings)  # (short chains warn: not the point here)
    above = data.frame["C"].to_numpy() > _corpus.cutoff(data)
    assert evidence.rows == above.sum() == 34
    assert (evidence.split_on == "C").all() and (evidence.reach.max(axis=1) > 0).all()
    assert np.median(np.abs(evidence.residual)) < 0.05  # the Chinchilla set-up: the law holds to a few percent
    np.testing.assert_allclose(weights(evidence).sum(), PER_REFIT)
