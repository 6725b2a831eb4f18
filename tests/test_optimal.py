import numpy as np
import pytest

import bayes_scaling as bs

# Hoffmann et al. (2022), eq. 10, as a point mass.
HOFFMANN = {k: np.array([v]) for k, v in {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}.items()}


def test_closed_form_optimum_at_chinchilla_compute():
    c, k = 5.76e23, 6.0
    log_n, log_d = bs.chinchilla_optimum(HOFFMANN, np.array([c]))
    a, b = 0.34, 0.28
    g = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))
    n = g * (c / k) ** (b / (a + b))
    assert np.exp(log_n[0, 0]) == pytest.approx(n, rel=1e-6)
    assert np.exp(log_d[0, 0]) == pytest.approx(c / k / n, rel=1e-6)


def test_numeric_optimum_agrees_with_closed_form():
    law = bs.get_law("chinchilla")
    flops = np.array([1e20, 5.76e23, 2.1e25])
    exact, _ = bs.chinchilla_optimum(HOFFMANN, flops)
    from bayes_scaling.optimal import numeric_optimum

    numeric, _ = numeric_optimum(law, HOFFMANN, flops)
    np.testing.assert_allclose(np.exp(numeric), np.exp(exact), rtol=1e-3)
