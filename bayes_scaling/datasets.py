"""Data sets shipped inside the package."""

from __future__ import annotations

from importlib import resources

from .data import Dataset, load_data


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
