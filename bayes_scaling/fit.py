"""Fit a scaling law to training runs with NUTS."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import diagnostics, extrapolation
from .data import Dataset, load_data
from .datasets import chinchilla
from .laws import Law, get_law
from .model import log_likelihood, model_data
from .priors import Prior, Spec, read_spec
from .result import Result
from .sampler import Settings, compiled

DataLike = Dataset | pd.DataFrame | str | Path | None
PriorsLike = Spec | str | Path | Mapping[str, Prior | Mapping[str, Any]] | None


def as_dataset(data: DataLike, law: Law) -> Dataset:
    """Turn a path, DataFrame or Dataset (None: the embedded Chinchilla runs) into a Dataset."""
    min_rows = law.min_runs
    if data is None:
        data = chinchilla()
    if not isinstance(data, Dataset):
        data = load_data(data, needs=law.inputs, min_rows=min_rows)
    missing = [k for k in law.inputs if not np.isfinite(data.frame[k]).all()]
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
    max_tree_depth : NUTS maximum tree depth.
    seed : the same seed gives identical draws on the same machine.
    progress : print a progress bar on stderr while sampling.
    prior_draws : draws from the prior kept in the ``prior`` group.
    calibrate : also learn the extrapolation-error scale ``kappa`` from internal
        backtests (two refits on the lower 50% and 70% of the runs by compute; see
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
    settings = Settings(chains, warmup, draws, target_accept, dense, max_tree_depth)
    arrays = model_data(dataset, law)
    key = jax.random.key(seed)
    out = compiled(law, spec, settings, progress)(key, arrays)
    out = jax.tree.map(lambda a: np.asarray(a, np.float64) if a.dtype.kind == "f" else np.asarray(a), out)
    idata = _inference_data(out, dataset, law, spec, jax.random.fold_in(key, 1), prior_draws)
    found = diagnostics.problems(idata, [*law.params, "sigma"], max_tree_depth)
    diagnostics.warn(found, f"fit of {law.name} to {dataset.source}")
    result = Result(idata, law, spec, tuple(found))
    if calibrate:
        refit = {
            "chains": chains,
            "warmup": warmup,
            "draws": draws,
            "target_accept": target_accept,
            "dense": dense,
            "max_tree_depth": max_tree_depth,
            "seed": seed,
        }
        table = extrapolation.internal_backtests(result, dataset, refit)
        result = extrapolation.attach(result, extrapolation.fit_kappa(table, spec.df, chains, draws, seed), table)
    return result


def _inference_data(
    out: dict, dataset: Dataset, law: Law, spec: Spec, key: jax.Array, prior_draws: int
) -> az.InferenceData:
    """Assemble the InferenceData groups from the sampler's output."""
    logs = dataset.logs()
    posterior = out["samples"]
    chains, draws = posterior[law.params[0]].shape
    flat = {k: jnp.asarray(posterior[k].reshape(-1)) for k in (*law.params, "sigma")}
    x = {k: jnp.asarray(logs[k]) for k in law.inputs}
    loglik = np.asarray(log_likelihood(law, spec.df, flat, x, jnp.asarray(logs["loss"])), np.float64)
    stats = dict(out["stats"])
    stats["tree_depth"] = np.ceil(np.log2(stats["n_steps"] + 1)).astype(np.int64)
    keys = jax.random.split(key, len(spec.priors))
    prior = {
        name: np.asarray(p.build().sample(k, (1, prior_draws)), np.float64)
        for k, (name, p) in zip(keys, sorted(spec.priors.items()), strict=True)
    }
    return az.from_dict(
        posterior=posterior,
        sample_stats=stats,
        log_likelihood={"log_loss": loglik.reshape(chains, draws, -1)},
        observed_data={"log_loss": logs["loss"]},
        constant_data={k: dataset.frame[k].to_numpy() for k in ("N", "D", "C")},
        prior=prior,
        dims={k: ["run"] for k in ("log_loss", "N", "D", "C")},
    )
