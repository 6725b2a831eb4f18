import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling import diagnostics


def idata(shift: float = 0.0, divergent: int = 0) -> az.InferenceData:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1000))
    x[0] += shift  # one chain stuck elsewhere
    diverging = np.zeros((4, 1000), bool)
    diverging[1, :divergent] = True
    energy = rng.normal(size=(4, 1000))
    return az.from_dict(posterior={"E": x}, sample_stats={"diverging": diverging, "energy": energy})


def test_healthy_chains_have_no_problems():
    assert diagnostics.problems(idata(), ["E"]) == []


def test_stuck_chain_and_divergences_are_reported_loudly():
    found = diagnostics.problems(idata(shift=3.0, divergent=7), ["E"])
    assert found[0] == "7 of 4000 draws diverged"
    assert any(p.startswith("R-hat of E is ") for p in found)
    with pytest.warns(bs.ConvergenceWarning, match=r"THE SAMPLER DID NOT CONVERGE.*7 of 4000 draws diverged"):
        diagnostics.warn(found, "test fit")


def test_too_short_fit_is_flagged():
    # 2 chains x 30 draws cannot give a bulk ESS of 400.
    runs = bs.simulate({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, bs.sweep())
    with pytest.warns(bs.ConvergenceWarning, match=r"bulk ESS of .* \(< 400\)"):
        result = bs.fit(runs, chains=2, warmup=30, draws=30, algorithm="hmc", calibrate=False)
    assert not result.converged
    assert any("bulk ESS" in p for p in result.problems)


@pytest.mark.parametrize("x64", [True, False], ids=["float64", "float32"])
def test_vectorized_rhat_and_ess_match_arviz(x64):
    # K series at once: mixing, autocorrelated, heavy-tailed, with a stuck chain, constant.
    # The JAX implementation follows ArviZ exactly: 1e-9 in 64-bit mode; in float32 (as fits
    # run) to 1e-4, far below what the thresholds (R-hat 1.01, ESS 400) can notice.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 4, 300)) + np.cumsum(rng.normal(size=(24, 4, 300)), -1) * 0.05
    x[::5] = rng.standard_t(2, size=x[::5].shape)
    x[::7, 0] += 2.0
    x[3] = 1.0
    with jax.enable_x64(x64):
        found = [
            np.asarray(f(x), np.float64) for f in (diagnostics.rhat_rank, diagnostics.ess_bulk, diagnostics.ess_tail)
        ]
    for i, xi in enumerate(x):
        with np.errstate(divide="ignore", invalid="ignore"):  # ArviZ divides 0 / 0 on the constant series
            ref = float(az.rhat(xi)), float(az.ess(xi, method="bulk")), float(az.ess(xi, method="tail"))
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
    ranks = diagnostics._ranks(jnp.asarray(x), jnp.sort(jnp.asarray(x), axis=-1))
    np.testing.assert_array_equal(ranks, stats.rankdata(x, method="average", axis=-1))
