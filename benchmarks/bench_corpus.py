"""The extrapolation error learned across real studies, checked study by study (leave one out).

Run:  python benchmarks/bench_corpus.py [--part all|loo|small] [--studies 50] [--bend 0.03 ...] [--per-refit 8]
      [--subsets 3] [--out FILE]

Corpus (bayes_scaling/_corpus.py): the embedded Chinchilla runs and the ten set-ups of Porian et al.
(2024), each its own study. For each study: the Chinchilla law fitted (plain) below a compute cutoff
1.5 decades under its largest run, forecasting the runs above (its far evidence).

1. The prior learned from all studies: printed as the ``[extrapolation]`` table of models/chinchilla.toml
   (the shipped values come from this command).
2. Leave one out: for each study, the prior learned from the other studies' far evidence; the study fitted
   below its cutoff with that prior (updated by its own internal backtests: the calibrated default); the
   runs above the cutoff forecast. Per study: runs held out, how far beyond (decades of compute), coverage of
   the 50/80/90% bands of a new run, median absolute error of the median forecast, and the 90% coverage of the
   same fit with the previous default prior (HalfNormal(0.1), its own backtests only) and of its plain bands.
3. Small sweeps (``--part small``): ``--studies`` simulated sweeps of 20 runs (5 sizes, 1e7-1e8 parameters, x 4
   ratios, 5-80 tokens per parameter; Student-t noise of 1%) from a Chinchilla law whose data term bends beyond
   the sweep (its exponent beta changes by a random amount, Normal(0, ``--bend``), above 1e10 tokens, just beyond
   the sweep's largest 8e9, over a tenth of a decade); each fitted as ``fit`` does (calibrated: the shipped prior
   updated by the internal backtests on the lower 70% by N and by D); forecasts of 6 runs 1-2 decades of compute
   beyond (3 ratios x 2 distances). Coverage of the calibrated and the plain 50/80/90% bands of a new run, and
   how far the bend itself moves those runs (median over sweeps of the largest move, %).
4. Small real sweeps (with parts 1-2): in each study, ``--subsets`` sweeps of 20 runs below the cutoff (one run
   drawn from each twentieth of those runs ordered by compute, as a small sweep spans its compute range), each
   fitted with the prior learned from the other studies (as in part 2, updated by the 20 runs' own internal
   backtests on their lower 70%) and forecasting the study's runs above the cutoff. Coverage as in part 2,
   calibrated and plain. Also printed: the prior learned from the 20-run sweeps' own far evidence (one per
   study), beside the shipped one learned from the full sweeps.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
import warnings

import jax
import numpy as np
import pandas as pd
from _report import Report

import bayes_scaling as bs
from bayes_scaling import _calibration, _corpus
from bayes_scaling.priors import resolve

SETTINGS = bs.Settings(chains=4, warmup=500, draws=1000)


TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}


#: Where the small sweeps' data term bends: just above their largest run's 8e9 tokens; over a tenth of a decade.
KNEE, WIDTH = 1e10, 0.1 * np.log(10)


def bent(n: np.ndarray, d: np.ndarray, change: float | np.ndarray) -> np.ndarray:
    """The truth of the small sweeps: the Chinchilla law whose data exponent moves by ``change`` above
    :data:`KNEE` tokens (beyond the sweep: at its largest run the log of the data term moves by 0.09 ``change``)."""
    bend = change * WIDTH * np.logaddexp(0.0, np.log(d / KNEE) / WIDTH)  # a softplus: 0 below the knee, slope above
    return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] * np.exp(-TRUTH["beta"] * np.log(d) - bend)


def small_subsets(data: bs.Dataset, runs: int, seed: int) -> bs.Dataset:
    """A small sweep of ``runs`` runs of a study below its cutoff (one drawn from each of ``runs`` equal strata of
    those runs ordered by compute), together with the study's runs above the cutoff (still beyond the sweep)."""
    compute = data.frame["C"].to_numpy()
    below = np.flatnonzero(compute <= _corpus.cutoff(data))
    order = below[np.argsort(compute[below], kind="stable")]
    edges = np.linspace(0, len(order), runs + 1).astype(int)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(compute), bool)
    keep[order[rng.integers(edges[:-1], edges[1:])]] = True
    return data.subset(keep | (compute > _corpus.cutoff(data)))


def small_real(studies: dict, held: dict, priors: dict, subsets: int, say: object) -> None:
    base = resolve(bs.laws.get("chinchilla"))
    rows, evidence = [], {}
    for name, data in studies.items():
        for seed in range(subsets):
            sweep = small_subsets(data, 20, seed)
            train = sweep.subset(sweep.frame["C"].to_numpy() <= _corpus.cutoff(sweep))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if seed == 0:
                    evidence[name], _ = _corpus.far_evidence(sweep, settings=SETTINGS)
                result = bs.fit(
                    train, priors=dataclasses.replace(base, extrapolation=priors[name]), seed=seed, settings=SETTINGS
                )
            assert _calibration.calibrated(result), name
            mine = {mode: _corpus.score(result, held[name], mode=mode) for mode in ("calibrated", "plain")}
            rows.append(
                {"study": name, "runs": mine["plain"]["runs"]}
                | {f"{m[:3]}{k}": v for m, s in mine.items() for k, v in s.items() if k != "runs"}
            )
    table = pd.DataFrame(rows)
    columns = ["calcover50", "calcover80", "calcover90", "calmedian_error", "placover50", "placover80", "placover90"]
    say(table.groupby("study", sort=False)[["runs", *columns]].mean().to_string(float_format="{:.3f}".format))
    weights = table["runs"] / table["runs"].sum()
    say(f"\nover every held-out run of the {len(table)} sweeps (each weighted by its runs) and the median study:")
    for column in columns:
        say(
            f"  {column:16s} all runs {np.sum(weights * table[column]):.3f}   "
            f"median study {table.groupby('study')[column].mean().median():.3f}"
        )
    prior, _, health = _corpus.learn(evidence)
    say("the prior learned from these 20-run sweeps' far evidence (one per study), beside the shipped one:")
    for x, p in prior.items():
        shipped = dict(base.extrapolation[x].args)
        say(
            f"  kappa_{x}: loc {dict(p.args)['loc']} scale {dict(p.args)['scale']}   "
            f"(shipped: loc {shipped['loc']} scale {shipped['scale']}; population sampler {health.level})"
        )


def small_sweeps(studies: int, say: object, spread: float = 0.03) -> None:
    rng = np.random.default_rng(0)
    moves = []
    grid = bs.datasets.sweep(n_range=(1e7, 1e8), tokens_per_param=(5.0, 80.0), sizes=5, ratios=4)
    sets, held = [], []
    for _ in range(studies):
        change = spread * rng.standard_normal()
        loss = bent(grid["params"].to_numpy(), grid["tokens"].to_numpy(), change)
        sets.append(grid.assign(loss=loss * np.exp(0.01 * rng.standard_t(4.0, len(grid)))))
        big = grid.loc[grid["flops"].idxmax()]
        rows = []
        for decades in (1.0, 2.0):
            for ratio in (10.0, 20.0, 40.0):
                c = big["flops"] * 10**decades
                n = np.sqrt(c / (6 * ratio))
                rows.append({"N": n, "D": ratio * n, "C": c})
        points = pd.DataFrame(rows)
        truth = bent(points["N"].to_numpy(), points["D"].to_numpy(), change)
        moves.append(np.max(np.abs(truth / bent(points["N"].to_numpy(), points["D"].to_numpy(), 0.0) - 1)))
        held.append(points.assign(loss=truth * np.exp(0.01 * rng.standard_t(4.0, len(points)))))
    start = time.perf_counter()
    scores = {"calibrated": [], "plain": []}
    kappa, failed = [], 0
    for sweep, points in zip(sets, held, strict=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = bs.fit(sweep, "chinchilla", settings=SETTINGS, seed=0)  # calibrated, as `fit` is
        failed += any("internal backtest refits did not converge" in str(w.message) for w in caught)
        evidence = result.group("extrapolation")
        assert _calibration.calibrated(result) and evidence.sizes["internal_run"] > 0
        kappa.append(_calibration.kappa_medians(result))
        for mode in scores:
            scores[mode].append(_corpus.score(result, points, mode=mode))
    kappa = pd.DataFrame(kappa)
    say(
        f"{studies} calibrated fits of 20 runs (each with its internal backtests, the lower 70% by N and by D) in "
        f"{time.perf_counter() - start:.0f} s; {failed} with a backtest refit that failed its checks; the bend "
        f"moves the far runs by up to {100 * np.median(moves):.2f}% (median over sweeps; quartiles "
        f"{100 * np.quantile(moves, 0.25):.2f}-{100 * np.quantile(moves, 0.75):.2f}%)"
    )
    prior = resolve(bs.laws.get("chinchilla")).extrapolation
    medians = ", ".join(f"{k} {v:.4f}" for k, v in kappa.median().items())
    shipped = ", ".join(f"kappa_{x} {np.exp(dict(p.args)['loc']):.4f}" for x, p in prior.items())
    say(f"  posterior medians of kappa, median over sweeps: {medians} (the prior's medians: {shipped})")
    boot = np.random.default_rng(1).integers(0, studies, (2000, studies))  # sweeps resampled: the independent units
    for mode, rows in scores.items():
        table = pd.DataFrame(rows)
        lo, hi = np.quantile(table["cover90"].to_numpy()[boot].mean(axis=1), [0.025, 0.975])
        say(
            f"  {mode:10s} cover50 {table['cover50'].mean():.3f}  cover80 {table['cover80'].mean():.3f}  "
            f"cover90 {table['cover90'].mean():.3f} (95% bootstrap over sweeps {lo:.3f}-{hi:.3f})  "
            f"median abs error {table['median_error'].median():.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "loo", "small"), default="all")
    parser.add_argument("--studies", type=int, default=50, help="simulated small sweeps (part 3)")
    parser.add_argument(
        "--bend", type=float, action="append", help="spread of the bend's change of beta (part 3; default 0.03)"
    )
    parser.add_argument(
        "--per-refit",
        type=float,
        help="weight of one refit's held-out runs in the kappa likelihood, as this many runs (default: the "
        "package's, 8; inf: every run independent)",
    )
    parser.add_argument("--subsets", type=int, default=3, help="20-run sweeps per real study (part 4)")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    say = Report()

    if args.per_refit is not None:
        _calibration.PER_REFIT = args.per_refit
    bends = "".join(f" --bend {b:g}" for b in args.bend or [])
    weight = "" if args.per_refit is None else f" --per-refit {args.per_refit:g}"
    say(f"# python benchmarks/bench_corpus.py --part {args.part} --studies {args.studies}{bends}{weight}")
    say(f"# {platform.platform()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}")
    start = time.perf_counter()
    if args.part == "small":
        for spread in args.bend or [0.03]:
            say(f"\n3. small sweeps: {args.studies} simulated 20-run sweeps, bend Normal(0, {spread}); 1-2 decades out")
            small_sweeps(args.studies, say, spread)
        say.write(args.out)
        return
    studies = _corpus.studies()
    evidence, held = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in studies.items():
            evidence[name], _ = _corpus.far_evidence(data, settings=SETTINGS)
            held[name] = data.frame[data.frame["C"] > _corpus.cutoff(data)].reset_index(drop=True)
    say(f"far evidence of {len(studies)} studies in {time.perf_counter() - start:.0f} s")

    say("\n1. learned from every study (the shipped prior):")
    prior, kappa, health = _corpus.learn(evidence)
    say("[extrapolation]")
    for x, p in prior.items():
        values = dict(p.args)
        say(f'kappa_{x} = {{ dist = "lognormal", loc = {values["loc"]}, scale = {values["scale"]} }}')
    say(f"(population sampler health: {health.level}: {'; '.join(health.problems) or 'no findings'})")
    say("per-study posterior medians of kappa:")
    medians = pd.DataFrame(np.median(kappa, axis=1), index=list(studies), columns=[f"kappa_{x}" for x in prior])
    say(medians.to_string(float_format="{:.4f}".format))

    say("\n2. leave one out: each study's prior learned from the others")
    base = resolve(bs.laws.get("chinchilla"))
    rows, loo = [], {}
    for name, data in studies.items():
        others = {k: v for k, v in evidence.items() if k != name}
        learned, _, _ = _corpus.learn(others)
        loo[name] = learned
        train = data.subset(data.frame["C"].to_numpy() <= _corpus.cutoff(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            corpus_fit = bs.fit(
                train, priors=dataclasses.replace(base, extrapolation=learned), seed=0, settings=SETTINGS
            )
            own_fit = bs.fit(train, priors=dataclasses.replace(base, extrapolation={}), seed=0, settings=SETTINGS)
        mine = _corpus.score(corpus_fit, held[name])
        beyond = np.log10(held[name]["C"].to_numpy() / train.frame["C"].max())
        rows.append(
            {
                "study": name,
                "fit_runs": len(train),
                "held_out": mine["runs"],
                "decades": f"{beyond.min():.1f}-{beyond.max():.1f}",
                "cover50": mine["cover50"],
                "cover80": mine["cover80"],
                "cover90": mine["cover90"],
                "median_error": mine["median_error"],
                "bias": mine["bias"],
                "own_cover90": _corpus.score(own_fit, held[name])["cover90"],
                "plain_cover90": _corpus.score(corpus_fit, held[name], mode="plain")["cover90"],
            }
        )
        say(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1, float_format="{:.3f}".format))
    table = pd.DataFrame(rows)
    weights = table["held_out"] / table["held_out"].sum()
    say("\nover every held-out run (each study weighted by its runs) and the median study:")
    for column in ("cover50", "cover80", "cover90", "own_cover90", "plain_cover90", "median_error"):
        say(
            f"  {column:14s} all runs {np.sum(weights * table[column]):.3f}   median study {table[column].median():.3f}"
        )
    say(f"\n4. small real sweeps: {args.subsets} x 20 runs below each study's cutoff, prior learned from the others")
    small_real(studies, held, loo, args.subsets, say)
    if args.part == "all":
        for spread in args.bend or [0.03]:
            say(f"\n3. small sweeps: {args.studies} simulated 20-run sweeps, bend Normal(0, {spread}); 1-2 decades out")
            small_sweeps(args.studies, say, spread)
    say(f"\ntotal {time.perf_counter() - start:.0f} s")
    say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
