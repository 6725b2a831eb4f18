import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling import _arviz, _stats, diagnostics
from bayes_scaling.diagnostics import Thresholds, assess, measure


def chains(shift: float = 0.0, divergent: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1000))
    x[0] += shift  # one chain stuck elsewhere
    diverging = np.zeros((4, 1000), bool)
    diverging[1, :divergent] = True
    energy = rng.normal(size=(4, 1000))
    return {"E": x}, {"diverging": diverging, "energy": energy}


def test_healthy_chains_pass_every_check():
    health = assess(measure(*chains()))
    assert health.problems == () and health.level == "pass"
    assert set(health.table()["status"]) == {"pass"}


def test_stuck_chain_and_divergences_are_reported_loudly():
    health = assess(measure(*chains(shift=3.0, divergent=7)))
    assert health.problems[0] == "7 of 4000 draws diverged"
    assert any(p.startswith("R-hat of E is ") for p in health.problems)
    table = health.table().set_index("check")
    assert table.loc["max R-hat", "status"] == "fail" and health.level == "fail"  # a chain 3 sd away
    with pytest.warns(bs.ConvergenceWarning, match=r"THE SAMPLER DID NOT CONVERGE.*7 of 4000 draws diverged"):
        diagnostics.warn(health, "test fit")


def test_thresholds_are_arguments_with_pass_warn_and_fail_levels():
    draws, stats = chains(divergent=7)  # 7 of 4000 draws: 0.175% divergent
    measured = measure(draws, stats)
    check = lambda health: health.table().set_index("check").loc["share of divergent draws", "status"]  # noqa: E731
    assert check(assess(measured)) == "warn"  # above 0, at most 0.5%
    assert check(assess(measured, Thresholds(divergent=(0.0, 0.001)))) == "fail"
    assert check(assess(measured, Thresholds(divergent=(0.002, 0.01)))) == "pass"
    assert assess(measured).level == "warn"
    # A constant chain's statistics cannot be computed: that fails, never passes.
    flat = assess(
        measure({"E": np.ones((4, 100))}, {"diverging": np.zeros((4, 100), bool), "energy": stats["energy"][:, :100]})
    )
    assert flat.table().set_index("check").loc["max R-hat", "status"] == "fail"


def test_statistics_round_trip_through_json():
    measured = measure(*chains(shift=3.0))
    back = diagnostics.Stats.from_dict(measured.to_dict())
    assert assess(back) == assess(measured)


def test_too_short_fit_is_flagged():
    # 2 chains x 30 draws cannot give a bulk ESS of 400.
    runs = bs.simulate({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, bs.datasets.sweep())
    with pytest.warns(bs.ConvergenceWarning, match=r"bulk ESS of .* \(< 400\)"):
        result = bs.fit(runs, chains=2, warmup=30, draws=30, algorithm="hmc", calibrate=False)
    assert not result.converged
    assert any("bulk ESS" in p for p in result.problems)


@pytest.mark.parametrize("backend", ["numpy", "jax float64", "jax float32"])
def test_vectorized_rhat_and_ess_match_arviz(backend):
    # K series at once: mixing, autocorrelated, heavy-tailed, with a stuck chain, constant.
    # Both array modules follow ArviZ exactly: 1e-9 in NumPy (float64, a single fit's checks on the host) and in
    # JAX's 64-bit mode; in a compiled float32 program (the batched sampler's checks) to 1e-4, far below what the
    # thresholds (R-hat 1.01, ESS 400) can notice.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 4, 300)) + np.cumsum(rng.normal(size=(24, 4, 300)), -1) * 0.05
    x[::5] = rng.standard_t(2, size=x[::5].shape)
    x[::7, 0] += 2.0
    x[3] = 1.0
    x64 = backend != "jax float32"
    with jax.enable_x64(x64):
        stats = _stats.rank_stats(x) if backend == "numpy" else jax.jit(_stats.rank_stats)(jnp.asarray(x))
        found = [np.asarray(stats[k], np.float64) for k in ("rhat", "ess_bulk", "ess_tail")]
    for i, xi in enumerate(x):
        with np.errstate(divide="ignore", invalid="ignore"):  # ArviZ divides 0 / 0 on the constant series
            ref = _arviz.rhat(xi), _arviz.ess(xi, "bulk"), _arviz.ess(xi, "tail")
        for got, want in zip((f[i] for f in found), ref, strict=True):
            tol = 1e-9 if x64 else 1e-4
            assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=tol), (i, got, want)


def test_ranks_average_ties_as_scipy_does():
    from scipy import stats

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 400))
    x[0, 50:90] = x[0, 49]  # a stuck stretch: rejected proposals repeat one draw
    x[1] = 2.0  # a constant chain
    x[2] = np.round(x[2], 1)  # many small ties
    for xp in (jnp, np):
        ranks = _stats._ranks(xp.asarray(x), xp.sort(xp.asarray(x), axis=-1))
        np.testing.assert_array_equal(ranks, stats.rankdata(x, method="average", axis=-1))


def test_one_health_language_loud_only_at_fail():
    """pass: silence; warn: one calm MixingWarning; fail: the loud ConvergenceWarning."""
    passing = assess(measure(*chains()))
    warning = assess(measure(*chains(divergent=7)))  # 0.175% of draws diverged: warn
    failing = assess(measure(*chains(shift=3.0)))  # a chain 3 sd away: R-hat fails
    assert (passing.level, warning.level, failing.level) == ("pass", "warn", "fail")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diagnostics.warn(passing, "fit")
    with pytest.warns(diagnostics.MixingWarning, match=r"^fit: sampler health warn \(7 of 4000 draws diverged\)"):
        diagnostics.warn(warning, "fit")
    with pytest.warns(bs.ConvergenceWarning, match=r"^fit: THE SAMPLER DID NOT CONVERGE"):
        diagnostics.warn(failing, "fit")
