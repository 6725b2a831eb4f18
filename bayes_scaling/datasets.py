"""Runs to fit: the data sets shipped inside the package, and simulated sweep layouts."""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pandas as pd

from .data import FLOPS_PER_PARAM_TOKEN, Dataset, DataWarning, load_data


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


def _path(name: str) -> object:
    return resources.files("bayes_scaling") / "_data" / name


#: Porian et al.'s set-up columns, combined into a run's group.
PORIAN_SETUP = ("dataset", "hparams", "warmup", "decay", "param_count")


def porian(datasets: tuple[str, ...] = ("rw", "owt2")) -> Dataset:
    """The 1,160 IsoFLOP runs of Porian et al. (2024), grouped by training set-up.

    Each group is a data set (``rw`` RefinedWeb, ``owt2`` OpenWebText2) under one of five set-ups
    (hyperparameters, warm-up, learning-rate decay, parameter counting); compute is their FLOP
    budget. See ``bayes_scaling/_data/README.md`` for the source and licence (MIT).

    Parameters
    ----------
    datasets : which pretraining data sets to keep.
    """
    with resources.as_file(_path("porian2024_isoflop_points.csv")) as p:
        frame = pd.read_csv(p)
    frame = frame[frame["dataset"].isin(datasets)].reset_index(drop=True)
    with warnings.catch_warnings():  # non-embedding parameter counts leave C far from 6·N·D: as published
        warnings.simplefilter("ignore", DataWarning)
        data = load_data(frame, n="N", d="D", c="flops_budget", group=list(PORIAN_SETUP))
    return Dataset(data.frame, "porian2024_isoflop_points.csv (embedded)", data.columns)


def obsscaling(benchmark: str = "HellaSwag", min_models: int = 2) -> Dataset:
    """A benchmark's accuracy against training compute for public base models (Ruan et al. 2024), by family.

    The score is read as a metric (the law fits ``-log(score)``); compute is in FLOP, parameters and
    tokens where the table gives them. Models that score 0 are left out (``-log(0)`` is infinite: GSM8K and
    HumanEval hold a few of the smallest models; the source string counts them), then families with fewer
    than ``min_models`` models (a family's pooled offset needs two). Source and licence (Apache-2.0):
    ``bayes_scaling/_data/README.md``.

    Parameters
    ----------
    benchmark : one of MMLU, ARC-C, HellaSwag, Winograd, TruthfulQA, GSM8K, XWinograd, HumanEval.
    """
    with resources.as_file(_path("obsscaling_base_llm_benchmark_eval.csv")) as p:
        frame = pd.read_csv(p)
    if benchmark not in frame.columns[5:]:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(frame.columns[5:])}")
    frame = frame.dropna(subset=["FLOPs (1E21)", benchmark])
    zero = int((frame[benchmark] <= 0).sum())
    frame = frame[frame[benchmark] > 0]
    counts = frame["Model Family"].value_counts()
    frame = frame[frame["Model Family"].isin(counts[counts >= min_models].index)].reset_index(drop=True)
    with warnings.catch_warnings():  # reported compute and 6·N·D differ for some families: as published
        warnings.simplefilter("ignore", DataWarning)
        data = load_data(
            frame,
            n="Model Size (B)",
            d="Pretraining Data Size (T)",
            c="FLOPs (1E21)",
            loss=benchmark,
            needs=("C",),
            metric=True,
            units={"C": 1e21, "N": 1e9, "D": 1e12},
            group="Model Family",
        )
    left_out = f", {zero} model{'s' * (zero != 1)} scoring 0 left out" if zero else ""
    return Dataset(
        data.frame, f"obsscaling_base_llm_benchmark_eval.csv (embedded), {benchmark}{left_out}", data.columns
    )


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


def repeated(
    n_range: tuple[float, float] = (1e7, 1e9),
    unique: tuple[float, ...] = (1e8, 1e9),
    epochs: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64),
    sizes: int = 5,
    k: float = FLOPS_PER_PARAM_TOKEN,
) -> pd.DataFrame:
    """A grid of runs that repeat their data (no losses): ``sizes`` model sizes x unique-token budgets x epochs.

    Muennighoff et al. (2023) laid out their data-constrained runs this way. Give it a loss with
    :func:`bayes_scaling.simulate` (``law="data-constrained"``).

    Returns
    -------
    DataFrame with columns ``params``, ``tokens`` (= epochs · unique tokens), ``unique_tokens``, ``flops``,
    one row per combination.
    """
    grids = np.meshgrid(np.geomspace(*n_range, sizes), np.asarray(unique, float), np.asarray(epochs, float))
    n, u, e = (a.ravel() for a in grids)
    return pd.DataFrame({"params": n, "tokens": u * e, "unique_tokens": u, "flops": k * n * u * e})
