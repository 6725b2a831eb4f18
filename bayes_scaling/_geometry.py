"""How far a point lies beyond the data: the one definition, in decades along each input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Points x runs x inputs compared at once (float64: 80 MB).
_CELLS = 10_000_000


def beyond(runs: pd.DataFrame, points: pd.DataFrame, inputs: Sequence[str]) -> np.ndarray:
    """Decades beyond the data along each input, shape (t, len(inputs)); zeros inside the data.

    A point lies inside the data when some run is at least as large in every input
    (more parameters *and* more tokens): the law has been seen working there. Otherwise
    its distance is the shortfall ``max(log10 x_i - log10 r_i, 0)`` to the run ``r`` that
    needs the smallest move (Euclidean, in decades) to reach it. With one input this is
    the decades beyond the largest run.

    Parameters
    ----------
    runs : the data, one row per run, with a column per input (values > 0), n rows.
    points : where to measure, the same columns, t rows.
    inputs : the columns to measure along (``"N"``, ``"D"``, ``"C"``).
    """
    x = np.log10(points[list(inputs)].to_numpy(np.float64))  # (t, i)
    r = np.log10(runs[list(inputs)].to_numpy(np.float64))  # (n, i)
    out = np.empty_like(x)
    step = max(1, _CELLS // max(len(r) * len(inputs), 1))  # points per block: memory stays bounded
    for start in range(0, len(x), step):
        gap = np.maximum(x[start : start + step, None, :] - r[None, :, :], 0.0)  # (block, n, i)
        nearest = np.argmin(np.sum(gap**2, axis=-1), axis=1)
        out[start : start + step] = gap[np.arange(len(gap)), nearest]
    return out


def beyond_own(runs: pd.DataFrame, points: pd.DataFrame, inputs: Sequence[str]) -> np.ndarray:
    """:func:`beyond`, each point measured from the runs of its own group when both carry a ``group`` column
    (from every run for a group the runs do not hold: a new group), shape (t, len(inputs))."""
    if "group" not in points.columns or "group" not in runs.columns:
        return beyond(runs, points, inputs)
    out = np.empty((len(points), len(inputs)))
    for label in points["group"].unique():
        rows = (points["group"] == label).to_numpy()
        own = runs[runs["group"] == label]
        out[rows] = beyond(own if len(own) else runs, points[rows], inputs)
    return out


def shortfalls(runs: pd.DataFrame, point: pd.Series | dict, inputs: Sequence[str]) -> np.ndarray:
    """Each run's shortfall to one point, ``max(log10 x_i - log10 r_i, 0)`` in decades, shape (n, len(inputs)).

    :func:`beyond` measures a point from the run with the smallest (Euclidean) shortfall; this gives
    every run's, for asking how far the point would lie if a run were added.
    """
    x = np.log10(np.asarray([point[k] for k in inputs], np.float64))
    return np.maximum(x[None, :] - np.log10(runs[list(inputs)].to_numpy(np.float64)), 0.0)


def axis(runs: pd.DataFrame, inputs: Sequence[str]) -> str:
    """The extrapolation axis of runs fitted by a law of ``inputs``: compute ``C`` when known for every run,
    else the law's first input."""
    return "C" if np.isfinite(runs["C"].to_numpy(np.float64)).all() else inputs[0]
