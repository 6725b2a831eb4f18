"""How far points lie beyond the data: one definition, in decades along each input."""

import numpy as np
import pandas as pd
import pytest

from bayes_scaling._geometry import axis, beyond


def test_distances_count_decades_beyond_every_run_that_is_larger_in_all_inputs():
    runs = pd.DataFrame({"N": [1e8, 1e9, 1e10], "D": [1e11, 1e10, 1e9]})
    points = pd.DataFrame({"N": [1e9, 1e9, 1e10, 1e11], "D": [1e10, 1e11, 1e10, 1e12]})
    got = beyond(runs, points, ["N", "D"])
    # (1e9, 1e10) is a run: inside. (1e9, 1e11): 1 decade more N than the run (1e8, 1e11), or
    # 1 decade more D than (1e9, 1e10): the nearest shortfall is one decade along one input.
    # (1e10, 1e10) lies within each input's range, yet no run has that many parameters and tokens.
    # (1e11, 1e12): beyond all; nearest is (1e9, 1e10) or (1e10, 1e9), norm sqrt(2**2 + 2**2) vs sqrt(1 + 9).
    np.testing.assert_allclose(got[0], [0, 0])
    assert np.linalg.norm(got[1]) == pytest.approx(1.0)
    assert np.linalg.norm(got[2]) == pytest.approx(1.0)
    np.testing.assert_allclose(got[3], [2, 2])
    one = beyond(runs, points, ["N"])
    np.testing.assert_allclose(one[:, 0], [0, 0, 0, 1])


def test_the_extrapolation_axis_is_compute_when_known():
    runs = pd.DataFrame({"N": [1e8, 1e9], "D": [1e10, 1e11], "C": [6e18, np.nan]})
    assert axis(runs, ("N", "D")) == "N"  # compute unknown for a run: the law's first input
    assert axis(runs.fillna(6e20), ("N", "D")) == "C"
