"""Sampler health: the one place for convergence thresholds and the checks that use them."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np

#: A chain set with any parameter above this split R-hat has not converged (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Minimum bulk and tail effective sample size over the chains together.
ESS_MIN = 400
#: E-BFMI below this means the momentum resampling explores energy poorly.
BFMI_MIN = 0.3


class ConvergenceWarning(UserWarning):
    """The sampler did not converge: divergences, R-hat above 1.01 or ESS below 400."""


def problems(idata: az.InferenceData, var_names: list[str], max_tree_depth: int | None = None) -> list[str]:
    """Sampler-health problems of a fit, one sentence each (empty when healthy).

    Parameters
    ----------
    idata : InferenceData with ``posterior`` and ``sample_stats`` (``diverging``,
        ``energy``, optionally ``n_steps``).
    var_names : the parameters to check.
    max_tree_depth : flag draws whose trajectory hit this NUTS depth.
    """
    found = []
    divergent = int(idata.sample_stats["diverging"].sum())
    if divergent:
        total = idata.sample_stats["diverging"].size
        found.append(f"{divergent} of {total} draws diverged")
    rhat = az.rhat(idata, var_names=var_names)
    ess = az.ess(idata, var_names=var_names, method="bulk")
    tail = az.ess(idata, var_names=var_names, method="tail")
    for name in var_names:
        r = float(rhat[name].max())
        if not r <= RHAT_MAX:
            found.append(f"R-hat of {name} is {r:.3f} (> {RHAT_MAX})")
        e = float(ess[name].min())
        if not e >= ESS_MIN:
            found.append(f"bulk ESS of {name} is {e:.0f} (< {ESS_MIN})")
        t = float(tail[name].min())
        if not t >= ESS_MIN:
            found.append(f"tail ESS of {name} is {t:.0f} (< {ESS_MIN})")
    bfmi = np.atleast_1d(az.bfmi(idata))
    if np.any(bfmi < BFMI_MIN):
        found.append(f"E-BFMI {float(bfmi.min()):.2f} (< {BFMI_MIN}) in some chain")
    if max_tree_depth is not None and "n_steps" in idata.sample_stats:
        saturated = int((idata.sample_stats["n_steps"] >= 2**max_tree_depth - 1).sum())
        if saturated:
            found.append(f"{saturated} draws hit the maximum tree depth {max_tree_depth}")
    return found


def warn(found: list[str], where: str) -> None:
    """Raise one :class:`ConvergenceWarning` listing every problem, loudly."""
    if found:
        warnings.warn(
            f"{where}: THE SAMPLER DID NOT CONVERGE; do not trust this fit: " + "; ".join(found),
            ConvergenceWarning,
            stacklevel=3,
        )
