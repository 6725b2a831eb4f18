"""The extrapolation-error model of the calibrated mode: learned from internal backtests, used by forecasts.

A posterior band of one law measures the parameters' uncertainty *under that law*.
Beyond the data the law itself may be wrong, and that error grows with distance.
The calibrated mode learns how fast from the fitted runs themselves:

1. internal backtests (run by :func:`bayes_scaling.fit`): for each input the law reads
   (``N`` and ``D`` for the Chinchilla law, ``C`` for a compute law), refit the law on the
   runs below the 50% and 70% quantiles of that input and forecast the rest; record each
   held-out run's residual in log loss, the scale of the plain predictive there, the
   reducible share ``1 - E/L`` of its forecast, and how many decades it lies beyond the
   refit's data along every input (:func:`bayes_scaling._geometry.beyond`): an
   :class:`Evidence` table;
2. a small model (:func:`fit_kappa`; one or two parameters, so its posterior is computed on a
   grid, :func:`_grid_posterior`, not sampled) explains those residuals as
   ``r ~ StudentT(df, 0, sqrt(scale**2 + share**2 * sum_i kappa_i**2 * d_i))`` with
   ``kappa_i`` per input from the prior learned across studies (``[extrapolation]`` in the
   law's TOML; else ``HalfNormal(0.1)``): the log of the reducible loss drifts away
   from the law as a random walk along each input, ``kappa_i`` its scale per square
   root of a decade beyond the data along input ``i``. The held-out runs of one refit
   share that refit's misfit, so each refit's rows weigh as :data:`PER_REFIT`
   independent ones (:func:`weights`): a sweep's own backtests update the prior
   without overruling it;
3. a calibrated forecast adds ``share * sqrt(sum_i kappa_i**2 * d_i) * z`` to the log
   loss of every draw (:func:`error_scale`; ``z`` standard normal, ``d_i`` zero inside the
   data): bands inside the data are unchanged, bands beyond widen as fast as the law's
   own errors did when it was extrapolated before.

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

import contextlib
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ._geometry import beyond
from ._lazy import Lazy
from ._model import Target, padded_length
from ._sampler import Settings, sample
from .diagnostics import Health, Stats, assess, check
from .laws import Law
from .priors import Spec
from .result import Result

numpyro = Lazy("numpyro")
dist = Lazy("numpyro.distributions")

#: Fractions of the runs (ordered along each input) on which the internal backtests refit.
INTERNAL_SPLITS = (0.5, 0.7)

#: Prior scale of each ``kappa_i`` (HalfNormal): the standard deviation of the reducible
#: loss's log one decade beyond the data (about 10%), growing as the square root of distance.
KAPPA_SCALE = 0.1
#: That prior as the kappa model reads it (:func:`kappa_prior`): ``(0, scale, 0)``, a HalfNormal.
_HALFNORMAL = (0.0, KAPPA_SCALE, 0.0)

#: The weight of one refit's held-out runs in the kappa likelihood, as this many independent rows (:func:`weights`).
PER_REFIT = 8.0


class Evidence(NamedTuple):
    """The internal backtests' held-out runs, m rows: what the extrapolation error is learned from.

    Attributes
    ----------
    inputs : the law's inputs, the columns of ``reach``.
    split_on : the input each row's refit split the runs on, shape (m,).
    split : the share of runs that refit kept, shape (m,).
    residual : log loss minus the refit's median forecast of a new run, shape (m,).
    scale : the plain predictive's Student-t scale for a new run there, shape (m,).
    share : posterior median reducible share ``1 - E/L`` of the forecast, shape (m,).
    reach : decades beyond the refit's runs along each input, shape (m, len(inputs)).
    """

    inputs: tuple[str, ...]
    split_on: np.ndarray
    split: np.ndarray
    residual: np.ndarray
    scale: np.ndarray
    share: np.ndarray
    reach: np.ndarray

    @classmethod
    def empty(cls, inputs: tuple[str, ...]) -> Evidence:
        """No rows: a fit whose ``kappa`` comes from its prior alone."""
        return cls(tuple(inputs), *(np.zeros(0) for _ in range(5)), np.zeros((0, len(inputs))))

    @classmethod
    def concatenate(cls, parts: list[Evidence]) -> Evidence:
        return cls(parts[0].inputs, *(np.concatenate(a) for a in list(zip(*parts, strict=True))[1:]))

    @property
    def rows(self) -> int:
        return len(self.residual)


def weights(evidence: Evidence, study: np.ndarray | None = None, per_refit: float | None = None) -> np.ndarray:
    """Each row's weight in the kappa likelihood: ``min(1, per_refit / n)`` for the n held-out rows of one refit.

    The held-out runs of one refit are not independent draws of the extrapolation error: they
    are points of one misfit of the law, shared by neighbours (on the embedded runs the residuals
    of a refit split on N scatter, but their mean moves with the refit). Counted as independent,
    a few hundred rows of four refits would swamp any prior of ``kappa`` (a sweep's own evidence
    would overrule what other studies showed). Weighted, each refit counts as
    ``per_refit`` (:data:`PER_REFIT`) rows: a power likelihood, in which refits count alike
    (not by their number of held-out runs) and the posterior is wider, so the prior keeps a say.
    The rows of a refit are those of one study (``study``), input split on and share kept.
    """
    per_refit = PER_REFIT if per_refit is None else per_refit
    study = np.zeros(evidence.rows, int) if study is None else np.asarray(study)
    keys = pd.MultiIndex.from_arrays([study, np.asarray(evidence.split_on, str), np.asarray(evidence.split, float)])
    codes, _ = pd.factorize(keys)
    counts = np.bincount(codes)[codes]  # each row's refit's rows (at least the row itself)
    return np.minimum(1.0, per_refit / counts)


class KappaData(NamedTuple):
    """The population model's data (:func:`learn_population`), float32, rows padded (weight 0) to a power of two.

    ``prior`` (studies, 3): one row per study, of which the model reads only the count (a static shape; a
    single fit's kappa prior, :func:`kappa_prior`, is read by the NumPy grid, :func:`fit_kappa`, instead).
    ``weight`` (rows,): each row's weight in the likelihood (:func:`weights`; 0 for padding). ``study``
    (rows,): each row's study.
    """

    residual: jax.Array
    scale: jax.Array
    share: jax.Array
    reach: jax.Array
    weight: jax.Array
    df: jax.Array
    prior: jax.Array
    study: jax.Array


with contextlib.suppress(ValueError):  # already registered (a reloaded module)
    jax.export.register_namedtuple_serialization(KappaData, serialized_name="bayes_scaling.KappaData")


def reducible(law: Law, draws: dict[str, np.ndarray], log_mean: np.ndarray) -> np.ndarray:
    """Share of the expected loss above the irreducible loss: ``1 - E / L`` per draw and point, shape (s, t).

    ``draws`` holds s posterior draws, ``log_mean`` (s, t) the log expected loss.
    Laws without an irreducible term have share 1. The law's error lives in its power-law
    terms: an exponent off by ``k`` moves the log of the reducible loss by ``k * ln(10)``
    per decade, and ``log L`` by that times this share, so where the loss has flattened
    towards ``E`` the same error in the law matters less.
    """
    if law.irreducible is None:
        return np.ones_like(log_mean)
    return np.clip(1.0 - draws[law.irreducible][:, None] * np.exp(-log_mean), 0.0, 1.0)


def kappa_prior(spec: Spec, inputs: tuple[str, ...]) -> np.ndarray:
    """The prior of ``kappa`` along each input as the kappa model reads it, float32 of shape (inputs, 3).

    ``spec.extrapolation``'s prior where it names the input (learned across real studies), else
    ``HalfNormal(KAPPA_SCALE)``.
    """
    rows = []
    for name in inputs:
        prior = spec.extrapolation.get(name)
        if prior is None:
            rows.append(_HALFNORMAL)
            continue
        args = dict(prior.args)
        rows.append((1.0, args["loc"], args["scale"]) if prior.dist == "lognormal" else (0.0, args["scale"], 0.0))
    return np.asarray(rows, np.float32).reshape(len(inputs), 3)


def sample_prior(prior: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Draws of ``kappa`` from its prior alone (:func:`kappa_prior`), float64 of shape (*shape, inputs)."""
    z = np.random.default_rng(seed).standard_normal((*shape, len(prior)))
    lognormal, a, b = (prior[:, j].astype(np.float64) for j in range(3))
    return np.where(lognormal > 0, np.exp(a + b * z), np.abs(a * z))


def _log_likelihood(data: KappaData, kappa: jax.Array) -> jax.Array:
    """The weighted log density of the residuals given ``kappa`` ((inputs,), or (rows, inputs) per row): the
    random walk beyond the data (variance growing linearly with the decades ``reach``)."""
    growth = jnp.sum(kappa**2 * data.reach, axis=-1)
    scale = jnp.sqrt(data.scale**2 + data.share**2 * growth)
    return jnp.sum(data.weight * dist.StudentT(data.df, 0.0, scale).log_prob(data.residual))


#: The range of ``log kappa`` the grid posterior searches: kappa from 1e-6 (no drift any forecast could show) to
#: 10 (the log loss drifting by a factor e^10 per square root of a decade); a posterior reaching towards the
#: upper end fails its check (:data:`EDGE`).
LOG_KAPPA = (float(np.log(1e-6)), float(np.log(10.0)))
#: Grid points per input and pass, by number of inputs (at most 4096 points a pass).
GRID_POINTS = {1: 512, 2: 64, 3: 16}
#: Passes: each zooms onto the cells within :data:`SUPPORT` of the densest one (plus a cell on each side).
GRID_PASSES = 3
#: Cells whose log density is within this of the densest hold all but about e^-25 of the posterior.
SUPPORT = 25.0


def _log_posterior(u: np.ndarray, evidence: Evidence, w: np.ndarray, df: float, prior: np.ndarray) -> np.ndarray:
    """The log posterior density of ``u = log kappa`` at points ``u`` (p, inputs), shape (p,).

    The prior of :func:`kappa_prior` (LogNormal or HalfNormal along each input) with the Jacobian of
    ``kappa = exp(u)``, and the likelihood of :func:`_log_likelihood` (its JAX form, which the population model
    samples with NUTS) written out in NumPy: the rows' terms in float32, in blocks of points small enough to stay
    in cache.
    """
    lognormal = prior[:, 0] > 0
    s = np.where(lognormal, prior[:, 2], prior[:, 1]).astype(np.float64)
    kappa = np.exp(u)
    log_prior = np.where(  # with the Jacobian: a LogNormal's density in log kappa is a Normal's
        lognormal, -((u - prior[:, 1]) ** 2) / (2 * s**2), np.log(2.0) - kappa**2 / (2 * s**2) + u
    )
    lp = np.sum(log_prior - np.log(s) - 0.5 * np.log(2 * np.pi), -1)
    r2, s2, h2 = (np.asarray(a, np.float32) ** 2 for a in (evidence.residual, evidence.scale, evidence.share))
    reach, k2, w32 = np.asarray(evidence.reach, np.float32), (kappa**2).astype(np.float32), w.astype(np.float32)
    block = max(1, 2**18 // max(1, len(r2)))
    for lo in range(0, len(u), block):
        growth = sum(k2[lo : lo + block, i, None] * reach[None, :, i] for i in range(reach.shape[1]))
        v = s2 + h2 * growth  # (block, rows): each row's Student-t scale, squared
        lp[lo : lo + block] += (-0.5 * np.log(v) - (df + 1) / 2 * np.log1p(r2 / (df * v))) @ w32
    const = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return lp + const * float(np.sum(w))


def _grid_posterior(
    rng: np.random.Generator, evidence: Evidence, w: np.ndarray, df: float, prior: np.ndarray, size: int
) -> np.ndarray:
    """``size`` draws of ``kappa`` (size, inputs) from its posterior on a grid over :data:`LOG_KAPPA`.

    The log posterior of ``u = log kappa`` (:func:`_log_posterior`; rows weighted by ``w``) is evaluated at
    the centres of a regular grid over :data:`LOG_KAPPA`, then of a grid over the cells that hold its mass,
    :data:`GRID_PASSES` times. On the last grid it is taken as linear inside each cell (its slope along each
    input by central differences): a draw picks a cell by that density's mass in it and a point inside by
    the inverse CDF of its exponential profile along each input. Exact up to the log density's curvature
    within a cell; no chains to converge. In NumPy: a few milliseconds for a sweep of hundreds of runs, where
    a compiled program took a second to compile for each number of inputs.
    """
    d = evidence.reach.shape[1]
    g = GRID_POINTS[d]
    lo, hi = np.full(d, LOG_KAPPA[0]), np.full(d, LOG_KAPPA[1])
    for _ in range(GRID_PASSES):
        width = (hi - lo) / g
        axes = lo[:, None] + (np.arange(g) + 0.5) * width[:, None]  # (inputs, g) cell centres
        points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
        lp = _log_posterior(points, evidence, w, df, prior)
        lp = np.where(np.isnan(lp), -np.inf, lp)
        kept = (lp > np.max(lp) - SUPPORT)[:, None]
        lo = np.maximum(np.min(np.where(kept, points, np.inf), 0) - width, LOG_KAPPA[0])
        hi = np.minimum(np.max(np.where(kept, points, -np.inf), 0) + width, LOG_KAPPA[1])
    # The log density's rise across each cell along each input, a = slope * width (clipped: a cell next to one
    # of no mass is steep, and its mass sits at its denser side).
    slope = np.gradient(lp.reshape((g,) * d))
    slope = np.stack(slope, -1).reshape(-1, d) if d > 1 else slope[:, None]
    rise = np.clip(np.where(np.isfinite(slope), slope, 0.0), -30.0, 30.0)
    b = np.maximum(np.abs(rise), 1e-6)
    log_profile = np.where(b < 1e-3, b**2 / 24, b / 2 + np.log(-np.expm1(-b)) - np.log(b))  # log sinh(b/2)/(b/2)
    log_mass = lp + np.sum(log_profile, -1)
    mass = np.exp(log_mass - np.max(log_mass))
    uniform = rng.random((size, d + 1))
    cells = np.minimum(np.searchsorted(np.cumsum(mass), uniform[:, 0] * np.sum(mass)), len(mass) - 1)
    a, t = np.where(np.abs(rise[cells]) < 1e-6, 1e-6, rise[cells]), uniform[:, 1:]
    inside = np.log1p(t * np.expm1(a)) / a  # in (0, 1): the inverse CDF of exp(a x) on [0, 1]
    return np.exp(points[cells] + (inside - 0.5) * width)


#: The grid's check: the share of draws of ``kappa`` above half the upper end of :data:`LOG_KAPPA` (a drift of
#: 5 per square root of a decade) passes up to the first value, warns up to the second.
EDGE = (1e-3, 1e-2)


def fit_kappa(
    evidence: Evidence,
    df: float,
    shape: tuple[int, int],
    seed: int,
    prior: np.ndarray | None = None,
    per_refit: float | None = None,
) -> tuple[np.ndarray, Health]:
    """Posterior draws of ``kappa``, float64 of shape (*shape, inputs) (independent draws, shaped as a fit's
    chains and draws), from a grid (:func:`_grid_posterior`), and the grid's check.

    The residuals of the internal backtests are Student-t with ``df`` degrees of freedom and
    scale ``sqrt(scale**2 + share**2 * sum_i kappa_i**2 * d_i)``; ``prior`` as :func:`kappa_prior`
    gives it (None: ``HalfNormal(KAPPA_SCALE)`` along every input); each refit's rows weigh as ``per_refit``
    independent ones (:func:`weights`; default :data:`PER_REFIT`). The check fails when the posterior reaches
    towards the upper end of :data:`LOG_KAPPA` (:data:`EDGE`).
    """
    prior = np.tile(np.float32(_HALFNORMAL), (len(evidence.inputs), 1)) if prior is None else prior
    w = weights(evidence, per_refit=per_refit)
    draws = _grid_posterior(np.random.default_rng(seed), evidence, w, df, np.asarray(prior), int(np.prod(shape)))
    kappa = draws.reshape(*shape, len(evidence.inputs))
    top = float(np.exp(LOG_KAPPA[1]))
    share = float(np.mean(np.any(kappa > top / 2, axis=-1)))
    edge = check(f"share of kappa draws above {top / 2:g}", share, EDGE, higher_is_better=False)
    found = f"{share:.2g} of kappa's draws lie above {top / 2:g}, near its grid's end {top:g}"
    problems = () if edge.status == "pass" else (found,)
    return kappa, Health((edge,), problems)


def _kappa_data(
    evidence: Evidence,
    df: float,
    prior: np.ndarray,
    study: np.ndarray | None = None,
    per_refit: float | None = None,
) -> KappaData:
    """The population model's data (:func:`learn_population`), rows padded (weight 0) to a power of two from 512:
    one compilation of its sampler per power of two. ``prior``: :class:`KappaData`'s."""
    n, size = evidence.rows, padded_length(evidence.rows, 512)

    def pad(values: np.ndarray, fill: float) -> np.ndarray:
        values = np.asarray(values, np.float64)
        return np.concatenate([values, np.full((size - n, *values.shape[1:]), fill)]).astype(np.float32)

    return KappaData(
        residual=pad(evidence.residual, 0.0),
        scale=pad(evidence.scale, 1.0),
        share=pad(evidence.share, 0.0),
        reach=pad(evidence.reach, 0.0),
        weight=pad(weights(evidence, study, per_refit), 0.0),
        df=np.float32(df),
        prior=np.asarray(prior, np.float32),
        study=pad(np.zeros(n) if study is None else study, 0.0).astype(np.int32),
    )


#: Hyperpriors of the population of studies: the log of each study's ``kappa_i`` is Normal(mu_i, tau_i),
#: mu_i ~ Normal(log 0.03, 1.5) (a study's reducible loss drifting 3% per square root of a decade, give or
#: take a factor of 20), tau_i ~ HalfNormal(1) (studies differing by a factor e or more, if the data say so).
POPULATION_LOC, POPULATION_SCALE, TAU_SCALE = float(np.log(0.03)), 1.5, 1.0


def _population_model(data: KappaData) -> None:
    """Residuals of far backtests of several studies: each study's ``kappa`` drawn from a population."""
    size, studies = data.reach.shape[-1], data.prior.shape[0]  # prior rows: one per study (values unused)
    mu = numpyro.sample("mu", dist.Normal(POPULATION_LOC, POPULATION_SCALE).expand([size]).to_event(1))
    tau = numpyro.sample("tau", dist.HalfNormal(TAU_SCALE).expand([size]).to_event(1))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([studies, size]).to_event(2))
    kappa = numpyro.deterministic("kappa", jnp.exp(mu + tau * z))  # (studies, inputs)
    numpyro.factor("r", _log_likelihood(data, kappa[data.study]))


def _population_start(data: KappaData, key: jax.Array) -> dict:
    size, studies = data.reach.shape[-1], data.prior.shape[0]
    return {"mu": jnp.full(size, POPULATION_LOC), "tau": jnp.full(size, jnp.log(0.3)), "z": jnp.zeros((studies, size))}


POPULATION = Target(_population_model, _population_start, ("mu", "tau"), "kappa population", "kappa population")


def learn_population(
    evidence: dict[str, Evidence], df: float, settings: Settings, seed: int = 0, per_refit: float | None = None
) -> tuple[dict[str, tuple[float, float]], np.ndarray, Health]:
    """The extrapolation error across studies: a LogNormal prior of ``kappa`` per input for a new study.

    Each study's rows (far backtests: a fit below a compute cutoff forecasting the runs above it)
    are explained as in :func:`fit_kappa` by the study's own ``kappa``, and ``log kappa`` of the
    studies by Normal(mu_i, tau_i) (non-centred; hyperpriors :data:`POPULATION_LOC` ...). A new study's
    ``log kappa_i`` is predicted by the mixture over the posterior of (mu_i, tau_i), summarized as one
    Normal with its mean and variance: ``loc = E[mu]``, ``scale = sqrt(Var[mu] + E[tau**2])``.
    Each study's rows (one refit) weigh as ``per_refit`` independent ones, as in a fit (:func:`weights`).

    Returns
    -------
    ``{input: (loc, scale)}``; each study's ``kappa`` draws, shape (studies, draws, inputs); the health.
    """
    names = list(evidence)
    rows = Evidence.concatenate([evidence[name] for name in names])
    study = np.concatenate([np.full(evidence[name].rows, i) for i, name in enumerate(names)])
    dummy = np.zeros((len(names), 3), np.float32)
    data = _kappa_data(rows, df, dummy, study, per_refit)
    out = sample(POPULATION, settings, jax.random.key(seed), data, whole=True)
    names_checked = tuple(f"{s}_{x}" for s in ("mu", "tau") for x in rows.inputs)
    stats = Stats.from_arrays(out.health, names_checked, settings.max_tree_depth)
    mu = np.asarray(out.samples["mu"], np.float64).reshape(-1, len(rows.inputs))
    tau = np.asarray(out.samples["tau"], np.float64).reshape(-1, len(rows.inputs))
    loc, scale = mu.mean(axis=0), np.sqrt(mu.var(axis=0) + (tau**2).mean(axis=0))
    kappa = np.asarray(out.samples["kappa"], np.float64)
    kappa = np.moveaxis(kappa.reshape(-1, *kappa.shape[-2:]), 1, 0)  # (studies, draws, inputs)
    prior = {x: (float(loc[i]), float(scale[i])) for i, x in enumerate(rows.inputs)}
    return prior, kappa, assess(stats)


def with_kappa(result: Result, kappa: np.ndarray, evidence: Evidence) -> Result:
    """A copy of ``result`` holding the ``extrapolation`` group.

    The group holds ``kappa`` (chain, draw, input) and the internal backtests'
    ``internal_residual``, ``internal_scale``, ``internal_reducible``, ``internal_split``,
    ``internal_input`` (the input split on) and ``internal_distance`` (internal_run, input).
    """
    group = xr.Dataset(
        {
            "kappa": (("chain", "draw", "input"), kappa),
            "internal_residual": ("internal_run", np.asarray(evidence.residual, np.float64)),
            "internal_scale": ("internal_run", np.asarray(evidence.scale, np.float64)),
            "internal_reducible": ("internal_run", np.asarray(evidence.share, np.float64)),
            "internal_split": ("internal_run", np.asarray(evidence.split, np.float64)),
            "internal_input": ("internal_run", np.asarray(evidence.split_on, str)),
            "internal_distance": (("internal_run", "input"), np.asarray(evidence.reach, np.float64)),
        },
        coords={"chain": np.arange(kappa.shape[0]), "draw": np.arange(kappa.shape[1]), "input": list(evidence.inputs)},
    )
    return result.with_group("extrapolation", group)


def calibrated(result: Result) -> bool:
    """Whether the fit learned an extrapolation error (the calibrated mode is available)."""
    return "extrapolation" in result.groups()


def kappa_medians(result: Result) -> dict[str, float]:
    """Posterior median of each ``kappa_<input>`` of a calibrated fit."""
    kappa = result.group("extrapolation")["kappa"].median(("chain", "draw"))
    return {f"kappa_{k}": float(kappa.sel(input=k)) for k in kappa["input"].to_numpy()}


def kappa_draws(result: Result, size: int) -> tuple[list[str], np.ndarray]:
    """The inputs of a calibrated fit's extrapolation error and its ``kappa`` draws, recycled to ``size`` draws:
    float64 of shape (size, inputs)."""
    group = result.group("extrapolation")
    inputs = [str(k) for k in group["input"].to_numpy()]
    kappa = group["kappa"].to_numpy().reshape(-1, len(inputs))
    return inputs, kappa[np.resize(np.arange(len(kappa)), size)].astype(np.float64)


def error_scale(
    result: Result, points: pd.DataFrame, share: np.ndarray, runs: pd.DataFrame | None = None
) -> np.ndarray:
    """Scale of the extrapolation error of log loss at each point, per draw, shape (s, t).

    ``share * sqrt(sum_i kappa_i**2 * d_i)`` with ``d_i`` the decades beyond ``runs`` (default:
    the fitted runs; a group's own runs for a point of that group) along input ``i``
    (:func:`~bayes_scaling._geometry.beyond`; zero inside) and ``share`` (s, t) the reducible
    share of the expected loss (:func:`reducible`); the draws of ``kappa`` are recycled to the
    posterior's number of draws.
    """
    size = result.group("posterior").sizes["chain"] * result.group("posterior").sizes["draw"]
    inputs, k = kappa_draws(result, size)
    reach = beyond(result.data() if runs is None else runs, points, inputs)  # (t, i)
    return share * np.sqrt(np.sum(k[:, None, :] ** 2 * reach[None, :, :], axis=-1))
