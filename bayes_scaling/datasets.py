"""Runs to fit: the data set shipped inside the package, and simulated sweep layouts."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from .data import FLOPS_PER_PARAM_TOKEN, Dataset, load_data


def chinchilla(drop_highest: int = 0) -> Dataset:
    """The 245 runs of Hoffmann et al. (2022) Figure 4, as extracted by Epoch AI (2024).

    Parameters
    ----------
    drop_highest : drop this many highest-loss runs (Epoch AI dropped 5).

    Notes
    -----
    Source: epoch-research/analyzing-chinchilla, data/svg_extracted_data.csv, commit
    92258837425e1b5f2851d624287f0120583a3d0e; tokens derived as flops / (6 · params).
    """
    path = resources.files("bayes_scaling") / "_data" / "chinchilla_hoffmann2022_fig4.csv"
    with resources.as_file(path) as p:
        data = load_data(p)
    data = Dataset(data.frame, "chinchilla_hoffmann2022_fig4.csv (embedded)", data.columns)
    return data.drop_highest(drop_highest)


def sweep(
    n_range: tuple[float, float] = (1e7, 1e9),
    tokens_per_param: tuple[float, float] = (2.0, 200.0),
    sizes: int = 8,
    ratios: int = 8,
    k: float = FLOPS_PER_PARAM_TOKEN,
) -> pd.DataFrame:
    """A grid of training runs (no losses): ``sizes`` model sizes by ``ratios`` tokens-per-parameter ratios.

    Give it a loss with :func:`bayes_scaling.simulate`.

    Returns
    -------
    DataFrame with columns ``params``, ``tokens``, ``flops`` (= k·N·D), shape (sizes·ratios, 3).
    """
    n = np.geomspace(*n_range, sizes)
    r = np.geomspace(*tokens_per_param, ratios)
    nn, rr = (a.ravel() for a in np.meshgrid(n, r, indexing="ij"))
    return pd.DataFrame({"params": nn, "tokens": nn * rr, "flops": k * nn * nn * rr})
