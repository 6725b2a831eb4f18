"""Sweep design (``bs.design``): speed, simulated studies against an IsoFLOP grid, a retrospective on real runs.

Run:  python benchmarks/bench_design.py [--part speed|simulated|retrospective|all] [--studies 50]

Speed. Scoring 1000 candidate runs x 64 simulated outcomes against 4000 posterior draws (one
greedy round), warm, median of 5, for each objective.

Simulated studies. Truth: the Chinchilla law with Epoch AI's estimates (E 1.82, A 482, B 2085,
alpha 0.348, beta 0.366; each study draws alpha and beta within +-0.03) and Gaussian noise of 1% on
the loss. The practitioners' grid: five log-spaced compute budgets (1e17 to 1e19 FLOP, half a decade
apart), eight model sizes per budget from 2 to 200 tokens per parameter (40 runs). The target: the
compute-optimal run at 1e22 FLOP (three decades beyond). The grid's 90% band of the target's expected
loss (plain: the law's parameter uncertainty) is the width to reach. Sequential design starts from
the grid's two smallest budgets (16 runs), then picks 4 runs a round (``bs.design``, objective
variance) from the same five budget levels (16 sizes per budget over the same range, none run twice),
trains them (simulated from the truth), refits, and stops when its band is as narrow as the grid's.
Printed per study and in median: the sweep compute each way, their ratio, the absolute error of the
median forecast and whether the 90% band covers the truth.

Retrospective. The embedded Chinchilla runs below 1e21 FLOP are the candidate pool; the 20 cheapest
are the start; ``bs.design`` (targets: the held-out runs' N and D, as planned runs; calibrated fits once
30 runs are in) picks from the rest (their real losses revealed when picked, 3 a round)
until 10% of the pool's compute is spent; the forecast error at the runs above 1e21 FLOP is then
compared with that of random picks of the same compute (20 random orders; each adds runs until the
next would pass the budget).
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
import bayes_scaling.design  # the module; bs.design is the function
from bayes_scaling._evaluate import law_at

design_module = sys.modules["bayes_scaling.design"]
TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}
BUDGETS = np.geomspace(1e17, 1e19, 5)
TARGET_FLOPS = 1e22
FIT = {"chains": 4, "warmup": 500, "draws": 1000, "calibrate": False}


def isoflop(budgets: np.ndarray, sizes: int, ratios: tuple[float, float] = (2.0, 200.0)) -> pd.DataFrame:
    """Runs on IsoFLOP lines: for each budget C, ``sizes`` model sizes from ``ratios[1]`` to ``ratios[0]``
    tokens per parameter (N = sqrt(C / (6 r)))."""
    rows = []
    for c in budgets:
        for r in np.geomspace(ratios[1], ratios[0], sizes):
            n = np.sqrt(c / (6 * r))
            rows.append({"params": n, "tokens": c / (6 * n), "flops": c})
    return pd.DataFrame(rows)


def observe(truth: dict, runs: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    mean = truth["E"] + truth["A"] / runs["params"] ** truth["alpha"] + truth["B"] / runs["tokens"] ** truth["beta"]
    return runs.assign(loss=mean * np.exp(0.01 * rng.standard_normal(len(runs))))


def band(result: bs.Result, point: dict) -> tuple[float, float, float]:
    """(5%, 50%, 95%) of the target's expected loss, plain."""
    loss = np.exp(law_at(result.law, result.draws(), {"N": [point["N"]], "D": [point["D"]]})[:, 0])
    lo, med, hi = np.quantile(loss, [0.05, 0.5, 0.95])
    return float(lo), float(med), float(hi)


def fit(runs: pd.DataFrame, seed: int, calibrate: bool = False) -> bs.Result:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit(runs, seed=seed, **{**FIT, "calibrate": calibrate})


def simulated(seed: int, rounds: int = 12, k: int = 4, objective: str = "variance") -> dict:
    rng = np.random.default_rng(seed)
    truth = {
        **TRUTH,
        "alpha": TRUTH["alpha"] + rng.uniform(-0.03, 0.03),
        "beta": TRUTH["beta"] + rng.uniform(-0.03, 0.03),
    }
    a, b = truth["alpha"], truth["beta"]
    g = (a * truth["A"] / (b * truth["B"])) ** (1 / (a + b))
    n_opt = g * (TARGET_FLOPS / 6) ** (b / (a + b))
    point = {"N": n_opt, "D": TARGET_FLOPS / (6 * n_opt)}
    true_loss = truth["E"] + truth["A"] / point["N"] ** a + truth["B"] / point["D"] ** b
    grid = observe(truth, isoflop(BUDGETS, 8), rng)
    lo, med, hi = band(fit(grid, seed), point)
    out = {
        "seed": seed,
        "grid_flops": grid["flops"].sum(),
        "grid_width": hi - lo,
        "grid_error": abs(med / true_loss - 1),
        "grid_covers": lo <= true_loss <= hi,
    }
    runs = observe(truth, isoflop(BUDGETS[:2], 8), rng)
    pool = isoflop(BUDGETS, 16).rename(columns={"params": "N", "tokens": "D", "flops": "C"})
    for step in range(rounds + 1):
        result = fit(runs, seed + 1000 * step)
        lo, med, hi = band(result, point)
        if hi - lo <= out["grid_width"] or step == rounds:
            break
        taken = set(zip(runs["params"].round(6), runs["tokens"].round(6), strict=True))
        open_ = pool[[(n, d) not in taken for n, d in zip(pool["N"].round(6), pool["D"].round(6), strict=True)]]
        picks = bs.design(
            result, point, candidates=open_.reset_index(drop=True), k=k, objective=objective, seed=seed + step
        )
        if picks.empty:
            break
        new = picks.rename(columns={"N": "params", "D": "tokens", "C": "flops"})[["params", "tokens", "flops"]]
        runs = pd.concat([runs, observe(truth, new, rng)], ignore_index=True)
    level = np.argmin(np.abs(np.log(runs["flops"].to_numpy()[:, None] / BUDGETS[None, :])), axis=1)
    out |= {
        "per_level": np.bincount(level, minlength=len(BUDGETS)),
        "design_flops": runs["flops"].sum(),
        "design_runs": len(runs),
        "design_width": hi - lo,
        "reached": hi - lo <= out["grid_width"],
        "design_error": abs(med / true_loss - 1),
        "design_covers": lo <= true_loss <= hi,
        "rounds": step,
    }
    return out


def part_simulated(studies: int, k: int = 4, objective: str = "variance") -> None:
    print(f"\n## Simulated studies ({studies}): sequential design against an IsoFLOP grid of the same budget levels")
    rows = []
    start = time.perf_counter()
    for seed in range(studies):
        row = simulated(seed, rounds=48 // k, k=k, objective=objective)
        rows.append(row)
        print(
            f"study {seed:3d}: grid {row['grid_flops']:.3g} FLOP, width {row['grid_width']:.4f}; design "
            f"{row['design_flops']:.3g} FLOP ({row['design_flops'] / row['grid_flops']:.2f}x, {row['design_runs']} "
            f"runs, {row['rounds']} rounds), width {row['design_width']:.4f}"
            f"{'' if row['reached'] else ' NOT REACHED'}; runs per budget {'/'.join(map(str, row['per_level']))}",
            flush=True,
        )
    t = pd.DataFrame(rows)
    ratio = t["design_flops"] / t["grid_flops"]
    to_reach = ratio.where(t["reached"], 99.0)  # a study that never reached the width needs more than it spent
    print(f"\n{studies} studies in {time.perf_counter() - start:.0f} s")
    print(f"width reached in {t['reached'].sum()} of {studies} studies ({48 // k} rounds of {k} runs at most)")
    print(
        f"sweep compute to reach the grid's width, design / grid: median {to_reach.median():.2f} over all {studies} "
        f"studies (those that never reached it count as 99), {ratio[t['reached']].median():.2f} over the "
        f"{t['reached'].sum()} that did; quartiles {to_reach.quantile(0.25):.2f}-{to_reach.quantile(0.75):.2f}"
    )
    levels = np.stack(t["per_level"].to_numpy())
    share = (levels * BUDGETS).T / t["design_flops"].to_numpy()
    print(
        "design runs per budget level (" + ", ".join(f"{b:.2g}" for b in BUDGETS) + " FLOP; the grid has 8 each): "
        f"median {'/'.join(f'{m:g}' for m in np.median(levels, axis=0))}; share of the design's compute at the "
        f"top level: median {np.median(share[-1]):.0%} (the grid: {8 * BUDGETS[-1] / (8 * BUDGETS.sum()):.0%})"
    )
    print(
        f"median |error| of the target's forecast: grid {100 * t['grid_error'].median():.2f}%, design "
        f"{100 * t['design_error'].median():.2f}%"
    )
    print(
        f"90% band covers the truth: grid {100 * t['grid_covers'].mean():.0f}%, design "
        f"{100 * t['design_covers'].mean():.0f}% of {studies}"
    )


def part_speed() -> None:
    print("\n## Speed: one greedy round, 1000 candidates x 64 simulated outcomes x 4000 draws (warm, median of 5)")
    result = bs.fit(calibrate=False)
    pool = design_module.default_candidates(result).iloc[:1000].reset_index(drop=True)
    point = design_module._target(result, "gpt4", None, 6.0)
    for objective in design_module.OBJECTIVES:
        post = design_module._Posterior(result, pool, point, objective, None, 6.0)
        truth, eps, logw0 = design_module._worlds(np.random.default_rng(0), post.size, 64, len(pool), 4.0)
        times = []
        for _ in range(6):  # the first compiles
            t = time.perf_counter()
            design_module._scores(objective, 4.0, post, logw0, truth, eps, np.arange(len(pool)))
            times.append(time.perf_counter() - t)
        print(f"{objective:9s} {np.median(times[1:]):.2f} s (min {min(times[1:]):.2f}, first call {times[0]:.2f})")
    t = time.perf_counter()
    table = bs.design(result, "gpt4", budget=1e21)
    print(f"bs.design(result, 'gpt4', budget=1e21): 5 picks from {len(table.attrs['candidates'])} candidates in "
          f"{time.perf_counter() - t:.1f} s")  # fmt: skip


def part_retrospective(randoms: int = 20, seed: int = 0) -> None:
    print("\n## Retrospective on the embedded runs: pool below 1e21 FLOP, start from the 20 cheapest, 10% of the pool")
    runs = bs.datasets.chinchilla().frame.rename(columns={"params": "N", "tokens": "D", "flops": "C"})
    runs = runs[["N", "D", "C", "loss"]]
    pool, held = runs[runs["C"] < 1e21].sort_values("C"), runs[runs["C"] >= 1e21]
    budget = 0.1 * pool["C"].sum()
    start, rest = pool.iloc[:20], pool.iloc[20:]

    def error(chosen: pd.DataFrame, seed: int) -> tuple[float, float]:
        """(median |relative error| of the median forecast, mean 90% width of the expected loss) at held-out runs."""
        result = fit(chosen.rename(columns={"N": "params", "D": "tokens", "C": "flops"}), seed)
        loss = np.exp(law_at(result.law, result.draws(), {"N": held["N"].to_numpy(), "D": held["D"].to_numpy()}))
        lo, med, hi = np.quantile(loss, [0.05, 0.5, 0.95], axis=0)
        return float(np.median(np.abs(med / held["loss"].to_numpy() - 1))), float(np.mean(hi - lo))

    target = held[["N", "D"]].reset_index(drop=True)  # the planned runs (their sizes; their losses stay unknown)

    def designed(ratios: str | None) -> tuple[pd.DataFrame, float, tuple[float, float] | None]:
        """The runs chosen (the start, then the design's picks), the FLOP the picks cost and the ratios the design
        scored candidates within (its first round's; None: any)."""
        chosen, left, spent, step, span = start, rest, 0.0, 0, None
        while True:
            # Calibrated, as `bayes-scaling design` fits: the design weighs the extrapolation error too (under 20
            # runs from the prior learned across studies alone, then from the sweep's own internal backtests too).
            result = fit(chosen.rename(columns={"N": "params", "D": "tokens", "C": "flops"}), seed + step, True)
            affordable = left[left["C"] <= budget - spent].reset_index(drop=True)
            if affordable.empty:
                break
            try:
                picks = bs.design(result, target, budget - spent, affordable[["N", "D"]], k=3, seed=seed + step,
                                  ratios=ratios)  # fmt: skip
            except ValueError:  # nothing affordable left within the ratios
                break
            if picks.empty:
                break
            span = picks.attrs["ratios"] if step == 0 else span
            rows = [
                int(np.flatnonzero((affordable["N"] == n) & (affordable["D"] == d))[0])
                for n, d in zip(picks["N"], picks["D"], strict=True)
            ]
            new = affordable.iloc[rows]
            chosen = pd.concat([chosen, new], ignore_index=True)
            spent += new["C"].sum()
            left = left[~left.set_index(["N", "D"]).index.isin(new.set_index(["N", "D"]).index)]
            step += 1
        return chosen, spent, span

    outcome = {}
    for ratios, name in ((None, "any ratio (ratios=None)"), ("data", "within the ratios of the runs and targets")):
        chosen, spent, span = designed(ratios)
        error_, width = error(chosen, seed)
        outcome[ratios] = error_, width, spent, span
        picked = chosen.iloc[20:]
        print(f"design, candidates at {name}: picks in order (N, D, C, D/N): " + "; ".join(
            f"{n:.3g}, {d:.3g}, {c:.3g}, {d / n:.2g}"
            for n, d, c in zip(picked["N"], picked["D"], picked["C"], strict=True)
        ))  # fmt: skip
        print(f"  {len(chosen) - 20} runs, {spent:.3g} FLOP of {budget:.3g}; median |error| at the {len(held)} runs "
              f"above 1e21 FLOP {100 * error_:.2f}%, mean 90% band width {width:.4f} nats")  # fmt: skip
    designed_error, width, spent, (lo, hi) = outcome["data"]  # the default design, against random picks of its compute
    ratio = (rest["D"] / rest["N"]).to_numpy()
    for among, name in (
        (rest, "the pool"),
        (rest[(ratio >= lo) & (ratio <= hi)], f"the pool's runs at {lo:.2g}-{hi:.3g}"),
    ):
        errors, spends, widths = [], [], []
        for r in range(randoms):
            order = among.sample(frac=1.0, random_state=r)
            used, keep = 0.0, []
            for i, c in zip(order.index, order["C"], strict=True):
                if used + c <= spent:
                    keep.append(i)
                    used += c
            e, w = error(pd.concat([start, order.loc[keep]]), r)
            errors.append(e)
            widths.append(w)
            spends.append(used)
        q1, q3 = np.quantile(errors, [0.25, 0.75])
        better, narrower = np.mean(np.array(errors) > designed_error), np.mean(np.array(widths) > width)
        print(
            f"random picks from {name} of the same compute ({randoms} draws, {np.median(spends):.3g} FLOP in median): "
            f"median |error| {100 * np.median(errors):.2f}% (quartiles {100 * q1:.2f}-{100 * q3:.2f}%); the default "
            f"design better than {better:.0%} of them; mean 90% band width {np.median(widths):.4f} nats in median, "
            f"the design's narrower than {narrower:.0%} of them"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("speed", "simulated", "retrospective", "all"), default="all")
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--k", type=int, default=4, help="runs picked per round in the simulated studies")
    parser.add_argument("--objective", choices=("variance", "width90", "regret"), default="variance")
    parser.add_argument("--seed", type=int, default=0, help="retrospective: seeds of the design's fits and picks")
    args = parser.parse_args()
    print(f"# bench_design: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, bayes_scaling "
          f"{bs.__version__}, python {platform.python_version()}")  # fmt: skip
    print(f"# command: python benchmarks/bench_design.py {' '.join(sys.argv[1:])}")
    bs.enable_cache()
    if args.part in ("speed", "all"):
        part_speed()
    if args.part in ("retrospective", "all"):
        part_retrospective(seed=args.seed)
    if args.part in ("simulated", "all"):
        part_simulated(args.studies, args.k, args.objective)


if __name__ == "__main__":
    main()
