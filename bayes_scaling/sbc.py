"""Simulation-based calibration (Talts et al. 2018): does the sampler recover the prior?

Draw parameters from the prior, simulate a sweep from each draw, fit every sweep
(one batched :func:`~bayes_scaling.fit_many` program), and find the rank of each
true value among its posterior draws. If the model, the simulator and the sampler
agree, every rank is uniform on ``0..L``; a sampler that is too narrow piles ranks
at the ends, one that is too wide piles them in the middle, a biased one tilts them.
The test per parameter is a chi-square test of binned ranks, Bonferroni-corrected
over the parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd
import scipy.special

from . import laws
from .data import DataWarning, checked_seed, load_data
from .datasets import sweep
from .diagnostics import ConvergenceWarning, MixingWarning
from .fit import fit_many
from .laws import Law
from .priors import Prior, PriorsLike, resolve
from .simulate import simulate

#: Priors around the published Chinchilla fits (Hoffmann et al. 2022), narrower than the defaults:
#: every sweep simulated from them identifies its parameters, so short chains suffice. Used by
#: the SBC test and benchmark; pass ``priors=REGIME`` to :func:`calibrate`.
REGIME = {
    "E": Prior("lognormal", loc=float(np.log(1.7)), scale=0.2),
    "A": Prior("lognormal", loc=float(np.log(400.0)), scale=0.5),
    "B": Prior("lognormal", loc=float(np.log(1500.0)), scale=0.5),
    "alpha": Prior("lognormal", loc=float(np.log(0.34)), scale=0.15),
    "beta": Prior("lognormal", loc=float(np.log(0.28)), scale=0.15),
    "sigma": Prior("halfnormal", scale=0.03),
}


@dataclass(frozen=True)
class Calibration:
    """The outcome of :func:`calibrate`.

    Attributes
    ----------
    ranks : rank of each true value among ``draws`` thinned posterior draws, one row
        per simulation, one column per parameter (values ``0..draws``).
    truths : the parameters each simulation was drawn with.
    table : per parameter: ``chi2``, ``dof``, ``p_value``, ``passed``.
    draws : posterior draws each rank is taken among.
    bins : rank bins of the chi-square test.
    alpha : family-wise significance level (Bonferroni over parameters).
    converged : how many of the fits passed every sampler-health check.
    """

    ranks: pd.DataFrame
    truths: pd.DataFrame
    table: pd.DataFrame
    draws: int
    bins: int
    alpha: float
    converged: int

    @property
    def passed(self) -> bool:
        """True when no parameter's ranks depart from uniform at the family-wise level ``alpha``."""
        return bool(self.table["passed"].all())


def calibrate(
    law: str | Law = "chinchilla",
    n_sims: int = 100,
    *,
    priors: PriorsLike = None,
    runs: pd.DataFrame | None = None,
    draws_per_rank: int = 99,
    bins: int | None = None,
    alpha: float = 0.01,
    noise_scale: float = 1.0,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 300,
    draws: int = 500,
    algorithm: str = "hmc",
    devices: Sequence[jax.Device] | None = None,
) -> Calibration:
    """Simulation-based calibration of ``law`` under ``priors``.

    Parameters
    ----------
    law, priors : the model to check (priors as for :func:`bayes_scaling.fit`).
    n_sims : simulations (each one fit; all fits run as one batch).
    runs : the sweep to simulate, columns ``params``, ``tokens``, ``flops``
        (default :func:`bayes_scaling.datasets.sweep`: 8 x 8 runs).
    draws_per_rank : posterior draws, evenly thinned from all chains, that each true
        value is ranked among; ranks take values ``0..draws_per_rank``.
    bins : rank bins of the chi-square test (default: about ``n_sims / 10``, 5 to 20,
        dividing ``draws_per_rank + 1``).
    alpha : family-wise significance level of the uniformity test.
    noise_scale : multiplies the simulated noise. 1 is the model; any other value
        deliberately breaks the agreement between simulator and model, to check that
        the test can fail.
    seed : seeds the prior draws, the noise and the fits.
    chains, warmup, draws, algorithm, devices : as for :func:`bayes_scaling.fit_many`.

    Returns
    -------
    Calibration.
    """
    law = laws.get(law)
    seed = checked_seed(seed)
    spec = resolve(law, priors)
    runs = sweep() if runs is None else runs
    names = [*law.params, "sigma"]
    truth_keys = jax.random.split(jax.random.key(seed), len(names))
    truths = pd.DataFrame(
        {
            name: np.asarray(spec.priors[name].build().sample(k, (n_sims,)), np.float64)
            for k, name in zip(truth_keys, names, strict=True)
        }
    )
    sets = []
    with warnings.catch_warnings():  # draws from the prior may give losses no real run has: that is the point
        warnings.simplefilter("ignore", DataWarning)
        for i, row in truths.iterrows():
            params = {k: float(row[k]) for k in law.params}
            noise = noise_scale * row["sigma"]
            frame = simulate(params, runs, law=law, sigma=noise, df=spec.df, seed=seed * 100_003 + i)
            sets.append(load_data(frame, needs=law.inputs, allow_unusual=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", MixingWarning)
        results = fit_many(
            sets,
            law,
            priors=spec,
            chains=chains,
            warmup=warmup,
            draws=draws,
            algorithm=algorithm,
            seed=seed * 100_003 + 7,
            prior_draws=1,
            devices=devices,
        )
    total = chains * draws
    pick = np.linspace(0, total - 1, draws_per_rank).round().astype(int)
    ranks = pd.DataFrame(
        {
            name: [
                int(np.sum(r.group("posterior")[name].to_numpy().reshape(-1)[pick] < t))
                for r, t in zip(results, truths[name], strict=True)
            ]
            for name in names
        }
    )
    if bins is None:
        divisors = [b for b in range(5, 21) if (draws_per_rank + 1) % b == 0] or [5]
        bins = min(divisors, key=lambda b: abs(b - n_sims / 10))
    counts = np.stack([np.bincount(ranks[n] * bins // (draws_per_rank + 1), minlength=bins) for n in names])
    expected = n_sims / bins
    chi2 = ((counts - expected) ** 2 / expected).sum(1)
    p = scipy.special.chdtrc(bins - 1, chi2)
    table = pd.DataFrame(
        {"chi2": chi2, "dof": bins - 1, "p_value": p, "passed": p >= alpha / len(names)}, index=pd.Index(names)
    )
    converged = sum(r.converged for r in results)
    return Calibration(ranks, truths, table, draws_per_rank, bins, alpha, converged)
