"""Simulation-based calibration: uniform ranks for the Chinchilla law; a broken setting fails."""

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.sbc import REGIME, Calibration, calibrate

# A prior in the regime of real sweeps (around the Chinchilla fits), so that every simulated
# sweep identifies its parameters and 4 x 500 draws suffice.
PRIORS = REGIME
SBC = {"n_sims": 64, "priors": PRIORS, "warmup": 300, "draws": 500, "seed": 1}


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return calibrate("chinchilla", **SBC)


def test_sbc_of_the_chinchilla_law_passes(calibration, tmp_path):
    assert len(calibration.ranks) == 64
    assert calibration.ranks.to_numpy().min() >= 0 and calibration.ranks.to_numpy().max() <= 99
    # Chi-square test of binned ranks, Bonferroni over the 6 parameters at alpha = 0.01.
    assert calibration.passed, calibration.table
    assert calibration.converged >= 56, calibration.converged
    # The truths were drawn from the prior: their median of alpha is near the prior median 0.34.
    assert np.median(calibration.truths["alpha"]) == pytest.approx(0.34, rel=0.1)
    fig = bs.plots.sbc(calibration, path=tmp_path / "sbc.png")
    assert len(fig.axes) == 6
    assert (tmp_path / "sbc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sbc_fails_when_the_likelihood_scale_is_wrong(calibration):
    # Data three times noisier than the model says: the posterior of sigma lies above the true
    # value, whose ranks pile at the bottom.
    broken = calibrate("chinchilla", noise_scale=3.0, **SBC)
    assert not broken.passed
    assert not broken.table.loc["sigma", "passed"]
    assert broken.table.loc["sigma", "p_value"] < 1e-6
    assert (broken.ranks["sigma"] <= 9).mean() > 0.8
