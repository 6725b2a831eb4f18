"""NUTS as compiled JAX programs: Laplace start, NumPyro's NUTS kernel, jitted scans.

NumPyro's ``MCMC.run`` pays Python and dispatch overhead per call and runs chains
one after another on a single device. Here a fit is three compiled functions of
``(key, data)`` and the sampler's state (:func:`_pieces`):

1. ``begin``: find the posterior mode with damped Newton steps in the unconstrained
   space, take the inverse Hessian there (the Laplace approximation) as the initial
   dense inverse mass matrix, and start each chain from a draw of that
   approximation, so warm-up begins in the typical set, well scaled;
2. ``advance``: run NumPyro's NUTS kernel (``numpyro.infer.hmc.hmc``), vmapped over
   chains, in a ``lax.scan`` over a chunk of the warm-up and draw iterations; a
   single fit calls it once per chunk (:data:`CHUNKS`), so the host can draw a
   progress bar between chunks with no callback compiled in;
3. ``finish``: drop the warm-up and map the draws to their constrained values.

:func:`program` runs the three in one program (the batched sampler of
:func:`compiled_many` vmaps it over fits). The compiled functions are cached per
(law, priors, settings); data of the same shape reuse them, so a second fit in a
process costs only the sampling. With :func:`bayes_scaling.cache.enable` they are
also kept on disk, so a fresh process neither traces nor compiles them.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import HMCState
from numpyro.infer.hmc import hmc as numpyro_hmc
from numpyro.infer.hmc_util import HMCAdaptState
from numpyro.infer.util import constrain_fn, potential_energy

from . import diagnostics, hmc
from .cache import Stored, shared
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


# NUTS states cross the boundaries of the stored programs of a chunked fit.
for _state in (HMCState, HMCAdaptState):
    with contextlib.suppress(ValueError):  # already registered
        jax.export.register_namedtuple_serialization(_state, serialized_name=f"numpyro.{_state.__name__}")

_COMPILED: dict[tuple, Callable] = {}
_BATCHED: dict[tuple, Callable] = {}
_LOCK = threading.Lock()  # fits in several threads share one sampler per law, priors and settings


def compiled(law: Law, spec: Spec, settings: Settings) -> Callable:
    """The compiled sampler ``run(key, data, progress=False) -> dict of arrays``.

    Returned arrays: ``samples`` (constrained and deterministic sites, each
    (chains, draws, ...)), ``stats`` (sampler statistics, each (chains, draws)),
    ``mode`` (posterior mode, constrained), ``mode_converged`` (bool), ``health``
    (convergence statistics of the law's parameters and ``sigma``, see
    :func:`~bayes_scaling.diagnostics.health`). ``progress`` draws a progress bar on
    stderr (NUTS only). One per law, priors and settings; its programs are stored on
    disk when :func:`bayes_scaling.cache.enable` was called.
    """
    cache_key = (law, spec.to_json(), settings)
    with _LOCK:
        if cache_key not in _COMPILED:
            tag = law_tag(law, spec, settings)
            model, initial = _model(law, spec)
            if settings.algorithm == "nuts":
                run = chunked(model, initial, settings, tag)
            else:
                stored = whole(model, initial, settings, tag and f"program {tag}")

                def run(key: jax.Array, data: dict, progress: bool = False) -> dict:
                    return stored(key, data)  # no progress bar

            _COMPILED[cache_key] = with_health(run, (*law.params, "sigma"), settings)
        return _COMPILED[cache_key]


def _model(law: Law, spec: Spec) -> tuple[Callable, Callable]:
    """The NumPyro model of a law and priors, and its ``initial(data, key)`` starting point."""

    def initial(data: dict, key: jax.Array) -> dict:
        return _initial_point(law, spec, data, key)

    return build(law, spec), initial


def law_tag(law: Law, spec: Spec | None, settings: Settings | None) -> str | None:
    """Text that fixes a law's sampler program besides data shapes; None for a law defined outside this package."""
    mean = law.mean
    cells = [c.cell_contents for c in mean.__closure__ or ()]
    if mean.__module__ != __name__.rsplit(".", 1)[0] + ".laws" or not all(
        isinstance(c, str | int | float) for c in cells
    ):
        return None  # its code is not covered by the package's source hash
    priors = spec.to_json() if spec is not None else None
    return f"{mean.__qualname__} {cells} {law.params} {law.inputs} {law.centred} {priors} {settings}"


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
        model, initial = _model(law, spec)
        batched = jax.vmap(program(model, initial, settings, (*law.params, "sigma")), in_axes=(0, 0, None))
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


def whole(model: Callable, initial: Callable, settings: Settings, tag: str | None) -> Stored:
    """:func:`program` for one fit as one compiled step, ``run(key, data)`` (no progress bar).

    The trajectory-length jitter is drawn from ``key`` inside the program; stored on disk under ``tag``.
    """
    sampler = program(model, initial, settings)
    return Stored(jax.jit(lambda key, data: sampler(key, data, jitter(key, settings))), tag)


def jitter(key: jax.Array, settings: Settings) -> jax.Array:
    """The trajectory-length jitter of :mod:`bayes_scaling.hmc`, one Uniform(0, 1) per iteration, from ``key``."""
    return jax.random.uniform(jax.random.fold_in(key, 2), (settings.warmup + settings.draws,))


def with_health(run: Callable, checked: Sequence[str], settings: Settings) -> Callable:
    """``run`` (a sampler), its output completed with ``health`` by :func:`health_program`."""
    health = health_program(checked, settings)

    def both(*args: jax.Array, **kwargs: object) -> dict:
        out = run(*args, **kwargs)
        return {**out, "health": health(out["samples"], out["stats"])}

    return both


def health_program(checked: Sequence[str], settings: Settings) -> Stored:
    """The compiled convergence statistics ``health(samples, stats)`` of the sites ``checked``.

    A single fit computes them apart from its sampler: that program is compiled once per
    shape of draws and shared by every sampler of that shape (programs for other priors,
    data sizes or laws), instead of being compiled into each of them.
    """
    checked, steps = tuple(checked), 2**settings.max_tree_depth - 1
    return shared(_site_health, f"health {checked} {steps}", checked, steps)


def _site_health(checked: tuple[str, ...], max_steps: int, samples: dict, stats: dict) -> dict:
    return diagnostics.site_health(samples, stats, checked, max_steps)


def program(model: Callable, initial: Callable, settings: Settings, checked: Sequence[str] = ()) -> Callable:
    """The sampler ``run(key, data, jitter) -> dict of arrays`` of any NumPyro ``model(data)``, not jitted.

    ``initial(data, key)`` gives the starting point of the mode search: a dict of
    unconstrained values per sample site. The convergence statistics of the sites
    ``checked`` (every component of each, in order), if any, are computed in the program
    (:func:`~bayes_scaling.diagnostics.site_health`): the batched sampler does so, so that
    they run on each device's own share. Outputs as for :func:`compiled`.
    """
    begin, advance, finish = _pieces(model, initial, settings, checked)
    total = settings.warmup + settings.draws

    def run(key: jax.Array, data: dict, jitter: jax.Array) -> dict:
        state, start = begin(key, data)
        if settings.algorithm == "hmc":
            steps = 2**settings.max_tree_depth - 1
            trace = hmc.sample(
                _target(model, initial, data)[1],
                start["mode"],
                start["cov"],
                state,
                start["key"],
                jitter,
                settings.warmup,
                settings.target_accept,
                steps,
            )
        else:
            _, trace = advance(state, data, jnp.int32(0), total)
        return finish(data, start, [trace])

    return run


def chunked(model: Callable, initial: Callable, settings: Settings, tag: str | None) -> Callable:
    """The NUTS sampler of :func:`program` as three compiled steps, its iterations run in chunks.

    ``run(key, data, progress=False) -> dict``, outputs as for :func:`program`
    (without ``health``). Between chunks the host can draw a progress bar, with no
    callback compiled into the program, so the same programs serve with or without one
    and can be stored on disk (:class:`~bayes_scaling.cache.Stored`, under ``tag``).
    """
    pieces = _pieces(model, initial, settings, ())
    total = settings.warmup + settings.draws
    size = -(-total // CHUNKS)
    begin = Stored(jax.jit(pieces[0]), tag and f"begin {tag}")
    advance = Stored(jax.jit(partial(pieces[1], n=size)), tag and f"advance {size} {tag}")
    finish = Stored(jax.jit(pieces[2]), tag and f"finish {tag}")

    def run(key: jax.Array, data: dict, progress: bool = False) -> dict:
        state, start = begin(key, data)
        traces = []
        for first in range(0, total, size):
            state, trace = advance(state, data, np.int32(first))
            traces.append(trace)
            if progress:
                jax.block_until_ready(state)
                _report(min(first + size, total), total)
        return finish(data, start, traces)

    return run


#: Chunks of a single fit's NUTS iterations (the progress bar's steps).
CHUNKS = 20


def _target(model: Callable, initial: Callable, data: dict) -> tuple[Callable, Callable]:
    """``(unravel, potential)``: the flat unconstrained vector's layout, and the potential energy of one."""
    layout = jax.eval_shape(initial, data, jax.random.key(0))
    _, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), layout))

    def potential(v: jax.Array) -> jax.Array:
        return potential_energy(model, (data,), {}, unravel(v))

    return unravel, potential


def _pieces(model: Callable, initial: Callable, settings: Settings, checked: Sequence[str]) -> tuple:
    """The sampler in three pure functions: ``begin``, ``advance`` (NUTS only) and ``finish``.

    - ``begin(key, data) -> (state, start)``: the mode search, the Laplace mass
      matrix and the chains' starting points; ``state`` is NumPyro's NUTS state (vmapped over
      chains) or, for ``"hmc"``, the starting points; ``start`` holds ``mode``, ``cov``,
      ``converged`` and the sampler's ``key``.
    - ``advance(state, data, first, n)``: NUTS iterations ``first .. first + n - 1`` (those
      past the last are skipped); returns the state and that chunk's draws (n, chains, dim)
      and statistics (n, chains).
    - ``finish(data, start, traces)``: the chunks joined, warm-up dropped, draws constrained.
    """
    total = settings.warmup + settings.draws

    def begin(key: jax.Array, data: dict) -> tuple:
        k_init, k_chains, k_run = jax.random.split(key, 3)
        _, potential = _target(model, initial, data)
        flat0, _ = ravel_pytree(initial(data, k_init))
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
        starts = mode + jax.random.normal(k_chains, (settings.chains, dim)) @ chol.T
        start = {"mode": mode, "converged": converged, "key": k_run}
        if settings.algorithm == "hmc":
            return starts, {**start, "cov": cov if settings.dense else jnp.diag(jnp.diag(cov))}
        init, _ = _nuts(potential, settings)
        inverse_mass = cov if settings.dense else jnp.diag(cov)
        state = jax.vmap(init, (0, 0, None))(starts, jax.random.split(k_run, settings.chains), inverse_mass)
        return state, start

    def advance(state, data: dict, first: jax.Array, n: int) -> tuple:
        init, sample_kernel = _nuts(_target(model, initial, data)[1], settings)
        # NumPyro's kernel reads its settings from Python variables that its init sets: trace it once.
        inverse_mass = state.adapt_state.inverse_mass_matrix[0]
        jax.eval_shape(jax.vmap(init, (0, 0, None)), state.z, state.rng_key, inverse_mass)
        step = jax.vmap(sample_kernel)

        def one(s, i):
            s = step(s) if total % n == 0 else jax.lax.cond(i < total, step, lambda s: s, s)
            stats = {
                "diverging": s.diverging,
                "energy": s.energy,
                "lp": -s.potential_energy,
                "n_steps": s.num_steps,
                "acceptance_rate": s.accept_prob,
                "step_size": s.adapt_state.step_size,
            }
            return s, (s.z, stats)

        return jax.lax.scan(one, state, first + jnp.arange(n))

    def finish(data: dict, start: dict, traces: list) -> dict:
        unravel, _ = _target(model, initial, data)
        zs, stats = jax.tree.map(lambda *a: jnp.concatenate(a)[settings.warmup : total], *traces)
        # (draws, chains, ...) -> (chains, draws, ...)
        zs = jnp.swapaxes(zs, 0, 1)
        stats = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), stats)

        def constrain(v: jax.Array) -> dict:
            return constrain_fn(model, (data,), {}, unravel(v), return_deterministic=True)

        samples = jax.vmap(jax.vmap(constrain))(zs)
        out = {"samples": samples, "stats": stats, "mode": constrain(start["mode"])}
        out["mode_converged"] = start["converged"]
        if checked:
            steps = 2**settings.max_tree_depth - 1
            out["health"] = diagnostics.site_health(samples, stats, tuple(checked), steps)
        return out

    return begin, advance, finish


def _nuts(potential: Callable, settings: Settings) -> tuple[Callable, Callable]:
    """NumPyro's NUTS kernel: ``init(z, key, inverse_mass) -> state`` for one chain, and its step."""
    init_kernel, sample_kernel = numpyro_hmc(potential, algo="NUTS")

    def init(z: jax.Array, key: jax.Array, inverse_mass: jax.Array):
        return init_kernel(
            z,
            settings.warmup,
            inverse_mass_matrix=inverse_mass,
            dense_mass=settings.dense,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            regularize_mass_matrix=False,
            rng_key=key,
        )

    return init, sample_kernel


def _report(done: int, total: int) -> None:
    """Progress bar on stderr: ``done`` of ``total`` iterations."""
    width = 30
    bar = int(width * done / total)
    sys.stderr.write(f"\rsampling [{'#' * bar}{'.' * (width - bar)}] {done}/{total} iterations")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
