"""Fit a scaling law to training runs with NUTS: one fit (``fit``) or many in one program (``fit_many``)."""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import scipy.special

from . import _calibration, laws
from ._calibration import INTERNAL_SPLITS, Evidence
from ._geometry import axis, beyond_own
from ._model import PLAIN, Design, design, model_data, padded_length, stack_data, target
from ._sampler import Output, Settings, sample, sample_many
from .data import Dataset, DataWarning, _load_together, checked_seed, load_data, warn_repeats
from .datasets import chinchilla
from .diagnostics import ConvergenceWarning, Health, MixingWarning, Stats, assess, warn
from .forecast import predictive
from .laws import Law, complete
from .priors import PriorsLike, Spec, resolve
from .result import Result, from_sampler

DataLike = Dataset | pd.DataFrame | str | Path | None

#: The most runs one fit takes. A fit's cost grows with the runs (about 30 s for 100,000 here, 2
#: cores); beyond this it would run for many minutes, while a scaling law has five parameters.
MAX_RUNS = 200_000
#: Held-out runs per internal backtest split that the extrapolation error is learned from (a sweep
#: with more is thinned evenly along the split's input: the learned scale needs hundreds, not more).
EVIDENCE_PER_SPLIT = 2000
#: Runs an internal backtest refits at most (a larger share is subsampled at random): its forecasts
#: need the law's parameters to the precision a few thousand runs give, and refits of a large sweep
#: would otherwise cost four times the fit. Sweeps up to this size refit every run of the share.
REFIT_MAX = 20_000
#: Draws per chain an internal backtest refit keeps (at most the fit's): its forecasts give each held-out run a
#: median and quartiles, for which 4 x 250 draws are plenty (the embedded runs' kappa medians over six seeds
#: moved by at most 0.001 from 4 x 500, within the seeds' own spread; benchmarks/bench_refits.py). The refit
#: stops after them (the fit's compiled programs), and warms up for less (``_sampler.sample``'s ``refit``: from
#: iteration 300 of 500): 450 iterations per chain against a full fit's 1500. A refit that fails its checks on
#: its draws goes on from where it stopped to all the fit's draws (those of a refit that kept them all): fewer
#: draws must not make more of them fail.
REFIT_DRAWS = 250
#: Fewest runs an internal backtest refits, as a multiple of the runs a fit needs (``law.min_runs``: the law's
#: parameters, sigma and one): 14 for the Chinchilla law, so that a sweep of 20 runs refits its lower 70% along
#: each input and updates the prior learned across studies with what those two backtests show. With three (30
#: runs before a sweep had any), 20-run sweeps took ``kappa`` from that prior alone, whose heavy tails made
#: their 90% bands cover 96% of runs 1-2 decades beyond (``benchmarks/bench_corpus.py --part small``).
REFIT_RUNS = 2


def _as_dataset(data: DataLike, law: Law, group: str | Sequence[str] | None = None) -> Dataset:
    """Turn a path, DataFrame or Dataset (None: the embedded Chinchilla runs) into a Dataset."""
    min_rows = law.min_runs
    if data is None:
        data = chinchilla()
    if not isinstance(data, Dataset):
        if not isinstance(data, pd.DataFrame | str | Path):
            raise ValueError(f"data must be a CSV path, a DataFrame or a Dataset, got {type(data).__name__}")
        data = load_data(data, needs=law.inputs, min_rows=min_rows, group=group)
    elif group is not None:
        raise ValueError(f"{data.source}: a Dataset's groups are set when it is loaded (load_data(..., group=...))")
    missing = [k for k, v in complete(law, data.frame).items() if not np.isfinite(v).all()]
    if missing:
        raise ValueError(f"{data.source}: law {law.name!r} needs {', '.join(missing)} for every run")
    if "U" in data.frame.columns:
        warn_repeats(law, data.frame["U"], data.frame["D"], data.source, "run(s)", stacklevel=4)
    if len(data) < min_rows:
        raise ValueError(f"{data.source}: {len(data)} rows, but the model needs at least {min_rows}")
    if len(data) > MAX_RUNS:
        raise ValueError(
            f"{data.source}: {len(data):,} runs, more than one fit takes ({MAX_RUNS:,}): a scaling law has a handful "
            "of parameters, and thousands of runs pin them down. Subsample the runs (every k-th, or a random "
            "subset), or aggregate replicate runs of one configuration (same N and D) into their mean loss"
        )
    return data


#: What each axis counts, for messages.
_SIZES = {"N": "model sizes", "D": "token counts", "C": "compute budgets"}


def _narrow(data: Dataset, law: Law) -> None:
    """Warn when runs take fewer than three values along an axis of the law (one model size, say): the law's
    terms along it are then the priors', not the runs'."""
    for name in law.axes:
        values = np.unique([float(f"{v:.3g}") for v in data.frame[name].to_numpy()])
        if len(values) < 3:
            shown = ", ".join(f"{v:.3g}" for v in values)
            warnings.warn(
                f"{data.source}: the runs have {len(values)} value(s) of {name} ({shown}): the term in {name} of "
                f"law {law.name!r} rests on its priors, not on the runs, and so do forecasts at other {_SIZES[name]}; "
                f"a scaling law needs runs at three or more {_SIZES[name]}",
                DataWarning,
                stacklevel=3,
            )


def _rising(data: Dataset, law: Law) -> None:
    """Warn, in one sentence, when loss clearly rises with scale: no law of falling loss describes such runs."""
    x = data.frame[axis(data.frame, law.axes)].to_numpy()
    y = data.frame["loss"].to_numpy()
    n = len(y)
    if n < 5 or np.ptp(x) == 0:
        return
    rx, ry = (np.argsort(np.argsort(v)).astype(np.float64) for v in (x, y))
    rho = float(np.corrcoef(rx, ry)[0, 1])  # Spearman's rank correlation (ties broken by order)
    if rho * np.sqrt(n - 1) > 3.0:  # clearly positive: about 3 standard errors under no relation
        warnings.warn(
            f"{data.source}: loss rises with scale in these runs (rank correlation {rho:+.2f} between "
            f"{axis(data.frame, law.axes)} and loss over {n} runs): a scaling law of falling loss cannot describe "
            "them. Is the loss column a score or an accuracy (read it with --metric, metric=True), or are runs "
            "mislabelled?",
            DataWarning,
            stacklevel=3,
        )


def fit(
    data: DataLike = None,
    law: str | Law = "chinchilla",
    *,
    priors: PriorsLike = None,
    settings: Settings | None = None,
    seed: int = 0,
    calibrate: bool = True,
    group: str | Sequence[str] | None = None,
    pooling: Mapping[str, str] | None = None,
    progress: bool = False,
    prior_draws: int = 1000,
    **options: object,
) -> Result:
    """Fit ``law`` to training runs with NUTS and return the posterior.

    Parameters
    ----------
    data : CSV path, DataFrame (columns ``params``, ``tokens``, optional ``flops``,
        ``loss``; use :func:`bayes_scaling.load_data` for other names) or Dataset.
        None fits the embedded Chinchilla runs.
    law : a registered law name or a :class:`~bayes_scaling.Law`.
    priors : a TOML prior file, a dict overriding some default priors (values are
        :class:`~bayes_scaling.Prior` or ``{"dist": ..., ...}`` tables), or a Spec.
    settings : sampler settings (:class:`~bayes_scaling.Settings`); any of its fields may
        also be given as a keyword (``chains=``, ``warmup=``, ``draws=``, ``target_accept=``,
        ``dense=``, ``max_tree_depth=``, ``laplace_init=``, ``algorithm=``).
    seed : the same seed gives identical draws on the same machine, whatever its number of cores. On a CPU,
        a fit without internal backtests started from the main thread advances its chains' parts (2 + 2)
        on the machine's cores (``$BAYES_SCALING_CORES`` caps them), each part in a thread; other fits run
        the parts one after another (see :func:`bayes_scaling._sampler.sample`).
    calibrate : also learn the extrapolation-error scale ``kappa`` from internal
        backtests (refits on the lower 50% and 70% of the runs along each input, four for
        the Chinchilla law, run in threads beside the main fit), starting from the prior
        learned across real studies (the law's ``[extrapolation]`` table), so that forecasts
        beyond the data default to the calibrated mode. A sweep too small for the refits (under
        20 runs for the Chinchilla law, :data:`REFIT_RUNS`) takes ``kappa`` from that prior alone; a law without one
        warns and stays plain. False skips the refits (forecasts are then plain).
    group : the column (or columns, combined) naming each run's group: data set, set-up, model
        family. Each parameter is then shared, pooled or separate across groups, by the law's
        ``[pooling]`` defaults (``models/*.toml``) and ``pooling``.
    pooling : per parameter, ``"shared"``, ``"pooled"`` or ``"separate"``, e.g. ``{"alpha": "pooled"}``.
    progress : print a progress bar on stderr while sampling.
    prior_draws : draws from the prior kept in the ``prior`` group.

    Returns
    -------
    Result. A fit whose sampler failed a convergence check raises a loud
    :class:`~bayes_scaling.ConvergenceWarning`, one whose checks only warned a calm
    :class:`~bayes_scaling.diagnostics.MixingWarning`; ``Result.health()`` has every check and
    ``Result.problems`` every finding.
    """
    law = laws.get(law)
    settings = Settings.of(settings, **options)
    seed = checked_seed(seed)
    dataset = _as_dataset(data, law, group)
    spec = resolve(law, priors, pooling)
    _rising(dataset, law)
    _narrow(dataset, law)
    return _fit(dataset, law, spec, settings, seed, calibrate, prior_draws, progress=progress)


def _fit(
    dataset: Dataset,
    law: Law,
    spec: Spec,
    settings: Settings,
    seed: int,
    calibrate: bool,
    prior_draws: int = 1000,
    *,
    pad: int | None = None,
    progress: bool = False,
    quiet: bool = False,
    keep: int | None = None,
    bar: str = "fail",
) -> Result:
    """:func:`fit` of a checked data set with resolved priors.

    ``pad``: rows to pad the fit and its internal refits to (default: the data set's padded length);
    refits of subsets padded to their whole data set's length share its compiled sampler. ``quiet``:
    no warnings about the fit's health or its refits (a caller that reads ``Result.health()`` itself,
    from threads: Python's warning filters are not thread-safe to change). ``keep``: the fit keeps the first
    ``keep`` draws of each chain, as an internal refit does (None: all), going on to all of them when those fail
    a convergence check; it shares the compiled programs of a fit that keeps all, and warms up as a refit (for
    less: :func:`bayes_scaling._sampler.sample`'s ``refit``). ``bar``: the health level of the kept draws at which
    the fit goes on to all (``"fail"``; ``"warn"``: at a warning too, for a fit whose health a table shows).
    """
    plan = design(dataset, law, spec)
    _identifiable(dataset, law, plan)
    pad = padded_length(len(dataset)) if pad is None else pad
    # The largest internal split must hold REFIT_RUNS runs per parameter, sigma and one.
    needed = math.ceil(REFIT_RUNS * law.min_runs / max(INTERNAL_SPLITS) - 1e-9)
    prior = _calibration.kappa_prior(spec, law.axes)
    report = (lambda health, what: None) if quiet else warn
    prior_alone = calibrate and len(dataset) < needed and set(law.axes) <= set(spec.extrapolation)
    if calibrate and len(dataset) < needed and not prior_alone:
        if not quiet:
            warnings.warn(
                f"{dataset.source}: {len(dataset)} runs are too few for the internal backtests of the calibrated "
                f"mode (at least {needed} for the {law.name} law), and its prior file has no [extrapolation] "
                "prior learned across studies; forecasts beyond the data stay plain",
                DataWarning,
                stacklevel=3,
            )
        calibrate = False
    if not calibrate or prior_alone:  # no internal backtests: the fit alone, its chains on every core
        result = _fit_plain(dataset, law, spec, settings, seed, prior_draws, pad, progress, plan, _cores(), keep, bar)
        report(result.health(), f"fit of {law.name} to {dataset.source}")
        if not prior_alone:
            return result
        # Too few runs for the backtests: kappa is the error learned across studies, alone.
        kappa = _calibration.sample_prior(prior, (settings.chains, settings.draws), seed)
        return _calibration.with_kappa(result, _first(kappa, result), _calibration.Evidence.empty(law.axes))
    # The internal backtests' refits run in threads beside the main fit (one per core, at most one per refit).
    pool = ThreadPoolExecutor(min(len(INTERNAL_SPLITS) * len(law.axes), os.cpu_count() or 1))
    try:
        collect = _internal_backtests(dataset, law, spec, settings, seed, prior_draws, pool, pad, quiet)
        result = _fit_plain(dataset, law, spec, settings, seed, prior_draws, pad, progress, plan, keep=keep, bar=bar)
        report(result.health(), f"fit of {law.name} to {dataset.source}")
        evidence = collect()
    finally:
        pool.shutdown(cancel_futures=True)  # after an error (or Ctrl-C): no refit starts
    kappa, health = _calibration.fit_kappa(evidence, spec.df, (settings.chains, settings.draws), seed, prior)
    report(health, "fit of the extrapolation error (kappa)")
    return _calibration.with_kappa(result, _first(kappa, result), evidence)


def _first(kappa: np.ndarray, result: Result) -> np.ndarray:
    """The first draws of ``kappa`` (chains, draws, inputs), as many per chain as ``result`` kept (its programs
    draw ``kappa`` for all of a fit's draws: a fit that kept fewer shares them)."""
    return kappa[:, : result.settings.draws]


def _fit_plain(
    dataset: Dataset,
    law: Law,
    spec: Spec,
    settings: Settings,
    seed: int,
    prior_draws: int,
    pad: int,
    progress: bool = False,
    plan: Design = PLAIN,
    cores: int = 1,
    keep: int | None = None,
    bar: str = "fail",
) -> Result:
    """One fit without internal backtests, its rows padded to ``pad``: fits padded alike share one compiled
    sampler. Its chains are split across ``cores`` threads (:func:`bayes_scaling._sampler.sample`); ``keep``:
    the first draws of each chain it keeps (None: ``settings.draws``), sampled by ``settings``' programs, unless
    they fail a convergence check (or warn on one, ``bar="warn"``): then it goes on to all. A fit given ``keep`` is
    a refit: a shorter warm-up."""
    arrays = model_data(dataset, law, spec, pad=pad, design=plan)
    model = target(law, spec, plan)
    key = jax.random.key(seed)
    more = partial(_short, depth=settings.max_tree_depth, bar=bar)
    refit = keep is not None  # internal backtests, a review's refits
    out = sample(model, settings, key, arrays, progress=progress, cores=cores, keep=keep, more=more, refit=refit)
    draws = int(out.stats["diverging"].shape[1])
    if draws < settings.draws:
        settings = replace(settings, draws=draws)  # what the result holds
    batch = jax.tree.map(lambda a: np.asarray(a)[None], out)
    centre = {x: float(v) for x, v in arrays.centre.items()}
    (result,) = from_sampler(batch, [dataset], law, spec, [seed], settings, prior_draws, plan, model.checked, centre)
    return result


def _cores() -> int:
    """Cores a fit's chains may use: on a CPU, every core (or ``$BAYES_SCALING_CORES``) for a fit started from
    the main thread; one in a worker thread (internal refits, a review's sections, :func:`fit` called from a
    thread pool), whose fits already share the cores. On an accelerator the chains stay together: one device
    runs them at once."""
    if jax.default_backend() != "cpu" or threading.current_thread() is not threading.main_thread():
        return 1
    limit = os.environ.get("BAYES_SCALING_CORES", "").strip()
    if not limit:
        return os.cpu_count() or 1
    if not limit.isdigit() or int(limit) < 1:
        raise ValueError(f"BAYES_SCALING_CORES must be a positive whole number of cores, got {limit!r}")
    return int(limit)


def _needed(law: Law, plan: Design) -> int:
    """Runs each group needs for the parameters it has of its own (separate ones, or pooled offsets)."""
    own = [name for name in law.params if plan.mode(name) == "separate"]
    pooled = [name for name in law.params if plan.mode(name) == "pooled"]
    return len(own) + 1 if own else (2 if pooled else 1)


def _identifiable(data: Dataset, law: Law, plan: Design) -> None:
    """Every group must hold runs enough for the parameters it has of its own; else an error naming it."""
    if not plan.labels:
        return
    own = [name for name in law.params if plan.mode(name) == "separate"]
    pooled = [name for name in law.params if plan.mode(name) == "pooled"]
    needed = _needed(law, plan)
    counts = data.frame["group"].value_counts()
    short = counts[counts < needed]
    if len(short):
        label, n = short.index[0], int(short.iloc[0])
        what = f"its own {', '.join(own)}" if own else f"its offsets of the pooled {', '.join(pooled)}"
        raise ValueError(
            f"{data.source}: group {label!r} has {n} run(s), too few for {what} (at least {needed}); "
            "pool those parameters, or leave the group out"
        )


def _internal_backtests(
    data: Dataset,
    law: Law,
    spec: Spec,
    settings: Settings,
    seed: int,
    prior_draws: int,
    pool: Executor,
    pad: int,
    quiet: bool = False,
) -> Callable[[], Evidence]:
    """Start the refits on the lower 50% and 70% of the runs along each input; return ``collect()``.

    The refits (each with its forecast of the held-out runs) run in ``pool``'s threads,
    beside whatever the caller does meanwhile (:func:`fit` runs the main fit): compiled JAX
    programs release Python's lock, so on a machine with several cores they run at once.
    Every refit is padded to ``pad`` rows, the full fit's, so all of them reuse its compiled
    sampler (sweeps over :data:`REFIT_MAX` runs refit a random share of that size).
    ``collect()`` waits for them, warns (in the caller's thread) of any refit that did not
    converge, and returns the evidence (:class:`~bayes_scaling._calibration.Evidence`).
    """
    splits = []
    for name in law.axes:
        values = data.frame[name].to_numpy()
        for q in INTERNAL_SPLITS:
            train = values <= np.quantile(values, q)
            if train.sum() >= REFIT_RUNS * law.min_runs and (~train).sum() >= 1:
                splits.append((name, q, train))  # else too few runs to refit
    if not splits:
        raise ValueError(f"{data.source}: too few runs for internal backtests")
    common = (data, law, spec, settings, seed, prior_draws, min(pad, padded_length(REFIT_MAX)))
    pending = [pool.submit(_internal_backtest, *common, *split) for split in splits]

    def collect() -> Evidence:
        done = [p.result() for p in pending]
        failed = [
            f"lower {q:.0%} by {name}: {health.problems[0]}"
            for (name, q, _), (_, health) in zip(splits, done, strict=True)
            if health.level == "fail"
        ]
        # The fit itself is not affected: a calm line (refits that only warned are not mentioned).
        if failed and not quiet:
            warnings.warn(
                f"{data.source}: some internal backtest refits did not converge ({'; '.join(failed)}); the fit "
                "itself is not affected, the learned extrapolation error (kappa) partly rests on them",
                MixingWarning,
                stacklevel=3,
            )
        return Evidence.concatenate([rows for rows, _ in done])

    return collect


def _short(out: Output, depth: int, bar: str = "fail") -> bool:
    """Whether a sampler's draws fall short of ``bar`` at the package's thresholds (NUTS depth ``depth``): fail a
    convergence check (``"fail"``), or fail or warn on one (``"warn"``)."""
    names = tuple(map(str, range(len(out.health["rhat"]))))  # the level does not depend on the names
    level = assess(Stats.from_arrays(out.health, names, depth)).level
    return level == "fail" or (bar == "warn" and level == "warn")


def _internal_backtest(
    data: Dataset,
    law: Law,
    spec: Spec,
    settings: Settings,
    seed: int,
    prior_draws: int,
    pad: int,
    name: str,
    q: float,
    train: np.ndarray,
) -> tuple[Evidence, Health]:
    """Refit on the runs ``train`` (the lower ``q`` by ``name``) and forecast the rest.

    Returns the held-out runs' evidence, and the refit's health.
    """
    kept = train
    if train.sum() > REFIT_MAX:  # a large sweep: the refit sees an even random share of its runs
        chosen = np.random.default_rng(seed).choice(np.flatnonzero(train), REFIT_MAX, replace=False)
        kept = np.zeros_like(train)
        kept[chosen] = True
    part = data.subset(kept)
    part = Dataset(part.frame, f"{data.source} (internal backtest, lower {q:.0%} by {name})", part.columns)
    plan = design(part, law, spec)
    refit = _fit_plain(part, law, spec, settings, seed, prior_draws, pad, plan=plan, keep=REFIT_DRAWS)
    held = ~train
    if plan.labels:  # a group the refit did not see cannot be forecast by it
        held &= data.frame["group"].isin(plan.labels).to_numpy()
    points = data.frame[held].sort_values(name, kind="stable")
    if len(points) > EVIDENCE_PER_SPLIT:  # thinned evenly along the split's input
        points = points.iloc[np.linspace(0, len(points) - 1, EVIDENCE_PER_SPLIT).round().astype(int)]
    points = points.sort_index().reset_index(drop=True)
    draws = predictive(refit, points, seed=int(q * 100), mode="plain")
    log_run = np.log(draws.run)
    quartiles = np.quantile(log_run, [0.25, 0.75], axis=0)
    share = draws.share
    held_out = len(points)
    evidence = Evidence(
        inputs=law.axes,
        split_on=np.full(held_out, name),
        split=np.full(held_out, q),
        residual=np.log(points["loss"].to_numpy()) - np.median(log_run, axis=0),
        scale=(quartiles[1] - quartiles[0]) / (2 * scipy.special.stdtrit(spec.df, 0.75)),
        share=np.median(share, axis=0),
        reach=beyond_own(data.frame[kept], points, law.axes),
    )
    return evidence, refit.health()


def fit_many(
    datasets: Sequence[DataLike],
    law: str | Law = "chinchilla",
    *,
    priors: PriorsLike = None,
    settings: Settings | None = None,
    seed: int | Sequence[int] = 0,
    prior_draws: int = 1000,
    devices: Sequence[jax.Device] | None = None,
    group: str | Sequence[str] | None = None,
    pooling: Mapping[str, str] | None = None,
    **options: object,
) -> list[Result]:
    """Fit one law to K data sets at once: one compiled, vmapped program, sharded across devices.

    Data sets may differ in length: each is padded (and masked) to the longest's
    padded length. Fit ``i`` uses seed ``seeds[i]`` and follows the same random
    stream as ``fit(datasets[i], seed=seeds[i], calibrate=False)`` with the same
    settings (for ``"hmc"`` every fit shares the trajectory-length jitter of the first
    seed); the batched program rounds differently in float32, so draws agree in
    distribution (summaries within Monte Carlo error), not draw for draw.

    Parameters
    ----------
    datasets : K CSV paths, DataFrames or Datasets.
    law, priors, settings, prior_draws, options : as for :func:`fit`, shared by every fit.
        ``algorithm="hmc"`` suits large batches and GPUs: every fit takes about the same
        number of leapfrog steps, where vmapped NUTS waits each iteration for the longest
        trajectory of the batch.
    seed : one seed per data set, or an int ``s`` meaning seeds ``s, s+1, ..., s+K-1``.
    group, pooling : as for :func:`fit`: runs in groups. Every data set must hold the same groups
        (one compiled program serves the batch), and no configuration may repeat.
    devices : devices to split the batch across (None: every local device). To use
        several CPU cores as devices, set
        ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before importing JAX.

    Returns
    -------
    list of K :class:`~bayes_scaling.Result` (plain mode: no internal backtests), each with
    its own diagnostics; one ConvergenceWarning names every fit that failed a check, one
    MixingWarning every fit whose checks only warned.
    """
    law = laws.get(law)
    settings = Settings.of(settings, **options)
    if not datasets:
        raise ValueError("fit_many needs at least one data set")
    together = _load_together(datasets, needs=law.inputs, min_rows=law.min_runs, group=group)
    sets = together or _load_each(datasets, law, group)
    if isinstance(seed, Sequence | np.ndarray) and not isinstance(seed, str):
        seeds = [checked_seed(s, f"seed {i}") for i, s in enumerate(seed)]
    else:
        seeds = [checked_seed(seed) + i for i in range(len(sets))]
    if len(seeds) != len(sets):
        raise ValueError(f"{len(seeds)} seeds for {len(sets)} data sets")
    spec = resolve(law, priors, pooling)
    plans = [design(d, law, spec) for d in sets]
    plan = plans[0]
    for i, other in enumerate(plans):
        if other.labels != plan.labels:
            raise ValueError(
                f"data set {i} of {len(sets)} has groups {', '.join(other.labels) or '(none)'}, data set 0 has "
                f"{', '.join(plan.labels) or '(none)'}: fit_many fits data sets of the same groups in one program"
            )
        if other.replicates:
            raise ValueError(f"data set {i} of {len(sets)} repeats configurations (replicates): fit it with fit()")
        _identifiable(sets[i], law, other)
    batch = stack_data(sets, law, spec, pad=max(padded_length(len(d)) for d in sets), design=plan)
    keys = jax.vmap(jax.random.key)(np.asarray(seeds))
    model = target(law, spec, plan)
    out = sample_many(model, settings, keys, batch, devices)
    centre = {x: np.asarray(v) for x, v in batch.centre.items()}
    results = from_sampler(out, sets, law, spec, seeds, settings, prior_draws, plan, model.checked, centre)
    levels = [r.health().level for r in results]
    for level, category in (("fail", ConvergenceWarning), ("warn", MixingWarning)):
        bad = [i for i, found in enumerate(levels) if found == level]
        if not bad:
            continue
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        text = (
            f"fit_many: THE SAMPLER DID NOT CONVERGE in {len(bad)} of {len(results)} fits (data sets {shown}); "
            "do not trust those fits: see each Result.problems"
            if level == "fail"
            else f"fit_many: sampler health warn in {len(bad)} of {len(results)} fits (data sets {shown}): usable, "
            "see each Result.health()"
        )
        warnings.warn(text, category, stacklevel=2)
    return results


def _load_each(datasets: Sequence[DataLike], law: Law, group: str | Sequence[str] | None = None) -> list[Dataset]:
    """:func:`_as_dataset` of each item, an error naming the item."""
    sets = []
    for i, data in enumerate(datasets):
        try:
            sets.append(_as_dataset(data, law, group if not isinstance(data, Dataset) else None))
        except ValueError as err:
            raise ValueError(f"data set {i} of {len(datasets)}: {err}") from None
    return sets
