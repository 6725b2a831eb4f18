"""The review's verdicts checked against outcomes (simulated sweeps reviewed, then their target revealed),
and the review's speed.

Run:  python benchmarks/bench_review.py [--sweeps 96] [--workers 8] [--out FILE]
      python benchmarks/bench_review.py --table FILE.csv    (a saved run's sweeps summarized again)
      python benchmarks/bench_review.py --speed [--repeat 3] [--out FILE]
      python benchmarks/bench_review.py --speed --against DIR [--repeat 8]

``--speed``: fresh processes of ``bayes-scaling review --preset gpt4`` on the embedded runs, beside a plain
``bayes-scaling fit --plain`` in the same run: each first into an empty program cache (cold), then
``--repeat`` times with its cache kept (warm, the two commands alternating; the medians and each round's own
ratio are reported), with wall time and peak memory (maximum resident set) of each process, and the verdict
of every review (they must agree). ``--against DIR`` (a checkout of another commit, e.g. ``git worktree add DIR
REV``) times this tree against that one instead, warm only: round after round, a plain fit and a review of
each tree, every process started the same way (``python -c``, its tree first on ``PYTHONPATH``); the means and
each round's own ratio of each tree: a change's effect, measured where the machine's load is shared alike.

Each sweep (seeded by its index): a Chinchilla law near Epoch AI's estimates that either holds or bends (the
data exponent beta changes by +-0.05 to 0.15 smoothly over a decade of tokens), half of the bending laws
beyond the data (the bend starts at the sweep's largest run: no review can see it) and half inside it (it
starts at the geometric middle of the sweep's tokens: residuals and backtests can see it), noise of 0.5% or 3%
on log loss (Student-t, 4 dof), 20, 60 or 250 runs, wide or narrow (a grid over 1e7-1e9 parameters and 2-200
tokens per parameter: 6 decades of compute, or over 1e7-1e8 parameters and 5-50 tokens per parameter: 3
decades, as many sweeps are; thinned to that many runs, evenly in compute); the target: a compute-optimal-ish
run (20 tokens per parameter) 1, 2 or 3 decades of compute beyond the largest run. Each sweep is fitted
(``bs.fit``, the defaults: calibrated, 4 chains x (500 + 1000)) and reviewed (``bs.review`` at the target,
every section); then a new run at the target is drawn from the truth. Printed per verdict level: sweeps, the
share whose realized run fell outside the forecast's 90% band (with Wilson's 95% interval of that share), the
median absolute error of the median forecast, the share outside the plain 90% band (the law's own
predictive), and the share whose noise-free truth at the target fell outside the 90% band of the expected loss
(the realized run's own noise aside), then the same by noise and by the reasons the reviews gave. The levels
should be ordered: low < medium < high. Sweeps run in ``--workers`` processes (CPU).
"""

from __future__ import annotations

import argparse
import compileall
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from _report import prepend

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
#: The sweeps' grids (thinned to each sweep's size): parameters and tokens per parameter.
GRIDS = {
    "wide": {"n_range": (1e7, 1e9), "tokens_per_param": (2.0, 200.0)},
    "narrow": {"n_range": (1e7, 1e8), "tokens_per_param": (5.0, 50.0)},
}


def law(n: np.ndarray, d: np.ndarray, change: float, start: float) -> np.ndarray:
    """The truth: the Chinchilla law whose data exponent moves by ``change`` above ``start`` tokens (softly)."""
    x = np.log(np.asarray(d) / start) / np.log(10)
    bend = change * np.log(10) * np.logaddexp(0.0, 2.0 * x) / 2.0
    return (
        TRUTH["E"]
        + TRUTH["A"] / np.asarray(n) ** TRUTH["alpha"]
        + TRUTH["B"] * np.asarray(d) ** -TRUTH["beta"] * np.exp(-bend)
    )


def plan(index: int) -> tuple[np.random.Generator, bool, float, float, str, int, bool]:
    """Sweep ``index``'s random generator, whether its law bends, by how much, its noise, grid, size, and
    whether the bend starts inside the data."""
    rng = np.random.default_rng(index)
    bends = bool(rng.integers(2))
    change = float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.15)) if bends else 0.0
    noise = float(rng.choice([0.005, 0.03]))
    size = int(rng.choice([20, 60, 250]))
    # From a generator of its own: the sweep's other draws (and its runs' noise) are those of a bend beyond.
    inside = bends and bool(np.random.default_rng([index, 1]).integers(2))
    return rng, bends, change, noise, str(rng.choice(list(GRIDS))), size, inside


def sweep(index: int) -> dict:
    """Simulate, fit and review sweep ``index``; reveal its target."""
    import warnings

    import bayes_scaling as bs

    rng, bends, change, noise, width, size, inside = plan(index)
    grid = bs.datasets.sweep(**GRIDS[width], sizes=25, ratios=10)
    grid = grid.sort_values("flops").iloc[np.linspace(0, len(grid) - 1, size).round().astype(int)]
    tokens = grid["tokens"].to_numpy()
    start = float(np.sqrt(tokens.min() * tokens.max()) if inside else tokens.max())
    mean = law(grid["params"].to_numpy(), tokens, change, start)
    runs = grid.assign(loss=mean * np.exp(noise * rng.standard_t(4.0, size))).reset_index(drop=True)
    decades = int(rng.integers(1, 4))
    c = float(grid["flops"].max()) * 10**decades
    n = np.sqrt(c / (6 * 20.0))
    d = 20.0 * n
    expected = float(law(n, d, change, start))  # the truth at the target, without a run's noise
    realized = float(expected * np.exp(noise * rng.standard_t(4.0)))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bs.fit(runs, seed=index)
        review = bs.review(result, N=n, D=d, seed=index)
        row = bs.forecast(result, N=n, D=d, levels=(0.9,)).iloc[0]
        plain = bs.forecast(result, N=n, D=d, levels=(0.9,), mode="plain").iloc[0]
    return {
        "sweep": index,
        "bends": bends,
        "truth": "bends inside" if inside else "bends beyond" if bends else "holds",
        "change": change,
        "noise": noise,
        "grid": width,
        "runs": size,
        "decades": decades,
        "verdict": review.verdict,
        "reasons": " | ".join(review.reasons),
        "outside90": not (row["run_lo90"] <= realized <= row["run_hi90"]),
        "abs_error": abs(row["run_median"] / realized - 1),
        "plain_outside90": not (plain["run_lo90"] <= realized <= plain["run_hi90"]),
        "expected_outside90": not (row["loss_lo90"] <= expected <= row["loss_hi90"]),
        "seconds": time.perf_counter() - started,
    }


def timed(command: list[str], cache: str, tree: str | None = None) -> tuple[float, float, str]:
    """Run ``command`` in a fresh process with the program cache ``cache`` (and the checkout ``tree`` first on
    its ``PYTHONPATH``, run from the cache's folder: ``python -c`` puts its working folder first on the path):
    wall seconds, peak memory in GB, and its standard output."""
    env = dict(os.environ, BAYES_SCALING_CACHE=cache)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    where = None if tree is None else os.path.dirname(cache)
    with subprocess.Popen(
        command, env=env, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as p:
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {p.returncode}:\n{out[-2000:]}")
    return seconds, usage.ru_maxrss / 1e6, out


def speed(repeat: int) -> str:
    """Cold and warm wall time and peak memory of a review and of a plain fit, measured in one run."""
    import jax

    import bayes_scaling as bs

    script = os.path.join(os.path.dirname(sys.executable), "bayes-scaling")  # the console script, as users run it
    # Its sources compiled as `pip install` leaves them (an editable install under PYTHONDONTWRITEBYTECODE would
    # compile them in every process: about 0.1 s).
    compileall.compile_dir(os.path.dirname(bs.__file__), quiet=1)
    cli = [script] if os.path.exists(script) else [sys.executable, "-m", "bayes_scaling.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {}
        for name, args in (
            ("fit --plain", ["fit", "--plain"]),
            ("review --preset gpt4", ["review", "--preset", "gpt4"]),
        ):
            cache = os.path.join(tmp, name.split()[0] + "-cache")
            commands[name] = ([*cli, *args, "--out", os.path.join(tmp, name.split()[0])], cache)
        cold = {name: timed(*command) for name, command in commands.items()}
        warm = {name: [] for name in commands}
        for _ in range(repeat):  # alternating, so that both commands see the machine's load alike
            for name, command in commands.items():
                warm[name].append(timed(*command))
        rows = {name: (cold[name], warm[name]) for name in commands}
        review = rows["review --preset gpt4"]
        verdicts = [
            line for _, _, out in (review[0], *review[1]) for line in out.splitlines() if line.startswith("verdict")
        ]
    lines = [
        f"# python benchmarks/bench_review.py --speed --repeat {repeat}",
        f"# {platform.platform()}, {os.cpu_count()} cores; bayes_scaling {bs.__version__}, jax {jax.__version__}",
        "",
        f"{'command (fresh process, embedded runs)':42s} {'cold s':>8s} {'cold GB':>8s} {'warm s':>8s} {'warm GB':>8s}",
    ]
    for name, (cold, warm) in rows.items():
        w = sorted(warm)[len(warm) // 2]
        lines.append(f"bayes-scaling {name:28s} {cold[0]:8.1f} {cold[1]:8.2f} {w[0]:8.1f} {w[1]:8.2f}")
        spread = ", ".join(f"{s:.1f}" for s, _, _ in warm)
        lines.append(f"  warm runs: {spread} s")
    (fc, fws), (rc, rws) = rows["fit --plain"], rows["review --preset gpt4"]
    fw, rw = sorted(fws)[len(fws) // 2], sorted(rws)[len(rws) // 2]
    paired = sorted(r[0] / f[0] for f, r in zip(fws, rws, strict=True))
    lines += [
        "",
        f"review / plain fit: cold {rc[0] / fc[0]:.1f}x (target <= 2.5x, <= 40 s), "
        f"warm {rw[0] / fw[0]:.1f}x (target <= 3x, <= 10 s); peak memory target <= 1 GB",
        f"warm, each round's own ratio (a review right after a plain fit): median {paired[len(paired) // 2]:.2f}x, "
        f"range {paired[0]:.2f}-{paired[-1]:.2f}x",
        f"verdicts of the {len(verdicts)} reviews: {sorted(set(verdicts))}",
    ]
    return "\n".join(lines)


#: The command line of a checkout on ``PYTHONPATH``, as its console script runs it.
LAUNCH = "import sys, runpy; sys.argv[0] = 'bayes-scaling'; runpy.run_module('bayes_scaling.cli', run_name='__main__')"


def against(repeat: int, other: str) -> str:
    """Warm wall time of a plain fit and a review of this tree and of the checkout ``other``, alternating."""
    import bayes_scaling as bs

    here = os.path.dirname(os.path.dirname(os.path.abspath(bs.__file__)))
    trees = {"this tree": here, f"against {other}": os.path.abspath(other)}
    commands = {"fit --plain": ["fit", "--plain"], "review --preset gpt4": ["review", "--preset", "gpt4"]}
    times = {(t, c): [] for t in trees for c in commands}
    with tempfile.TemporaryDirectory() as tmp:
        for root in trees.values():
            compileall.compile_dir(os.path.join(root, "bayes_scaling"), quiet=1)
        for round_ in range(repeat + 1):  # the first round fills each tree's program cache
            for i, (t, root) in enumerate(trees.items()):
                for c, args in commands.items():
                    cache = os.path.join(tmp, f"tree{i}-{c.split()[0]}")
                    command = [sys.executable, "-c", LAUNCH, *args, "--out", os.path.join(tmp, "out")]
                    seconds = timed(command, cache, root)[0]
                    if round_:
                        times[t, c].append(seconds)
    lines = [
        f"# python benchmarks/bench_review.py --speed --against {other} --repeat {repeat}",
        f"# {platform.platform()}, {os.cpu_count()} cores; warm (each tree's program cache filled by a first round)",
        "",
        f"{'tree':40s} {'fit --plain s':>14s} {'review s':>9s} {'review/fit':>11s}  rounds: median ratio (range)",
    ]
    for t in trees:
        fit, review = np.array(times[t, "fit --plain"]), np.array(times[t, "review --preset gpt4"])
        ratio = review / fit
        lines.append(
            f"{t:40s} {fit.mean():14.2f} {review.mean():9.2f} {review.mean() / fit.mean():10.2f}x  "
            f"{np.median(ratio):.2f}x ({ratio.min():.2f}-{ratio.max():.2f}x)"
        )
    lines.append("(means over the rounds; review/fit: the ratio of the means)")
    return "\n".join(lines)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% interval of a share of ``k`` in ``n``."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(table: pd.DataFrame) -> list[str]:
    """The report's tables of a run's sweeps (one row per sweep, as :func:`sweep` returns and ``--out`` saves)."""
    lines = [
        "per verdict: sweeps, share of realized runs outside the forecast's (calibrated) 90% band with its 95%",
        "interval (Wilson), median absolute error of the median forecast, and the share outside the plain 90% band",
        "(the law's own posterior predictive, without the extrapolation error), and expected_outside90: the share",
        "whose noise-free truth at the target fell outside the calibrated 90% band of the expected loss (runs since",
        "2026-12-03)",
    ]
    levels = ["low", "medium", "high", "unusable"]
    summary = (
        table.groupby("verdict")
        .agg(
            sweeps=("sweep", "size"),
            outside90=("outside90", "mean"),
            outside90_95=("outside90", lambda miss: "{:.3f}-{:.3f}".format(*wilson(int(miss.sum()), len(miss)))),
            median_abs_error=("abs_error", "median"),
            plain_outside90=("plain_outside90", "mean"),
            **({"expected_outside90": ("expected_outside90", "mean")} if "expected_outside90" in table else {}),
        )
        .rename(columns={"outside90_95": "outside90_95%"})
    )
    summary = summary.reindex([v for v in levels if v in summary.index])
    lines.append(summary.to_string(float_format="{:.3f}".format))
    lines += ["", "by truth and verdict: sweeps, and the share outside the 90% band (calibrated; plain)"]
    lines.append(pd.crosstab(table["truth"], table["verdict"]).to_string())
    outside = table.pivot_table(index="truth", columns="verdict", values=["outside90", "plain_outside90"])
    lines.append(outside.to_string(float_format="{:.2f}".format))
    lines += ["", "by noise and verdict: sweeps, and the share outside the 90% band (calibrated)"]
    by_noise = table.groupby(["noise", "verdict"])["outside90"].agg(sweeps="size", outside90="mean")
    lines.append(by_noise.unstack("verdict").to_string(float_format="{:.3f}".format))
    lines += [
        "",
        "by reason (a sweep counts under each reason its review gave; 'none': no reason): sweeps, the share",
        "outside the 90% band (calibrated) and the median absolute error",
    ]
    reasons = table["reasons"].fillna("").map(lambda text: [_reason(r) for r in text.split(" | ") if r] or ["none"])
    by_reason = table.assign(reason=reasons).explode("reason").groupby("reason")
    lines.append(
        by_reason.agg(
            sweeps=("sweep", "size"), outside90=("outside90", "mean"), median_abs_error=("abs_error", "median")
        )
        .sort_values("sweeps", ascending=False)
        .to_string(float_format="{:.3f}".format)
    )
    lines += ["", "by grid, target distance (decades) and verdict: sweeps"]
    lines.append(pd.crosstab([table["grid"], table["decades"]], table["verdict"]).to_string())
    return lines


def _reason(sentence: str) -> str:
    """A review's reason as a kind of finding: before its first colon, without parentheses, numbers as ``#``."""
    kind, inner = sentence.split(":")[0], r"\s*\([^()]*\)"
    while re.search(inner, kind):
        kind = re.sub(inner, "", kind)
    return re.sub(r"\d+(\.\d+)?", "#", kind.split("(")[0]).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=96)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--out", help="also write the report (and the per-sweep table beside it, .csv)")
    parser.add_argument("--speed", action="store_true", help="time the review on the embedded runs instead")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs of each command (--speed)")
    parser.add_argument("--against", help="--speed: time this tree against the checkout DIR, warm, alternating")
    parser.add_argument("--table", help="summarize a saved run's sweeps (the .csv beside an --out report) instead")
    args = parser.parse_args()
    if args.table:
        head = f"# python benchmarks/bench_review.py --table {args.table}"
        text = "\n".join([head, *summarize(pd.read_csv(args.table))])
        print(text)
        if args.out:
            prepend(args.out, text)
        return
    if args.speed:
        text = speed(args.repeat) if args.against is None else against(args.repeat, args.against)
        print(text)
        if args.out:
            prepend(args.out, text)
        return
    start = time.perf_counter()
    # One sweep of each size first (in parallel): they fill the program cache that the rest then read.
    first = {}
    for index in range(args.sweeps):
        first.setdefault(plan(index)[5], index)  # by size
    rest = [i for i in range(args.sweeps) if i not in first.values()]
    rows = []
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for batch in (list(first.values()), rest):
            for row in pool.imap_unordered(sweep, batch, chunksize=1):
                rows.append(row)
                print(f"sweep {row['sweep']}: {row['verdict']} ({row['seconds']:.0f} s)", flush=True)
    table = pd.DataFrame(rows).sort_values("sweep")
    lines = [
        f"# python benchmarks/bench_review.py --sweeps {args.sweeps} --workers {args.workers}",
        f"# {platform.platform()}, {os.cpu_count()} cores; {time.perf_counter() - start:.0f} s in all, "
        f"median {table['seconds'].median():.0f} s per fit and review in one worker",
        "",
        *summarize(table),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        prepend(args.out, text)
        table.to_csv(os.path.splitext(args.out)[0] + ".csv", index=False)  # this run's sweeps only


if __name__ == "__main__":
    sys.exit(main())
