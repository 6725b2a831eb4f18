"""Fit a scaling law to training runs with NUTS."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import xarray as xr

from . import diagnostics, extrapolation
from .cache import shared
from .data import Dataset, DataWarning, load_data, load_together
from .datasets import chinchilla
from .laws import Law, get_law
from .model import model_data, padded_length, stack_data
from .priors import Prior, Spec, read_spec
from .result import LazyGroups, Result
from .sampler import Settings, compiled, law_tag, run_many

DataLike = Dataset | pd.DataFrame | str | Path | None
PriorsLike = Spec | str | Path | Mapping[str, Prior | Mapping[str, Any]] | None


def as_dataset(data: DataLike, law: Law) -> Dataset:
    """Turn a path, DataFrame or Dataset (None: the embedded Chinchilla runs) into a Dataset."""
    min_rows = law.min_runs
    if data is None:
        data = chinchilla()
    if not isinstance(data, Dataset):
        data = load_data(data, needs=law.inputs, min_rows=min_rows)
    missing = [k for k in law.inputs if not np.isfinite(data.frame[k].to_numpy()).all()]
    if missing:
        raise ValueError(f"{data.source}: law {law.name!r} needs {', '.join(missing)} for every run")
    if len(data) < min_rows:
        raise ValueError(f"{data.source}: {len(data)} rows, but the model needs at least {min_rows}")
    return data


def as_spec(priors: PriorsLike, law: Law) -> Spec:
    """Priors from a Spec, a TOML path, or overrides of the law's defaults (None: the defaults)."""
    if isinstance(priors, Spec):
        return priors
    if isinstance(priors, str | Path):
        return read_spec(law.name, priors, law.params)
    return read_spec(law.name, params=law.params).with_priors(priors)


def fit(
    data: DataLike = None,
    law: str | Law = "chinchilla",
    *,
    priors: PriorsLike = None,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    target_accept: float = 0.9,
    dense: bool = True,
    max_tree_depth: int = 10,
    algorithm: str = "nuts",
    seed: int = 0,
    progress: bool = False,
    prior_draws: int = 1000,
    calibrate: bool = True,
) -> Result:
    """Fit ``law`` to training runs with NUTS and return the posterior.

    Parameters
    ----------
    data : CSV path, DataFrame (columns ``params``, ``tokens``, optional ``flops``,
        ``loss``; use :func:`bayes_scaling.load_data` for other names) or Dataset.
        None fits the embedded Chinchilla runs.
    law : a registered law name or a :class:`Law`.
    priors : a TOML prior file, a dict overriding some default priors (values are
        :class:`Prior` or ``{"dist": ..., ...}`` tables), or a Spec.
    chains, warmup, draws : NUTS chains, warm-up and kept iterations per chain.
    target_accept : target acceptance probability of step-size adaptation.
    dense : dense (True) or diagonal mass matrix.
    max_tree_depth : NUTS maximum tree depth (for ``"hmc"``: at most ``2**depth - 1`` steps).
    algorithm : ``"nuts"`` or ``"hmc"`` (jittered-length HMC, built for large batches and
        GPUs; see :mod:`bayes_scaling.hmc`).
    seed : the same seed gives identical draws on the same machine.
    progress : print a progress bar on stderr while sampling.
    prior_draws : draws from the prior kept in the ``prior`` group.
    calibrate : also learn the extrapolation-error scale ``kappa`` from internal
        backtests (refits on the lower 50% and 70% of the runs along each input, four for
        the Chinchilla law, run in threads beside the main fit; see
        :mod:`bayes_scaling.extrapolation`), so that forecasts beyond the data default to
        the calibrated mode. False skips the refits (forecasts are then plain).

    Returns
    -------
    Result. A fit whose sampler did not converge raises a
    :class:`~bayes_scaling.diagnostics.ConvergenceWarning` and lists the problems
    in ``Result.problems``.
    """
    law = get_law(law)
    dataset = as_dataset(data, law)
    spec = as_spec(priors, law)
    settings = Settings(chains, warmup, draws, target_accept, dense, max_tree_depth, algorithm=algorithm)
    pad = padded_length(len(dataset))
    # The largest internal split must hold three runs per parameter, sigma and one.
    needed = math.ceil(3 * law.min_runs / max(extrapolation.INTERNAL_SPLITS) - 1e-9)
    if calibrate and len(dataset) < needed:
        warnings.warn(
            f"{dataset.source}: {len(dataset)} runs are too few for the internal backtests of the calibrated "
            f"mode (at least {needed} for the {law.name} law); forecasts beyond the data stay plain",
            DataWarning,
            stacklevel=2,
        )
        calibrate = False
    if not calibrate:
        result = fit_one(dataset, law, spec, settings, seed, prior_draws, pad, progress)
        diagnostics.warn(list(result.problems), f"fit of {law.name} to {dataset.source}")
        return result
    # The internal backtests' refits run in threads beside the main fit (one per core, at most one per refit).
    pool = ThreadPoolExecutor(min(len(extrapolation.INTERNAL_SPLITS) * len(law.inputs), os.cpu_count() or 1))
    try:
        collect = extrapolation.internal_backtests(dataset, law, spec, settings, seed, prior_draws, pool)
        result = fit_one(dataset, law, spec, settings, seed, prior_draws, pad, progress)
        diagnostics.warn(list(result.problems), f"fit of {law.name} to {dataset.source}")
        table = collect()
    finally:
        pool.shutdown(cancel_futures=True)  # after an error (or Ctrl-C): no refit starts
    kappa = extrapolation.fit_kappa(table, spec.df, chains, draws, seed)
    return extrapolation.attach(result, kappa, table)


def fit_one(
    dataset: Dataset,
    law: Law,
    spec: Spec,
    settings: Settings,
    seed: int,
    prior_draws: int,
    pad: int,
    progress: bool = False,
) -> Result:
    """One plain fit, its rows padded to ``pad``: fits padded alike share one compiled sampler."""
    arrays = model_data(dataset, law, pad=pad)
    key = jax.random.key(seed)
    out = compiled(law, spec, settings)(key, arrays, progress=progress)
    one = jax.tree.map(lambda a: np.asarray(a)[None], (out, arrays))
    (result,) = _results(*one, [dataset], law, spec, [seed], prior_draws, settings)
    return result


def fit_many(
    datasets: Sequence[DataLike],
    law: str | Law = "chinchilla",
    *,
    priors: PriorsLike = None,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    target_accept: float = 0.9,
    dense: bool = True,
    max_tree_depth: int = 10,
    algorithm: str = "nuts",
    seed: int | Sequence[int] = 0,
    prior_draws: int = 1000,
    devices: Sequence[jax.Device] | None = None,
) -> list[Result]:
    """Fit one law to K data sets at once: one compiled, vmapped program, sharded across devices.

    Data sets may differ in length: each is padded (and masked) to the longest's
    padded length. Fit ``i`` uses seed ``seeds[i]`` and follows the same random
    stream as ``fit(datasets[i], seed=seeds[i], calibrate=False)`` with the same
    settings (for ``"hmc"`` every fit shares the trajectory-length jitter of the first
    seed); the batched program rounds differently in float32, so draws agree in
    distribution (summaries within Monte Carlo error), not draw for draw.

    Parameters
    ----------
    datasets : K CSV paths, DataFrames or Datasets.
    law, priors, chains, warmup, draws, target_accept, dense, max_tree_depth, algorithm,
    prior_draws : as for :func:`fit`, shared by every fit. ``algorithm="hmc"`` suits
        large batches and GPUs: every fit takes about the same number of leapfrog steps,
        where vmapped NUTS waits each iteration for the longest trajectory of the batch.
    seed : one seed per data set, or an int ``s`` meaning seeds ``s, s+1, ..., s+K-1``.
    devices : devices to split the batch across (None: every local device). To use
        several CPU cores as devices, set
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before importing JAX.

    Returns
    -------
    list of K :class:`Result` (plain mode: no internal backtests), each with its own
    diagnostics; one ConvergenceWarning names every fit that did not converge.
    """
    law = get_law(law)
    if not datasets:
        raise ValueError("fit_many needs at least one data set")
    sets = load_together(datasets, needs=law.inputs, min_rows=law.min_runs) or _load_each(datasets, law)
    seeds = [seed + i for i in range(len(sets))] if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != len(sets):
        raise ValueError(f"{len(seeds)} seeds for {len(sets)} data sets")
    spec = as_spec(priors, law)
    settings = Settings(chains, warmup, draws, target_accept, dense, max_tree_depth, algorithm=algorithm)
    batch = stack_data(sets, law, pad=max(padded_length(len(d)) for d in sets))
    keys = jax.vmap(jax.random.key)(np.asarray(seeds))
    out = run_many(law, spec, settings, keys, batch, devices)
    results = _results(out, batch, sets, law, spec, seeds, prior_draws, settings)
    bad = [i for i, r in enumerate(results) if r.problems]
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        warnings.warn(
            f"fit_many: THE SAMPLER DID NOT CONVERGE in {len(bad)} of {len(results)} fits (data sets {shown}); "
            "do not trust those fits: see each Result.problems",
            diagnostics.ConvergenceWarning,
            stacklevel=2,
        )
    return results


def _load_each(datasets: Sequence[DataLike], law: Law) -> list[Dataset]:
    """:func:`as_dataset` of each item, an error naming the item."""
    sets = []
    for i, data in enumerate(datasets):
        try:
            sets.append(as_dataset(data, law))
        except ValueError as err:
            raise ValueError(f"data set {i} of {len(datasets)}: {err}") from None
    return sets


def _results(
    out: dict,
    data: dict,
    sets: Sequence[Dataset],
    law: Law,
    spec: Spec,
    seeds: Sequence[int],
    prior_draws: int,
    settings: Settings,
) -> list[Result]:
    """Results from a batch of sampler outputs.

    The convergence statistics come with the sampler output (``out["health"]``, computed on
    the device that holds the draws); the draws come to the host once. Everything else a Result
    holds (pointwise log likelihood, prior draws, the InferenceData itself) is built per fit
    on first access: a batch of K fits pays only for those it reads.

    Parameters
    ----------
    out : sampler output (:func:`~bayes_scaling.sampler.run_many`), arrays of shape (K, ...).
    data : the stacked :func:`~bayes_scaling.model.model_data` arrays, shape (K, ...).
    sets, seeds : the K data sets and their seeds.
    settings : the sampler settings, recorded on each Result with its seed.
    """
    found = diagnostics.report(out["health"], [*law.params, "sigma"], settings.max_tree_depth)
    tag = law_tag(law, spec, None)
    pointwise = shared(_pointwise, tag and f"pointwise {tag}", law, spec.df)
    samples, stats = jax.tree.map(np.asarray, (out["samples"], out["stats"]))

    def build(i: int, dataset: Dataset, seed: int) -> LazyGroups:
        def stats_group() -> xr.Dataset:
            sample_stats = {k: v[i] for k, v in stats.items()}
            sample_stats["energy"] = sample_stats["energy"].astype(np.float64)
            sample_stats["tree_depth"] = np.ceil(np.log2(sample_stats["n_steps"] + 1)).astype(np.int64)
            return _group(sample_stats)

        def loglik_group() -> xr.Dataset:
            mine = jax.tree.map(lambda a: a[i : i + 1], (samples, data))
            return _group({"log_loss": np.asarray(pointwise(*mine))[0, ..., : len(dataset)]})

        def prior_group() -> xr.Dataset:
            draw = shared(_prior_draws, f"prior {spec.to_json()} {prior_draws}", spec, prior_draws)
            prior = draw(jax.random.fold_in(jax.random.key(seed), 1))
            return _group({k: np.asarray(v, np.float64) for k, v in prior.items()})

        return LazyGroups(
            {
                "posterior": lambda: _group({k: v[i].astype(np.float64) for k, v in samples.items()}),
                "sample_stats": stats_group,
                "log_likelihood": loglik_group,
                "observed_data": lambda: _group({"log_loss": dataset.logs()["loss"]}, lead=()),
                "constant_data": lambda: _group({k: dataset.frame[k].to_numpy() for k in ("N", "D", "C")}, lead=()),
                "prior": prior_group,
            }
        )

    return [
        Result(partial(build, i, dataset, seed), law, spec, tuple(problems), {**asdict(settings), "seed": seed})
        for i, (dataset, seed, problems) in enumerate(zip(sets, seeds, found, strict=True))
    ]


def _pointwise(law: Law, df: float, samples: dict, data: dict) -> jax.Array:
    """Pointwise log likelihood of every draw of K fits, shape (K, chains, draws, rows padded).

    Evaluated as the model does, with the amplitudes at the data's centre and centred inputs.
    """
    centred = {amp for amp, _, _ in law.centred}
    p = {k: jnp.exp(samples[f"log_{k}_c"]) if k in centred else samples[k] for k in law.params}
    mu = law.mean({k: v[..., None] for k, v in p.items()}, {k: v[:, None, None, :] for k, v in data["x"].items()})
    scale = samples["sigma"][..., None]
    return dist.StudentT(df, mu, scale).log_prob(jnp.asarray(data["y"])[:, None, None, :])


def _prior_draws(spec: Spec, n: int, key: jax.Array) -> dict:
    """``n`` draws of every prior, each of shape (1, n): one chain, as ArviZ's prior group expects."""
    keys = jax.random.split(key, len(spec.priors))
    return {name: p.build().sample(k, (1, n)) for k, (name, p) in zip(keys, sorted(spec.priors.items()), strict=True)}


def _group(arrays: Mapping[str, np.ndarray], lead: tuple[str, ...] = ("chain", "draw")) -> xr.Dataset:
    """An InferenceData group: leading dimensions ``lead``, then ``run`` for per-run arrays."""
    variables = {}
    for name, a in arrays.items():
        extra = tuple("run" if j == 0 else f"{name}_dim_{j}" for j in range(a.ndim - len(lead)))
        variables[name] = ((*lead, *extra), a)
    sizes = {d: n for a in arrays.values() for d, n in zip(lead, a.shape, strict=False)}
    return xr.Dataset(variables, coords={d: np.arange(n) for d, n in sizes.items()})
