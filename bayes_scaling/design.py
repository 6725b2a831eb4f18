"""Sweep design: which runs to train next, for the most certainty at a target per FLOP.

A Bayesian design by importance weights over the posterior draws (no refit per candidate):

1. ``J`` simulated *worlds*: each takes one posterior draw ``s_j`` as its truth and, at every
   candidate run ``x``, an outcome ``y_j(x) = log L(θ_{s_j}, x) + scale_{s_j}·t_df`` (a draw
   of the posterior predictive of a new run).
2. Knowing ``y_j(x)`` reweights the S posterior draws by its likelihood,
   ``w_js ∝ w0_js · t_df((y_j(x) - log L(θ_s, x)) / scale_s) / scale_s``.
3. An objective at the target under these weights — the variance of the target's expected
   loss, the width of its 90% band, or the expected regret of the compute-optimal allocation
   at the target's compute — averaged over the worlds is the objective expected after
   training ``x``; its drop from today's value is ``x``'s gain, and the gain per FLOP
   (cost ``6·N·D``) ranks the candidates.

Picks are greedy: a picked run's simulated outcome stays in each world's weights ``w0`` when
the next run is scored, so a batch does not buy twice what one run teaches. With a budget, a
second pass picks by the largest gain that still fits (gain per FLOP alone fills a budget with
cheap runs when a dear one would teach more: Krause & Guestrin 2005), and the pass with the lower
objective at its end wins. When the weights
degenerate (median effective sample size below ``min_ess`` of the draws), the picks so far
join the data at their posterior-median loss and the law is refitted; the worlds start afresh
from the new posterior.

For a calibrated fit the objective also holds the calibrated mode's extrapolation error at the
target (its variance grows with the decades from the nearest run to the target, so a run that
moves the data closer shrinks it; see :class:`_Error`); for a plain fit it is the law's parameter
uncertainty alone.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import _calibration
from ._evaluate import law_at, optimum, student_t
from ._geometry import axis, beyond, shortfalls
from ._programs import PROGRAMS
from .data import FLOPS_PER_PARAM_TOKEN, checked_seed
from .fit import fit
from .forecast import targets
from .optimal import losses
from .result import NEW, Result

OBJECTIVES = ("variance", "width90", "regret")
#: Elements (worlds x candidates x draws) scored at once: the memory of one chunk stays near 100 MB.
CHUNK_ELEMENTS = 1 << 23
#: Allocations along the target's compute scored by the regret objective.
ALLOCATIONS = 64
#: Width of a central 90% normal band in standard deviations (2 x 1.645).
Z90 = 3.2897

__all__ = ["OBJECTIVES", "checked", "default_candidates", "design", "weights"]


def default_candidates(
    result: Result,
    *,
    size: int = 40,
    beyond_decades: float = 0.5,
    group: str | None = None,
    k: float = FLOPS_PER_PARAM_TOKEN,
) -> pd.DataFrame:
    """The default candidate runs: a log grid over N and tokens per parameter, within and just beyond the sweep.

    N runs from the smallest run's to ``10**beyond_decades`` times the largest, tokens per
    parameter over the runs' range; grid points whose D or compute lies below the smallest run's
    or more than ``10**beyond_decades`` above the largest are left out (the law is least checked
    there: such runs are for the user to add as candidates of their own). For runs known only by
    their compute, a log grid over C to ``10**beyond_decades`` times the largest.

    Returns
    -------
    DataFrame with columns ``N``, ``D`` (NaN for compute-only runs), ``C`` (FLOP = the run's cost),
    ``tokens_per_param``; at most ``size**2`` rows (``size`` for compute-only runs).
    """
    runs = result.data(group)
    reach = 10.0**beyond_decades
    if np.isfinite(runs[["N", "D"]].to_numpy(np.float64)).all():
        n = np.geomspace(runs["N"].min(), runs["N"].max() * reach, size)
        ratio = (runs["D"] / runs["N"]).to_numpy()
        m = np.geomspace(ratio.min(), ratio.max(), size)
        nn, mm = (a.ravel() for a in np.meshgrid(n, m, indexing="ij"))
        cc = k * nn * nn * mm
        keep = (nn * mm >= runs["D"].min() * (1 - 1e-9)) & (nn * mm <= runs["D"].max() * reach)
        keep &= (cc >= runs["C"].min() * (1 - 1e-9)) & (cc <= runs["C"].max() * reach)
        return pd.DataFrame({"N": nn[keep], "D": (nn * mm)[keep], "C": cc[keep], "tokens_per_param": mm[keep]})
    c = np.geomspace(runs["C"].min(), runs["C"].max() * reach, size)
    return pd.DataFrame({"N": np.nan, "D": np.nan, "C": c, "tokens_per_param": np.nan})


def checked(frame: pd.DataFrame, source: str = "candidates", k: float = FLOPS_PER_PARAM_TOKEN) -> pd.DataFrame:
    """A user's candidate runs as columns N, D, C, tokens_per_param; errors name the source, column and row.

    ``frame`` has columns ``N`` and ``D`` (or ``params`` and ``tokens``), or ``C`` (``flops``).
    """
    frame = frame.rename(columns={"params": "N", "tokens": "D", "flops": "C"})
    if not ({"N", "D"} <= set(frame.columns) or "C" in frame.columns):
        found = ", ".join(map(str, frame.columns))
        raise ValueError(f"{source}: candidates need columns N and D (or params and tokens), or C (found: {found})")
    if frame.empty:
        raise ValueError(f"{source}: no candidate runs")
    out = pd.DataFrame(index=range(len(frame)))
    for name in ("N", "D", "C"):
        if name not in frame.columns:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~(values > 0) | ~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            value = frame[name].iloc[i]
            value = value.item() if isinstance(value, np.generic) else value
            raise ValueError(
                f"{source}: column {name!r}, row {i + 1}: {value!r} is not a positive size "
                f"({bad.size} such row{'s' if bad.size > 1 else ''})"
            )
        out[name] = values
    if "C" not in out.columns:
        out["C"] = k * out["N"] * out["D"]
    for name in ("N", "D"):
        if name not in out.columns:
            out[name] = np.nan
    out["tokens_per_param"] = out["D"] / out["N"]
    return out[["N", "D", "C", "tokens_per_param"]]


def _target(result: Result, target: object, group: str | None, k: float) -> pd.DataFrame:
    """The targets as rows of N, D, C: a preset name, a compute budget, a mapping with N and D (or flops), or a
    DataFrame of planned runs (columns N and D, or C)."""
    if isinstance(target, pd.DataFrame):
        if "U" in target.columns or "unique_tokens" in target.columns:
            raise ValueError("target: a planned run that repeats its data alone, as {'N': .., 'D': .., 'U': ..}")
        frame = checked(target, "target", k)
        point = frame[["N", "D", "C"]].assign(target=[f"run {i + 1}" for i in range(len(frame))])
        if "target" in target.columns:
            point["target"] = target["target"].astype(str).to_numpy()
    else:
        if isinstance(target, str):
            given = {"preset": target}
        elif isinstance(target, int | float):
            given = {"flops": float(target)}
        elif isinstance(target, Mapping):
            given = {key: target[key] for key in ("N", "D", "flops", "preset", "U") if key in target}
            if "C" in target:
                given["flops"] = target["C"]
        else:
            raise ValueError(
                f"target: a preset name, a compute budget in FLOP, {{'N': .., 'D': ..}} or a DataFrame; got {target!r}"
            )
        point = targets(result, k=k, group=group, **given)
    runs = result.data(group)
    name = axis(runs, result.law.axes)
    if np.isfinite(point[name].to_numpy(np.float64)).all():
        inside = np.flatnonzero(beyond(runs, point, [name])[:, 0] <= 0)
        if inside.size:
            i = int(inside[0])
            raise ValueError(
                f"the target ({point['target'].iloc[i]}, {name}={point[name].iloc[i]:.3g}) lies inside the data "
                f"(largest run {name}={runs[name].max():.3g}): there is nothing to extrapolate; aim the design beyond "
                "the sweep"
            )
    return point.reset_index(drop=True)


def _arrays(objective: str, values: np.ndarray, table: np.ndarray | None) -> dict:
    """An objective's per-draw arrays (float32), from ``values`` (the sorted target) or ``table`` (S x allocations)."""
    if objective == "regret":
        return {"L": jnp.asarray(table, jnp.float32), "best": jnp.asarray(table.min(axis=1), jnp.float32)}
    centred = values - values.mean(axis=0)  # float32 keeps the variance's digits once centred
    return {"g": jnp.asarray(centred, jnp.float32)}


def _objective(name: str, w: jax.Array, arrays: dict) -> jax.Array:
    """An objective under weights ``w`` (..., S) that sum to one over the draws, shape (...)."""
    if name == "variance":  # of each target (S, t), averaged over the targets
        g = arrays["g"]
        mean = w @ g
        return jnp.maximum(w @ (g * g) - mean * mean, 0.0).mean(axis=-1)
    if name == "width90":
        g = arrays["g"]  # the draws are sorted by the target's value: a weighted quantile is a cumulative sum
        return g[_quantile_index(w, 0.95)] - g[_quantile_index(w, 0.05)]
    expected = w @ arrays["L"]  # (..., allocations): each allocation's expected loss
    return jnp.maximum(expected.min(axis=-1) - w @ arrays["best"], 0.0)


def _quantile_index(w: jax.Array, q: float, block: int = 64) -> jax.Array:
    """Index of the weighted ``q`` quantile of sorted draws: the first draw whose cumulative weight reaches q.

    Two levels, to avoid a cumulative sum over all S draws (the slowest step on a CPU): the sums of
    blocks of ``block`` draws find the block, a cumulative sum inside that block finds the draw.
    """
    size = w.shape[-1]
    x = jnp.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, -size % block)]).reshape(*w.shape[:-1], -1, block)
    total = x.sum(axis=-1)
    upto = jnp.cumsum(total, axis=-1)
    which = jnp.minimum(jnp.sum(upto < q, axis=-1), total.shape[-1] - 1)
    before = jnp.take_along_axis(upto - total, which[..., None], axis=-1)
    inside = jnp.take_along_axis(x, which[..., None, None], axis=-2)[..., 0, :]
    count = jnp.sum(jnp.cumsum(inside, axis=-1) + before < q, axis=-1)
    return jnp.minimum(which * block + count, size - 1)


def _score(
    name: str, df: float, mu: jax.Array, scale: jax.Array, logw0: jax.Array, truth: jax.Array, eps: jax.Array, arrays
) -> tuple[jax.Array, jax.Array]:
    """Objective and effective sample size per world after each candidate of a chunk.

    mu : (m, S) log expected loss of every draw at m candidates; scale : (S,) noise scale of a run;
    logw0 : (J, S) each world's log weights so far; truth : (J,) each world's true draw;
    eps : (J, m) each world's standardized noise at each candidate. Returns two arrays (J, m).
    """
    y = mu[:, truth].T + scale[truth][:, None] * eps  # (J, m): each world's outcome at each candidate
    logw = logw0[:, None, :] + student_t(df, mu[None, :, :], scale, y[..., None], jnp)  # (J, m, S)
    w = jax.nn.softmax(logw, axis=-1)
    return _objective(name, w, arrays), 1.0 / jnp.sum(w * w, axis=-1)


def _now(name: str, logw0: jax.Array, arrays: dict) -> tuple[jax.Array, jax.Array]:
    """Objective and effective sample size of each world (J,) under its weights so far."""
    w = jax.nn.softmax(logw0, axis=-1)
    return _objective(name, w, arrays), 1.0 / jnp.sum(w * w, axis=-1)


class _Posterior:
    """What scoring needs from one posterior: the law at candidates and target, noise scales, objective arrays.

    The draws are held sorted by the target's expected loss, so that weighted quantiles are a cumulative sum.
    """

    def __init__(
        self, result: Result, pool: pd.DataFrame, point: pd.DataFrame, objective: str, group: str | None, k: float
    ) -> None:
        law = result.law
        draws = result.draws(group)
        self.result = result
        target = np.exp(law_at(law, draws, point))  # (S, t)
        if target.shape[1] > 1 and objective != "variance":
            raise ValueError(f"the {objective} objective takes one target; several targets take 'variance'")
        order = np.argsort(target[:, 0], kind="stable")
        draws = {name: np.asarray(v)[order] for name, v in draws.items()}
        self.target = target[order]
        self.mu = law_at(law, draws, pool).T.astype(np.float32)  # (n candidates, S)
        self.scale = _run_scale(draws).astype(np.float32)
        table = None
        if objective == "regret":
            if not {"N", "D"} <= set(law.inputs):
                raise ValueError(f"the regret objective needs a law of N and D; {law.name!r} reads {law.inputs}")
            flops = float(point["C"].iloc[0])
            log_n, _ = optimum(law, draws, [flops], k)
            centre = np.median(log_n)
            n = np.exp(np.linspace(centre - 1.5 * np.log(10), centre + 1.5 * np.log(10), ALLOCATIONS))
            table = losses(law, draws, n, flops / (k * n), k)
        self.width = _arrays("width90", self.target[:, 0], None) if self.target.shape[1] == 1 else None
        self.arrays = self.width if objective == "width90" else _arrays(objective, self.target, table)
        self.error = _Error(result, point, group, self.target, draws) if _calibration.calibrated(result) else None

    @property
    def size(self) -> int:
        return self.mu.shape[1]


class _Error:
    """The calibrated mode's extrapolation error at the target, and how a new run closer to it shrinks it.

    Its variance on the loss scale is ``sum_i a_i d_i``: ``d_i`` the decades from the nearest run to the
    target along input i (:func:`~bayes_scaling._geometry.beyond`), ``a_i`` the posterior mean of
    ``(L* share kappa_i)**2`` (expected loss at the target, its reducible share, the error's scale per
    decade; see :func:`bayes_scaling._calibration.error_scale`). A candidate counts when its own
    shortfall to the target is smaller than the nearest run's.
    """

    def __init__(self, result: Result, point: pd.DataFrame, group: str | None, target: np.ndarray, draws: dict) -> None:
        self.inputs, kappa = _calibration.kappa_draws(result, len(target))  # (S, i)
        share = _calibration.reducible(result.law, draws, np.log(target))  # (S, t)
        self.a = np.mean((target * share)[:, :, None] ** 2 * kappa[:, None, :] ** 2, axis=0)  # (t, i)
        runs = result.data(None if group is None or group == NEW else group)
        self.points = point
        self.nearest = beyond(runs, point, self.inputs)  # (t, i)

    def now(self) -> float:
        """Today's error variance at the targets (loss scale, nats², averaged over the targets)."""
        return float(np.mean(np.sum(self.a * self.nearest, axis=1)))

    def _gaps(self, pool: pd.DataFrame) -> np.ndarray:
        """Each candidate's shortfall to each target, (n, t, i)."""
        return np.stack([shortfalls(pool, row, self.inputs) for _, row in self.points.iterrows()], axis=1)

    def after(self, pool: pd.DataFrame) -> np.ndarray:
        """The error variance at the targets with each candidate added, shape (n,)."""
        gap = self._gaps(pool)
        closer = np.sum(gap**2, axis=2) < np.sum(self.nearest**2, axis=1)[None, :]  # (n, t)
        nearest = np.where(closer[..., None], gap, self.nearest[None])
        return np.mean(np.sum(self.a[None] * nearest, axis=2), axis=1)

    def copy(self) -> _Error:
        other = copy.copy(self)
        other.nearest = self.nearest.copy()
        return other

    def add(self, row: pd.Series) -> None:
        gap = self._gaps(pd.DataFrame([row]))[0]  # (t, i)
        closer = np.sum(gap**2, axis=1) < np.sum(self.nearest**2, axis=1)
        self.nearest = np.where(closer[:, None], gap, self.nearest)


def _total(objective: str, value: np.ndarray, error: np.ndarray | float) -> np.ndarray:
    """The objective with the extrapolation error added: variances add; widths as of normal bands; regret
    is unchanged (the error moves every allocation's loss alike)."""
    if objective == "variance":
        return value + error
    if objective == "width90":
        return np.sqrt(value**2 + Z90**2 * error)
    return value


def _run_scale(draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each draw's scale of a new run's log loss around the law: run noise and, with replicates, misfit."""
    return np.sqrt(draws["sigma"] ** 2 + np.asarray(draws.get("sigma_misfit", 0.0)) ** 2)


def weights(result: Result, runs: pd.DataFrame, *, group: str | None = None) -> np.ndarray:
    """Importance weights of the posterior draws given new runs with known losses, shape (S,), summing to one.

    The posterior with ``runs`` added is the posterior reweighted by their likelihood (Student-t on
    log loss, scale :func:`_run_scale`; :func:`~bayes_scaling._evaluate.student_t`); accurate while the
    weights' effective sample size ``1 / sum(w**2)`` stays a fair share of the draws (otherwise refit).

    Parameters
    ----------
    runs : columns ``N``, ``D``, ``C`` (the law's inputs) and ``loss``, one row per new run.
    group : with groups, the group of the runs (and of the draws).
    """
    law, draws = result.law, result.draws(group)
    mu = law_at(law, draws, runs)  # (S, r)
    y = np.log(runs["loss"].to_numpy(np.float64))
    logw = student_t(float(result.spec.df), mu, _run_scale(draws)[:, None], y[None, :]).sum(axis=1)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def design(
    result: Result,
    target: object = "gpt4",
    budget: float | None = None,
    candidates: pd.DataFrame | None = None,
    *,
    k: int = 5,
    objective: str = "variance",
    worlds: int = 64,
    group: str | None = None,
    min_ess: float = 0.1,
    seed: int = 0,
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
    source: str = "candidates",
    ratios: tuple[float, float] | str | None = "data",
) -> pd.DataFrame:
    """The next runs to train: greedy picks of the most expected certainty at the target per FLOP.

    Parameters
    ----------
    result : a fit (any law family; with groups, ``group`` names the group, or ``"new"``).
    target : a preset name (``"gpt4"``), a compute budget in FLOP (split compute-optimally),
        ``{"N": .., "D": ..}`` for a planned run (with ``"U"``: its unique tokens, for the data-constrained
        law; or ``{"flops": ..}``, ``{"preset": ..}``), or a
        DataFrame of planned runs (columns ``N`` and ``D``, or ``C``; the objective is then the
        variance averaged over them). Beyond the data.
    budget : FLOP to spend on the picks together (None: no limit but ``k``). Candidates dearer
        than what is left are not scored.
    candidates : runs that could be trained, columns ``N`` and ``D`` (or ``params``, ``tokens``),
        or ``C`` for a law of compute; default :func:`default_candidates` (a log grid within and just
        beyond the sweep).
    k : the most runs to pick.
    objective : ``"variance"`` (of the target's expected loss, nats²), ``"width90"`` (of its 90%
        band, nats) or ``"regret"`` (expected extra loss of the compute-optimal allocation at the
        target's compute, chosen under today's uncertainty, nats). For a calibrated fit the variance
        and the width include the extrapolation error at the target (which a run closer to it shrinks).
    worlds : simulated outcomes per candidate (J).
    min_ess : refit when the median effective sample size of the worlds' weights falls below this
        share of the draws.
    seed : seeds the simulated worlds: the same seed gives the same picks.
    flops_per_param_token : k in C = k·N·D (a run's cost).
    source : how errors name the candidates (their file).
    ratios : the tokens per parameter (D/N) a candidate may have: ``"data"`` (default) the range the
        runs and the targets span (:func:`ratio_range`), ``(lo, hi)`` a range of one's own, None any.
        A run at a ratio no run or target has tests the law where its form was never checked: under the
        law it has the most leverage on the exponents, so without this range the design favours such runs,
        and where the law misfits them they spoil the forecast (on the embedded runs, picks at 0.04 and 0.3
        tokens per parameter raised the error at the runs above 1e21 FLOP from 0.6% to 1.4%:
        ``benchmarks/bench_design.py --part retrospective``). Candidates known only by their compute pass.

    Returns
    -------
    DataFrame, one row per pick in order: ``pick``, ``N``, ``D``, ``C`` (cost in FLOP),
    ``tokens_per_param``, ``spent`` (cumulative FLOP), ``gain`` (expected drop of the objective),
    ``gain_per_flop``, ``objective_after``, ``width90_after`` (expected 90% band width of the
    target's expected loss after the picks so far, nats), ``ess`` (median effective sample size
    of the weights after the pick) and ``refit`` (the law was refitted after this pick). Its
    ``attrs`` hold ``objective``, ``calibrated`` (whether the extrapolation error is part of it),
    ``before`` (today's objective), ``width90_before``, the
    ``target`` row, ``candidates``: every candidate scored, with its first-round ``gain`` and
    ``gain_per_flop`` (for :func:`bayes_scaling.plots.design`), ``ratios`` (the range used, or None) and
    ``left_out`` (how many candidates lay outside it).
    """
    seed = checked_seed(seed)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if k < 1 or worlds < 2:
        raise ValueError(f"k must be at least 1 and worlds at least 2, got k={k}, worlds={worlds}")
    c = flops_per_param_token
    point = _target(result, target, group, c)
    if candidates is None:
        pool = default_candidates(result, group=group, k=c)
    else:
        pool = checked(candidates, source, c)
    missing = [name for name in result.law.axes if not np.isfinite(pool[name].to_numpy(np.float64)).all()]
    if missing:
        raise ValueError(f"{source}: the {result.law.name} law needs {', '.join(missing)} at every candidate")
    span = ratio_range(result, point, group) if isinstance(ratios, str) and ratios == "data" else ratios
    everyone = len(pool)
    if span is not None:
        try:
            lo, hi = (float(v) for v in span)
        except (TypeError, ValueError):
            raise ValueError(f'ratios must be "data", None or (lo, hi) tokens per parameter, got {ratios!r}') from None
        if not 0 < lo <= hi:
            raise ValueError(f"ratios must be (lo, hi) with 0 < lo <= hi tokens per parameter, got {span!r}")
        m = pool["tokens_per_param"].to_numpy(np.float64)
        pool = pool[np.isnan(m) | ((m >= lo * (1 - 1e-9)) & (m <= hi * (1 + 1e-9)))].reset_index(drop=True)
        if pool.empty:
            raise ValueError(
                f"{source}: every candidate's tokens per parameter lies outside {lo:.3g}-{hi:.3g}, the range the runs "
                "and the target span, where the law was checked; pass ratios=None (--any-ratio) to score them anyway"
            )
        span = (lo, hi)
    if budget is not None:
        if not budget > 0:
            raise ValueError(f"budget must be a positive number of FLOP, got {budget}")
        if budget < pool["C"].min():
            raise ValueError(
                f"a budget of {budget:.3g} FLOP buys no candidate: the cheapest costs {pool['C'].min():.3g} FLOP"
            )
    post = _Posterior(result, pool, point, objective, group, c)
    settings = _Greedy(objective, float(result.spec.df), worlds, k, min_ess, seed, pool, point, c)
    done = [settings.run("ratio", post, budget, group)]
    if budget is not None:  # with a budget, also the runs of largest gain (Krause & Guestrin 2005): the better set
        done.append(settings.run("gain", post, budget, group))
    best = min(done, key=lambda d: d.final)  # ties: the gain-per-FLOP picks
    columns = ["pick", "N", "D", "C", "tokens_per_param", "gain", "gain_per_flop", "objective_after"]
    table = pd.DataFrame(best.taken, columns=[*columns, "width90_after", "ess", "refit"])
    table.insert(5, "spent", table["C"].cumsum())
    table.attrs = {
        "objective": objective,
        "calibrated": post.error is not None,
        "rule": {"ratio": "gain per FLOP", "gain": "largest gain within the budget"}[best.rule],
        "alternatives": {d.rule: d.final for d in done},
        "before": done[0].before,
        "width90_before": done[0].width_before,
        "target": point,
        "candidates": done[0].first,
        "ratios": span,
        "left_out": everyone - len(pool),
    }
    return table


def ratio_range(result: Result, target: pd.DataFrame, group: str | None = None) -> tuple[float, float] | None:
    """The tokens per parameter (D/N) that the runs and the targets span, (lo, hi); None for runs known only by
    their compute. ``target``: rows with columns ``N`` and ``D`` (NaN where unknown)."""
    runs = result.data(group)
    values = np.concatenate(
        [(runs["D"] / runs["N"]).to_numpy(np.float64), (target["D"] / target["N"]).to_numpy(np.float64)]
    )
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


class _Done(NamedTuple):
    """One greedy pass: its rule, picks (rows of the table), first-round candidate map, objective before and after."""

    rule: str
    taken: list[dict]
    first: pd.DataFrame
    before: float
    width_before: float
    final: float


class _Greedy(NamedTuple):
    """The settings of a greedy pass over the candidates."""

    objective: str
    df: float
    worlds: int
    k: int
    min_ess: float
    seed: int
    pool: pd.DataFrame
    point: pd.DataFrame
    flops_per_param_token: float

    def run(self, rule: str, post: _Posterior, budget: float | None, group: str | None) -> _Done:
        """Pick up to k runs, each the best by ``rule``: ``"ratio"`` (expected gain per FLOP) or ``"gain"``."""
        objective, df, pool = self.objective, self.df, self.pool
        rng = np.random.default_rng(self.seed)  # every pass sees the same simulated worlds
        error = post.error.copy() if post.error else None
        cost = pool["C"].to_numpy()
        truth, eps, logw0 = _worlds(rng, post.size, self.worlds, len(pool), df)
        today = before = _today(objective, logw0, post, error)[0]
        width_before = _width(logw0, post, error)
        taken: list[dict] = []
        pending: list[int] = []  # picks since the last refit
        first = pool.assign(gain=np.nan, gain_per_flop=np.nan)
        open_ = np.ones(len(pool), bool)
        left = np.inf if budget is None else float(budget)
        for pick in range(1, self.k + 1):
            rows = np.flatnonzero(open_ & (cost <= left))
            if not rows.size:
                break
            errors = error.after(pool.iloc[rows]) if error else np.zeros(len(rows))
            after = _scores(objective, df, post, logw0, truth, eps, rows)  # (J, rows)
            gain = today - _total(objective, after, errors[None, :]).mean(axis=0)
            per = gain / cost[rows]
            if pick == 1:
                first.loc[rows, "gain"], first.loc[rows, "gain_per_flop"] = gain, per
            if not (gain > 0).any():
                break
            i = int(np.argmax(np.where(gain > 0, per if rule == "ratio" else gain, -np.inf)))
            best = int(rows[i])
            logw0 = logw0 + _update(df, post, truth, eps, best)
            if error:
                error.add(pool.iloc[best])
            today, ess = _today(objective, logw0, post, error)
            open_[best] = False
            pending.append(best)
            left -= cost[best]
            row = pool.iloc[best][["N", "D", "C", "tokens_per_param"]].to_dict()
            taken.append(
                {
                    **row,
                    "pick": pick,
                    "gain": float(gain[i]),
                    "gain_per_flop": float(per[i]),
                    "objective_after": today,
                    "width90_after": _width(logw0, post, error),
                    "ess": ess,
                    "refit": False,
                }
            )
            if ess < self.min_ess * post.size and pick < self.k:  # the weights degenerate: refit with the picks
                refitted, group = _refit(post, pool.iloc[pending], group, self.seed)
                post = _Posterior(refitted, pool, self.point, objective, group, self.flops_per_param_token)
                error = post.error
                truth, eps, logw0 = _worlds(rng, post.size, self.worlds, len(pool), df)
                today = _today(objective, logw0, post, error)[0]
                pending, taken[-1]["refit"] = [], True
        return _Done(rule, taken, first, before, width_before, today)


def _today(objective: str, logw0: np.ndarray, post: _Posterior, error: _Error | None) -> tuple[float, float]:
    """The objective expected under the worlds' weights so far (with the extrapolation error where calibrated),
    and the median effective sample size of those weights."""
    value, ess = (np.asarray(a) for a in _now_program(objective)(logw0, post.arrays))
    return float(np.mean(_total(objective, value, error.now() if error else 0.0))), float(np.median(ess))


def _worlds(rng: np.random.Generator, draws: int, worlds: int, n: int, df: float) -> tuple:
    """Each world's true draw (J,), its standardized outcome noise at every candidate (J, n), its log weights (J, S)."""
    truth = rng.integers(0, draws, worlds)
    eps = rng.standard_t(df, (worlds, n)).astype(np.float32)
    return truth, eps, np.zeros((worlds, draws), np.float32)


def _now_program(name: str) -> object:
    return PROGRAMS.get(("design now", name), lambda: partial(_now, name))


def _width(logw0: np.ndarray, post: _Posterior, error: _Error | None) -> float:
    """The expected 90% band width of the target's expected loss under the worlds' weights (with the
    extrapolation error where the fit is calibrated), nats; averaged over the targets when there are several."""
    if post.width is not None:
        value = np.asarray(_now_program("width90")(logw0, post.width)[0])
    else:  # several targets: the draws sorted by each target in turn
        w = jax.nn.softmax(jnp.asarray(logw0), axis=-1)
        value = np.zeros(len(logw0))
        for g in post.target.T:
            order = np.argsort(g)
            lo, hi = (np.asarray(_quantile_index(w[:, order], q)) for q in (0.05, 0.95))
            value += (g[order][hi] - g[order][lo]) / post.target.shape[1]
    return float(np.mean(_total("width90", value, error.now() if error else 0.0)))


def _scores(
    objective: str, df: float, post: _Posterior, logw0: np.ndarray, truth: np.ndarray, eps: np.ndarray, rows
) -> np.ndarray:
    """Each world's objective after each candidate in ``rows``, shape (J, len(rows)); chunked over candidates."""
    worlds, draws = logw0.shape
    m = 1 << max(0, (CHUNK_ELEMENTS // (worlds * draws)).bit_length() - 1)  # a power of two
    m = min(m, 1 << max(0, (len(rows) - 1).bit_length()))
    padded = np.concatenate([rows, np.repeat(rows[-1:], -len(rows) % m)])
    program = PROGRAMS.get(("design score", objective, df), lambda: partial(_score, objective, df))
    scale, truth, logw0 = jnp.asarray(post.scale), jnp.asarray(truth), jnp.asarray(logw0)
    out = []
    for start in range(0, len(padded), m):
        chunk = padded[start : start + m]
        value, _ = program(post.mu[chunk], scale, logw0, truth, eps[:, chunk], post.arrays)
        out.append(np.asarray(value, np.float64))
    return np.concatenate(out, axis=1)[:, : len(rows)]


def _update(df: float, post: _Posterior, truth: np.ndarray, eps: np.ndarray, best: int) -> np.ndarray:
    """Each world's log likelihood of its outcome at candidate ``best`` under every draw, shape (J, S)."""
    mu, scale = post.mu[best].astype(np.float64), post.scale.astype(np.float64)
    y = mu[truth] + scale[truth] * eps[:, best]
    return student_t(df, mu[None, :], scale, y[:, None]).astype(np.float32)


def _refit(post: _Posterior, picks: pd.DataFrame, group: str | None, seed: int) -> tuple[Result, str | None]:
    """The law refitted with the picks added at their posterior-median loss; and the group they joined."""
    result = post.result
    runs = result.data()
    label = group
    if group == NEW:  # the picks found a group of their own
        label = "designed"
    added = pd.DataFrame(
        {
            "N": picks["N"].to_numpy(),
            "D": picks["D"].to_numpy(),
            "C": picks["C"].to_numpy(),
            "loss": np.exp(np.median(post.mu[picks.index.to_numpy()].astype(np.float64), axis=1)),
        }
    )
    if label is not None:
        added["group"] = label
    frame = pd.concat([runs, added], ignore_index=True).rename(columns={"N": "params", "D": "tokens", "C": "flops"})
    refitted = fit(
        frame,
        result.law,
        priors=result.spec,
        settings=result.settings,
        seed=seed,
        calibrate=False,
        group="group" if label is not None else None,
    )
    if _calibration.calibrated(result):  # the error learned by the original fit's internal backtests still holds
        refitted = refitted.with_group("extrapolation", result.group("extrapolation"))
    return refitted, label
