"""fit_many: one batched program gives the posteriors of single fits; sharding does not change them."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling import _arviz

TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
RUNS = bs.datasets.sweep(n_range=(1e7, 3e9), sizes=8, ratios=8)
# 1000 draws: with 500, tail ESS and R-hat of a few of these fits sat at the thresholds (CPU-dependent rounding)
SHORT = {"chains": 4, "warmup": 300, "draws": 1000, "algorithm": "hmc"}


def make_sets() -> list:
    # Different lengths on purpose: padding and masking must not change a fit.
    return [bs.simulate(TRUTH, RUNS.iloc[: 64 - 4 * (i % 3)], sigma=0.01, seed=i) for i in range(8)]


@pytest.fixture(scope="module")
def sets() -> list:
    return make_sets()


@pytest.fixture(scope="module")
def many(sets) -> list[bs.Result]:
    return bs.fit_many(sets, seed=0, **SHORT)


def test_fit_many_builds_each_group_on_first_access(sets):
    results = bs.fit_many(sets, seed=0, **SHORT)  # the batch of the `many` fixture: no new compilation
    built = lambda r: set(r.source._built)  # noqa: E731  (the groups a result has built so far)
    assert all(built(r) == set() for r in results)  # nothing assembled by the call
    first = results[0].group("posterior")
    assert results[0].group("posterior") is first and built(results[0]) == {"posterior"}  # built once, kept
    assert built(results[1]) == set()  # the other fit is still not built
    assert first["E"].shape == (4, 1000) and results[0].group("observed_data")["log_loss"].shape == (len(sets[0]),)
    assert all(r.stats is not None for r in results)  # the convergence statistics came with the draws


def test_fit_many_matches_single_fits_within_monte_carlo_error(sets, many):
    # The batch rounds differently from a single fit and (for "hmc") shares one trajectory-length
    # jitter, so draws agree in distribution: posterior means within 4.5 combined Monte Carlo
    # standard errors (48 comparisons; a false alarm has probability about 3e-4).
    assert len(many) == 8
    for i, (data, batched) in enumerate(zip(sets, many, strict=True)):
        with warnings.catch_warnings():  # a marginal single fit is compared all the same
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            single = bs.fit(data, seed=i, calibrate=False, **SHORT)
        a, b = batched.summary(), single.summary()
        assert batched.group("log_likelihood")["log_loss"].shape == (4, 1000, len(data))
        for name in a.index:
            z = abs(a.loc[name, "mean"] - b.loc[name, "mean"]) / np.hypot(
                a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"]
            )
            assert z < 4.5, (i, name, z)


def test_fit_many_recovers_the_truth_and_reports_health(many):
    # Every fit usable (no check fails); a tail ESS a little under 400 in one of 8 short HMC fits is chance.
    levels = [r.health().level for r in many]
    assert "fail" not in levels and levels.count("pass") >= 6, [r.problems for r in many]
    # Across 8 fits, each parameter's 90% interval covers the truth at least 6 times.
    for name, value in TRUTH.items():
        inside = [r.summary().loc[name, "q0.05"] <= value <= r.summary().loc[name, "q0.95"] for r in many]
        assert sum(inside) >= 6, name


def test_fit_many_rejects_mismatched_seeds(sets):
    with pytest.raises(ValueError, match="3 seeds for 8 data sets"):
        bs.fit_many(sets, seed=[0, 1, 2], **SHORT)
    with pytest.raises(ValueError, match="at least one data set"):
        bs.fit_many([], **SHORT)


SHARDED = textwrap.dedent(
    """
    import json, warnings, jax, bayes_scaling as bs
    from bayes_scaling import _arviz
    from test_many import SHORT, make_sets
    warnings.simplefilter("ignore")
    four = bs.fit_many(make_sets(), seed=0, **SHORT)
    rows = [{k: [float(r.group("posterior")[k].mean()), _arviz.mcse(r.group("posterior")[k].to_numpy())]
             for k in r.params}
            for r in four]
    print(json.dumps({"devices": len(jax.devices()), "fits": rows}))
    """
)


def test_sharding_over_four_cpu_devices_gives_the_same_fits(many):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    # 8 fits over 4 devices, 2 each, against the same 8 fits on one device (the ``many`` fixture).
    # Same program and keys; the partitioned program rounds differently in float32 and HMC
    # trajectories amplify rounding, so the fits agree in distribution: every posterior mean
    # within 4.5 combined Monte Carlo standard errors.
    assert len(report["fits"]) == 8
    for sharded, single in zip(report["fits"], many, strict=True):
        for name, (mean, mcse) in sharded.items():
            post = single.group("posterior")[name]
            se = np.hypot(mcse, _arviz.mcse(post.to_numpy()))
            assert abs(mean - float(post.mean())) / se < 4.5, name


DISTRIBUTED = textwrap.dedent(
    """
    import json, sys, warnings
    import jax
    port, process = sys.argv[1], int(sys.argv[2])
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process)
    warnings.simplefilter("ignore")
    import bayes_scaling as bs
    from bayes_scaling import _arviz
    from test_many import SHORT, make_sets
    sets = make_sets()
    mine = list(range(jax.process_index(), len(sets), jax.process_count()))  # this process's share
    results = bs.fit_many([sets[i] for i in mine], seed=mine, **SHORT)  # on this process's own devices
    fits = {i: {k: [float(r.group("posterior")[k].mean()), _arviz.mcse(r.group("posterior")[k].to_numpy())]
                for k in r.params} for i, r in zip(mine, results)}
    print(json.dumps({"processes": jax.process_count(), "devices": len(jax.devices()), "fits": fits}))
    """
)


def test_fit_many_over_two_processes_with_jax_distributed(many):
    """The cluster pattern (one process per host, each fitting its share), as two local CPU processes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DISTRIBUTED, port, str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(2)
    ]
    fits = {}
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err.decode()[-2000:]
        report = json.loads(out.decode().strip().splitlines()[-1])
        assert report["processes"] == 2 and report["devices"] == 2  # one CPU device each, two in the cluster
        fits |= {int(i): f for i, f in report["fits"].items()}
    assert sorted(fits) == list(range(8))  # every data set fitted once, by one of the two
    for i, single in enumerate(many):  # the same fits in one process, within Monte Carlo error
        for name, (mean, mcse) in fits[i].items():
            post = single.group("posterior")[name]
            se = np.hypot(mcse, _arviz.mcse(post.to_numpy()))
            assert abs(mean - float(post.mean())) / se < 4.5, (i, name)
