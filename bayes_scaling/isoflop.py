"""IsoFLOP analysis (Hoffmann et al. 2022, Approach 2), with uncertainty.

Runs are grouped by nearby compute; in each group the loss is fitted by a parabola
in log N. With a flat prior and Gaussian noise the coefficients' posterior is a
multivariate Student-t around the least-squares fit, so each group's minimum
``log N*`` has a posterior we can draw from. A straight line through the draws of
``(log C, log N*)`` gives the posterior of the exponent a in N_opt ∝ C**a.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import Dataset


def groups(data: Dataset, *, width: float = 0.05, min_runs: int = 5) -> np.ndarray:
    """Label runs by compute budget: greedy windows of ±``width`` decades around the densest budgets.

    Returns
    -------
    Integer labels of shape (n,), -1 for runs in no group; groups ordered by compute.
    """
    log_c = np.log10(data.frame["C"].to_numpy())
    labels = np.full(len(log_c), -1)
    centres = []
    free = np.ones(len(log_c), bool)
    while True:
        counts = [(np.abs(log_c - c) <= width)[free].sum() for c in log_c]
        counts = np.where(free, counts, 0)
        if counts.max() < min_runs:
            break
        centre = log_c[int(np.argmax(counts))]
        members = free & (np.abs(log_c - centre) <= width)
        centres.append((centre, members))
        free &= ~members
    for label, (_, members) in enumerate(sorted(centres, key=lambda item: item[0])):
        labels[members] = label
    return labels


def isoflop(
    data: Dataset, *, width: float = 0.05, min_runs: int = 5, draws: int = 4000, ci: float = 0.9, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """Per-budget parabola minima and the exponent a of N_opt ∝ C**a, with credible intervals.

    Parameters
    ----------
    data : runs at several compute budgets.
    width, min_runs : grouping, see :func:`groups`.
    draws : posterior draws of each parabola.
    ci : central credible level.

    Returns
    -------
    (table, exponent). ``table``: one row per group with ``C`` (geometric mean of the
    group), ``runs``, ``N_opt`` with ``N_opt_lo`` / ``N_opt_hi``, ``loss_opt``, the
    group ``label`` of :func:`groups`, and the parabola ``log L = coef0 + coef1·u + coef2·u**2``
    with ``u = log N - centre``; groups whose parabola does not open upward are dropped. ``exponent``: ``a``
    (median), ``a_lo``, ``a_hi`` and ``groups`` used.
    """
    rng = np.random.default_rng(seed)
    labels = groups(data, width=width, min_runs=min_runs)
    frame = data.frame
    rows, samples = [], []
    for label in range(labels.max() + 1):
        part = frame[labels == label]
        x = np.log(part["N"].to_numpy())
        y = np.log(part["loss"].to_numpy())
        xc = x.mean()
        design = np.stack([np.ones_like(x), x - xc, (x - xc) ** 2], axis=1)
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        dof = len(x) - 3
        if dof < 1 or beta[2] <= 0:
            continue
        resid = y - design @ beta
        s2 = resid @ resid / dof
        cov = s2 * np.linalg.inv(design.T @ design)
        z = rng.multivariate_normal(np.zeros(3), cov, size=draws)
        t = z / np.sqrt(rng.chisquare(dof, size=(draws, 1)) / dof) + beta
        t = t[t[:, 2] > 0]
        log_n = xc - t[:, 1] / (2 * t[:, 2])
        lo, hi = np.quantile(log_n, [(1 - ci) / 2, (1 + ci) / 2])
        n_star = xc - beta[1] / (2 * beta[2])
        loss_star = np.exp(beta[0] - beta[1] ** 2 / (4 * beta[2]))
        c = float(np.exp(np.log(part["C"].to_numpy()).mean()))
        rows.append(
            {
                "C": c,
                "runs": len(part),
                "N_opt": np.exp(n_star),
                "N_opt_lo": np.exp(lo),
                "N_opt_hi": np.exp(hi),
                "loss_opt": loss_star,
                "label": label,
                "centre": xc,
                "coef0": beta[0],
                "coef1": beta[1],
                "coef2": beta[2],
            }
        )
        samples.append(rng.choice(log_n, size=draws))
    table = pd.DataFrame(rows)
    if len(table) < 2:
        raise ValueError(
            f"{data.source}: IsoFLOP analysis needs at least 2 budgets with upward parabolas, found {len(table)}"
        )
    log_c = np.log(table["C"].to_numpy())
    slopes = np.polyfit(log_c, np.stack(samples), 1)[0]
    lo, med, hi = np.quantile(slopes, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return table, pd.Series({"a": med, "a_lo": lo, "a_hi": hi, "groups": len(table)})
