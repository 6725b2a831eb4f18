"""The result of a fit: the groups of an ArviZ InferenceData plus what is needed to forecast from it."""

from __future__ import annotations

import json
import threading
import warnings
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from . import diagnostics
from .cache import shared
from .laws import Law, get_law
from .priors import Spec

if TYPE_CHECKING:
    import arviz as az

_BUILDING = threading.Lock()  # one thread builds a result's groups from its function

#: A result's groups, by name: ``posterior``, ``sample_stats``, ... as ArviZ names them.
Groups = Mapping[str, xr.Dataset]


class LazyGroups(Mapping):
    """Groups built one by one on first access (a refit that is only forecast from never
    computes its pointwise log likelihood or prior draws)."""

    def __init__(self, builders: Mapping[str, Callable[[], xr.Dataset]]) -> None:
        self._builders, self._built = dict(builders), {}
        self._lock = threading.Lock()  # threads reading one result (the command line saves while it plots)

    def __getitem__(self, name: str) -> xr.Dataset:
        if name not in self._built:
            with self._lock:
                if name not in self._built:
                    self._built[name] = self._builders[name]()
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


@dataclass(frozen=True, eq=False)
class Result:
    """A fitted scaling law.

    It holds the groups of an InferenceData, as xarray Datasets; :attr:`idata` assembles
    the ArviZ object on first access (importing ArviZ costs seconds that a fit, its
    forecasts and its saved file do not need). Build it from an InferenceData, from
    groups, or from a function returning either: :func:`fit_many` passes functions,
    so that a batch of a thousand fits does not assemble a thousand results nobody
    reads; each is built on first access and kept.

    Attributes
    ----------
    source : InferenceData or groups (``posterior`` with the law's parameters on their
        natural scales, ``sigma`` and the sampler's internal ``log_*_c``;
        ``sample_stats``, ``log_likelihood`` (``log_loss``), ``observed_data``
        (``log_loss``), ``constant_data`` (``N``, ``D``, ``C``), ``prior``), or a function
        returning them.
    law : the fitted law.
    spec : priors and likelihood settings used.
    problems : sampler-health problems; empty when the sampler converged.
    settings : how the draws were made: the sampler settings (``chains``, ``warmup``,
        ``draws``, ``target_accept``, ``dense``, ``max_tree_depth``, ``laplace_init``,
        ``algorithm``) and the ``seed``; empty for a result built by hand. Saved with it.
    """

    source: az.InferenceData | Groups | Callable[[], Groups] = field(repr=False)
    law: Law
    spec: Spec
    problems: tuple[str, ...] = ()
    settings: Mapping[str, object] = field(default_factory=dict)

    def _groups(self) -> Groups:
        if callable(self.source):
            with _BUILDING:
                if callable(self.source):
                    object.__setattr__(self, "source", self.source())
        return self.source

    def groups(self) -> list[str]:
        """Names of the groups held."""
        source = self._groups()
        return list(source.groups()) if hasattr(source, "groups") else list(source)

    def group(self, name: str) -> xr.Dataset:
        """One group (``posterior``, ``sample_stats``, ...) as an xarray Dataset."""
        return self._groups()[name]

    def with_group(self, name: str, group: xr.Dataset) -> Result:
        """A copy that also holds ``group`` under ``name``; groups not built yet stay unbuilt."""
        return Result(ChainMap({name: group}, self._groups()), self.law, self.spec, self.problems, self.settings)

    @property
    def idata(self) -> az.InferenceData:
        """The ArviZ InferenceData (assembled on first access)."""
        import arviz as az

        source = self._groups()
        if not isinstance(source, az.InferenceData):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # groups outside ArviZ's schema (extrapolation)
                source = az.InferenceData(**{name: source[name] for name in source})
            object.__setattr__(self, "source", source)
        return source

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
        post = self.group("posterior")
        return {k: post[k].to_numpy().reshape(-1).astype(np.float64) for k in self.params}

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Posterior table: mean, sd, median, equal-tailed ``ci`` interval, MCSE, bulk and tail ESS, R-hat.

        The statistics are ArviZ's (``az.summary`` with ``stat_focus="mean"``; tested
        against it), computed in one compiled pass without importing ArviZ.
        """
        post = self.group("posterior")
        x = np.stack([post[k].to_numpy() for k in self.params])  # (params, chains, draws)
        flat = x.reshape(len(x), -1).astype(np.float64)
        lo, hi = (1 - ci) / 2, (1 + ci) / 2
        stats = jax.tree.map(np.asarray, shared(_stats, "summary")(jnp.asarray(x)))
        return pd.DataFrame(
            {
                "mean": flat.mean(1),
                "sd": flat.std(1, ddof=1),
                "median": np.median(flat, 1),
                f"q{lo:.3g}": np.quantile(flat, lo, axis=1),
                f"q{hi:.3g}": np.quantile(flat, hi, axis=1),
                "mcse_mean": stats["mcse_mean"],
                "mcse_sd": stats["mcse_sd"],
                "ess_bulk": stats["ess_bulk"],
                "ess_tail": stats["ess_tail"],
                "r_hat": stats["rhat"],
            },
            index=self.params,
        ).astype(np.float64)

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
        d = 4.0 / self.group("posterior")[name].to_numpy().reshape(-1)
        lo, med, hi = np.quantile(d, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
        return pd.Series({"exponent": name, "median": med, "lo": lo, "hi": hi})

    def data(self) -> pd.DataFrame:
        """The fitted runs: columns ``N``, ``D``, ``C``, ``loss``."""
        const = self.group("constant_data")
        frame = pd.DataFrame({k: const[k].to_numpy() for k in ("N", "D", "C")})
        frame["loss"] = np.exp(self.group("observed_data")["log_loss"].to_numpy())
        return frame

    def save(self, path: str | Path) -> Path:
        """Write the result to a netCDF file (ArviZ's InferenceData layout, no pickle) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "law": self.law.name,
            "spec": json.loads(self.spec.to_json()),
            "problems": list(self.problems),
            "settings": dict(self.settings),
        }
        for i, name in enumerate(self.groups()):
            data = self.group(name)
            if name == "posterior":
                data = data.assign_attrs(bayes_scaling=json.dumps(meta))
            # Uncompressed: zlib saved 18% of the file and cost 0.2 s, a third of a fresh CLI run's save.
            data.to_netcdf(path, mode="w" if i == 0 else "a", group=name, engine="h5netcdf")
        return path


def _stats(x: jax.Array) -> dict[str, jax.Array]:
    """R-hat, bulk and tail ESS and the MCSE of mean and sd of B series, (B, chains, draws) -> (B,) each."""
    return {**diagnostics.rank_stats(x), **diagnostics.mcse(x)}


def load(path: str | Path) -> Result:
    """Read a result written by :meth:`Result.save`.

    The law is looked up by name in the registry: a custom law must be registered
    (:func:`bayes_scaling.register`) before loading.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    import arviz as az

    idata = az.from_netcdf(str(path))
    meta = idata.posterior.attrs.get("bayes_scaling")
    if meta is None:
        raise ValueError(f"{path}: not a bayes_scaling result (no 'bayes_scaling' attribute on the posterior)")
    meta = json.loads(meta)
    spec = Spec.from_json(json.dumps(meta["spec"]))
    return Result(idata, get_law(meta["law"]), spec, tuple(meta["problems"]), meta.get("settings", {}))
