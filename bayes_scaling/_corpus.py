"""Real studies, and the extrapolation error learned across them: the prior of ``kappa`` every fit starts from.

A sweep's own internal backtests reach only as far as its runs: within two decades the law may fit
well, and bend beyond. Other studies show how far such forecasts have missed. The corpus:

- the embedded Chinchilla runs (Hoffmann et al. 2022, Figure 4 as extracted by Epoch AI; the 5
  highest-loss runs dropped, as Epoch did), 1.4e18-1.3e22 FLOP;
- each of the ten set-ups of Porian et al. (2024) (two pretraining data sets x five training set-ups:
  hyperparameters, warm-up, decay, parameter counting) as its own study, 1.25e16-2.56e19 FLOP.

Far evidence (:func:`far_evidence`): in each study the Chinchilla law is fitted (plain) to the runs
at least :data:`CUTOFF_DECADES` decades of compute below its largest run and forecasts the runs above,
0-1.5 decades beyond; each held-out run's residual, plain predictive scale, reducible share and
distance beyond the refit's runs along N and D make an :class:`~bayes_scaling._calibration.Evidence`
table, as the internal backtests do. :func:`~bayes_scaling._calibration.learn_population` explains
every study's table with its own ``kappa``, drawn from a population (each study's held-out runs weighing
as one refit's do in a fit: :func:`~bayes_scaling._calibration.weights`); the population's predictive for
a new study is the ``[extrapolation]`` prior shipped in ``models/chinchilla.toml`` (and the laws that
share its terms), which every fit updates with its own internal backtests, and which a sweep too small
for those (under 20 runs for the Chinchilla law) uses alone. ``python benchmarks/bench_corpus.py``
relearns it and checks it study by study, each learned from the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import _calibration, datasets
from ._calibration import Evidence
from ._model import padded_length
from ._sampler import Settings
from .data import Dataset
from .diagnostics import Health
from .fit import _internal_backtest
from .forecast import forecast
from .laws import Law, get
from .priors import Prior, Spec, resolve
from .result import Result

#: The far backtests' cutoff: this many decades of compute below a study's largest run.
CUTOFF_DECADES = 1.5


def studies() -> dict[str, Dataset]:
    """The corpus's studies by name: ``chinchilla`` and ``porian/<data set>/<set-up>``, ungrouped Datasets."""
    out = {"chinchilla": datasets.chinchilla(drop_highest=5)}
    porian = datasets.porian()
    frame = porian.frame
    for label in sorted(set(frame["group"])):
        mine = frame[frame["group"] == label].drop(columns="group").reset_index(drop=True)
        out[f"porian/{label}"] = Dataset(mine, f"{porian.source}, {label}", porian.columns)
    return out


def cutoff(data: Dataset, decades: float = CUTOFF_DECADES) -> float:
    """The compute below which a study's far backtest refits: ``decades`` under its largest run."""
    return float(data.frame["C"].max()) / 10**decades


def far_evidence(
    data: Dataset,
    law: str | Law = "chinchilla",
    *,
    decades: float = CUTOFF_DECADES,
    spec: Spec | None = None,
    settings: Settings | None = None,
    seed: int = 0,
) -> tuple[Evidence, Health]:
    """Fit ``law`` (plain) to the runs below :func:`cutoff` and forecast the rest: the held-out runs' evidence."""
    law = get(law)
    train = data.frame["C"].to_numpy() <= cutoff(data, decades)
    spec = spec or resolve(law)
    settings = settings or Settings()
    pad = padded_length(len(data))
    return _internal_backtest(data, law, spec, settings, seed, 0, pad, "C", float(train.mean()), train)


def learn(
    evidence: dict[str, Evidence], df: float = 4.0, settings: Settings | None = None, seed: int = 0
) -> tuple[dict[str, Prior], np.ndarray, Health]:
    """The ``[extrapolation]`` prior learned from studies' far evidence: ``{input: LogNormal prior}``, each
    study's ``kappa`` draws (studies, draws, inputs), and the sampler's health."""
    settings = settings or Settings(chains=4, warmup=1000, draws=1000, target_accept=0.95)
    found, kappa, health = _calibration.learn_population(evidence, df, settings, seed)
    priors = {x: Prior("lognormal", loc=round(loc, 3), scale=round(scale, 3)) for x, (loc, scale) in found.items()}
    return priors, kappa, health


def score(
    result: Result, held: pd.DataFrame, levels: Sequence[float] = (0.5, 0.8, 0.9), mode: str = "calibrated"
) -> dict[str, float]:
    """Coverage of a fit's bands of a new run at held-out runs (``held``: N, D, C, loss) at each level, the
    median absolute relative error of the median forecast, and its median log bias (realized over forecast)."""
    table = forecast(result, held[["N", "D", "C"]], levels=levels, mode=mode)
    loss = held["loss"].to_numpy()
    out = {"runs": len(held), "median_error": float(np.median(np.abs(table["run_median"].to_numpy() / loss - 1)))}
    for level in levels:
        lo, hi = table[f"run_lo{100 * level:g}"].to_numpy(), table[f"run_hi{100 * level:g}"].to_numpy()
        out[f"cover{100 * level:g}"] = float(np.mean((lo <= loss) & (loss <= hi)))
    out["bias"] = float(np.median(np.log(loss / table["run_median"].to_numpy())))
    return out
