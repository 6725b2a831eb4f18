"""Simulated sweeps with known truth, for tests, examples and calibration."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .laws import Law, get_law


def sweep(
    n_range: tuple[float, float] = (1e7, 1e9),
    tokens_per_param: tuple[float, float] = (2.0, 200.0),
    sizes: int = 8,
    ratios: int = 8,
    k: float = 6.0,
) -> pd.DataFrame:
    """A grid of training runs: ``sizes`` model sizes by ``ratios`` tokens-per-parameter ratios.

    Returns
    -------
    DataFrame with columns ``params``, ``tokens``, ``flops`` (= k·N·D), shape (sizes·ratios, 3).
    """
    n = np.geomspace(*n_range, sizes)
    r = np.geomspace(*tokens_per_param, ratios)
    nn, rr = (a.ravel() for a in np.meshgrid(n, r, indexing="ij"))
    return pd.DataFrame({"params": nn, "tokens": nn * rr, "flops": k * nn * nn * rr})


def simulate(
    params: Mapping[str, float],
    runs: pd.DataFrame | None = None,
    *,
    law: str | Law = "chinchilla",
    sigma: float = 0.01,
    df: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Losses drawn from ``law`` at known parameters: ``log L = law.mean + sigma·noise``.

    Parameters
    ----------
    params : the law's natural parameters.
    runs : columns ``params``, ``tokens``, ``flops`` (default: :func:`sweep`).
    sigma : noise scale on log loss.
    df : Student-t degrees of freedom of the noise (None: Gaussian).
    seed : seeds the noise.

    Returns
    -------
    ``runs`` with a ``loss`` column added.
    """
    law = get_law(law)
    runs = sweep() if runs is None else runs.copy()
    x = {"N": runs["params"], "D": runs["tokens"], "C": runs["flops"]}
    logs = {k: jnp.asarray(np.log(x[k].to_numpy(np.float64))) for k in law.inputs}
    mean = np.asarray(law.mean({k: jnp.asarray(v) for k, v in params.items()}, logs), np.float64)
    key = jax.random.key(seed)
    noise = jax.random.normal(key, mean.shape) if df is None else jax.random.t(key, df, mean.shape)
    runs["loss"] = np.exp(mean + sigma * np.asarray(noise, np.float64))
    return runs
