"""Sampler health: the one set of convergence thresholds, and the one check that applies them.

Every place that judges a sampler (a fit's warning, ``fit_many``, the review's health
table, the command line's line and exit status) goes through :func:`assess`: the
statistics of a fit (:class:`Stats`, from :mod:`bayes_scaling._stats`) against
:class:`Thresholds`, giving a :class:`Health` with one :class:`Check` per statistic,
each ``pass``, ``warn`` or ``fail``, and one sentence per finding. The same words
everywhere: at ``fail`` a loud :class:`ConvergenceWarning` (and exit status 3 on the command
line, an *unusable* review); at ``warn`` one calm :class:`MixingWarning` (exit status 0; a
point in the review); at ``pass`` nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from jax.typing import ArrayLike

from . import _stats

LEVELS = ("pass", "warn", "fail")


class ConvergenceWarning(UserWarning):
    """The sampler did not converge: a convergence check failed (see :class:`Thresholds`); do not use the fit."""


class MixingWarning(UserWarning):
    """A convergence check only warned (see :class:`Thresholds`): the fit is usable, longer chains would steady it."""


@dataclass(frozen=True)
class Thresholds:
    """Convergence thresholds: each check passes up to its first value, warns up to its second, fails beyond.

    Attributes
    ----------
    rhat : largest rank-normalized split R-hat of any parameter (Vehtari et al. 2021).
    ess : smallest bulk and tail effective sample size of any parameter, all chains together
        (lower is worse).
    divergent : share of draws whose trajectory diverged.
    bfmi : smallest E-BFMI of any chain (lower is worse).
    saturated : share of draws whose trajectory hit the maximum tree depth.
    """

    rhat: tuple[float, float] = (1.01, 1.1)
    ess: tuple[float, float] = (400.0, 100.0)
    divergent: tuple[float, float] = (0.0, 0.005)
    bfmi: tuple[float, float] = (0.3, 0.2)
    saturated: tuple[float, float] = (0.0, 0.01)


#: The package's thresholds.
THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Stats:
    """Convergence statistics of one fit.

    Attributes
    ----------
    names : the P checked parameters (components of vector sites numbered ``name[i]``).
    rhat, ess_bulk, ess_tail : per parameter, shape (P,).
    divergent, saturated, draws : counts of divergent draws, draws at the maximum tree
        depth, and all draws.
    bfmi : E-BFMI per chain, shape (chains,).
    max_tree_depth : the NUTS depth whose draws count as saturated (None: not checked).
    """

    names: tuple[str, ...]
    rhat: np.ndarray
    ess_bulk: np.ndarray
    ess_tail: np.ndarray
    divergent: int
    saturated: int
    draws: int
    bfmi: np.ndarray
    max_tree_depth: int | None = None

    @classmethod
    def from_arrays(cls, h: Mapping[str, ArrayLike], names: tuple[str, ...], max_tree_depth: int | None) -> Stats:
        """From the statistics of :func:`bayes_scaling._stats.health` of one fit (arrays, no batch axis)."""
        return cls(
            tuple(names),
            *(np.asarray(h[k], np.float64) for k in ("rhat", "ess_bulk", "ess_tail")),
            *(int(h[k]) for k in ("divergent", "saturated", "draws")),
            np.asarray(h["bfmi"], np.float64),
            max_tree_depth,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays as lists (NaN as None)."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, np.ndarray):
                out[k] = [None if not np.isfinite(x) else float(x) for x in v]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Stats:
        arrays = {k: np.array([np.nan if x is None else x for x in raw[k]]) for k in ("rhat", "ess_bulk", "ess_tail")}
        return cls(
            tuple(raw["names"]),
            **arrays,
            divergent=int(raw["divergent"]),
            saturated=int(raw["saturated"]),
            draws=int(raw["draws"]),
            bfmi=np.array([np.nan if x is None else x for x in raw["bfmi"]]),
            max_tree_depth=raw.get("max_tree_depth"),
        )


@dataclass(frozen=True)
class Check:
    """One statistic against its thresholds: ``status`` is ``pass``, ``warn`` or ``fail``."""

    check: str
    value: float
    threshold: str
    status: str


@dataclass(frozen=True)
class Health:
    """The verdict on a sampler: one :class:`Check` per statistic and one sentence per finding.

    Attributes
    ----------
    checks : every check, in a fixed order.
    problems : a sentence for each parameter or statistic that did not pass, e.g.
        ``"R-hat of E is 1.012 (> 1.01)"``; empty when every check passed.
    """

    checks: tuple[Check, ...]
    problems: tuple[str, ...]

    @property
    def level(self) -> str:
        """The worst status: ``pass``, ``warn`` or ``fail``."""
        return max((c.status for c in self.checks), key=LEVELS.index, default="pass")

    def table(self) -> pd.DataFrame:
        """One row per check: ``check``, ``value``, ``threshold``, ``status``."""
        return pd.DataFrame([asdict(c) for c in self.checks], columns=["check", "value", "threshold", "status"])

    def line(self) -> str:
        """One line that states every check: its level, then each statistic against its pass threshold."""
        parts = [f"{c.check} {c.value:.4g} ({c.threshold.split(' (')[0]})" for c in self.checks]
        return f"sampler health: {self.level}: " + ", ".join(parts)


def check(name: str, value: float, limits: tuple[float, float], higher_is_better: bool) -> Check:
    """The :class:`Check` of one statistic against ``limits`` (pass up to the first, warn up to the second)."""
    sign = ">=" if higher_is_better else "<="
    threshold = f"{sign} {limits[0]:g} (warn {sign} {limits[1]:g})"
    return Check(name, float(value), threshold, _status(value, limits, higher_is_better))


def _status(value: float, limits: tuple[float, float], higher_is_better: bool) -> str:
    passing, warning = limits
    if higher_is_better:
        return "pass" if value >= passing else "warn" if value >= warning else "fail"
    return "pass" if value <= passing else "warn" if value <= warning else "fail"  # NaN: fail


def assess(stats: Stats, thresholds: Thresholds | None = None) -> Health:
    """Judge a fit's convergence statistics against ``thresholds`` (default: :data:`THRESHOLDS`).

    A statistic that cannot be computed (NaN: a constant or non-finite chain) fails.
    """
    t = thresholds if thresholds is not None else THRESHOLDS
    depth = stats.max_tree_depth
    share_divergent = stats.divergent / max(stats.draws, 1)
    share_saturated = stats.saturated / max(stats.draws, 1)
    rows = [
        ("max R-hat", _worst(stats.rhat, max), t.rhat, False),
        ("min bulk ESS", _worst(stats.ess_bulk, min), t.ess, True),
        ("min tail ESS", _worst(stats.ess_tail, min), t.ess, True),
        ("share of divergent draws", share_divergent, t.divergent, False),
        ("min E-BFMI", _worst(stats.bfmi, min), t.bfmi, True),
    ]
    if depth is not None:
        rows.append((f"share of draws at tree depth {depth}", share_saturated, t.saturated, False))
    checks = [check(name, value, limits, higher) for name, value, limits, higher in rows]

    found = []
    if stats.divergent:
        found.append(f"{stats.divergent} of {stats.draws} draws diverged")
    for label, values, limits, higher, fmt in (
        ("R-hat", stats.rhat, t.rhat, False, ".3f"),
        ("bulk ESS", stats.ess_bulk, t.ess, True, ".0f"),
        ("tail ESS", stats.ess_tail, t.ess, True, ".0f"),
    ):
        bad = [j for j in range(len(stats.names)) if _status(values[j], limits, higher) != "pass"]
        sign = "<" if higher else ">"
        if len(bad) > 6:  # many parameters (groups): one sentence with the worst
            worst = (
                bad[int(np.nanargmin(values[bad]) if higher else np.nanargmax(values[bad]))]
                if not np.isnan(values[bad]).all()
                else bad[0]
            )
            found.append(
                f"{label} of {len(bad)} parameters {sign} {limits[0]:g} (worst: {stats.names[worst]}, "
                f"{values[worst]:{fmt}})"
            )
        else:
            found += [f"{label} of {stats.names[j]} is {values[j]:{fmt}} ({sign} {limits[0]:g})" for j in bad]
    if checks[4].status != "pass":
        found.append(f"E-BFMI {checks[4].value:.2f} (< {t.bfmi[0]:g}) in some chain")
    if depth is not None and checks[5].status != "pass":
        found.append(f"{stats.saturated} draws hit the maximum tree depth {depth}")
    return Health(tuple(checks), tuple(found))


def _worst(values: np.ndarray, pick: Any) -> float:
    """``pick`` (min or max) of ``values``; NaN if any is NaN (a statistic that could not be computed)."""
    values = np.asarray(values, np.float64)
    return float("nan") if values.size == 0 or np.isnan(values).any() else float(pick(values))


def warn(health: Health, where: str) -> None:
    """Say what a fit's health calls for: a loud :class:`ConvergenceWarning` listing every problem when a check
    failed, one calm :class:`MixingWarning` when checks only warned, nothing when all passed."""
    if health.level == "fail":
        warnings.warn(
            f"{where}: THE SAMPLER DID NOT CONVERGE; do not trust this fit: " + "; ".join(health.problems),
            ConvergenceWarning,
            stacklevel=3,
        )
    elif health.level == "warn":
        warnings.warn(
            f"{where}: sampler health warn ({'; '.join(health.problems)}); usable, longer chains would steady it",
            MixingWarning,
            stacklevel=3,
        )


def measure(
    draws: Mapping[str, ArrayLike], sample_stats: Mapping[str, ArrayLike], max_tree_depth: int | None = None
) -> Stats:
    """Convergence statistics of draws already taken (a saved or hand-made result).

    Parameters
    ----------
    draws : scalar parameters, each of shape (chains, draws).
    sample_stats : ``diverging`` and ``energy`` (and ``n_steps`` or ``tree_depth`` to check
        saturation), each (chains, draws).
    max_tree_depth : the NUTS depth whose draws count as saturated (None: not checked).
    """
    names = tuple(draws)
    x = np.stack([np.asarray(draws[k]) for k in names])
    if max_tree_depth is not None and "n_steps" in sample_stats:
        steps = np.asarray(sample_stats["n_steps"])
    elif max_tree_depth is not None and "tree_depth" in sample_stats:
        steps = 2 ** np.asarray(sample_stats["tree_depth"]) - 1
    else:
        steps, max_tree_depth = None, None
    max_steps = None if max_tree_depth is None else 2**max_tree_depth - 1
    diverging, energy = np.asarray(sample_stats["diverging"]), np.asarray(sample_stats["energy"])
    h = _stats.health(x, diverging, energy, steps, max_steps)
    return Stats.from_arrays(h, names, max_tree_depth)
