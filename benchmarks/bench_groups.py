"""Groups and replicates on simulated studies with known truth.

Run:  python benchmarks/bench_groups.py [--studies 50] [--part pooling|replicates|real|both|all]
                                        [--no-centre-offsets]

Pooling. Each study: six groups (data sets) share the exponents (alpha 0.34, beta 0.28) and the
amplitudes (A 400, B 1500) but not the irreducible loss (E = 1.7 + Normal(0, 0.15) per group).
Five groups have full sweeps (6 sizes x 5 tokens-per-parameter ratios, 1e7-1e9 parameters); the
sixth has only its 7 smallest runs (the fewest a five-parameter law can be fitted to alone). Its
target lies two decades of compute beyond its largest run (10x the parameters and tokens). Compared:
the grouped fit (the law's default pooling: E, A, B pooled, exponents shared) against the sixth group
fitted alone. Printed: the median absolute error of the target's expected-loss forecast, both ways,
and the coverage of the grouped fit's 50/80/90% bands of a new run at held-out points of every group
(three per group, 1 to 2 decades beyond its runs, each with its own simulated noise).

Replicates. Each study: a grid of 6 x 5 configurations, five seeds each (noise 0.5% of the loss), and
a smooth misfit of the law (amplitude 3%, random phase) shared by a configuration's seeds. Six
configurations are held out; the rest is fitted twice: with the replicate model (run noise apart
from the law's misfit) and with the plain model of a single sweep (every run independent, one noise
scale: this package's model before groups and replicates). Printed: coverage of the 50/80/90% bands
of a new run (one new seed per held-out configuration), both ways.

Real groups (``--part real``). Porian et al.'s 1,160 runs in ten groups (data set x set-up), plain fits at
4 x (500 + 1000): E, A and B pooled (the law's default), then the exponents pooled too; each with the pooled
offsets partially centred (the default) and non-centred (``centre_offsets=False``). Printed per fit: wall
time in this process (the first fit of each kind compiles its programs), leapfrog steps a draw, divergent
draws, the spreads' lowest bulk and tail ESS and highest R-hat, and the sampler-health level.

``--no-centre-offsets`` runs the simulated parts with non-centred offsets (the sampler before 2026-12-02).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling._model import PLAIN
from bayes_scaling.fit import _as_dataset, _fit_plain
from bayes_scaling.priors import resolve

TRUTH = {"A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
LEVELS = (0.5, 0.8, 0.9)
SETTINGS = {"chains": 4, "warmup": 500, "draws": 1000}


def law(floor: float, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return floor + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]


def study(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(runs of six groups, held-out points with simulated losses, the sparse group's target)."""
    rng = np.random.default_rng(seed)
    floors = 1.7 + 0.15 * rng.standard_normal(6)
    grid = bs.datasets.sweep(n_range=(1e7, 1e9), sizes=6, ratios=5)
    frames, held = [], []
    for g, floor in enumerate(floors):
        runs = grid if g < 5 else grid.sort_values("flops").iloc[:7]
        loss = law(floor, runs["params"].to_numpy(), runs["tokens"].to_numpy())
        frames.append(runs.assign(loss=loss * np.exp(0.01 * rng.standard_normal(len(runs))), dataset=f"g{g}"))
        big = runs.loc[runs["flops"].idxmax()]
        for factor in (10**0.5, 10**0.75, 10.0):  # 1, 1.5 and 2 decades of compute beyond
            n, d = big["params"] * factor, big["tokens"] * factor
            value = law(floor, np.array([n]), np.array([d]))[0] * np.exp(0.01 * rng.standard_normal())
            held.append({"group": f"g{g}", "N": n, "D": d, "C": 6 * n * d, "loss": value})
    big = frames[5].loc[frames[5]["flops"].idxmax()]
    n, d = big["params"] * 10, big["tokens"] * 10
    target = {"N": n, "D": d, "truth": law(floors[5], np.array([n]), np.array([d]))[0]}
    return pd.concat(frames, ignore_index=True), pd.DataFrame(held), target


def covered(table: pd.DataFrame, y: np.ndarray) -> dict[float, np.ndarray]:
    return {lv: (table[f"run_lo{100 * lv:g}"] <= y) & (y <= table[f"run_hi{100 * lv:g}"]) for lv in LEVELS}


def pooling(studies: int) -> None:
    made = [study(1000 + s) for s in range(studies)]
    t = time.perf_counter()
    with warnings.catch_warnings():  # health is counted below
        warnings.simplefilter("ignore")
        # One fit at a time: vmapped NUTS waits each iteration for the longest trajectory of the batch.
        fits = [
            bs.fit(runs, group="dataset", seed=s, calibrate=False, **SETTINGS) for s, (runs, _, _) in enumerate(made)
        ]
    t_pooled = time.perf_counter() - t
    alone_sets = [runs[runs["dataset"] == "g5"].drop(columns="dataset") for runs, _, _ in made]
    t = time.perf_counter()
    alone = bs.fit_many(alone_sets, seed=0, **SETTINGS)
    t_alone = time.perf_counter() - t
    errors = {"grouped (pooled)": [], "sparse group fitted alone": []}
    inside = {lv: [] for lv in LEVELS}
    for (_, held, target), grouped, single in zip(made, fits, alone, strict=True):
        point = {"N": target["N"], "D": target["D"]}
        for name, result, group in (("grouped (pooled)", grouped, "g5"), ("sparse group fitted alone", single, None)):
            row = bs.forecast(result, **point, group=group, mode="plain").iloc[0]
            errors[name].append(abs(row["loss_median"] / target["truth"] - 1))
        table = bs.forecast(grouped, held.drop(columns="loss"), levels=LEVELS, mode="plain")
        for lv, hit in covered(table, held["loss"].to_numpy()).items():
            inside[lv].append(hit.to_numpy())
    print(
        f"POOLING: {studies} studies; grouped fits {t_pooled:.0f} s (a loop of fit), alone {t_alone:.0f} s (fit_many)"
    )
    levels = [r.health().level for r in fits]
    steps = np.mean([np.asarray(r.group("sample_stats")["n_steps"]).mean() for r in fits])
    divergent = sum(int(np.asarray(r.group("sample_stats")["diverging"]).sum()) for r in fits)
    print(
        f"  grouped fits' sampler health: {levels.count('pass')} pass, {levels.count('warn')} warn, "
        f"{levels.count('fail')} fail; {steps:.0f} leapfrog steps a draw (mean), {divergent} divergent draws in all"
    )
    for name, values in errors.items():
        print(
            f"  {name:<28} median |error| of the sparse group's forecast 2 decades out: {100 * np.median(values):.2f}%"
        )
    wins = np.mean(np.array(errors["grouped (pooled)"]) < np.array(errors["sparse group fitted alone"]))
    print(f"  the grouped forecast is closer in {100 * wins:.0f}% of studies")
    for lv in LEVELS:
        hits = np.concatenate(inside[lv])
        print(
            f"  grouped fit, {100 * lv:g}% bands of a new run at held-out points of every group: "
            f"{100 * hits.mean():.1f}% of {hits.size}"
        )


def replicate_study(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    grid = bs.datasets.sweep(n_range=(1e7, 1e9), sizes=6, ratios=5)
    n, d = grid["params"].to_numpy(), grid["tokens"].to_numpy()
    phase = rng.uniform(0, 2 * np.pi, 2)
    misfit = 0.03 * np.sin(2.0 * np.log10(n) + phase[0]) * np.cos(1.5 * np.log10(d) + phase[1])
    mean = law(1.7, n, d) * np.exp(misfit)
    held = rng.choice(len(grid), 6, replace=False)
    keep = np.setdiff1d(np.arange(len(grid)), held)
    runs = pd.concat(
        [grid.iloc[keep].assign(loss=mean[keep] * np.exp(0.005 * rng.standard_normal(len(keep)))) for _ in range(5)],
        ignore_index=True,
    )
    new = pd.DataFrame({"N": n[held], "D": d[held], "C": 6 * n[held] * d[held]})
    new["loss"] = mean[held] * np.exp(0.005 * rng.standard_normal(len(held)))
    return runs, new


def replicates(studies: int) -> None:
    law_ = bs.laws.get("chinchilla")
    spec = resolve(law_)
    settings = bs.Settings(**SETTINGS)
    inside = {name: {lv: [] for lv in LEVELS} for name in ("replicate model", "plain model (one noise scale)")}
    widths = {name: [] for name in inside}
    t = time.perf_counter()
    for s in range(studies):
        runs, new = replicate_study(2000 + s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            replicate = bs.fit(runs, seed=s, calibrate=False, **SETTINGS)
            data = _as_dataset(runs, law_)
            plain = _fit_plain(data, law_, spec, settings, s, 1, 64, plan=PLAIN)  # every run on its own
        for name, result in (("replicate model", replicate), ("plain model (one noise scale)", plain)):
            table = bs.forecast(result, new.drop(columns="loss"), levels=LEVELS, mode="plain")
            for lv, hit in covered(table, new["loss"].to_numpy()).items():
                inside[name][lv].append(hit.to_numpy())
            widths[name].append(np.median((table["run_hi90"] - table["run_lo90"]) / table["run_median"]))
    print(
        f"REPLICATES: {studies} studies, 24 configurations x 5 seeds fitted, 6 held out; "
        f"{time.perf_counter() - t:.0f} s"
    )
    for name in inside:
        covers = ", ".join(f"{100 * lv:g}%: {100 * np.concatenate(inside[name][lv]).mean():.1f}%" for lv in LEVELS)
        print(
            f"  {name:<32} bands of a new run at held-out configurations cover {covers}; "
            f"90% band {100 * np.median(widths[name]):.1f}% of the loss wide"
        )


def real() -> None:
    porian = bs.datasets.porian()
    print(f"REAL GROUPS: Porian et al., {len(porian)} runs in {len(porian.labels)} groups, plain fits")
    for name, pooling in (("E, A, B pooled", None), ("exponents pooled too", {"alpha": "pooled", "beta": "pooled"})):
        for centre in (True, False):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # health is printed below
                options = {**SETTINGS, "centre_offsets": centre}
                result = bs.fit(porian, seed=0, calibrate=False, pooling=pooling, **options)
            seconds = time.perf_counter() - t
            stats = result.group("sample_stats")
            summary = result.summary()
            spreads = summary.loc[[s for s in summary.index if s.endswith("_tau")]]
            print(
                f"  {name:<22} {'partially centred' if centre else 'non-centred':<18} {seconds:5.1f} s, "
                f"{np.asarray(stats['n_steps']).mean():4.0f} leapfrog steps a draw, "
                f"{int(np.asarray(stats['diverging']).sum()):2d} divergent; spreads: min bulk ESS "
                f"{spreads['ess_bulk'].min():5.0f}, min tail ESS {spreads['ess_tail'].min():5.0f}, max R-hat "
                f"{spreads['r_hat'].max():.3f}; health {result.health().level}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--part", choices=("pooling", "replicates", "real", "both", "all"), default="both")
    parser.add_argument("--centre-offsets", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    SETTINGS["centre_offsets"] = args.centre_offsets
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; bayes_scaling {bs.__version__}; "
        f"4 chains x (500 + 1000) draws; pooled offsets {'partially centred' if args.centre_offsets else 'non-centred'}"
    )
    if args.part in ("pooling", "both", "all"):
        pooling(args.studies)
    if args.part in ("replicates", "both", "all"):
        replicates(args.studies)
    if args.part in ("real", "all"):
        real()
    flag = "" if args.centre_offsets else " --no-centre-offsets"
    print(f"\nreproduce: python benchmarks/bench_groups.py --studies {args.studies} --part {args.part}{flag}")


if __name__ == "__main__":
    sys.exit(main())
