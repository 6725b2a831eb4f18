"""Shared fits: compiled once per shape, reused across test modules."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

import bayes_scaling as bs

T = TypeVar("T")

# One on-disk cache for the whole run: the xdist workers, the command-line runs and the notebook
# kernels trace and compile many of the same samplers; the first to do so stores them for the rest.
# (Stored programs are keyed by a hash of the package's source: an edited package never reads stale ones.)
CACHE = os.environ.setdefault("BAYES_SCALING_CACHE", str(Path(tempfile.gettempdir()) / "bayes_scaling_tests"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(CACHE) / "xla"))
bs.enable_cache(CACHE)

# pytest-xdist runs one test process per core: a fit in each keeps its chains together (a fit split across
# the cores would share them with the other process). tests/test_programs.py tests the split itself.
os.environ.setdefault("BAYES_SCALING_CORES", "1")

#: Test files that take minutes on an empty program cache, in the order they start (pyproject's addopts turn off
#: xdist's own order, most tests first, with ``--no-loadscope-reorder``, pytest-xdist 3.8: that order started the
#: README session last, and a worker ran it alone for minutes after the other had finished). The other files
#: follow, most tests first, as xdist would order them.
FIRST = ("test_readme.py", "test_notebooks_groups.py", "test_groups.py", "test_many.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    counts = Counter(item.path.name for item in items)
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(FIRST)), -counts[item.path.name]))  # stable


# Short chains keep the suite fast; 4 x 500 draws still give bulk ESS well above 400 here.
# calibrate=False skips the internal backtests (four refits) except where a test is about them.
FAST = {"chains": 4, "warmup": 300, "draws": 500, "calibrate": False}


def retried(attempt: Callable[[int], T], good: Callable[[T], bool], seeds: Iterable[int]) -> list[T]:
    """``attempt(seed)`` for each of ``seeds`` until one is ``good``; every outcome, in order (the last is
    the good one, or the last tried).

    For runs whose posterior mixes poorly for a few seeds in twenty: such a fit is redone with another
    seed, as a user would (convergence warnings of the attempts are silenced; callers assert the outcome)."""
    outcomes = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            outcomes.append(attempt(seed))
        if good(outcomes[-1]):
            break
    return outcomes


def healthy_fit(data, seeds, **options) -> bs.Result:
    """``bs.fit`` at the first of ``seeds`` whose fit does not fail its convergence checks (asserted)."""
    result = retried(lambda seed: bs.fit(data, seed=seed, **options), lambda r: r.health().level != "fail", seeds)[-1]
    assert result.health().level != "fail"
    return result


@pytest.fixture(scope="session")
def epoch_fit() -> bs.Result:
    """The Chinchilla law on the embedded runs without the 5 highest-loss ones (as Epoch AI did)."""
    return bs.fit(bs.datasets.chinchilla(drop_highest=5), seed=0, **FAST)


# Data-constrained sweeps (Muennighoff et al. 2023's law at their published values): runs that repeat
# 1e8 or 1e9 unique tokens over 1-64 epochs, beside a single-epoch grid; Student-t noise (4 dof) of 1%.
MUENNIGHOFF = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "Rstar_D": 15.387, "Rstar_N": 5.309}


def repeated_runs(seed: int):
    import pandas as pd

    grid = bs.datasets.sweep(sizes=5, ratios=4, tokens_per_param=(3.0, 300.0))
    runs = pd.concat([bs.datasets.repeated(), grid], ignore_index=True)
    return bs.simulate(MUENNIGHOFF, runs, law="data-constrained", sigma=0.01, df=4.0, seed=seed)


@pytest.fixture(scope="session")
def constrained_fits() -> list[bs.Result]:
    """The data-constrained law fitted to 10 simulated studies at once (one batched program)."""
    sets = [repeated_runs(seed) for seed in range(10)]
    settings = bs.Settings(chains=4, warmup=300, draws=500)
    return bs.fit_many(sets, "data-constrained", settings=settings, seed=0)
