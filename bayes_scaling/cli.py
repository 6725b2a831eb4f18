"""Command-line interface: ``bayes-scaling fit [CSV] [--preset gpt4] [--out DIR]``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

EXIT_BAD_INPUT = 2
EXIT_NOT_CONVERGED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-scaling", description="Bayesian scaling-law fits with JAX and NumPyro."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="fit a law to training runs and forecast larger runs")
    p.add_argument("csv", nargs="?", help="CSV of runs (default: the embedded Chinchilla Figure-4 runs)")
    p.add_argument("--law", default="chinchilla", help="law family (default: chinchilla)")
    p.add_argument("--priors", help="TOML prior file (a copy of one in models/)")
    p.add_argument("--n-col", default="params", help="column of parameter counts N (default: params)")
    p.add_argument("--d-col", default="tokens", help="column of training tokens D (default: tokens)")
    p.add_argument("--c-col", default="flops", help="column of training FLOP C; if absent C = 6·N·D (default: flops)")
    p.add_argument("--loss-col", default="loss", help="column of final loss (default: loss)")
    p.add_argument("--drop-highest", type=int, default=0, metavar="K", help="drop the K highest-loss runs")
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--target-flops",
        type=float,
        action="append",
        metavar="C",
        help="forecast at this compute budget, split compute-optimally (repeatable)",
    )
    target.add_argument(
        "--preset",
        action="append",
        metavar="NAME",
        help="forecast at a preset: gpt3, gopher, chinchilla, gpt4 (repeatable; default: all)",
    )
    p.add_argument("--out", default="results", metavar="DIR", help="output folder (default: results)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("png", "svg"), default="png", help="figure format (default: png)")
    return parser


def _enable_compilation_cache() -> None:
    """Keep compiled samplers on disk so that a fresh process skips XLA compilation."""
    import jax

    cache = os.environ.get("BAYES_SCALING_CACHE", str(Path.home() / ".cache" / "bayes_scaling" / "jax"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _fit(args: argparse.Namespace) -> int:
    import bayes_scaling as bs

    law = bs.get_law(args.law)
    if args.csv is None:
        data = bs.datasets.chinchilla()
    else:
        data = bs.load_data(
            args.csv, n=args.n_col, d=args.d_col, c=args.c_col, loss=args.loss_col, min_rows=len(law.params) + 2
        )
    data = data.drop_highest(args.drop_highest)
    print(f"fitting the {law.name} law, {law.formula}, to {len(data)} runs from {data.source}")
    result = bs.fit(
        data,
        law,
        priors=args.priors,
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        target_accept=args.target_accept,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    table = result.summary()
    for source, values in result.spec.references.items():
        if not source.endswith(("_low", "_high")):
            table[source] = [values.get(name) for name in table.index]
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print("\nposterior (90% equal-tailed intervals; reference fits beside)")
        print(table.drop(columns=["mcse_mean", "mcse_sd"], errors="ignore").to_string())
        if args.target_flops:
            forecast = bs.forecast(result, flops=args.target_flops, seed=args.seed)
        else:
            forecast = bs.forecast(result, preset=args.preset or ["gpt3", "chinchilla", "gpt4"], seed=args.seed)
        cols = ["target", "N", "D", "C", "loss_median", "loss_lo95", "loss_hi95", "run_lo95", "run_hi95"]
        print("\nforecast: expected loss (loss_*) and a new run (run_*), 95% bands")
        print(forecast[[c for c in cols if c in forecast]].to_string(index=False))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        result.save(out / "posterior.nc"),
        out / "summary.csv",
        out / "forecast.csv",
        out / f"fit.{args.format}",
    ]
    table.to_csv(written[1])
    forecast.to_csv(written[2], index=False)
    bs.plot_fit(result, forecast, path=written[3])
    print("\nwrote " + ", ".join(str(p) for p in written))
    if result.problems:
        print("\nTHE SAMPLER DID NOT CONVERGE; do not trust these numbers:", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    div = int(result.idata.sample_stats["diverging"].sum())
    print(f"sampler health: no divergences ({div}), every R-hat <= 1.01 and bulk/tail ESS >= 400")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bayes-scaling``; returns the exit status."""
    args = _parser().parse_args(argv)
    warnings.formatwarning = lambda message, category, *_: f"{category.__name__}: {message}\n"
    _enable_compilation_cache()
    try:
        if args.command == "fit":
            return _fit(args)
    except (ValueError, OSError) as err:
        print(f"bayes-scaling: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
