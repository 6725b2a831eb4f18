"""The same posterior sampled by bayes_scaling, nutpie and BlackJAX: min bulk ESS per second.

Run:  pip install ".[bench]" && python benchmarks/bench_peers.py [--warmup 1000] [--draws 1000] [--repeats 3]
      [--out FILE]

The model (identical log density in all three): the Chinchilla law on the 240 embedded runs (Hoffmann et al.
2022, Figure 4 as extracted by Epoch AI, the 5 highest-loss runs dropped), log loss Student-t with 4 degrees of
freedom, the amplitudes centred (``log_A_c``, ``log_B_c`` flat, with the LogNormal priors of A and B as
factors), the priors of ``models/chinchilla.toml``. 4 chains x (``--warmup`` + ``--draws``) each.

- bayes_scaling: ``bs.fit(..., calibrate=False)``: Laplace start, NumPyro's NUTS kernel with a dense mass matrix,
  target acceptance 0.9 (the defaults), its chains split across the machine's cores (a thread per part); warm
  (compiled by a first call), the wall time of the fit. Also as ``bayes_scaling, one core``: the same fit called
  from a worker thread, which advances its two parts one after another in that thread (the same draws).
- nutpie (PyMC model, numba backend, compiled once): ``nutpie.sample`` with the low-rank modified mass matrix,
  the chains on every core; the wall time of sampling only.
- BlackJAX: ``window_adaptation`` (dense mass matrix, target acceptance 0.9) and NUTS, vmapped over chains,
  the log density of the package's own NumPyro model; compiled once, the wall time of the second call.

Each sampler runs ``--repeats`` times in turn (seeds 0, 1, ...); reported per sampler: the median wall time, the
median of the min bulk ESS (over E, A, B, alpha, beta; ArviZ), the median of their ratio per run, max R-hat and
the divergences of all runs. The ratio of
ESS/s against nutpie is the figure of issue 21 (target: 3x). Measure on a quiet machine: the samplers share it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from _report import Report

import bayes_scaling as bs
from bayes_scaling._model import model_data, target
from bayes_scaling.priors import resolve

PARAMS = ["E", "A", "B", "alpha", "beta"]


def _ess(posterior: dict[str, np.ndarray], diverging: int) -> dict:
    """Min bulk ESS, max R-hat over PARAMS of draws shaped (chains, draws)."""
    data = az.from_dict(posterior={k: np.asarray(posterior[k], np.float64) for k in PARAMS})
    ess = az.ess(data, method="bulk")
    rhat = az.rhat(data)
    return {
        "ess": min(float(ess[k]) for k in PARAMS),
        "rhat": max(float(rhat[k]) for k in PARAMS),
        "divergences": int(diverging),
    }


def ours(data: bs.Dataset, warmup: int, draws: int, one_core: bool = False) -> tuple[object, object]:
    def fit(seed: int) -> bs.Result:
        options = {"seed": seed, "calibrate": False, "warmup": warmup, "draws": draws}
        if not one_core:
            return bs.fit(data, **options)
        with ThreadPoolExecutor(1) as pool:  # a fit in a worker thread runs its chains' parts one after another
            return pool.submit(bs.fit, data, **options).result()

    def prepare() -> None:
        fit(99)

    def run(seed: int) -> tuple[float, dict]:
        start = time.perf_counter()
        result = fit(seed)
        seconds = time.perf_counter() - start
        post = result.group("posterior")
        diverging = int(result.group("sample_stats")["diverging"].sum())
        return seconds, _ess({k: post[k].to_numpy() for k in PARAMS}, diverging)

    return prepare, run


def pymc_model(data: bs.Dataset) -> object:
    """The model as a PyMC model (for nutpie)."""
    import pymc as pm
    import pytensor.tensor as pt

    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    md = model_data(data, law, spec, pad=len(data))
    real = np.asarray(md.mask) > 0  # the rows are padded to a power of two (masked in the package's model)
    x_n, x_d, y = (np.asarray(a, np.float64)[real] for a in (md.x["N"], md.x["D"], md.y))
    c_n, c_d = float(md.centre["N"]), float(md.centre["D"])
    args = {k: dict(spec.priors[k].args) for k in PARAMS}
    with pm.Model() as model:
        e = pm.LogNormal("E", args["E"]["loc"], args["E"]["scale"])
        alpha = pm.LogNormal("alpha", args["alpha"]["loc"], args["alpha"]["scale"])
        beta = pm.LogNormal("beta", args["beta"]["loc"], args["beta"]["scale"])
        log_a_c, log_b_c = pm.Flat("log_A_c"), pm.Flat("log_B_c")
        log_a, log_b = log_a_c + alpha * c_n, log_b_c + beta * c_d
        for name, log_amp in (("A", log_a), ("B", log_b)):
            prior = pm.LogNormal.dist(args[name]["loc"], args[name]["scale"])
            pm.Potential(f"{name}_prior", pm.logp(prior, pt.exp(log_amp)) + log_amp)
            pm.Deterministic(name, pt.exp(log_amp))
        sigma = pm.HalfNormal("sigma", dict(spec.priors["sigma"].args)["scale"])
        terms = pt.stack([pt.log(e) + 0 * x_n, log_a_c - alpha * x_n, log_b_c - beta * x_d])
        pm.StudentT("log_loss", nu=spec.df, mu=pm.math.logsumexp(terms, axis=0), sigma=sigma, observed=y)
    return model


def same_density(data: bs.Dataset, result: bs.Result, points: int = 5) -> float:
    """The largest difference between the PyMC model's log density (with its Jacobians) and the package's
    (minus its potential energy) at ``points`` posterior draws of ``result``, after removing their mean
    difference (the two may differ by a constant)."""
    from numpyro.infer.util import potential_energy

    from bayes_scaling._model import _curve, _to_curve

    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    md = model_data(data, law, spec)
    model = target(law, spec)
    logp = pymc_model(data).compile_logp()
    post = {k: v.to_numpy().reshape(-1) for k, v in result.group("posterior").items()}
    gaps = []
    curve = _curve(law, spec, md)  # the package samples the same posterior by the curve at the centre
    for i in np.linspace(0, len(post["E"]) - 1, points).astype(int):
        d = {k: float(v[i]) for k, v in post.items()}
        logs = {k: np.log(d[k]) for k in ("E", "alpha", "beta", "sigma")}
        usual = {**logs, "log_A_c": d["log_A_c"], "log_B_c": d["log_B_c"]}
        # Jacobian determinant 1 between the two coordinates: the same density at the same point.
        sites = _to_curve({k: jnp.asarray(v) for k, v in usual.items()}, curve) if curve else usual
        ours = -float(potential_energy(model.model, (md,), {}, sites))
        theirs = float(
            logp({**{f"{k}_log__": v for k, v in logs.items()}, "log_A_c": d["log_A_c"], "log_B_c": d["log_B_c"]})
        )
        gaps.append(ours - theirs)
    return float(np.max(np.abs(np.asarray(gaps) - np.mean(gaps))))


def nutpie_sampler(data: bs.Dataset, warmup: int, draws: int) -> tuple[object, object]:
    import nutpie

    compiled = nutpie.compile_pymc_model(pymc_model(data))

    def sample(seed: int) -> object:
        return nutpie.sample(
            compiled,
            draws=draws,
            tune=warmup,
            chains=4,
            seed=seed,
            progress_bar=False,
            low_rank_modified_mass_matrix=True,
        )

    def run(seed: int) -> tuple[float, dict]:
        start = time.perf_counter()
        trace = sample(seed)
        seconds = time.perf_counter() - start
        post = trace.posterior
        diverging = int(trace.sample_stats["diverging"].sum())
        return seconds, _ess({k: post[k].to_numpy() for k in PARAMS}, diverging)

    return lambda: sample(99), run


def blackjax_sampler(data: bs.Dataset, warmup: int, draws: int) -> tuple[object, object]:
    import blackjax
    from numpyro.infer.util import constrain_fn, potential_energy

    law = bs.laws.get("chinchilla")
    spec = resolve(law)
    md = model_data(data, law, spec, pad=len(data))
    model = target(law, spec)

    def logdensity(z: dict) -> jax.Array:
        return -potential_energy(model.model, (md,), {}, z)

    def chain(key: jax.Array) -> tuple:
        k_init, k_warm, k_draw = jax.random.split(key, 3)
        position = model.initial(md, k_init)
        warm = blackjax.window_adaptation(
            blackjax.nuts, logdensity, is_mass_matrix_diagonal=False, target_acceptance_rate=0.9
        )
        (state, parameters), _ = warm.run(k_warm, position, num_steps=warmup)
        kernel = blackjax.nuts(logdensity, **parameters)

        def step(state: object, key: jax.Array) -> tuple:
            state, info = kernel.step(key, state)
            return state, (state.position, info.is_divergent)

        _, (positions, divergent) = jax.lax.scan(step, state, jax.random.split(k_draw, draws))
        constrained = jax.vmap(lambda z: constrain_fn(model.model, (md,), {}, z, return_deterministic=True))(positions)
        return {k: constrained[k] for k in PARAMS}, divergent

    sampler = jax.jit(lambda key: jax.vmap(chain)(jax.random.split(key, 4)))

    def run(seed: int) -> tuple[float, dict]:
        start = time.perf_counter()
        draws_, divergent = jax.block_until_ready(sampler(jax.random.key(seed)))
        seconds = time.perf_counter() - start
        return seconds, _ess({k: np.asarray(v) for k, v in draws_.items()}, int(jnp.sum(divergent)))

    return lambda: jax.block_until_ready(sampler(jax.random.key(99))), run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args()
    say = Report()

    import blackjax
    import nutpie

    say(f"# python benchmarks/bench_peers.py --warmup {args.warmup} --draws {args.draws} --repeats {args.repeats}")
    say(
        f"# {platform.platform()}, {os.cpu_count()} cores; "
        f"jax {jax.__version__}, nutpie {nutpie.__version__}, blackjax {blackjax.__version__}, arviz {az.__version__}"
    )
    data = bs.datasets.chinchilla(drop_highest=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gap = same_density(data, bs.fit(data, seed=0, calibrate=False))
    say(f"PyMC model against the package's: log densities differ by at most {gap:.1e} at 5 posterior draws")
    samplers = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builders = (
            ("bayes_scaling", ours),
            ("bayes_scaling, one core", partial(ours, one_core=True)),
            ("nutpie", nutpie_sampler),
            ("blackjax", blackjax_sampler),
        )
        for name, build in builders:
            start = time.perf_counter()
            prepare, run = build(data, args.warmup, args.draws)
            prepare()
            say(f"{name}: compiled and run once in {time.perf_counter() - start:.1f} s")
            samplers[name] = run
        rows = {name: [] for name in samplers}
        for seed in range(args.repeats):
            for name, run in samplers.items():
                seconds, stats = run(seed)
                rows[name].append({"seconds": seconds, **stats})
                say(
                    f"  seed {seed} {name:24s} {seconds:6.2f} s  min bulk ESS {stats['ess']:7.0f}  "
                    f"R-hat {stats['rhat']:.3f}  divergences {stats['divergences']}"
                )
    table = {}
    for name, found in rows.items():
        frame = pd.DataFrame(found)
        table[name] = {
            "wall s (median)": float(frame["seconds"].median()),
            "min bulk ESS (median)": float(frame["ess"].median()),
            "ESS/s (median)": float((frame["ess"] / frame["seconds"]).median()),
            "max R-hat": float(frame["rhat"].max()),
            "divergences": int(frame["divergences"].sum()),
        }
    report = pd.DataFrame(table).T
    report["vs nutpie"] = report["ESS/s (median)"] / report.loc["nutpie", "ESS/s (median)"]
    say("\n" + report.to_string(float_format="{:.3g}".format))
    say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
