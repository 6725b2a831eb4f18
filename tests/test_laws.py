import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling._evaluate import law_at as bs_law_at

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. (2022), eq. 10


def test_chinchilla_law_matches_the_formula_at_published_parameters():
    n = np.array([7e10, 1.75e11, 1e7])
    d = np.array([1.4e12, 3e11, 1e13])
    expected = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    got = np.exp(
        bs.laws.get("chinchilla").mean(
            {k: jnp.asarray(v) for k, v in HOFFMANN.items()}, {"N": jnp.log(n), "D": jnp.log(d)}
        )
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)  # float32
    # Chinchilla itself (70B parameters, 1.4T tokens): 1.69 + 0.0836 + 0.1633.
    assert got[0] == pytest.approx(1.937, abs=1e-3)


def test_unknown_law_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown law 'nope'; known laws: .*chinchilla"):
        bs.laws.get("nope")


# Muennighoff et al. (2023), their fit of the data-constrained law to runs on C4.
MUENNIGHOFF = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "Rstar_D": 15.387, "Rstar_N": 5.309}


def _effective(n: float, d: float, u: float, p: dict) -> float:
    """The data-constrained loss written out term by term from the paper's equations (and the phase-in)."""
    repeats = d / u - 1
    d_eff = u + u * p["Rstar_D"] * (1 - np.exp(-repeats / p["Rstar_D"]))
    base = min((p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / p["alpha"]) * u ** (p["beta"] / p["alpha"]), n)
    excess = n / base - 1
    n_paper = base + base * p["Rstar_N"] * (1 - np.exp(-excess / p["Rstar_N"]))
    share = 1 - u / d
    n_eff = (1 - share) * n + share * n_paper
    return p["E"] + p["A"] / n_eff ** p["alpha"] + p["B"] / d_eff ** p["beta"]


def test_data_constrained_law_matches_the_paper_and_is_chinchilla_without_repeats():
    law = bs.laws.get("data-constrained")
    draws = {k: [v] for k, v in MUENNIGHOFF.items()}
    n = np.array([1e8, 1e9, 1e9, 8.7e9, 1e9])
    d = np.array([2e9, 2e10, 2e10, 1e12, 4e10])
    u = np.array([2e9, 2e10, 2e9, 1e10, np.nan])  # the last: no unique tokens given, every token fresh
    got = np.exp(bs_law_at(law, draws, {"N": n, "D": d, "U": u})[0])
    expected = [_effective(a, b, c if np.isfinite(c) else b, MUENNIGHOFF) for a, b, c in zip(n, d, u, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-9)  # float64 evaluation
    chinchilla = np.exp(bs_law_at(bs.laws.get("chinchilla"), draws, {"N": n, "D": d})[0])
    single = np.array([True, True, False, False, True])
    np.testing.assert_allclose(got[single], chinchilla[single], rtol=1e-12)  # U = D: exactly the Chinchilla law
    assert (got[~single] > chinchilla[~single]).all()  # repeated tokens are worth less than fresh ones


def test_data_constrained_law_is_unchanged_by_the_samplers_centring():
    """The sampler evaluates the law on centred logs (N / N0, D / D0, U / D0) with amplitudes scaled to match."""
    law = bs.laws.get("data-constrained")
    with jax.enable_x64(True):
        p = {k: jnp.asarray(v, jnp.float64) for k, v in MUENNIGHOFF.items()}
        x = {"N": np.log([1e8, 1e9]), "D": np.log([2e10, 4e10]), "U": np.log([2e9, 1e9])}
        n0, d0 = 20.0, 23.0  # log centres
        moved = dict(p, A=p["A"] * np.exp(-p["alpha"] * n0), B=p["B"] * np.exp(-p["beta"] * d0))
        y = {"N": x["N"] - n0, "D": x["D"] - d0, "U": x["U"] - d0}
        np.testing.assert_allclose(law.mean(moved, y), law.mean(p, x), rtol=1e-12)


def test_the_student_t_log_density_matches_scipy_in_numpy_and_in_jax():
    """The likelihood of log loss (and the design's reweighting) use one Student-t density: scipy's, to 1e-12
    in NumPy (float64) and 1e-5 in JAX (float32)."""
    from scipy import stats

    from bayes_scaling._evaluate import student_t

    y, mu, scale = np.linspace(-1.0, 1.0, 7), 0.1, np.array([[0.05], [0.3]])
    want = stats.t.logpdf(y, 4.0, mu, scale)
    np.testing.assert_allclose(student_t(4.0, mu, scale, y), want, rtol=1e-12)
    got = student_t(4.0, jnp.asarray(mu), jnp.asarray(scale), jnp.asarray(y), jnp)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
