"""Shared fits: compiled once per shape, reused across test modules."""

from __future__ import annotations

import pytest

import bayes_scaling as bs

# Short chains keep the suite fast; 4 x 500 draws still give bulk ESS well above 400 here.
# calibrate=False skips the internal backtests (two refits) except where a test is about them.
FAST = {"chains": 4, "warmup": 300, "draws": 500, "calibrate": False}


@pytest.fixture(scope="session")
def epoch_fit() -> bs.Result:
    """The Chinchilla law on the embedded runs without the 5 highest-loss ones (as Epoch AI did)."""
    return bs.fit(bs.datasets.chinchilla(drop_highest=5), seed=0, **FAST)
