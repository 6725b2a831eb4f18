"""The result of a fit: an ArviZ InferenceData plus what is needed to forecast from it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from .laws import Law, get_law
from .priors import Spec


@dataclass(frozen=True, eq=False)
class Result:
    """A fitted scaling law.

    Build it from an InferenceData, or from a function returning one: :func:`fit_many`
    passes functions, so that a batch of a thousand fits does not assemble a thousand
    InferenceData objects nobody reads; each is built on first access and kept.

    Attributes
    ----------
    idata : ArviZ InferenceData with groups ``posterior`` (law parameters on their
        natural scales, ``sigma`` and the sampler's internal ``log_*_c``),
        ``sample_stats``, ``log_likelihood`` (``log_loss``), ``observed_data``
        (``log_loss``), ``constant_data`` (``N``, ``D``, ``C``) and ``prior``.
    law : the fitted law.
    spec : priors and likelihood settings used.
    problems : sampler-health problems; empty when the sampler converged.
    """

    source: az.InferenceData | Callable[[], az.InferenceData] = field(repr=False)
    law: Law
    spec: Spec
    problems: tuple[str, ...] = ()

    @property
    def idata(self) -> az.InferenceData:
        """The InferenceData (built on first access when the result was given a function)."""
        if not isinstance(self.source, az.InferenceData):
            object.__setattr__(self, "source", self.source())
        return self.source

    @property
    def converged(self) -> bool:
        """True when no divergences, every R-hat <= 1.01 and every ESS >= 400."""
        return not self.problems

    @property
    def params(self) -> list[str]:
        """The law's parameters and ``sigma``."""
        return [*self.law.params, "sigma"]

    def draws(self) -> dict[str, np.ndarray]:
        """Posterior draws of the law's parameters and ``sigma``, each flattened to shape (chains * draws,)."""
        post = self.idata.posterior
        return {k: post[k].to_numpy().reshape(-1).astype(np.float64) for k in self.params}

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Posterior table: mean, sd, median, equal-tailed ``ci`` interval, MCSE, R-hat, bulk and tail ESS."""
        table = az.summary(self.idata, var_names=self.params, stat_focus="mean", kind="all", round_to="none")
        post = self.idata.posterior
        lo, hi = (1 - ci) / 2, (1 + ci) / 2
        table.insert(2, "median", [float(post[k].median()) for k in self.params])
        table.insert(3, f"q{lo:.3g}", [float(post[k].quantile(lo)) for k in self.params])
        table.insert(4, f"q{hi:.3g}", [float(post[k].quantile(hi)) for k in self.params])
        return table.drop(columns=[c for c in table.columns if c.startswith("hdi_")])

    def intrinsic_dimension(self, ci: float = 0.9) -> pd.Series:
        """Posterior of the implied intrinsic dimension of the data manifold, ``d = 4 / exponent``.

        Sharma and Kaplan (2020) and Bahri et al. (2024) argue that for a loss of L2 type
        or cross-entropy, a model that resolves a data manifold of dimension d has a
        data-scaling exponent of about 4/d. Caveat: the relation is a heuristic from
        piecewise-linear approximation theory; it assumes the loss is in that regime,
        the exponent is that of data (not parameter) scaling, and says nothing about
        tokenization or architecture. Read the number as an order of magnitude.

        Returns
        -------
        Series with ``exponent`` (its name), ``median``, ``lo`` and ``hi`` (central ``ci`` interval).
        """
        name = self.law.data_exponent
        if name is None:
            raise ValueError(f"law {self.law.name!r} has no data-scaling exponent")
        d = 4.0 / self.idata.posterior[name].to_numpy().reshape(-1)
        lo, med, hi = np.quantile(d, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
        return pd.Series({"exponent": name, "median": med, "lo": lo, "hi": hi})

    def data(self) -> pd.DataFrame:
        """The fitted runs: columns ``N``, ``D``, ``C``, ``loss``."""
        const = self.idata.constant_data
        frame = pd.DataFrame({k: const[k].to_numpy() for k in ("N", "D", "C")})
        frame["loss"] = np.exp(self.idata.observed_data["log_loss"].to_numpy())
        return frame

    def save(self, path: str | Path) -> Path:
        """Write the result to a netCDF file (no pickle) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        idata = self.idata.copy()
        idata.posterior.attrs["bayes_scaling"] = json.dumps(
            {"law": self.law.name, "spec": json.loads(self.spec.to_json()), "problems": list(self.problems)}
        )
        idata.to_netcdf(str(path))
        return path


def load(path: str | Path) -> Result:
    """Read a result written by :meth:`Result.save`.

    The law is looked up by name in the registry: a custom law must be registered
    (:func:`bayes_scaling.register`) before loading.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    idata = az.from_netcdf(str(path))
    meta = idata.posterior.attrs.get("bayes_scaling")
    if meta is None:
        raise ValueError(f"{path}: not a bayes_scaling result (no 'bayes_scaling' attribute on the posterior)")
    meta = json.loads(meta)
    spec = Spec.from_json(json.dumps(meta["spec"]))
    return Result(idata, get_law(meta["law"]), spec, tuple(meta["problems"]))
