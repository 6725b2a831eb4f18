"""Compute-optimal allocation: how to split a compute budget C = k·N·D between N and D, under uncertainty.

Every function takes a fitted law of N and D (any family: the law's own closed-form optimum
where it declares one, else a vectorized search; for runs in groups, ``group=`` names the group,
or ``"new"`` for one drawn from the population) and answers with the posterior: the
frontier, the allocation exponents, decisions with their expected regret, the best spend
of a priced budget, and the cheapest allocation that reaches a target loss. IsoFLOP
profiles (Approach 2) are :func:`isoflop`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._evaluate import law_at, optimum
from .data import FLOPS_PER_PARAM_TOKEN, at_ratio, warn_repeats
from .forecast import FAR, ExtrapolationWarning
from .isoflop import groups as isoflop_groups
from .isoflop import isoflop
from .laws import Law
from .result import Result

__all__ = [
    "budget",
    "cheapest",
    "constrained",
    "decide",
    "exponents",
    "frontier",
    "isoflop",
    "isoflop_groups",
    "losses",
    "overtrained",
]


def losses(
    law: Law,
    params: Mapping[str, np.ndarray],
    n: np.ndarray,
    d: np.ndarray,
    k: float,
    unique: np.ndarray | float | None = None,
) -> np.ndarray:
    """Expected loss per draw at allocations (n, d), float64.

    Parameters
    ----------
    params : each shape (s,) for s draws.
    n, d : shape (m,) (the same m allocations for every draw) or (s, m) (per draw).
    k : FLOP per parameter per token, C = k·N·D.
    unique : unique tokens available, broadcastable against ``n`` (for a law that reads them: tokens
        beyond them repeat the data); None: every token fresh.

    Returns
    -------
    Array of shape (s, m).
    """
    n, d = np.asarray(n, np.float64), np.asarray(d, np.float64)
    inputs = {"N": n, "D": d, "C": k * n * d}
    if unique is not None:
        inputs["U"] = np.broadcast_to(np.asarray(unique, np.float64), np.broadcast_shapes(n.shape, d.shape))
    return np.exp(law_at(law, params, inputs))


def _interval(values: np.ndarray, ci: float) -> tuple[float, float, float]:
    lo, med, hi = np.quantile(values, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return float(med), float(lo), float(hi)


def _table(given: Mapping[str, np.ndarray], draws: Mapping[str, np.ndarray], ci: float) -> pd.DataFrame:
    """One row per point: the ``given`` columns (each (t,)), then for each of ``draws`` (each (s, t)) its
    posterior median and ``ci`` interval as ``name``, ``name_lo``, ``name_hi``."""
    rows = []
    for j in range(len(next(iter(given.values())))):
        row = {name: values[j] for name, values in given.items()}
        for name, values in draws.items():
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _interval(values[:, j], ci)
        rows.append(row)
    return pd.DataFrame(rows)


def _best(
    law: Law, draws: Mapping[str, np.ndarray], flops: np.ndarray, k: float, unique: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each draw's own optimal run at each budget (with ``unique`` tokens; None: unlimited): N, D and its
    expected loss, each (s, t)."""
    log_n, log_d = optimum(law, draws, flops, k, unique=unique)
    n, d = np.exp(log_n), np.exp(log_d)
    return n, d, losses(law, draws, n, d, k, unique)


def _budgets(flops: np.ndarray | list[float] | float) -> np.ndarray:
    """Compute budgets as float64 of shape (t,); one that is not a positive finite number is an error."""
    c = np.atleast_1d(np.asarray(flops, np.float64)).ravel()
    if not np.all(np.isfinite(c) & (c > 0)):
        raise ValueError(f"compute budgets must be positive numbers of FLOP, got {flops!r}")
    return c


#: Budgets more than this many decades of compute below the smallest run get an ExtrapolationWarning (above the
#: largest run: :data:`~bayes_scaling.forecast.FAR`, as forecasts do).
BELOW = 1.0


def _outside(result: Result, flops: np.ndarray, what: str) -> None:
    """Warn (:class:`~bayes_scaling.ExtrapolationWarning`) of budgets far outside the runs' compute: more than
    :data:`BELOW` decades below the smallest run (a budget in money read as FLOP, say) or :data:`FAR` above the
    largest."""
    runs = result.data()
    if "C" not in runs.columns or not np.isfinite(runs["C"].to_numpy(np.float64)).all():
        return
    low, high = float(runs["C"].min()), float(runs["C"].max())
    below = [c for c in np.atleast_1d(flops) if np.log10(low / c) > BELOW]
    above = [c for c in np.atleast_1d(flops) if np.log10(c / high) > FAR]
    said = [f"{c:.3g} FLOP, {np.log10(low / c):.1f} decades below the smallest run ({low:.3g})" for c in below]
    said += [f"{c:.3g} FLOP, {np.log10(c / high):.1f} decades beyond the largest run ({high:.3g})" for c in above]
    if said:
        warnings.warn(
            f"{what} far outside the runs: {'; '.join(said)}. The law was not checked there: read the allocation "
            "as its arithmetic (a budget in money needs prices: price per FLOP, per parameter, per token)",
            ExtrapolationWarning,
            stacklevel=3,
        )


def _median_params(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plug-in point estimate: each parameter's posterior median, as a single draw."""
    return {name: np.array([np.median(v)]) for name, v in params.items()}


def frontier(
    result: Result,
    flops: np.ndarray | list[float] | float,
    *,
    k: float = FLOPS_PER_PARAM_TOKEN,
    ci: float = 0.9,
    group: str | None = None,
) -> pd.DataFrame:
    """Posterior of the compute-optimal frontier at each budget.

    Parameters
    ----------
    result : a fit of a law of N and D.
    flops : compute budgets C in FLOP, shape (t,).
    ci : central credible level of the ``*_lo`` / ``*_hi`` columns.

    Returns
    -------
    DataFrame, one row per budget: ``C``, then median, lower and upper bound of
    ``N_opt``, ``D_opt``, ``tokens_per_param`` (D_opt / N_opt) and ``loss_opt``
    (the frontier loss L*(C)), each over the posterior draws.
    """
    flops = _budgets(flops)
    _outside(result, flops, "budgets")
    n, d, loss = _best(result.law, result.draws(group), flops, k)
    return _table({"C": flops}, {"N_opt": n, "D_opt": d, "tokens_per_param": d / n, "loss_opt": loss}, ci)


def overtrained(
    result: Result,
    flops: np.ndarray | list[float] | float,
    tokens_per_param: np.ndarray | list[float] | float,
    *,
    k: float = FLOPS_PER_PARAM_TOKEN,
    ci: float = 0.9,
    group: str | None = None,
    most: float = 1000.0,
) -> pd.DataFrame:
    """The price of training past the compute-optimal ratio: loss and compute along a fixed M = D/N.

    For each budget C and ratio M (every pair), the run N = sqrt(C / (k·M)), D = M·N; its
    expected loss; the extra loss over each draw's compute-optimal run at the same C; and the
    compute multiplier: how much more compute a run at ratio M needs to reach the loss of the
    compute-optimal run at C (per draw, by bisection on log C over up to ``most`` times C;
    draws that need more report ``most``). Gadre et al. (2024) study such over-trained runs.

    Returns
    -------
    DataFrame, one row per (C, M): ``C``, ``tokens_per_param``, ``N``, ``D``, then median, lower and
    upper bound of ``loss``, ``loss_opt`` (the compute-optimal loss at C), ``extra_loss`` and
    ``compute_multiplier``, each over the posterior draws (``ci`` central intervals).
    """
    grids = np.meshgrid(np.atleast_1d(flops), np.atleast_1d(tokens_per_param), indexing="ij")
    c, m = (np.asarray(a, np.float64).ravel() for a in grids)
    n, d = at_ratio(c, m, k)
    loss, best, multiplier = _overtrained(result.law, result.draws(group), n, d, c, k, most)
    given = {"C": c, "tokens_per_param": m, "N": n, "D": d}
    summaries = {"loss": loss, "loss_opt": best, "extra_loss": loss - best, "compute_multiplier": multiplier}
    return _table(given, summaries, ci)


def _overtrained(
    law: Law, draws: Mapping[str, np.ndarray], n: np.ndarray, d: np.ndarray, c: np.ndarray, k: float, most: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw (s, t): the loss of runs (n, d) of compute c (at a ratio d/n), the compute-optimal loss at c, and
    the compute multiplier (along the same ratio, N and D each grow as the square root of compute)."""
    loss = losses(law, draws, n, d, k)
    best = _best(law, draws, c, k)[2]
    # Bisection on u = log(C'/C) in [0, log most]: the loss along ratio M falls as compute grows.
    lo, hi = np.zeros_like(loss), np.full_like(loss, np.log(most))
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        grow = np.exp(0.5 * mid)
        reached = losses(law, draws, n * grow, d * grow, k) <= best
        lo, hi = np.where(reached, lo, mid), np.where(reached, mid, hi)
    return loss, best, np.exp(hi)


def constrained(
    result: Result,
    flops: np.ndarray | list[float] | float,
    unique_tokens: np.ndarray | list[float] | float,
    *,
    k: float = FLOPS_PER_PARAM_TOKEN,
    ci: float = 0.9,
    group: str | None = None,
) -> pd.DataFrame:
    """Allocation of compute C when only U unique tokens exist: the best model size and number of epochs.

    For every pair of budget C and unique tokens U, per posterior draw, the N that minimizes the
    expected loss with D = C / (k·N) tokens seen over D / U epochs (a fit of a law that reads
    unique tokens, such as ``data-constrained``: repeated tokens are worth less; a law that does
    not read them gives the unlimited answer). Muennighoff et al. (2023) ask this question.

    Returns
    -------
    DataFrame, one row per (C, U): ``C``, ``unique_tokens``, then median, lower and upper bound of
    ``N_opt``, ``D_opt``, ``epochs`` (D_opt / U), ``tokens_per_param``, ``loss_opt`` (the best loss with
    U unique tokens) and ``loss_unlimited`` (the compute-optimal loss with unlimited fresh data).
    """
    grids = np.meshgrid(_budgets(flops), np.atleast_1d(unique_tokens), indexing="ij")
    c, u = (np.asarray(a, np.float64).ravel() for a in grids)
    if not np.all(u > 0):
        raise ValueError("compute budgets and unique tokens must be positive")
    draws = result.draws(group)
    n, d, loss = _best(result.law, draws, c, k, u)
    warn_repeats(result.law, u, np.median(d, axis=0), "allocation", "budget(s)")  # the unlimited answer
    unlimited = _best(result.law, draws, c, k)[2]
    summaries = {"N_opt": n, "D_opt": d, "epochs": d / u, "tokens_per_param": d / n, "loss_opt": loss}
    return _table({"C": c, "unique_tokens": u}, {**summaries, "loss_unlimited": unlimited}, ci)


def exponents(
    result: Result, *, ci: float = 0.9, k: float = FLOPS_PER_PARAM_TOKEN, group: str | None = None
) -> pd.DataFrame:
    """Posterior of the allocation exponents: N_opt ∝ C**a and D_opt ∝ C**b.

    The slope of log N_opt between 1e18 and 1e26 FLOP, per draw: for the Chinchilla law
    exactly ``a = beta / (alpha + beta)`` and ``b = alpha / (alpha + beta)``.

    Returns
    -------
    DataFrame indexed by ``a`` and ``b`` with columns ``median``, ``lo``, ``hi``.
    """
    log_n, _ = optimum(result.law, result.draws(group), np.array([1e18, 1e26]), k)
    a = (log_n[:, 1] - log_n[:, 0]) / np.log(1e8)
    return pd.DataFrame([_interval(a, ci), _interval(1 - a, ci)], index=["a", "b"], columns=["median", "lo", "hi"])


def decide(
    result: Result,
    flops: float,
    *,
    k: float = FLOPS_PER_PARAM_TOKEN,
    ci: float = 0.9,
    grid: int = 801,
    group: str | None = None,
    unique_tokens: float | None = None,
) -> pd.DataFrame:
    """Allocations of one budget under uncertainty, with their expected regret.

    Choices: ``bayes`` (minimizes the posterior expected loss), ``plug-in`` (optimal
    for the posterior-median parameters), ``20 tokens/param`` (Chinchilla's rule of
    thumb). The regret of a choice is, per draw, its loss minus the loss of that
    draw's own optimum: never negative; reported as mean and ``ci`` interval.
    With ``unique_tokens`` U (data limited; see :func:`constrained`), every loss counts
    tokens beyond U as repeats, and two more choices: ``one epoch`` (D = U) and
    ``ignoring the limit`` (the compute-optimal split for unlimited data, trained on
    repeats).

    Returns
    -------
    DataFrame indexed by choice: ``N``, ``D``, ``tokens_per_param``, ``expected_loss``,
    ``regret_mean``, ``regret_lo``, ``regret_hi`` (and ``epochs`` with ``unique_tokens``).
    """
    law, draws = result.law, result.draws(group)
    c = _budgets(flops)
    if len(c) != 1:
        raise ValueError(f"decide takes one compute budget, got {len(c)}")
    _outside(result, c, "the budget")
    u = None if unique_tokens is None else np.array([float(unique_tokens)])
    if u is not None and not u[0] > 0:
        raise ValueError(f"unique tokens must be positive, got {unique_tokens}")
    log_n, log_d = optimum(law, draws, c, k, unique=u)
    best = losses(law, draws, np.exp(log_n), np.exp(log_d), k, u)[:, 0]  # each draw at its own optimum
    plug_n, _ = optimum(law, _median_params(draws), c, k, unique=u)
    rule_n = np.sqrt(c / (k * 20.0))
    centre = np.median(log_n)
    candidates = np.concatenate([np.exp(np.linspace(centre - 1.2, centre + 1.2, grid)), np.exp(plug_n[0]), rule_n])
    expected = losses(law, draws, candidates, c[0] / (k * candidates), k, u).mean(axis=0)
    choices = {
        "bayes": candidates[np.argmin(expected)],
        "plug-in": float(np.exp(plug_n[0, 0])),
        "20 tokens/param": float(rule_n[0]),
    }
    if u is not None:
        warn_repeats(law, u, c / (k * choices["bayes"]), "allocation", "budget(s)")  # the unlimited answer
        choices["one epoch"] = c[0] / (k * u[0])
        choices["ignoring the limit"] = float(np.exp(np.median(optimum(law, draws, c, k)[0])))
    rows = {}
    for name, n in choices.items():
        d = c[0] / (k * n)
        loss = losses(law, draws, np.array([n]), np.array([d]), k, u)[:, 0]
        regret = loss - best
        lo, hi = np.quantile(regret, [(1 - ci) / 2, (1 + ci) / 2])
        rows[name] = {"N": n, "D": d, "tokens_per_param": d / n}
        if u is not None:
            rows[name]["epochs"] = d / u[0]
        rows[name] |= {
            "expected_loss": loss.mean(),
            "regret_mean": regret.mean(),
            "regret_lo": lo,
            "regret_hi": hi,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _cost_curve(
    budget: float, price_n: float, price_d: float, price_c: float, k: float, grid: int
) -> tuple[np.ndarray, np.ndarray]:
    """Allocations that spend exactly ``budget``: N on a log grid, D from the binding constraint.

    Loss falls in both N and D, so the cheapest-to-best allocation spends the whole budget:
    ``price_n·N + price_d·D + price_c·k·N·D = budget``.
    """
    if not budget > 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if min(price_n, price_d, price_c) < 0:
        raise ValueError("prices must not be negative")
    if not (price_n > 0 or price_c > 0) or not (price_d > 0 or price_c > 0):
        raise ValueError("prices leave N or D free: give a positive price per FLOP, or per parameter and per token")
    n = np.geomspace(1e3, 1e16, grid)
    d = (budget - price_n * n) / (price_d + price_c * k * n)
    keep = d >= 1.0
    return n[keep], d[keep]


def budget(
    result: Result,
    budget: float,
    *,
    price_n: float = 0.0,
    price_d: float = 0.0,
    price_c: float = 1.0,
    k: float = FLOPS_PER_PARAM_TOKEN,
    ci: float = 0.9,
    grid: int = 2001,
    group: str | None = None,
) -> pd.DataFrame:
    """Allocations that minimize the loss subject to ``price_n·N + price_d·D + price_c·C <= budget``.

    ``bayes`` minimizes the posterior expected loss over the allocations that spend
    the budget; ``plug-in`` minimizes the loss of the posterior-median parameters over
    the same allocations. With the default prices (1 per FLOP) the budget is a FLOP count.

    Returns
    -------
    DataFrame indexed by choice: ``N``, ``D``, ``C``, ``cost``, ``expected_loss`` and
    the median and ``ci`` interval of the loss (``loss``, ``loss_lo``, ``loss_hi``).
    """
    draws = result.draws(group)
    n, d = _cost_curve(budget, price_n, price_d, price_c, k, grid)
    if not n.size:
        raise ValueError(f"a budget of {budget:g} buys no allocation with at least 1e3 parameters and 1 token")
    loss = losses(result.law, draws, n, d, k)
    plug = losses(result.law, _median_params(draws), n, d, k)[0]
    rows = {}
    best = int(np.argmin(loss.mean(axis=0)))
    _outside(result, np.array([k * n[best] * d[best]]), f"a budget of {budget:g} buys compute")
    for name, i in (("bayes", best), ("plug-in", int(np.argmin(plug)))):
        med, lo, hi = _interval(loss[:, i], ci)
        c = k * n[i] * d[i]
        rows[name] = {
            "N": n[i],
            "D": d[i],
            "C": c,
            "cost": price_n * n[i] + price_d * d[i] + price_c * c,
            "expected_loss": loss[:, i].mean(),
            "loss": med,
            "loss_lo": lo,
            "loss_hi": hi,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def cheapest(
    result: Result,
    target_loss: float,
    *,
    prob: float = 0.9,
    price_n: float = 0.0,
    price_d: float = 0.0,
    price_c: float = 1.0,
    k: float = FLOPS_PER_PARAM_TOKEN,
    grid: int = 801,
    group: str | None = None,
) -> pd.Series:
    """The cheapest allocation whose loss is below ``target_loss`` with posterior probability ``prob``.

    Bisects on the budget (in log space): a budget suffices when some allocation that
    spends it reaches the target with probability at least ``prob``.

    Returns
    -------
    Series with ``N``, ``D``, ``C``, ``cost`` and ``prob`` (the probability reached).
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must lie in (0, 1), got {prob}")
    draws = result.draws(group)
    floor = result.law.irreducible
    if floor is not None and np.mean(draws[floor] < target_loss) < prob:
        raise ValueError(
            f"target loss {target_loss} lies below the irreducible loss {floor} with probability "
            f"{np.mean(draws[floor] >= target_loss):.2f}: no budget reaches it with probability {prob}"
        )

    def best(b: float) -> tuple[float, float, float]:
        n, d = _cost_curve(b, price_n, price_d, price_c, k, grid)
        if not n.size:
            return 0.0, np.nan, np.nan
        reach = (losses(result.law, draws, n, d, k) <= target_loss).mean(axis=0)
        i = int(np.argmax(reach))
        return reach[i], n[i], d[i]

    lo, hi = 0.0, 1.0
    while best(10.0**hi)[0] < prob:
        lo, hi = hi, hi + 4.0
        if hi > 60:
            raise ValueError(f"no budget below 1e60 reaches loss {target_loss} with probability {prob}")
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if best(10.0**mid)[0] >= prob:
            hi = mid
        else:
            lo = mid
    reach, n, d = best(10.0**hi)
    c = k * n * d
    _outside(result, np.array([c]), f"loss {target_loss:g} needs compute")
    return pd.Series({"N": n, "D": d, "C": c, "cost": price_n * n + price_d * d + price_c * c, "prob": reach})
