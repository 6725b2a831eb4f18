"""Simulated sweeps with known truth, for tests, examples and calibration."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
import pandas as pd

from . import laws
from ._evaluate import law_at
from .data import checked_seed
from .datasets import sweep
from .laws import Law


def simulate(
    params: Mapping[str, float],
    runs: pd.DataFrame | None = None,
    *,
    law: str | Law = "chinchilla",
    sigma: float = 0.01,
    df: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Losses drawn from ``law`` at known parameters: ``log L = log law(params) + sigma·noise``.

    Parameters
    ----------
    params : the law's natural parameters.
    runs : columns ``params``, ``tokens``, ``flops`` (default: :func:`bayes_scaling.datasets.sweep`).
    sigma : noise scale on log loss.
    df : Student-t degrees of freedom of the noise (None: Gaussian).
    seed : seeds the noise.

    Returns
    -------
    ``runs`` with a ``loss`` column added.
    """
    law = laws.get(law)
    missing = [p for p in law.params if p not in params]
    unknown = [p for p in params if p not in law.params]
    if missing or unknown:
        said = "; ".join(
            f"{what} {', '.join(names)}" for what, names in (("missing", missing), ("unknown", unknown)) if names
        )
        raise ValueError(f"simulate: law {law.name!r} takes parameters {', '.join(law.params)}; {said}")
    if not (sigma >= 0 and np.isfinite(sigma)):
        raise ValueError(f"simulate: sigma, the noise scale of log loss, must be zero or more, got {sigma}")
    if df is not None and not df > 0:
        raise ValueError(f"simulate: df, the Student-t degrees of freedom, must be positive, got {df}")
    runs = sweep() if runs is None else runs.copy()
    inputs = {"N": runs["params"], "D": runs["tokens"], "C": runs["flops"]}
    if "unique_tokens" in runs.columns:  # data repeated over epochs (empty: every token fresh)
        inputs["U"] = runs["unique_tokens"]
    mean = law_at(law, {k: [v] for k, v in params.items()}, inputs)[0]
    key = jax.random.key(checked_seed(seed))
    noise = jax.random.normal(key, mean.shape) if df is None else jax.random.t(key, df, mean.shape)
    runs["loss"] = np.exp(mean + sigma * np.asarray(noise, np.float64))
    return runs
