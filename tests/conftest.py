"""Shared fits: compiled once per shape, reused across test modules."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import bayes_scaling as bs

# One on-disk cache for the whole run: the xdist workers, the command-line runs and the notebook
# kernels trace and compile many of the same samplers; the first to do so stores them for the rest.
# (Stored programs are keyed by a hash of the package's source: an edited package never reads stale ones.)
CACHE = os.environ.setdefault("BAYES_SCALING_CACHE", str(Path(tempfile.gettempdir()) / "bayes_scaling_tests"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(CACHE) / "xla"))
bs.enable_cache(CACHE)

# Short chains keep the suite fast; 4 x 500 draws still give bulk ESS well above 400 here.
# calibrate=False skips the internal backtests (four refits) except where a test is about them.
FAST = {"chains": 4, "warmup": 300, "draws": 500, "calibrate": False}


@pytest.fixture(scope="session")
def epoch_fit() -> bs.Result:
    """The Chinchilla law on the embedded runs without the 5 highest-loss ones (as Epoch AI did)."""
    return bs.fit(bs.datasets.chinchilla(drop_highest=5), seed=0, **FAST)
