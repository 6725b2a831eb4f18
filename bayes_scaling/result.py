"""The result of a fit: the groups of an ArviZ InferenceData plus what is needed to forecast from it."""

from __future__ import annotations

import json
import threading
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import xarray as xr

from . import _arviz, _stats, laws
from ._evaluate import log_likelihood
from ._model import PLAIN, Design, form, prior_arrays
from ._outputs import atomic_file
from ._programs import PROGRAMS, compiler_options
from ._sampler import Output, Settings
from .data import Dataset
from .diagnostics import Health, Stats, Thresholds, assess, measure
from .laws import Law, complete
from .priors import Spec

#: A result's groups, by name: ``posterior``, ``sample_stats``, ... as ArviZ names them.
Groups = Mapping[str, xr.Dataset]

#: The label that asks for a group not in the data, drawn from the population (:meth:`Result.draws`).
NEW = "new"

#: A saved result keeps its pointwise log likelihood up to this many values (draws x runs, float32:
#: 400 MB); beyond, the file leaves it out, and a loaded result computes it again when asked.
LOGLIK_SAVED_MAX = 100_000_000
#: File name suffixes :meth:`Result.save` writes (netCDF is HDF5 underneath); a name without a suffix too.
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5", ".hdf5")


class LazyGroups(Mapping):
    """Groups built one by one on first access (a refit that is only forecast from never
    computes its pointwise log likelihood or prior draws; a batch of a thousand fits builds
    only what is read). Threads reading one result build each group once."""

    def __init__(self, builders: Mapping[str, Callable[[], xr.Dataset]]) -> None:
        self._builders, self._built = dict(builders), {}
        self._lock = threading.Lock()

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
    """A fitted scaling law. A value: nothing computed from it changes it.

    It holds the groups of an InferenceData as xarray Datasets, each built on first
    access; :attr:`idata` assembles the ArviZ object (importing ArviZ costs seconds that a
    fit, its forecasts and its saved file do not need).

    Attributes
    ----------
    source : the groups by name: ``posterior`` (the law's parameters on their natural
        scales, ``sigma`` and the sampler's internal ``log_*_c``), ``sample_stats``,
        ``log_likelihood`` (``log_loss``), ``observed_data`` (``log_loss``),
        ``constant_data`` (``N``, ``D``, ``C``; ``U`` for runs that gave unique tokens, ``N_embedding`` for known
        embedding parameters; its attribute ``params`` says what ``N`` counts), ``prior``,
        and for a calibrated fit ``extrapolation``.
    law : the fitted law.
    spec : priors and likelihood settings used.
    stats : the sampler's convergence statistics (None: measured from the draws when asked).
    settings : the sampler settings the draws came from (None for a result built by hand).
    seed : the seed the draws came from.
    design : the runs' groups (their labels and each parameter's pooling) and whether they
        repeat configurations. A law parameter that varies by group has a ``group`` dimension
        in the posterior, its coordinates the labels.
    """

    source: Groups = field(repr=False)
    law: Law
    spec: Spec
    stats: Stats | None = None
    settings: Settings | None = None
    seed: int | None = None
    design: Design = PLAIN
    #: What is computed once from the draws and asked more than once (PSIS-LOO: a review's comparison of laws
    #: and its LOO-PIT), by name; a copy (``dataclasses.replace``) starts empty.
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_idata(cls, idata: object, law: Law, spec: Spec) -> Result:
        """A result from an ArviZ InferenceData or DataTree (its convergence statistics measured from its draws)."""
        if isinstance(idata, xr.DataTree):
            groups = {name: node.to_dataset() for name, node in idata.children.items()}
        else:
            groups = {name: idata[name] for name in idata.groups()}
        return cls(groups, law, spec)

    def groups(self) -> list[str]:
        """Names of the groups held."""
        return list(self.source)

    def group(self, name: str) -> xr.Dataset:
        """One group (``posterior``, ``sample_stats``, ...) as an xarray Dataset."""
        return self.source[name]

    def with_group(self, name: str, group: xr.Dataset) -> Result:
        """A copy that also holds ``group`` under ``name``; groups not built yet stay unbuilt."""
        return replace(self, source=ChainMap({name: group}, self.source))

    @property
    def idata(self) -> object:
        """Every group, as what the installed ArviZ calls InferenceData: ``az.InferenceData`` under ArviZ
        0.2x, an ``xarray.DataTree`` under ArviZ 1.x."""
        return _arviz.inference_data(self.source)

    def health(self, thresholds: Thresholds | None = None) -> Health:
        """The sampler's health: every convergence check against ``thresholds`` (default: the package's)."""
        stats = self.stats
        if stats is None:
            sample_stats = self.group("sample_stats")
            depth = self.settings.max_tree_depth if self.settings is not None else 10
            stats = measure(self._components(), {k: v.to_numpy() for k, v in sample_stats.data_vars.items()}, depth)
        return assess(stats, thresholds)

    @property
    def problems(self) -> tuple[str, ...]:
        """Sampler-health problems, one sentence each; empty when every check passed."""
        return self.health().problems

    @property
    def converged(self) -> bool:
        """True when every convergence check passed (no divergences, R-hat and ESS within thresholds)."""
        return not self.problems

    @property
    def labels(self) -> list[str]:
        """The runs' group labels (empty without groups)."""
        return list(self.design.labels)

    @property
    def params(self) -> list[str]:
        """The reported parameters: the law's, the population value and spread of each pooled one, and the
        noise scales (``sigma``; with replicates ``sigma_misfit``, the law's misfit at a configuration)."""
        post = self.group("posterior")
        pooled = [f"{p}_{part}" for part in ("pop", "tau") for p in self.law.params if f"{p}_{part}" in post]
        misfit = ["sigma_misfit"] if "sigma_misfit" in post else []
        return [*self.law.params, *pooled, "sigma", *misfit]

    def _components(self) -> dict[str, np.ndarray]:
        """Each reported parameter's draws (chains, draws), one entry per group where it varies: ``E[rpj]``."""
        post, out = self.group("posterior"), {}
        for name in self.params:
            values = post[name]
            if "group" in values.dims:
                for label in values["group"].to_numpy():
                    out[f"{name}[{label}]"] = values.sel(group=label).to_numpy()
            else:
                out[name] = values.to_numpy()
        return out

    def draws(self, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior draws of the law's parameters and the noise scales, each flattened to shape (chains * draws,).

        Parameters
        ----------
        group : for a fit of runs in groups: a group's label, or ``"new"`` for a group not in the
            data, drawn from the population (every parameter that varies by group must be
            pooled). A fit without groups takes None (a group named for it is an error: nothing would
            say that the draws are the whole sweep's).
        seed : seeds a new group's draws from the population.
        """
        post = self.group("posterior")
        noise = ["sigma", *(["sigma_misfit"] if "sigma_misfit" in post else [])]
        flat = lambda a: np.asarray(a, np.float64).reshape(-1)  # noqa: E731
        if not self.labels and group is not None:
            raise ValueError(
                f"group {group!r}: this fit's runs have no groups (name a column of groups when fitting: "
                "group=..., --group-col)"
            )
        if not self.labels:
            return {k: flat(post[k].to_numpy()) for k in (*self.law.params, *noise)}
        if group is None:
            raise ValueError(
                f"this fit has groups ({', '.join(self.labels)}): name one (group=...), or group='new' for a new "
                "group drawn from the population"
            )
        if group != NEW and group not in self.labels:
            raise ValueError(f"unknown group {group!r}; the groups are: {', '.join(self.labels)} (or 'new')")
        out = {k: flat(post[k].to_numpy()) for k in noise}
        for name in self.law.params:
            values = post[name]
            if "group" not in values.dims:
                out[name] = flat(values.to_numpy())
            elif group != NEW:
                out[name] = flat(values.sel(group=group).to_numpy())
        if group == NEW:
            out |= self._new_group(post, out, seed)
        return out

    def _new_group(self, post: xr.Dataset, shared: dict, seed: int) -> dict[str, np.ndarray]:
        """Draws of the parameters that vary by group, for a group not in the data (from the population)."""
        from numpyro.distributions.transforms import biject_to

        rng = np.random.default_rng(seed)
        amplitudes = {amp: (k, x) for amp, k, x in self.law.centred}
        flat = lambda a: np.asarray(a, np.float64).reshape(-1)  # noqa: E731
        out: dict[str, np.ndarray] = {}
        varying = [name for name in self.law.params if "group" in post[name].dims]
        # Varying without a spread of its own: separate, unless a shared centred amplitude that varies only
        # through its exponent (its value at the data's centre is shared).
        shared_centre = {
            name for name in amplitudes if f"log_{name}_c" in post and "group" not in post[f"log_{name}_c"].dims
        }
        separate = [name for name in varying if f"{name}_tau" not in post and name not in shared_centre]
        if separate:
            raise ValueError(
                f"{', '.join(separate)} {'is' if len(separate) == 1 else 'are'} separate per group: a new group has "
                "no value for it; pool it (pooling={...: 'pooled'}) to forecast for a new group"
            )
        for name in varying:  # non-centred first: a centred amplitude may need its exponent's new value
            if name in amplitudes:
                continue
            prior = self.spec.priors[name].build()
            t = biject_to(prior.support)
            pop, tau = flat(post[f"{name}_pop"]), flat(post[f"{name}_tau"])
            out[name] = np.asarray(t(t.inv(pop) + tau * rng.standard_normal(pop.shape)), np.float64)
        const = self.group("constant_data")
        for name in varying:
            if name not in amplitudes:
                continue
            k, x = amplitudes[name]
            centre = float(const[f"centre_{x}"]) if f"centre_{x}" in const else 0.0
            k_new = (out[k] if k in out else shared[k]) if isinstance(k, str) else k
            if name in shared_centre:  # A = exp(log_A_c + k * centre), with the new group's exponent
                out[name] = np.exp(flat(post[f"log_{name}_c"]) + k_new * centre)
                continue
            pop, tau = flat(post[f"{name}_pop"]), flat(post[f"{name}_tau"])
            log_new = np.log(pop) + tau * rng.standard_normal(pop.shape)
            if isinstance(k, str) and f"{k}_pop" in post:  # the exponent varies too: move along it at the centre
                log_new += (k_new - flat(post[f"{k}_pop"])) * centre
            out[name] = np.exp(log_new)
        return out

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Posterior table: mean, sd, median, equal-tailed ``ci`` interval, MCSE, bulk and tail ESS, R-hat.

        One row per parameter (:attr:`params`), and with groups one per group where a parameter
        varies (``E[rpj]``) beside its population (``E_pop``) and spread (``E_tau``). The statistics
        are ArviZ's (``az.summary`` with ``stat_focus="mean"``; tested against it), computed in one
        pass on the host (NumPy) without importing ArviZ.
        """
        parts = self._components()
        x = np.stack(list(parts.values()))  # (rows, chains, draws)
        flat = x.reshape(len(x), -1).astype(np.float64)
        lo, hi = (1 - ci) / 2, (1 + ci) / 2
        stats = {**_stats.rank_stats(x), **_stats.mcse(x)}
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
            index=list(parts),
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

    @property
    def params_counted(self) -> str:
        """What the fitted parameter counts ``N`` count: ``"total"`` (embeddings included) or ``"non-embedding"``."""
        return str(self.group("constant_data").attrs.get("params", "total"))

    @property
    def metric(self) -> str | None:
        """The name of the score the runs were read as (``metric=True``: the law fits ``-log(score)``), else None."""
        return self.group("constant_data").attrs.get("metric") or None

    def data(self, group: str | None = None) -> pd.DataFrame:
        """The fitted runs: columns ``N``, ``D``, ``C``, ``loss`` (and ``group`` with groups); only ``group``'s
        runs when one is named (all of them for ``"new"``)."""
        const = self.group("constant_data")
        frame = _runs(const, self.group("observed_data"))
        if "group" in const:
            frame["group"] = const["group"].to_numpy().astype(str)
            if group is not None and group != NEW:
                frame = frame[frame["group"] == group].reset_index(drop=True)
        return frame

    def save(self, path: str | Path) -> Path:
        """Write the result to a netCDF file (ArviZ's InferenceData layout, no pickle) and return its path.

        The file is written under a temporary name and renamed when complete.

        Raises
        ------
        ValueError
            For a name that says another format (``fit.pkl``, ``fit.json``): the file would be netCDF whatever
            its name. Names ending ``.nc`` (or ``.nc4``, ``.netcdf``, ``.h5``, ``.hdf5``), or without a suffix, are
            written.
        """
        path = Path(path)
        if path.suffix and path.suffix.lower() not in NETCDF_SUFFIXES:
            raise ValueError(
                f"{path}: a result is saved as netCDF (ArviZ's layout; never pickle), not as {path.suffix!r}: "
                f"name the file {path.with_suffix('.nc').name}"
            )
        meta = {
            "law": self.law.name,
            "spec": json.loads(self.spec.to_json()),
            "stats": None if self.stats is None else self.stats.to_dict(),
            "settings": None if self.settings is None else self.settings.to_dict(),
            "seed": self.seed,
            "design": {
                "labels": self.labels,
                "pooling": dict(self.design.pooling),
                "replicates": self.design.replicates,
            },
        }
        names = self.groups()
        post = self.group("posterior")
        size = post.sizes["chain"] * post.sizes["draw"] * len(self.group("constant_data")["C"])  # at most runs
        if size > LOGLIK_SAVED_MAX and "log_likelihood" in names:
            names.remove("log_likelihood")  # recomputed from the draws and the runs when a loaded result needs it
            meta["log_likelihood"] = f"not saved: {size:.3g} values (draws x runs) > {LOGLIK_SAVED_MAX:.3g}"
        with atomic_file(path) as partial:  # a stopped save leaves no half-written file under the name
            for i, name in enumerate(names):
                data = self.group(name)
                if name == "posterior":
                    data = data.assign_attrs(bayes_scaling=json.dumps(meta))
                # Uncompressed: zlib saved 18% of the file and cost 0.2 s, a third of a fresh CLI run's save.
                data.to_netcdf(partial, mode="w" if i == 0 else "a", group=name, engine="h5netcdf")
        return path


def load(path: str | Path) -> Result:
    """Read a result written by :meth:`Result.save`.

    The law is looked up by name in the registry: a custom law must be registered
    (:func:`bayes_scaling.laws.register`) before loading.

    Raises
    ------
    ValueError
        Naming the file: it does not exist, is not a complete saved result (a truncated or
        foreign file), or names a law that is not registered.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    import h5netcdf

    try:
        with h5netcdf.File(path, "r") as f:
            names = list(f.groups)
        groups = {}
        for name in names:
            with xr.open_dataset(path, group=name, engine="h5netcdf") as data:
                groups[name] = data.load()
    except Exception as err:  # h5py and netCDF readers raise many kinds of errors for a damaged file
        raise ValueError(f"{path}: not a complete saved result ({type(err).__name__}: {err})") from None
    meta = groups.get("posterior", xr.Dataset()).attrs.get("bayes_scaling")
    if meta is None:
        raise ValueError(f"{path}: not a bayes_scaling result (no 'bayes_scaling' attribute on the posterior)")
    meta = json.loads(meta)
    found = meta.get("design") or {}
    design = Design(
        tuple(found.get("labels", ())), tuple(found.get("pooling", {}).items()), found.get("replicates", False)
    )
    spec = Spec.from_json(json.dumps(meta["spec"]), dict(design.pooling))
    stats = Stats.from_dict(meta["stats"]) if meta.get("stats") else None
    settings, seed = meta.get("settings"), meta.get("seed")
    if isinstance(settings, dict) and "seed" in settings:  # files written before 0.2 kept the seed there
        seed = settings.pop("seed")
    settings = Settings(**settings) if settings else None
    law = laws.get(meta["law"])
    source: Groups = groups
    if "log_likelihood" not in groups:  # left out of a large file: computed again when asked

        def loglik() -> xr.Dataset:
            const = groups["constant_data"]
            runs = _runs(const, groups["observed_data"])
            if "group" in const:
                runs["group"] = const["group"].to_numpy().astype(str)
            return _loglik_group(law, spec, groups["posterior"], runs, design)

        builders = {name: (lambda g=g: g) for name, g in groups.items()}
        source = LazyGroups({**builders, "log_likelihood": loglik})
    return Result(source, law, spec, stats, settings, seed, design)


def from_sampler(
    out: Output,
    sets: Sequence[Dataset],
    law: Law,
    spec: Spec,
    seeds: Sequence[int],
    settings: Settings,
    prior_draws: int,
    design: Design = PLAIN,
    checked: Sequence[str] | None = None,
    centre: Mapping[str, float | np.ndarray] | None = None,
) -> list[Result]:
    """Results from a batch of sampler outputs.

    The convergence statistics come with the sampler output (computed on the device that
    holds the draws); the draws come to the host once. Everything else a Result holds
    (pointwise log likelihood, prior draws) is built per fit on first access: a batch of
    K fits pays only for those it reads.

    Parameters
    ----------
    out : sampler output, arrays of shape (K, ...).
    sets, seeds : the K data sets and their seeds.
    settings : the sampler settings, recorded on each Result with its seed.
    prior_draws : draws from the prior in each ``prior`` group.
    design : the runs' groups and replicates (the same for every fit of the batch).
    checked : the sampler's checked sites, in the order of its statistics (default: the law's
        parameters and ``sigma``).
    centre : the data's centre of each centred input, a number or one per fit (kept for draws of a new
        group).
    """
    checked = tuple(checked or (*law.params, "sigma"))
    labels = list(design.labels)
    health = jax.tree.map(np.asarray, out.health)
    samples, sample_stats = jax.tree.map(np.asarray, (out.samples, out.stats))
    names = [
        f"{site}[{label}]" if label is not None else site for site in checked for label in _per(samples[site], labels)
    ]

    def build(i: int, dataset: Dataset, seed: int) -> LazyGroups:
        def stats_group() -> xr.Dataset:
            mine = {k: v[i] for k, v in sample_stats.items()}
            mine["energy"] = mine["energy"].astype(np.float64)
            mine["tree_depth"] = np.ceil(np.log2(mine["n_steps"] + 1)).astype(np.int64)
            return _group(mine)

        def posterior_group() -> xr.Dataset:
            return _group({k: v[i].astype(np.float64) for k, v in samples.items()}, labels=labels)

        def loglik_group() -> xr.Dataset:
            return _loglik_group(law, spec, posterior_group(), dataset.frame, design)

        def constant_group() -> xr.Dataset:
            const = {k: dataset.frame[k].to_numpy() for k in RUN_COLUMNS if k in dataset.frame.columns}
            if labels:
                const["group"] = dataset.frame["group"].to_numpy().astype(str)
            group = _group(const, lead=())
            group.attrs["params"] = dataset.counted
            if dataset.metric is not None:  # the runs' loss is -log of this score
                group.attrs["metric"] = dataset.metric
            for x, value in (centre or {}).items() if labels else ():
                value = np.asarray(value, np.float64)
                group[f"centre_{x}"] = float(value[i] if value.ndim else value)
            return group

        def prior_group() -> xr.Dataset:
            program = PROGRAMS.get(  # one program per prior families: the priors' values are its arguments
                ("prior", form(spec), prior_draws),
                lambda: lambda key, args: _prior_draws(spec, prior_draws, key, args),
                f"prior {form(spec)} {prior_draws}",
                compiler_options(once=True),
            )
            prior = program(jax.random.fold_in(jax.random.key(seed), 1), prior_arrays(spec))
            return _group({k: np.asarray(v, np.float64) for k, v in prior.items()})

        return LazyGroups(
            {
                "posterior": posterior_group,
                "sample_stats": stats_group,
                "log_likelihood": loglik_group,
                "observed_data": lambda: _group({"log_loss": dataset.logs()["loss"]}, lead=()),
                "constant_data": constant_group,
                "prior": prior_group,
            }
        )

    results = []
    for i, (dataset, seed) in enumerate(zip(sets, seeds, strict=True)):
        stats = Stats.from_arrays({k: v[i] for k, v in health.items()}, tuple(names), settings.max_tree_depth)
        results.append(Result(build(i, dataset, seed), law, spec, stats, settings, seed, design))
    return results


#: The numeric columns of a run that a result keeps (``U`` and ``N_embedding`` when the runs gave them).
RUN_COLUMNS = ("N", "D", "C", "U", "N_embedding")


def _runs(const: Mapping, observed: Mapping) -> pd.DataFrame:
    """The fitted runs from a result's ``constant_data`` and ``observed_data``: ``N``, ``D``, ``C``, ``U`` (unique
    tokens, when the runs gave them), ``N_embedding`` (embedding parameters, when known) and ``loss``."""
    frame = pd.DataFrame({k: np.asarray(const[k]) for k in RUN_COLUMNS if k in const})
    frame["loss"] = np.exp(np.asarray(observed["log_loss"]))
    return frame


def _per(values: np.ndarray, labels: list[str]) -> list[str | None]:
    """The labels a site's statistics run over: one per group for a site with a group axis, else one."""
    return labels if values.ndim > 3 else [None]


def _loglik_group(law: Law, spec: Spec, posterior: Mapping, runs: pd.DataFrame, design: Design = PLAIN) -> xr.Dataset:
    """The ``log_likelihood`` group: a value per draw and run, or per configuration with replicates.

    ``posterior`` holds the law's parameters and ``sigma`` (each (chains, draws), or (chains, draws,
    groups) where it varies by group) and, with replicates, ``sigma_misfit``; ``runs`` the law's
    inputs, ``loss`` and, with groups, ``group``.
    """
    arrays = {k: np.asarray(posterior[k]) for k in (*law.params, "sigma", "sigma_misfit") if k in posterior}
    chains, n = arrays["sigma"].shape
    sigma = arrays["sigma"].reshape(-1)
    if design.plain:
        loglik = log_likelihood(
            law,
            {k: arrays[k].reshape(-1) for k in law.params},
            sigma,
            spec.df,
            complete(law, runs),
            runs["loss"].to_numpy(),
        )
        return _group({"log_loss": loglik.reshape(chains, n, -1)})
    # Groups or replicates: a row per configuration (group, inputs) with its runs' mean, count and spread.
    labels = runs["group"].to_numpy().astype(str) if "group" in runs.columns else np.full(len(runs), "")
    index = {label: i for i, label in enumerate(design.labels)} if design.labels else {"": 0}
    filled = complete(law, runs)
    key = np.column_stack([*filled.values(), [index[label] for label in labels]])
    if not design.replicates:
        key = np.column_stack([key, np.arange(len(runs))])  # every run its own configuration
    _, first, which = np.unique(key, axis=0, return_index=True, return_inverse=True)
    which = which.reshape(-1)
    y = np.log(runs["loss"].to_numpy(np.float64))
    count = np.bincount(which, minlength=len(first)).astype(np.float64)
    mean = np.bincount(which, weights=y, minlength=len(first)) / count
    ss = np.bincount(which, weights=(y - mean[which]) ** 2, minlength=len(first))
    out = np.empty((chains * n, len(first)), np.float32)
    for label, g in index.items():
        rows = np.flatnonzero(labels[first] == label)
        if not len(rows):
            continue
        params = {k: (v[..., g] if v.ndim == 3 else v).reshape(-1) for k, v in arrays.items() if k in law.params}
        inputs = {k: v[first[rows]] for k, v in filled.items()}
        if design.replicates:
            misfit = arrays["sigma_misfit"].reshape(-1, 1)
            scale = np.sqrt(misfit**2 + sigma[:, None] ** 2 / count[rows])
            between = log_likelihood(law, params, scale, spec.df, inputs, np.exp(mean[rows]))
            within = -(count[rows] - 1) * (np.log(sigma[:, None]) + 0.5 * np.log(2 * np.pi))
            within -= ss[rows] / (2 * sigma[:, None] ** 2)
            out[:, rows] = between + within
        else:
            out[:, rows] = log_likelihood(law, params, sigma, spec.df, inputs, np.exp(mean[rows]))
    return _group({"log_loss": out.reshape(chains, n, -1)}, extra="config" if design.replicates else "run")


def _prior_draws(spec: Spec, n: int, key: jax.Array, args: Mapping[str, Mapping[str, jax.Array]]) -> dict:
    """``n`` draws of every prior (``spec``'s families with the arguments ``args``, as :func:`prior_arrays`
    gives them), each of shape (1, n): one chain, as ArviZ's prior group expects."""
    keys = jax.random.split(key, len(spec.priors))
    return {
        name: p.build(args[name]).sample(k, (1, n))
        for k, (name, p) in zip(keys, sorted(spec.priors.items()), strict=True)
    }


def _group(
    arrays: Mapping[str, np.ndarray],
    lead: tuple[str, ...] = ("chain", "draw"),
    labels: Sequence[str] = (),
    extra: str = "run",
) -> xr.Dataset:
    """An InferenceData group: leading dimensions ``lead``, then ``extra`` (``run``) for per-run arrays, or
    ``group`` (coordinates ``labels``) for a posterior variable with one value per group."""
    variables = {}
    for name, a in arrays.items():
        rest = a.ndim - len(lead)
        if labels and rest == 1 and a.shape[-1] == len(labels):
            variables[name] = ((*lead, "group"), a)
            continue
        dims = tuple(extra if j == 0 else f"{name}_dim_{j}" for j in range(rest))
        variables[name] = ((*lead, *dims), a)
    sizes = {d: n for a in arrays.values() for d, n in zip(lead, a.shape, strict=False)}
    coords = {d: np.arange(n) for d, n in sizes.items()}
    if labels and any("group" in dims for dims, _ in variables.values()):
        coords["group"] = list(labels)
    return xr.Dataset(variables, coords=coords)
