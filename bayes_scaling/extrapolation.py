"""Honest extrapolation: internal backtests, learned extrapolation-error scales, and backtests.

A posterior band of one law measures the parameters' uncertainty *under that law*.
Beyond the data the law itself may be wrong, and that error grows with distance.
The calibrated mode learns how fast from the fitted runs themselves:

1. internal backtests: for each input the law reads (``N`` and ``D`` for the
   Chinchilla law, ``C`` for a compute law), refit the law on the runs below the 50%
   and 70% quantiles of that input and forecast the rest; record each held-out run's
   residual in log loss, the scale of the plain predictive there, the reducible share
   ``1 - E/L`` of its forecast, and how many decades it lies beyond the refit's data
   along every input (:func:`distances`);
2. a small NumPyro model, fitted with NUTS, explains those residuals as
   ``r ~ StudentT(df, 0, sqrt(scale**2 + share**2 * sum_i kappa_i**2 * d_i))`` with
   ``kappa_i ~ HalfNormal(0.1)`` per input: the log of the reducible loss drifts away
   from the law as a random walk along each input, ``kappa_i`` its scale per square
   root of a decade beyond the data along input ``i``;
3. a calibrated forecast adds ``share * sqrt(sum_i kappa_i**2 * d_i) * z`` to the log
   loss of every draw (``z`` standard normal, ``d_i`` zero inside the data): bands
   inside the data are unchanged, bands beyond widen as fast as the law's own errors
   did when it was extrapolated before.

Why this form (each choice measured on the embedded Chinchilla runs, backtests at 1e20,
3e20 and 1e21 FLOP; see the README):

- per input: the held-out residuals of a compute cutoff track the token count
  (correlation -0.9). The data term is where the law bends; refits split by
  compute alone barely see it;
- "beyond the data" means no run is at least as large in every input: a run with
  more parameters *and* more tokens than any one run is an extrapolation even inside
  the range of each input on its own;
- times the reducible share: an error in a power-law term moves ``log L`` by its
  share of the loss, so where the loss has flattened towards ``E`` the same error in
  the law matters less. With this share, the ``kappa`` learned below each cutoff
  agrees (``benchmarks/bench_backtest.py`` prints it); without it, refits at small
  scale overstated the error at large scale;
- a random walk (variance linear in decades) rather than a constant error in the
  exponent (standard deviation linear in decades, this package's previous form): both
  fit the internal residuals (a model with both terms puts most weight on the linear
  one), but on the held-out runs the linear form's 90% bands covered 97%, 97% and 87%
  at the three cutoffs, too wide 2 decades out and too narrow 1 decade out, with 80%
  bands covering 61-94%; the random walk covers 94%, 95% and 87-91% (80% bands
  83-88%, 50% bands 49-51% at the two cutoffs with over 60 held-out runs). A free growth
  power (uniform on [0.5, 2]) was tried: the residuals reach too short a distance to
  pin it, and it traded off against ``kappa``.

Where the law is right, internal residuals match the plain bands, every ``kappa_i``
stays near zero, and the calibrated bands stay as sharp as the plain ones.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import scipy.special
import xarray as xr

from . import diagnostics
from .cache import Stored
from .data import Dataset
from .laws import Law, get_law
from .model import padded_length
from .priors import Spec
from .result import Result
from .sampler import Settings, health_program, whole

#: Fractions of the runs (ordered along each input) on which the internal backtests refit.
INTERNAL_SPLITS = (0.5, 0.7)

#: Prior scale of each ``kappa_i`` (HalfNormal): the standard deviation of the reducible
#: loss's log one decade beyond the data (about 10%), growing as the square root of distance.
KAPPA_SCALE = 0.1


def axis(result_or_data: Result | Dataset) -> str:
    """The extrapolation axis: compute ``C`` when known for every run, else the law's first input."""
    frame = result_or_data.data() if isinstance(result_or_data, Result) else result_or_data.frame
    if np.isfinite(frame["C"]).all():
        return "C"
    law = result_or_data.law if isinstance(result_or_data, Result) else None
    return law.inputs[0] if law is not None else "N"


def distance(result: Result, points: pd.DataFrame) -> np.ndarray:
    """Decades beyond the fitted runs along the extrapolation axis, zero inside their range; shape (t,)."""
    name = axis(result)
    reach = np.log10(result.data()[name].max())
    return np.maximum(np.log10(points[name].to_numpy(np.float64)) - reach, 0.0)


def distances(runs: pd.DataFrame, points: pd.DataFrame, inputs: Sequence[str]) -> np.ndarray:
    """Decades beyond the data along each input, shape (t, len(inputs)); zeros inside the data.

    A point lies inside the data when some run is at least as large in every input
    (more parameters *and* more tokens): the law has been seen working there. Otherwise
    its distance is the shortfall ``max(log10 x_i - log10 r_i, 0)`` to the run ``r`` that
    needs the smallest move (Euclidean, in decades) to reach it. With one input this is
    the decades beyond the largest run.
    """
    x = np.log10(points[list(inputs)].to_numpy(np.float64))  # (t, i)
    r = np.log10(runs[list(inputs)].to_numpy(np.float64))  # (n, i)
    gap = np.maximum(x[:, None, :] - r[None, :, :], 0.0)  # (t, n, i)
    nearest = np.argmin(np.sum(gap**2, axis=-1), axis=1)  # (t,)
    return gap[np.arange(len(x)), nearest]


def reducible(law: Law, draws: dict[str, np.ndarray], log_mean: np.ndarray) -> np.ndarray:
    """Share of the expected loss above the irreducible ``E``: ``1 - E / L`` per draw and point, shape (s, t).

    ``draws`` holds s posterior draws, ``log_mean`` (s, t) the log expected loss.
    Laws without ``E`` have share 1. The law's error lives in its power-law terms: an
    exponent off by ``k`` moves the log of the reducible loss by ``k * ln(10)`` per
    decade, and ``log L`` by that times this share, so where the loss has flattened
    towards ``E`` the same error in the law matters less.
    """
    if "E" not in law.params:
        return np.ones_like(log_mean)
    return np.clip(1.0 - draws["E"][:, None] * np.exp(-log_mean), 0.0, 1.0)


def _kappa_model(data: dict) -> None:
    """Residuals of internal backtests (rows padded to a power of two, masked)."""
    with numpyro.plate("input", data["reach"].shape[-1]):
        kappa = numpyro.sample("kappa", dist.HalfNormal(KAPPA_SCALE))
    growth = jnp.sum(kappa**2 * data["reach"], axis=-1)  # random walk: variance grows linearly
    scale = jnp.sqrt(data["scale"] ** 2 + data["share"] ** 2 * growth)
    with numpyro.handlers.mask(mask=data["mask"] > 0):
        numpyro.sample("r", dist.StudentT(data["df"], 0.0, scale), obs=data["residual"])


def _kappa_start(data: dict, key: jax.Array) -> dict:
    """Start the mode search at ``kappa`` 0.02 along every input."""
    return {"kappa": jnp.full(data["reach"].shape[-1], jnp.log(0.02))}


#: The compiled sampler of the kappa model and its convergence statistics, one per sampler settings.
_KAPPA: dict[Settings, tuple[Stored, Stored]] = {}
_KAPPA_LOCK = threading.Lock()


def internal_backtests(
    data: Dataset, law: Law, spec: Spec, settings: Settings, seed: int, prior_draws: int, pool: Executor
) -> Callable[[], pd.DataFrame]:
    """Start the refits on the lower 50% and 70% of the runs along each input; return ``collect()``.

    The refits (each with its forecast of the held-out runs) run in ``pool``'s threads,
    beside whatever the caller does meanwhile (:func:`bayes_scaling.fit` runs the main fit):
    compiled JAX programs release Python's lock, so on a machine with several cores they
    run at once. Every refit is padded to the full fit's length, so all of them reuse its
    compiled sampler. ``collect()`` waits for them, warns (in the caller's thread) of any
    refit that did not converge, and returns the table.

    Returns
    -------
    ``collect() -> DataFrame``, one row per held-out run, input and split: ``input`` (the
    input split on), ``split``, ``residual`` (log loss minus the median forecast),
    ``scale`` (the plain predictive's Student-t scale for a new run, from its quartiles),
    ``reducible`` (posterior median share of the expected loss above ``E``),
    ``d_<input>`` for every input of the law (decades beyond the refit's data along it,
    :func:`distances`).
    """
    splits = []
    for name in law.inputs:
        values = data.frame[name].to_numpy()
        for q in INTERNAL_SPLITS:
            train = values <= np.quantile(values, q)
            if train.sum() >= 3 * law.min_runs and (~train).sum() >= 1:
                splits.append((name, q, train))  # else too few runs to refit (three per parameter, sigma and one)
    if not splits:
        raise ValueError(f"{data.source}: too few runs for internal backtests")
    common = (data, law, spec, settings, seed, prior_draws)
    pending = [pool.submit(_internal_backtest, *common, *split) for split in splits[:2]]
    # Queued after the first refits, which read the sampler programs: reading the kappa programs
    # then overlaps with their sampling instead of delaying the reading of those programs.
    held_out = sum(int((~train).sum()) for _, _, train in splits)
    ready = pool.submit(_prepare_kappa, held_out, law.inputs, spec.df, settings.chains, settings.draws)
    pending += [pool.submit(_internal_backtest, *common, *split) for split in splits[2:]]

    def collect() -> pd.DataFrame:
        done = [p.result() for p in pending]
        ready.result()
        failed = [
            f"lower {q:.0%} by {name}: {problems[0]}"
            for (name, q, _), (_, problems) in zip(splits, done, strict=True)
            if problems
        ]
        if failed:
            warnings.warn(
                f"{data.source}: the sampler did not converge in some internal backtest refits "
                f"({'; '.join(failed)}). The fit itself is not affected; the learned extrapolation error "
                "(kappa) partly rests on them",
                diagnostics.ConvergenceWarning,
                stacklevel=3,
            )
        return pd.concat([rows for rows, _ in done], ignore_index=True)

    return collect


def _internal_backtest(
    data: Dataset,
    law: Law,
    spec: Spec,
    settings: Settings,
    seed: int,
    prior_draws: int,
    name: str,
    q: float,
    train: np.ndarray,
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Refit on the runs ``train`` (the lower ``q`` by ``name``) and forecast the rest.

    Returns the held-out runs' rows of the :func:`internal_backtests` table, and the refit's problems.
    """
    from .fit import fit_one  # a refit is a fit: import here, fit imports this module
    from .forecast import draws_at

    part = data.subset(train)
    part = Dataset(part.frame, f"{data.source} (internal backtest, lower {q:.0%} by {name})", part.columns)
    refit = fit_one(part, law, spec, settings, seed, prior_draws, padded_length(len(data)))
    points = data.frame[~train].reset_index(drop=True)
    loss, run = draws_at(refit, points, seed=int(q * 100), mode="plain")
    log_run = np.log(run)
    quartiles = np.quantile(log_run, [0.25, 0.75], axis=0)
    share = reducible(law, refit.draws(), np.log(loss))
    rows = {
        "input": name,
        "split": q,
        "residual": np.log(points["loss"].to_numpy()) - np.median(log_run, axis=0),
        "scale": (quartiles[1] - quartiles[0]) / (2 * scipy.special.stdtrit(spec.df, 0.75)),
        "reducible": np.median(share, axis=0),
    }
    reach = distances(data.frame[train], points, law.inputs)
    rows.update({f"d_{k}": reach[:, j] for j, k in enumerate(law.inputs)})
    return pd.DataFrame(rows), refit.problems


def fit_kappa(table: pd.DataFrame, df: float, chains: int, draws: int, seed: int) -> np.ndarray:
    """Posterior draws of ``kappa``, shape (chains, draws, inputs), by NUTS (one cached compiled program).

    The residuals of the internal backtests (``table``) are Student-t with ``df``
    degrees of freedom and scale ``sqrt(scale**2 + share**2 * sum_i kappa_i**2 * d_i)``. A sampler
    that did not converge raises a :class:`~bayes_scaling.diagnostics.ConvergenceWarning`.
    """
    settings = _kappa_settings(chains, draws)
    run, health = _kappa_programs(settings)
    out = run(jax.random.key(seed), _kappa_data(table, df))
    names = [f"kappa_{name[2:]}" for name in table.columns if name.startswith("d_")]
    checks = health(out["samples"], out["stats"])
    found = diagnostics.report(jax.tree.map(lambda a: a[None], checks), names, settings.max_tree_depth)
    diagnostics.warn(found[0], "fit of the extrapolation error (kappa)")
    return np.asarray(out["samples"]["kappa"], np.float64)


def _kappa_programs(settings: Settings) -> tuple[Stored, Stored]:
    """The compiled sampler of the kappa model and its convergence statistics, one per sampler settings."""
    with _KAPPA_LOCK:
        if settings not in _KAPPA:
            run = whole(_kappa_model, _kappa_start, settings, f"kappa {settings}")
            _KAPPA[settings] = (run, health_program(("kappa",), settings))
        return _KAPPA[settings]


def _kappa_settings(chains: int, draws: int) -> Settings:
    """Sampler settings of the kappa model: the fit's chains and draws, 500 warm-up iterations."""
    return Settings(chains=chains, warmup=500, draws=draws)


def _prepare_kappa(rows: int, inputs: Sequence[str], df: float, chains: int, draws: int) -> None:
    """Read and compile the kappa programs for a table of ``rows`` rows, without running them."""
    run, health = _kappa_programs(_kappa_settings(chains, draws))
    blank = pd.DataFrame(
        0.0, index=range(rows), columns=["residual", "scale", "reducible", *(f"d_{k}" for k in inputs)]
    )
    args = (jax.ShapeDtypeStruct((), jax.random.key(0).dtype), _kappa_data(blank, df))
    out = run.shapes(*args)
    run.prepare(*args)
    health.prepare(out["samples"], out["stats"])


def _kappa_data(table: pd.DataFrame, df: float) -> dict[str, np.ndarray]:
    """The kappa model's data: the table's columns, float32, rows padded (and masked) to a power of two."""
    reach = table[[c for c in table.columns if c.startswith("d_")]].to_numpy(np.float64)
    n, size = len(table), padded_length(len(table), 256)  # one compilation per power of two (rows cost time)

    def pad(values: np.ndarray, fill: float) -> np.ndarray:
        return np.concatenate([values, np.full((size - n, *values.shape[1:]), fill)]).astype(np.float32)

    return {
        "residual": pad(table["residual"].to_numpy(np.float64), 0.0),
        "scale": pad(table["scale"].to_numpy(np.float64), 1.0),
        "share": pad(table["reducible"].to_numpy(np.float64), 0.0),
        "reach": pad(reach, 0.0),
        "mask": pad(np.ones(n), 0.0),
        "df": np.float32(df),
    }


def attach(result: Result, kappa: np.ndarray, table: pd.DataFrame) -> Result:
    """A copy of ``result`` whose InferenceData holds the ``extrapolation`` group.

    The group holds ``kappa`` (chain, draw, input) and the internal backtests'
    ``internal_residual``, ``internal_scale``, ``internal_reducible``, ``internal_split``,
    ``internal_input`` (the input split on) and ``internal_distance`` (internal_run, input).
    """
    inputs = list(result.law.inputs)
    group = xr.Dataset(
        {
            "kappa": (("chain", "draw", "input"), kappa),
            "internal_residual": ("internal_run", table["residual"].to_numpy(np.float64)),
            "internal_scale": ("internal_run", table["scale"].to_numpy(np.float64)),
            "internal_reducible": ("internal_run", table["reducible"].to_numpy(np.float64)),
            "internal_split": ("internal_run", table["split"].to_numpy(np.float64)),
            "internal_input": ("internal_run", table["input"].to_numpy(str)),
            "internal_distance": (("internal_run", "input"), table[[f"d_{k}" for k in inputs]].to_numpy(np.float64)),
        },
        coords={
            "chain": np.arange(kappa.shape[0]),
            "draw": np.arange(kappa.shape[1]),
            "input": inputs,
        },
    )
    return result.with_group("extrapolation", group)


def calibrated(result: Result) -> bool:
    """Whether the fit learned an extrapolation error (the calibrated mode is available)."""
    return "extrapolation" in result.groups()


def error_scale(result: Result, points: pd.DataFrame, share: np.ndarray) -> np.ndarray:
    """Scale of the extrapolation error of log loss at each point, per draw, shape (s, t).

    ``share * sqrt(sum_i kappa_i**2 * d_i)`` with ``d_i`` the decades beyond the data
    along input ``i`` (:func:`distances`; zero inside) and ``share`` (s, t) the reducible
    share of the expected loss (:func:`reducible`); the draws of ``kappa`` are recycled
    to the posterior's number of draws.
    """
    group = result.group("extrapolation")
    size = result.group("posterior").sizes["chain"] * result.group("posterior").sizes["draw"]
    inputs = [str(k) for k in group["input"].to_numpy()]
    kappa = group["kappa"].to_numpy().reshape(-1, len(inputs))
    k = kappa[np.resize(np.arange(len(kappa)), size)].astype(np.float64)  # (s, i)
    reach = distances(result.data(), points, inputs)  # (t, i)
    return share * np.sqrt(np.sum(k[:, None, :] ** 2 * reach[None, :, :], axis=-1))


def interval_score(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float) -> np.ndarray:
    """Interval score of central ``level`` intervals (Gneiting and Raftery 2007); lower is better.

    ``(hi - lo) + 2/a * (lo - y) * [y < lo] + 2/a * (y - hi) * [y > hi]`` with ``a = 1 - level``.
    """
    a = 1.0 - level
    return (hi - lo) + 2 / a * np.maximum(lo - y, 0) + 2 / a * np.maximum(y - hi, 0)


@dataclass(frozen=True)
class Backtest:
    """Backtest results.

    Attributes
    ----------
    table : one row per cutoff and mode: ``cutoff``, ``mode``, ``distance_decades``
        (how far the largest held-out run lies beyond the cutoff), ``n_train``,
        ``n_test``, ``coverage_50``, ``coverage_80``, ``coverage_90`` (share of held-out
        runs inside the band of a new run), ``median_abs_rel_error`` (of the median
        forecast), ``interval_score_90`` (mean, in nats/token; lower is better); calibrated
        rows add ``kappa_<input>``, the posterior median of the learned error scale
        (per square root of a decade).
    runs : one row per held-out run, cutoff and mode: its inputs, the realized
        ``loss``, the forecast ``run_median`` and 90% band.
    """

    table: pd.DataFrame
    runs: pd.DataFrame


def backtest(
    data: Dataset,
    law: str = "chinchilla",
    cutoffs: Sequence[float] = (1e20, 3e20, 1e21),
    *,
    levels: Sequence[float] = (0.5, 0.8, 0.9),
    seed: int = 0,
    calibrate: bool = True,
    **fit_kwargs: object,
) -> Backtest:
    """Fit below each cutoff, forecast the runs above it, and score plain and calibrated forecasts.

    Parameters
    ----------
    data : the runs (a Dataset, DataFrame or path, as for :func:`bayes_scaling.fit`).
    law : the law to backtest.
    cutoffs : cutoffs along the extrapolation axis (compute, FLOP, where known).
    levels : band levels whose coverage is reported; 0.9 is always scored.
    calibrate : score the calibrated mode beside the plain one (False: plain only, one
        fit per cutoff instead of three).
    fit_kwargs : passed to :func:`bayes_scaling.fit` (chains, warmup, draws, priors, ...).

    Returns
    -------
    :class:`Backtest`.
    """
    from .fit import as_dataset, fit
    from .forecast import bands, draws_at

    law = get_law(law)
    data = as_dataset(data, law)
    name = axis(data)
    values = data.frame[name].to_numpy()
    levels = sorted(set(levels) | {0.9})
    rows, details = [], []
    for cutoff in cutoffs:
        train, test = values < cutoff, values >= cutoff
        if train.sum() < law.min_runs or test.sum() < 1:
            raise ValueError(f"{data.source}: cutoff {cutoff:g} leaves {train.sum()} runs to fit, {test.sum()} to test")
        result = fit(data.subset(train), law, calibrate=calibrate, seed=seed, **fit_kwargs)
        points = data.frame[test].reset_index(drop=True)
        y = points["loss"].to_numpy()
        for mode in ("plain", "calibrated") if calibrate else ("plain",):
            band = bands(points, *draws_at(result, points, seed=seed, mode=mode), levels)
            row = {
                "cutoff": cutoff,
                "mode": mode,
                "distance_decades": float(np.log10(values[test].max() / cutoff)),
                "n_train": int(train.sum()),
                "n_test": int(test.sum()),
            }
            for level in levels:
                s = f"{100 * level:g}"
                row[f"coverage_{s}"] = float(np.mean((band[f"run_lo{s}"] <= y) & (y <= band[f"run_hi{s}"])))
            row["median_abs_rel_error"] = float(np.median(np.abs(band["run_median"] / y - 1)))
            row["interval_score_90"] = float(np.mean(interval_score(y, band["run_lo90"], band["run_hi90"], 0.9)))
            if mode == "calibrated" and calibrated(result):
                kappa = result.group("extrapolation")["kappa"].median(("chain", "draw"))
                row.update({f"kappa_{k}": float(kappa.sel(input=k)) for k in law.inputs})
            rows.append(row)
            details.append(band[[name, "loss", "run_median", "run_lo90", "run_hi90"]].assign(cutoff=cutoff, mode=mode))
    return Backtest(pd.DataFrame(rows), pd.concat(details, ignore_index=True))
