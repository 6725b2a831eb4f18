import jax.numpy as jnp
import numpy as np
import pytest

import bayes_scaling as bs

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
