"""Shared fits: compiled once per shape, reused across test modules."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import pytest

import bayes_scaling as bs

# One on-disk compilation cache for the whole run: the xdist workers, the subprocesses and the
# notebook kernels compile many of the same samplers; the first to compile one saves it for the rest.
CACHE = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "bayes_scaling_tests_jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

# Short chains keep the suite fast; 4 x 500 draws still give bulk ESS well above 400 here.
# calibrate=False skips the internal backtests (two refits) except where a test is about them.
FAST = {"chains": 4, "warmup": 300, "draws": 500, "calibrate": False}


@pytest.fixture(scope="session")
def epoch_fit() -> bs.Result:
    """The Chinchilla law on the embedded runs without the 5 highest-loss ones (as Epoch AI did)."""
    return bs.fit(bs.datasets.chinchilla(drop_highest=5), seed=0, **FAST)
