"""The data-constrained law on simulated studies with known truth, and allocation under a data limit.

Run:  python benchmarks/bench_constrained.py [--studies 100] [--loo 5] [--out FILE]

Each study: Muennighoff et al. (2023)'s law at their published values (E 1.87, A 521, B 1488,
alpha = beta = 0.353, R*_D 15.387, R*_N 5.309) at 95 runs: 5 sizes (1e7-1e9 parameters) x 1e8 or
1e9 unique tokens x 1-64 epochs, beside a single-epoch grid (5 sizes x 4 ratios, 3-300 tokens per
parameter); Student-t noise (4 dof, as the model assumes) of scale 1% on log loss; a seed per study.
All studies are fitted in one batched program (``fit_many``, 4 chains x (500 + 1000)).

Printed:
1. Coverage of the 50% and 90% central intervals of every parameter over the studies (expected 50%
   and 90%), and the median posterior median of R*_D and R*_N.
2. PSIS-LOO of the Chinchilla law fitted to the same runs (tokens read as fresh) against the
   data-constrained law, for the first ``--loo`` studies.
3. Allocation with U unique tokens at C = 1e22 FLOP (the first study's posterior): the best N and
   number of epochs with 90% intervals, the loss with unlimited data, and the regret of training one
   epoch or of ignoring the limit.
"""

from __future__ import annotations

import argparse
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

TRUTH = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "Rstar_D": 15.387, "Rstar_N": 5.309}
SETTINGS = bs.Settings(chains=4, warmup=500, draws=1000)


def study(seed: int) -> pd.DataFrame:
    grid = bs.datasets.sweep(sizes=5, ratios=4, tokens_per_param=(3.0, 300.0))
    runs = pd.concat([bs.datasets.repeated(), grid], ignore_index=True)
    return bs.simulate(TRUTH, runs, law="data-constrained", sigma=0.01, df=4.0, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--loo", type=int, default=5, help="studies compared by PSIS-LOO (a single fit each)")
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    say = Report()

    say(f"# python benchmarks/bench_constrained.py --studies {args.studies} --loo {args.loo}")
    say(f"# {platform.platform()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}")
    sets = [study(seed) for seed in range(args.studies)]
    start = time.perf_counter()
    fits = bs.fit_many(sets, "data-constrained", settings=SETTINGS, seed=0)
    say(f"fit_many: {args.studies} studies of {len(sets[0])} runs in {time.perf_counter() - start:.1f} s")
    failed = [i for i, r in enumerate(fits) if r.health().level == "fail"]
    say(f"sampler health: {args.studies - len(failed)} of {args.studies} pass or warn; failed: {failed or 'none'}")

    say("\n1. coverage of the central intervals over the studies (expected 50% and 90%)")
    rows = []
    for name, value in TRUTH.items():
        draws = np.stack([r.draws()[name] for r in fits])  # (studies, draws)
        rank = (draws < value).mean(axis=1)
        rows.append(
            {
                "parameter": name,
                "truth": value,
                "median_of_medians": np.median(np.median(draws, axis=1)),
                "cover50": np.mean(np.abs(rank - 0.5) < 0.25),
                "cover90": np.mean(np.abs(rank - 0.5) < 0.45),
                "covered90": f"{int(np.sum(np.abs(rank - 0.5) < 0.45))}/{len(rank)}",
            }
        )
    say(pd.DataFrame(rows).to_string(index=False, float_format="{:.3g}".format))

    say("\n2. PSIS-LOO, the same runs read as fresh tokens (chinchilla) against the data-constrained law")
    loo = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DataWarning)
        for i in range(min(args.loo, args.studies)):
            plain = bs.fit(sets[i], "chinchilla", seed=0, calibrate=False)
            table = bs.compare([fits[i], plain])
            loo.append({"study": i, "best": table.index[0], **table.loc["chinchilla", ["elpd_diff", "dse"]].to_dict()})
    say(pd.DataFrame(loo).to_string(index=False, float_format="{:.1f}".format))

    say("\n3. allocation at C = 1e22 FLOP with U unique tokens (study 0's posterior; medians, 90% intervals)")
    limited = bs.optimal.constrained(fits[0], 1e22, [1e10, 3e10, 1e11, 1e12])
    columns = ["unique_tokens", "N_opt", "N_opt_lo", "N_opt_hi", "epochs", "epochs_lo", "epochs_hi", "loss_opt"]
    say(limited[[*columns, "loss_unlimited"]].to_string(index=False, float_format="{:.4g}".format))
    say("\nregret (mean extra loss, nats/token) of three ways to spend 1e22 FLOP with U unique tokens")
    regret = {f"{u:.0e}": bs.optimal.decide(fits[0], 1e22, unique_tokens=u)["regret_mean"] for u in (1e10, 3e10, 1e11)}
    say(pd.DataFrame(regret).T[["bayes", "one epoch", "ignoring the limit"]].to_string(float_format="{:.4f}".format))
    say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
