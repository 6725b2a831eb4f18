"""NUTS in one compiled program: Laplace start, NumPyro's NUTS kernel, a jitted scan.

NumPyro's ``MCMC.run`` pays Python and dispatch overhead per call and runs chains
one after another on a single device. Here the whole fit is one ``jax.jit``-ed
function of ``(key, data)``:

1. find the posterior mode with BFGS in the unconstrained space;
2. take the inverse Hessian there (the Laplace approximation) as the initial
   dense inverse mass matrix, and start each chain from a draw of that
   approximation, so warm-up begins in the typical set, well scaled;
3. run NumPyro's NUTS kernel (``numpyro.infer.hmc.hmc``), vmapped over chains,
   in a ``lax.scan`` for warm-up (step size and mass matrix adaptation) and draws.

The compiled program is cached per (law, priors, settings); data of the same
shape reuse it, so a second fit in a process costs only the sampling.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc as numpyro_hmc
from numpyro.infer.util import constrain_fn, potential_energy

from . import diagnostics, hmc
from .laws import Law
from .model import build
from .priors import Spec


@dataclass(frozen=True)
class Settings:
    """Sampler settings.

    Attributes
    ----------
    chains : number of chains, run in parallel (vectorized) on one device.
    warmup : adaptation iterations per chain.
    draws : kept iterations per chain.
    target_accept : NUTS target acceptance probability for step-size adaptation.
    dense : adapt a dense (True) or diagonal (False) mass matrix.
    max_tree_depth : NUTS maximum tree depth (at most 2**depth - 1 leapfrog steps).
    laplace_init : start from the posterior mode with the Laplace mass matrix
        (False: start from the prior medians with a unit mass matrix).
    algorithm : ``"nuts"`` (NumPyro's NUTS kernel) or ``"hmc"`` (jittered-length HMC,
        :mod:`bayes_scaling.hmc`: no data-dependent loop, for large batches and GPUs).
    """

    chains: int = 4
    warmup: int = 500
    draws: int = 1000
    target_accept: float = 0.9
    dense: bool = True
    max_tree_depth: int = 10
    laplace_init: bool = True
    algorithm: str = "nuts"

    def __post_init__(self) -> None:
        for name in ("chains", "warmup", "draws", "max_tree_depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must lie strictly between 0 and 1, got {self.target_accept}")
        if self.algorithm not in ("nuts", "hmc"):
            raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {self.algorithm!r}")


def _newton(f: Callable[[jax.Array], jax.Array], x: jax.Array, steps: int = 60) -> tuple[jax.Array, jax.Array]:
    """Minimize ``f`` by Levenberg-Marquardt damped Newton steps; return the minimum and the Hessian there.

    A step ``(H + lam·(|diag H| + 1)) s = -g`` is kept only if it lowers ``f``; ``lam``
    shrinks after a kept step and grows after a rejected one, so far from the mode
    the method falls back to short gradient steps. (Cheaper to compile than BFGS
    with its line search, and the Hessian is needed anyway for the mass matrix.)
    """
    grad, hess = jax.grad(f), jax.hessian(f)

    def body(_: int, carry: tuple) -> tuple:
        x, fx, lam = carry
        h = hess(x)
        damping = lam * (jnp.abs(jnp.diag(h)) + 1.0)
        trial = x - jnp.linalg.solve(h + jnp.diag(damping), grad(x))
        ft = f(trial)
        better = jnp.isfinite(ft) & (ft < fx)
        return (
            jnp.where(better, trial, x),
            jnp.where(better, ft, fx),
            jnp.where(better, lam * 0.3, lam * 10.0),
        )

    x, _, _ = jax.lax.fori_loop(0, steps, body, (x, f(x), jnp.asarray(1.0, x.dtype)))
    return x, hess(x)


def _initial_point(law: Law, spec: Spec, data: dict, key: jax.Array) -> dict:
    """A starting point in unconstrained space: prior medians, and terms that explain the data.

    The irreducible term ``E`` (if the law has one) starts below the smallest loss;
    each centred power-law term starts at an equal share of the remaining loss at
    the centre, each centred scale at its prior median;
    ``sigma`` starts at the spread of the log losses, so that no run is an outlier
    of the Student-t before the mode search has moved.
    """
    z = {}
    centred = {amp for amp, _, _ in law.centred}
    real = data["mask"] > 0
    y_min = jnp.min(jnp.where(real, data["y"], jnp.inf))
    y_mean = jnp.sum(jnp.where(real, data["y"], 0.0)) / jnp.sum(real)
    y_std = jnp.sqrt(jnp.sum(jnp.where(real, (data["y"] - y_mean) ** 2, 0.0)) / jnp.sum(real))
    for name in (*law.params, "sigma"):
        if name in centred:
            continue
        prior = spec.priors[name].build()
        value = jnp.median(prior.sample(key, (255,)))
        if name == "E":
            value = jnp.minimum(value, 0.7 * jnp.exp(y_min))
        if name == "sigma":
            value = jnp.maximum(value, y_std)
        z[name] = biject_to(prior.support).inv(value)
    terms = [amp for amp, k, _ in law.centred if isinstance(k, str)]
    floor = biject_to(spec.priors["E"].build().support)(z["E"]) if "E" in z else 0.0
    reducible = jnp.maximum(jnp.exp(y_mean) - floor, 1e-3)
    for amp, k, x in law.centred:
        if isinstance(k, str):  # a power-law term: an equal share of the reducible loss at the centre
            z[f"log_{amp}_c"] = jnp.log(reducible / len(terms))
        else:  # a scale (a break point, Kaplan's N_c): its prior median, centred
            median = jnp.median(spec.priors[amp].build().sample(key, (255,)))
            z[f"log_{amp}_c"] = jnp.log(median) - k * data["centre"][x]
    return z


_COMPILED: dict[tuple, Callable] = {}
_BATCHED: dict[tuple, Callable] = {}


def compiled(law: Law, spec: Spec, settings: Settings, progress: bool = False) -> Callable:
    """The jitted sampler ``run(key, data) -> dict of arrays`` for a law, priors and settings.

    Returned arrays: ``samples`` (constrained and deterministic sites, each
    (chains, draws, ...)), ``stats`` (sampler statistics, each (chains, draws)),
    ``mode`` (posterior mode, constrained), ``mode_converged`` (bool), ``health``
    (convergence statistics of the law's parameters and ``sigma``, see
    :func:`~bayes_scaling.diagnostics.health`).
    """
    cache_key = (law, spec.to_json(), settings, progress)
    if cache_key not in _COMPILED:
        run = jax.jit(_program(law, spec, settings, progress))
        _COMPILED[cache_key] = with_health(run, (*law.params, "sigma"), settings)
    return _COMPILED[cache_key]


def compiled_many(law: Law, spec: Spec, settings: Settings, mesh: Mesh) -> Callable:
    """The jitted batched sampler ``run(keys, data, jitter) -> dict of arrays``: :func:`compiled`, vmapped.

    Every input and output but ``jitter`` carries a leading axis of fits, split across the
    devices of ``mesh`` (axis ``"fits"``) by ``shard_map``: each device runs the vmapped
    sampler on its own share, with no communication. (Left to XLA's automatic partitioning,
    the program synchronized every device at every leapfrog loop of the vmapped samplers
    and gathered the whole batch for the FFTs of the convergence checks.)
    """
    cache_key = (law, spec.to_json(), settings, mesh)
    if cache_key not in _BATCHED:
        batched = jax.vmap(_program(law, spec, settings, False, (*law.params, "sigma")), in_axes=(0, 0, None))
        fits = PartitionSpec("fits")
        split = jax.shard_map(
            batched, mesh=mesh, in_specs=(fits, fits, PartitionSpec()), out_specs=fits, check_vma=False
        )
        _BATCHED[cache_key] = jax.jit(split)
    return _BATCHED[cache_key]


def run_many(
    law: Law,
    spec: Spec,
    settings: Settings,
    keys: jax.Array,
    data: dict,
    devices: Sequence[jax.Device] | None = None,
) -> dict:
    """Run ``K`` fits as one program, the batch split evenly across ``devices``.

    Parameters
    ----------
    keys : PRNG keys, shape (K,).
    data : :func:`~bayes_scaling.model.model_data` dictionaries stacked along a new
        leading axis (every array of shape (K, ...)).
    devices : where to run (None: every local device, ``jax.local_devices()``). The
        batch is padded with copies of its last fit up to a multiple of their number.

    Returns
    -------
    The output of :func:`compiled` for each fit, stacked: JAX arrays of shape (K, ...), still
    on the devices (split across them as the batch was).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    k = int(keys.shape[0])
    total = -(-k // len(devices)) * len(devices)

    def pad(a: jax.Array) -> jax.Array:
        return jnp.concatenate([a, jnp.repeat(a[-1:], total - k, axis=0)]) if total > k else a

    keys, data = jax.tree.map(pad, (keys, jax.tree.map(jnp.asarray, data)))
    mesh = Mesh(np.array(devices), ("fits",))
    first = jax.device_put(jitter(keys[0], settings), NamedSharding(mesh, PartitionSpec()))
    keys, data = jax.device_put((keys, data), NamedSharding(mesh, PartitionSpec("fits")))
    out = compiled_many(law, spec, settings, mesh)(keys, data, first)
    return jax.tree.map(lambda a: a[:k], out) if total > k else out


def jitter(key: jax.Array, settings: Settings) -> jax.Array:
    """The trajectory-length jitter of :mod:`bayes_scaling.hmc`, one Uniform(0, 1) per iteration, from ``key``."""
    return jax.random.uniform(jax.random.fold_in(key, 2), (settings.warmup + settings.draws,))


def _program(law: Law, spec: Spec, settings: Settings, progress: bool, checked: Sequence[str] = ()) -> Callable:
    def initial(data: dict, key: jax.Array) -> dict:
        return _initial_point(law, spec, data, key)

    return program(build(law, spec), initial, settings, checked, progress)


def with_health(run: Callable, checked: Sequence[str], settings: Settings) -> Callable:
    """``run`` (a jitted :func:`program`), its output completed with ``health`` by a separate compiled step.

    A single fit computes its convergence statistics apart from its sampler: that program is
    compiled once per shape of draws and shared by every sampler of that shape (programs for
    other priors, data sizes or laws), instead of being compiled into each of them.
    """
    steps = 2**settings.max_tree_depth - 1

    def both(*args: jax.Array) -> dict:
        out = run(*args)
        return {**out, "health": _site_health(out["samples"], out["stats"], tuple(checked), steps)}

    return both


_site_health = jax.jit(diagnostics.site_health, static_argnums=(2, 3))


def program(
    model: Callable, initial: Callable, settings: Settings, checked: Sequence[str] = (), progress: bool = False
) -> Callable:
    """The sampler ``run(key, data, jitter) -> dict of arrays`` of any NumPyro ``model(data)``, not jitted.

    ``initial(data, key)`` gives the starting point of the mode search: a dict of
    unconstrained values per sample site. The convergence statistics of the sites
    ``checked`` (every component of each, in order), if any, are computed in the program
    (:func:`~bayes_scaling.diagnostics.site_health`): the batched sampler does so, so that
    they run on each device's own share. Outputs as for :func:`compiled`.
    """
    total = settings.warmup + settings.draws

    def run(key: jax.Array, data: dict, jitter: jax.Array) -> dict:
        k_init, k_chains, k_nuts = jax.random.split(key, 3)
        z0 = initial(data, k_init)
        flat0, unravel = ravel_pytree(z0)

        def potential(v: jax.Array) -> jax.Array:
            return potential_energy(model, (data,), {}, unravel(v))

        dim = flat0.shape[0]
        if settings.laplace_init:
            mode, hess = _newton(potential, flat0)
            hess = 0.5 * (hess + hess.T)
            cov = jnp.linalg.inv(hess)
            chol = jnp.linalg.cholesky(cov)
            ok = jnp.all(jnp.isfinite(chol)) & jnp.all(jnp.isfinite(mode))
            mode = jnp.where(ok, mode, flat0)
            cov = jnp.where(ok, cov, jnp.eye(dim))
            chol = jnp.where(ok, chol, 0.1 * jnp.eye(dim))
            # Converged: one Newton step from the mode moves less than 0.1 posterior sd.
            newton = cov @ jax.grad(potential)(mode)
            converged = ok & (jnp.max(jnp.abs(newton) / jnp.sqrt(jnp.diag(cov))) < 0.1)
        else:
            mode, cov, chol, converged = flat0, jnp.eye(dim), 0.1 * jnp.eye(dim), jnp.array(False)
        if not settings.dense:
            cov = jnp.diag(cov)
        starts = mode + jax.random.normal(k_chains, (settings.chains, dim)) @ chol.T
        if settings.algorithm == "hmc":
            full = cov if settings.dense else jnp.diag(cov)
            zs, stats = hmc.sample(
                potential,
                mode,
                full,
                starts,
                k_nuts,
                jitter,
                settings.warmup,
                settings.target_accept,
                2**settings.max_tree_depth - 1,
            )
        else:
            zs, stats = _nuts(potential, cov, starts, k_nuts, settings, progress, total)
        zs, stats = jax.tree.map(lambda a: a[settings.warmup :], (zs, stats))
        # (draws, chains, ...) -> (chains, draws, ...)
        zs = jnp.swapaxes(zs, 0, 1)
        stats = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), stats)

        def constrain(v: jax.Array) -> dict:
            return constrain_fn(model, (data,), {}, unravel(v), return_deterministic=True)

        samples = jax.vmap(jax.vmap(constrain))(zs)
        out = {"samples": samples, "stats": stats, "mode": constrain(mode), "mode_converged": converged}
        if checked:
            steps = 2**settings.max_tree_depth - 1
            out["health"] = diagnostics.site_health(samples, stats, tuple(checked), steps)
        return out

    return run


def _nuts(
    potential: Callable,
    cov: jax.Array,
    starts: jax.Array,
    key: jax.Array,
    settings: Settings,
    progress: bool,
    total: int,
) -> tuple[jax.Array, dict]:
    """NumPyro's NUTS kernel, vmapped over chains, in one scan over warm-up and draws.

    Returns ``zs`` of shape (total, chains, dim) and statistics of shape (total, chains).
    """
    init_kernel, sample_kernel = numpyro_hmc(potential, algo="NUTS")

    def init(z: jax.Array, k: jax.Array):
        return init_kernel(
            z,
            settings.warmup,
            inverse_mass_matrix=cov,
            dense_mass=settings.dense,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            regularize_mass_matrix=False,
            rng_key=k,
        )

    state = jax.vmap(init)(starts, jax.random.split(key, settings.chains))
    step = jax.vmap(sample_kernel)

    def one(s, i):
        if progress:
            jax.debug.callback(_report, i, total)
        s = step(s)
        stats = {
            "diverging": s.diverging,
            "energy": s.energy,
            "lp": -s.potential_energy,
            "n_steps": s.num_steps,
            "acceptance_rate": s.accept_prob,
            "step_size": s.adapt_state.step_size,
        }
        return s, (s.z, stats)

    # One scan over warm-up and draws compiles the NUTS kernel once.
    _, (zs, stats) = jax.lax.scan(one, state, jnp.arange(total))
    return zs, stats


def _report(i: np.ndarray, total: int) -> None:
    """Host-side progress bar on stderr (only compiled in when asked for)."""
    i = int(i) + 1
    every = max(total // 50, 1)
    if i % every and i != total:
        return
    width = 30
    done = int(width * i / total)
    sys.stderr.write(f"\rsampling [{'#' * done}{'.' * (width - done)}] {i}/{total} iterations")
    if i == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
