"""Saved results read back under either ArviZ line, whichever wrote them."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bayes_scaling as bs
from bayes_scaling import _arviz

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["result_arviz0.nc", "result_arviz1.nc"])
def test_a_file_written_under_either_arviz_line_loads_under_this_one(name):
    """result_arviz0.nc was saved under ArviZ 0.23 (Python 3.11, JAX 0.10), result_arviz1.nc under ArviZ 1.3
    (Python 3.12, JAX 0.12): a 16-run simulated sweep, 2 chains x 50 draws, seed 3."""
    result = bs.load(DATA / name)
    assert result.law.name == "chinchilla" and result.seed == 3 and result.settings.draws == 50
    assert result.group("posterior")["E"].shape == (2, 50)
    assert 1.6 < float(result.group("posterior")["E"].median()) < 1.9  # the truth is 1.7
    assert result.group("log_likelihood")["log_loss"].shape == (2, 50, 16)
    idata = result.idata  # what this ArviZ line calls InferenceData
    assert isinstance(idata, xr.DataTree) == (_arviz.major() >= 1)
    np.testing.assert_array_equal(idata.posterior["E"].to_numpy(), result.group("posterior")["E"].to_numpy())
