"""NUTS as compiled JAX programs: Laplace start, NumPyro's NUTS kernel, jitted scans.

NumPyro's ``MCMC.run`` pays Python and dispatch overhead per call and runs chains
one after another on a single device. Here a fit is three pure functions of
``(key, data)`` and the sampler's state (:func:`_pieces`):

1. ``begin``: find the posterior mode with damped Newton steps in the unconstrained
   space, take the inverse Hessian there (the Laplace approximation) as the initial
   dense inverse mass matrix, and start each chain from a draw of that
   approximation, so warm-up begins in the typical set, well scaled;
2. ``advance``: run NumPyro's NUTS kernel (``numpyro.infer.hmc.hmc``) on each chain, in a
   ``lax.scan`` over a chunk of the warm-up and draw iterations; a single fit calls it
   once per chunk (:data:`CHUNKS`), so the host can draw a progress bar between chunks
   with no callback compiled in. On a CPU the chains advance in parts of at most
   :data:`MAPPED` (:func:`layout`), and ``lax.map`` runs one chain's program for each chain of
   a part; on an accelerator the kernel is vmapped over the chains (one lane each). Vmapping
   the nested while loops of NUTS makes JAX batch each loop body again and again until it
   knows which carried values differ between chains (tracing ``advance`` of 2 chains for the
   Chinchilla law: 1.5 s vmapped, 0.45 s mapped, alone; 2.6-3.1 s and 0.3-0.4 s inside a cold
   fit on 2 cores), and XLA compiles the vmapped loops longer (a first review of the embedded
   runs on 2 cores took a quarter less time once every fit's chains were mapped: README,
   "Every core for one fit"). Once compiled, 4 chains vectorized may sample faster than
   mapped (latency-bound NUTS), and XLA rounds them differently from one chain;
3. ``finish``: drop the warm-up and map the draws to their constrained values.

:func:`sample` runs one fit (the three as compiled programs, or all in one);
:func:`sample_many` vmaps the whole sampler over K fits and splits them across
devices. Every compiled program is held by :data:`bayes_scaling._programs.PROGRAMS`
under the target's key and the settings, so data of the same shape reuse it.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _hmc, _stats
from ._model import Target, centred, centring_weights, uncentred
from ._programs import PROGRAMS, Program, compiler_options, signature


def _setting(default: object, text: str) -> object:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Settings:
    """Sampler settings: the one definition of the sampler's keywords and their defaults.

    :func:`bayes_scaling.fit`, ``fit_many``, ``backtest`` and ``review`` take a Settings (or
    its fields as keywords), and the command line makes one flag per field.

    Attributes
    ----------
    chains : number of chains (on a CPU advanced in parts of two, on an accelerator vectorized on one device).
    warmup : adaptation iterations per chain.
    draws : kept iterations per chain.
    target_accept : NUTS target acceptance probability for step-size adaptation.
    dense : adapt a dense (True) or diagonal (False) mass matrix.
    max_tree_depth : NUTS maximum tree depth (at most 2**depth - 1 leapfrog steps).
    laplace_init : start from the posterior mode with the Laplace mass matrix
        (False: start from the prior medians with a unit mass matrix).
    algorithm : ``"nuts"`` (NumPyro's NUTS kernel) or ``"hmc"`` (jittered-length HMC,
        :mod:`bayes_scaling._hmc`: no data-dependent loop, for large batches and GPUs).
    centre_offsets : runs in groups: sample each pooled parameter's group offsets partially centred, each as
        far as its group's runs pin it (:func:`bayes_scaling._model.centring_weights`; False: non-centred).
    """

    chains: int = _setting(4, "chains, run in parallel")
    warmup: int = _setting(500, "warm-up (adaptation) iterations per chain")
    draws: int = _setting(1000, "kept draws per chain")
    target_accept: float = _setting(0.9, "target acceptance probability of step-size adaptation")
    dense: bool = _setting(True, "adapt a dense mass matrix (--no-dense: diagonal)")
    max_tree_depth: int = _setting(10, "NUTS maximum tree depth (hmc: at most 2**depth - 1 steps)")
    laplace_init: bool = _setting(True, "start at the posterior mode with the Laplace mass matrix")
    algorithm: str = _setting("nuts", "nuts, or hmc (jittered-length HMC, for large batches and GPUs)")
    centre_offsets: bool = _setting(True, "groups: sample pooled offsets partially centred (--no-...: non-centred)")

    def __post_init__(self) -> None:
        for name in ("chains", "warmup", "draws", "max_tree_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"sampler setting {name} must be a positive integer, got {value!r}")
        for name in ("dense", "laplace_init", "centre_offsets"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"sampler setting {name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.target_accept, bool) or not isinstance(self.target_accept, float | int):
            raise ValueError(f"sampler setting target_accept must be a number, got {self.target_accept!r}")
        if not 0 < self.target_accept < 1:
            raise ValueError(
                f"sampler setting target_accept must lie strictly between 0 and 1, got {self.target_accept}"
            )
        if self.algorithm not in ("nuts", "hmc"):
            raise ValueError(f"sampler setting algorithm must be 'nuts' or 'hmc', got {self.algorithm!r}")

    @classmethod
    def of(cls, settings: Settings | None = None, **options: object) -> Settings:
        """``settings`` (default: the defaults) with some fields replaced by keyword.

        Raises
        ------
        TypeError
            For a keyword that is not a sampler setting, naming it and the settings.
        """
        known = [f.name for f in fields(cls)]
        unknown = [k for k in options if k not in known]
        if unknown:
            raise TypeError(f"unknown sampler setting {unknown[0]!r}; the settings are: {', '.join(known)}")
        return replace(settings if settings is not None else cls(), **options)

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Output(NamedTuple):
    """What a sampler returns (each array with a leading axis K for K fits at once).

    Attributes
    ----------
    samples : every constrained and deterministic site, each (chains, draws, ...).
    stats : sampler statistics ``diverging``, ``energy``, ``lp``, ``n_steps``,
        ``acceptance_rate``, ``step_size``, each (chains, draws).
    mode : the posterior mode found by the Laplace start, constrained.
    mode_converged : whether the mode search converged (bool).
    health : the convergence statistics of the target's checked sites
        (:func:`bayes_scaling._stats.health`).
    """

    samples: dict[str, jax.Array]
    stats: dict[str, jax.Array]
    mode: dict[str, jax.Array]
    mode_converged: jax.Array
    health: dict[str, jax.Array]


#: Chunks of a single fit's NUTS iterations (the progress bar's steps).
CHUNKS = 20
#: On a CPU a fit's chains advance in parts of at most this many, NUTS running on each chain of a part one after
#: another (:func:`layout`; the module's docstring).
MAPPED = 2


def sample(
    target: Target,
    settings: Settings,
    key: jax.Array,
    data: object,
    *,
    progress: bool = False,
    whole: bool = False,
    cores: int = 1,
    keep: int | None = None,
    more: Callable[[Output], bool] | None = None,
    refit: bool = False,
) -> Output:
    """Sample one posterior.

    Parameters
    ----------
    target : the model to sample (:func:`bayes_scaling._model.target`).
    settings : sampler settings.
    key : the fit's PRNG key; the same key gives the same draws on the same machine.
    data : the model's data (a pytree of arrays).
    progress : draw a progress bar on stderr between chunks of NUTS iterations.
    whole : run the sampler as one compiled program (no progress bar; ``"hmc"`` always is).
    cores : threads to advance the chains' parts in (at most; :func:`layout`): compiled programs release
        Python's lock, so the parts run on separate cores. The mode search and each chain's start and key do
        not depend on the parts. On a CPU every part runs one chain's program for each of its chains, so the
        same key gives the same draws whatever ``cores`` (parts of 2 chains and of 1 alike, bit for bit;
        tested); on an accelerator ``cores=1`` vectorizes the chains, which XLA rounds differently.
    keep : draws per chain to keep, at most ``settings.draws`` (None: all). The sampler stops after the chunk
        of iterations that holds the last of them, and runs the programs of ``settings`` (the same warm-up
        schedule and chunks): a fit that needs fewer draws shares the compiled programs of one that needs them
        all, and its draws are the first ``keep`` of that fit's (the same key and ``refit``).
    more : with ``keep``, called with the kept draws: True continues every chain from where it stopped to all
        ``settings.draws`` (the draws of a fit that kept them all; e.g. when the first draws fail a check).
    refit : a short warm-up (NUTS, chunked): the chains enter the warm-up's adaptation schedule at iteration
        :func:`refit_entry` (its last mass-matrix window), with the programs of ``settings``. For the refits of a
        fit's runs (subsets, other priors): every fit starts at its own posterior mode with the Laplace mass
        matrix, from which such posteriors need no long first windows (``keep`` and ``more`` as without).
    """
    keep = settings.draws if keep is None else min(keep, settings.draws)
    steps = 2**settings.max_tree_depth - 1

    def output(out: dict, keep: int) -> Output:
        # The convergence checks of one fit's draws run on the host: milliseconds, and no program to compile.
        out = jax.tree.map(np.asarray, out)
        if keep < settings.draws:  # every site and statistic is (chains, draws, ...)
            out = {**out, "samples": _first(out["samples"], keep), "stats": _first(out["stats"], keep)}
        return Output(**out, health=_stats.site_health(out["samples"], out["stats"], target.checked, steps))

    if settings.algorithm == "hmc" or whole:
        return output(_whole(target, settings)(key, data), keep)
    begin, advance, finish = _chunked(target, settings)
    total = settings.warmup + settings.draws
    size = _chunk(settings)
    entry = refit_entry(settings) if refit else 0
    started = time.perf_counter()
    k, threads = layout(settings.chains, cores)
    width = settings.chains // k
    # The first time, XLA compiles ``advance`` and ``finish`` in a helper thread while ``begin`` compiles here.
    chunks = len(range(0, total, size))
    prepared = (begin, advance, finish, width, k, chunks, signature(data))
    ahead = None
    if prepared not in _PREPARED:
        ahead = _pool(HELPERS, "prepare").submit(_prepare, (begin, advance, finish), key, data, width, k, chunks)
    state, start = begin(key, data)
    if entry:
        state = _entered(state, entry, settings.warmup)
    if ahead is not None:
        ahead.result()
        _PREPARED.add(prepared)
    pieces = [state] if k == 1 else [None] * k  # each part's NUTS state (sliced from ``state`` by its thread)

    def run(i: int, lo: int, hi: int) -> list:
        """Part ``i``'s iterations ``lo .. hi - 1``, chunk by chunk."""
        piece = pieces[i] if pieces[i] is not None else _take(state, i * width, width)
        traces = []
        for first in range(lo, hi, size):
            piece, trace = advance(piece, data, np.int32(first))
            traces.append(trace)
            if progress and (i == 0 or threads == 1):
                jax.block_until_ready(piece)
                done = min(first + size, hi) - lo
                if threads == 1:  # the parts one after another: the bar moves through each in turn
                    done = (i * (hi - lo) + done) // k
                _report(lo + done, total, time.perf_counter() - started)
        pieces[i] = piece
        return jax.block_until_ready(traces)

    def advanced(lo: int, hi: int) -> list[list]:
        """Each part's chunks of (iterations, chains, ...) from iteration ``lo`` to ``hi``."""
        if threads == 1:
            return [run(i, lo, hi) for i in range(k)]
        return list(_pool(threads).map(lambda i: run(i, lo, hi), range(k)))

    def finished(ran: list[list], keep: int) -> Output:
        # Chunks not run (warm-up skipped, draws not kept) are stood in for by the first and last one run:
        # ``finish`` keeps its shapes, and drops the warm-up. It joins each part's chunks, then the parts side by side.
        lead = entry // size
        return output(finish(data, start, [[t[0]] * lead + t + [t[-1]] * (chunks - lead - len(t)) for t in ran]), keep)

    stop = min(total, -(-(settings.warmup + keep) // size) * size)
    ran = advanced(entry, stop)
    out = finished(ran, keep)
    if keep < settings.draws and more is not None and more(out):  # the rest of the draws after all
        ran = [t + rest for t, rest in zip(ran, advanced(stop, total), strict=True)]
        out = finished(ran, settings.draws)
    return out


def _chunk(settings: Settings) -> int:
    """Iterations per chunk of a chunked fit: its warm-up and draws in :data:`CHUNKS` chunks (the last may be short)."""
    return -(-(settings.warmup + settings.draws) // CHUNKS)


def refit_entry(settings: Settings) -> int:
    """The warm-up iteration at which a refit's chains start (:func:`sample`'s ``refit``): a whole number of the
    fit's chunks, at most halfway into the last window of the warm-up's schedule that adapts the mass matrix
    (0 when the schedule has none, a warm-up under 20 iterations, or when the chains do not start from the
    Laplace approximation at the mode: ``laplace_init=False`` starts them at the prior medians with a unit mass
    matrix, which need the whole warm-up).

    With the defaults (500 warm-up iterations in chunks of 75; windows ending at 74, 99, 149, 249, 449, 499):
    iteration 300, so a refit warms up for 200 iterations, the mass matrix learned from the 150 draws to 449,
    the step size then tuned to it over the last 50.
    """
    windows = _schedule(settings.warmup)
    if len(windows) < 3 or not settings.laplace_init:  # no window between the fast ones; no Laplace start
        return 0
    first, last = windows[-2]
    size = _chunk(settings)
    return (first + (last + 1 - first) // 2) // size * size


def _schedule(warmup: int) -> list[tuple[int, int]]:
    """NumPyro's (Stan's) warm-up windows, ``(first, last)`` iteration of each: a fast window, mass-matrix windows
    doubling in length, a fast window (``numpyro.infer.hmc_util.build_adaptation_schedule``, which a test
    compares; written out so that a fit whose programs are stored need not import NumPyro)."""
    if warmup < 20:
        return [(0, warmup - 1)]
    start, end, size = 75, 50, 25
    if start + end + size > warmup:
        start, end = int(0.15 * warmup), int(0.1 * warmup)
        size = warmup - start - end
    windows, first, fast = [(0, start - 1)], start, warmup - end
    while first < fast:
        length = size
        if 3 * length <= fast - first:
            size = 2 * length
        else:
            length = fast - first
        windows.append((first, first + length - 1))
        first += length
    return [*windows, (fast, warmup - 1)]


def _entered(state: dict, entry: int, warmup: int) -> dict:
    """The chains' NUTS state (:func:`_plain`) as at warm-up iteration ``entry``: its iteration count, and its
    adaptation in the window that holds ``entry`` (the position and step size as begun; that window's estimate
    of the mass matrix empty)."""
    window = next(j for j, (first, last) in enumerate(_schedule(warmup)) if first <= entry <= last)
    adapt = dict(state["adapt_state"])
    adapt["window_idx"] = jnp.full_like(adapt["window_idx"], window)
    return {**state, "i": jnp.full_like(state["i"], entry), "adapt_state": adapt}


def _first(tree: dict[str, np.ndarray], draws: int) -> dict[str, np.ndarray]:
    """The first ``draws`` draws of every chain of each (chains, draws, ...) array."""
    return {name: a[:, :draws] for name, a in tree.items()}


@partial(jax.jit, static_argnums=2)
def _take(state: object, first: int, width: int) -> object:
    """Chains ``first .. first + width - 1`` of a vmapped NUTS state: one compiled slice for every leaf."""
    return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, first, width), state)


#: Threads that prepare fits' programs: enough that fits started at once (a review's) never queue behind each other.
HELPERS = 16
#: Chunked fits whose ``advance`` and ``finish`` are prepared, by programs, parts and data shapes.
_PREPARED: set[tuple] = set()


@functools.cache
def _pool(size: int, task: str = "chains") -> ThreadPoolExecutor:
    """``size`` threads for a ``task``, started once per process: the parts of a split fit, or the preparing of
    a fit's programs."""
    return ThreadPoolExecutor(size, thread_name_prefix=f"bayes_scaling-{task}")


def _prepare(programs: tuple[Program, ...], key: jax.Array, data: object, width: int, k: int, chunks: int) -> None:
    """Read (or trace) and compile a chunked fit's ``advance`` and ``finish`` (``programs``: begin, advance,
    finish), its chains in ``k`` parts of ``width``, its iterations in ``chunks``."""
    begin, advance, finish = programs
    # Shaped as the arrays the calls will get: outputs of compiled programs, placed on the default device (a
    # stored program lowered for unplaced arguments would compile once more when called).
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def placed(tree: object, width: int | None = None) -> object:
        def one(a: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
            shape = a.shape if width is None else (width, *a.shape[1:])
            return jax.ShapeDtypeStruct(shape, a.dtype, weak_type=a.weak_type, sharding=device)

        return jax.tree.map(one, tree)

    state, start = placed(begin.shapes(key, data))
    piece = placed(state, width)
    first = jax.ShapeDtypeStruct((), np.int32)
    advance.prepare(piece, data, first)
    trace = placed(advance.shapes(piece, data, first)[1])
    finish.prepare(data, start, [[trace] * chunks] * k)


def layout(chains: int, cores: int, backend: str | None = None) -> tuple[int, int]:
    """How :func:`sample` advances ``chains`` on ``cores`` cores: ``(parts, threads)``, equal parts (one compiled
    program for all) in ``threads`` threads, each thread advancing its parts one after another.

    On a CPU every part holds at most :data:`MAPPED` chains (the largest divisor of ``chains`` that is at most
    it), so that every fit runs one chain's program for each chain (``lax.map``) whatever the cores: the same
    seed gives the same draws with any ``cores``, and a fit in a worker thread (internal refits, a review's
    sections) shares the compiled program of a fit split across the cores. ``threads``: the parts' count or
    ``cores``, whichever is smaller. On an accelerator (``backend``, default JAX's) one device runs the chains
    at once: the largest divisor of ``chains`` that is at most ``cores`` (``cores=1``: one part, its chains
    vectorized).
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        k = _divisor(chains, cores)
        return k, k
    k = chains // _divisor(chains, MAPPED)
    return k, max(1, min(k, cores))


def _divisor(n: int, most: int) -> int:
    """The largest divisor of ``n`` that is at most ``most`` (1 when ``most`` is below 1)."""
    return max(d for d in range(1, max(1, min(n, most)) + 1) if n % d == 0)


def sample_many(
    target: Target, settings: Settings, keys: jax.Array, data: object, devices: Sequence[jax.Device] | None = None
) -> Output:
    """Sample K posteriors as one program, the batch split evenly across ``devices``.

    Every input and output carries a leading axis of fits, split across the devices by
    ``shard_map``: each device runs the vmapped sampler on its own share, with no
    communication. (Left to XLA's automatic partitioning, the program synchronized every
    device at every leapfrog loop of the vmapped samplers and gathered the whole batch for
    the FFTs of the convergence checks.) The convergence statistics are computed inside the
    program, on each device's share.

    Parameters
    ----------
    keys : PRNG keys, shape (K,).
    data : the K fits' data stacked along a new leading axis (every array (K, ...)).
    devices : where to run (None: every local device). The batch is padded with copies of
        its last fit up to a multiple of their number.

    Returns
    -------
    :class:`Output` with arrays of shape (K, ...), still on the devices.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    k = int(keys.shape[0])
    total = -(-k // len(devices)) * len(devices)

    def pad(a: jax.Array) -> jax.Array:
        return jnp.concatenate([a, jnp.repeat(a[-1:], total - k, axis=0)]) if total > k else a

    keys, data = jax.tree.map(pad, (keys, jax.tree.map(jnp.asarray, data)))
    mesh = Mesh(np.array(devices), ("fits",))
    first = jax.device_put(_jitter(keys[0], settings), NamedSharding(mesh, PartitionSpec()))
    keys, data = jax.device_put((keys, data), NamedSharding(mesh, PartitionSpec("fits")))

    def build() -> Callable:
        batched = jax.vmap(_program(target, settings, checked=True), in_axes=(0, 0, None))
        fits = PartitionSpec("fits")
        split = jax.shard_map(
            batched, mesh=mesh, in_specs=(fits, fits, PartitionSpec()), out_specs=fits, check_vma=False
        )
        return split

    out = PROGRAMS.get(("batched", target.key, settings, mesh), build)(keys, data, first)
    out = jax.tree.map(lambda a: a[:k], out) if total > k else out
    return Output(**out)


def _chunked(target: Target, settings: Settings) -> tuple[Program, Program, Program]:
    """The NUTS sampler's three steps as compiled programs, stored on disk under the target's tag."""
    begin, advance, finish = _pieces(target, settings, (), mapped=MAPPED)
    size = _chunk(settings)
    tag = target.tag and f"{target.tag} {settings}"
    once = compiler_options(once=True)
    return (
        PROGRAMS.get(("begin", target.key, settings), lambda: begin, tag and f"begin {tag}", once),
        PROGRAMS.get(
            ("advance", target.key, settings),
            lambda: partial(advance, n=size),
            tag and f"advance {size} {tag}",
            compiler_options(),
        ),
        PROGRAMS.get(("finish", target.key, settings), lambda: finish, tag and f"finish {tag}", once),
    )


def _whole(target: Target, settings: Settings) -> Program:
    """The sampler as one compiled program ``run(key, data)`` (the trajectory jitter drawn from ``key``)."""

    def build() -> Callable:
        sampler = _program(target, settings)
        return lambda key, data: sampler(key, data, _jitter(key, settings))

    tag = target.tag and f"program {target.tag} {settings}"
    return PROGRAMS.get(("whole", target.key, settings), build, tag)


def _jitter(key: jax.Array, settings: Settings) -> jax.Array:
    """The trajectory-length jitter of :mod:`bayes_scaling._hmc`, one Uniform(0, 1) per iteration, from ``key``."""
    return jax.random.uniform(jax.random.fold_in(key, 2), (settings.warmup + settings.draws,))


def _program(target: Target, settings: Settings, checked: bool = False) -> Callable:
    """The sampler ``run(key, data, jitter) -> dict of arrays`` of a target, not jitted.

    With ``checked``, the convergence statistics of the target's checked sites are computed
    in the program (the batched sampler does so, so that they run on each device's share).
    """
    begin, advance, finish = _pieces(target, settings, target.checked if checked else ())
    total = settings.warmup + settings.draws

    def run(key: jax.Array, data: object, jitter: jax.Array) -> dict:
        state, start = begin(key, data)
        if settings.algorithm == "hmc":
            steps = 2**settings.max_tree_depth - 1
            trace = _hmc.sample(
                _potential(target, data, start["weights"])[1],
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
        return finish(data, start, [[trace]])

    return run


def _newton(f: Callable[[jax.Array], jax.Array], x: jax.Array, steps: int = 60) -> tuple[jax.Array, ...]:
    """Minimize ``f`` by Levenberg-Marquardt damped Newton steps; return the minimum, the gradient and the Hessian
    there.

    A step ``(H + lam·(|diag H| + 1)) s = -g`` is kept only if it lowers ``f``; ``lam``
    shrinks after a kept step and grows after a rejected one, so far from the mode
    the method falls back to short gradient steps. (Cheaper to compile than BFGS
    with its line search, and the Hessian is needed anyway for the mass matrix.) Each
    iteration evaluates ``f``, its gradient and Hessian once, at the trial point (the first
    trial is ``x`` itself): one copy of them in the compiled program.
    """
    grad = jax.grad(f)

    def evaluate(x: jax.Array) -> tuple:
        return f(x), grad(x), jax.jacfwd(grad)(x)

    def body(_: int, carry: tuple) -> tuple:
        x, fx, g, h, lam = carry
        trial = x - jnp.linalg.solve(h + jnp.diag(lam * (jnp.abs(jnp.diag(h)) + 1.0)), g)
        ft, gt, ht = evaluate(trial)
        better = jnp.isfinite(ft) & (ft < fx)
        x, fx, g, h = (jnp.where(better, new, old) for new, old in ((trial, x), (ft, fx), (gt, g), (ht, h)))
        return x, fx, g, h, jnp.where(better, lam * 0.3, lam * 10.0)

    n = x.shape[0]
    start = (x, jnp.asarray(jnp.inf, x.dtype), jnp.zeros_like(x), jnp.eye(n, dtype=x.dtype), jnp.asarray(1.0, x.dtype))
    x, _, g, h, _ = jax.lax.fori_loop(0, steps + 1, body, start)
    return x, g, h


def _potential(target: Target, data: object, weights: dict | None = None) -> tuple[Callable, Callable]:
    """``(unravel, potential)``: the flat unconstrained vector's layout, and the potential energy of one.

    With ``weights`` (:func:`~bayes_scaling._model.centring_weights`), the vector holds the target's group
    offsets partially centred (:func:`~bayes_scaling._model.centred`), and ``unravel`` returns the model's
    own (non-centred) values; the potential carries the map's Jacobian. Without (None or empty: offsets
    non-centred, ``Settings(centre_offsets=False)`` or no Laplace start) the model's own vector, no map.
    """
    layout = jax.eval_shape(target.initial, data, jax.random.key(0))
    _, flat = ravel_pytree(jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), layout))

    from numpyro.infer.util import potential_energy

    if not target.offsets or not weights:
        return flat, lambda v: potential_energy(target.model, (data,), {}, flat(v))

    def unravel(w: jax.Array) -> dict:
        return uncentred(target.offsets, flat(w), weights)[0]

    def potential(w: jax.Array) -> jax.Array:
        v, log_det = uncentred(target.offsets, flat(w), weights)
        return potential_energy(target.model, (data,), {}, v) - log_det

    return unravel, potential


def _pieces(target: Target, settings: Settings, checked: Sequence[str], mapped: int = 0) -> tuple:
    """The sampler in three pure functions: ``begin``, ``advance`` (NUTS only) and ``finish``.

    ``mapped``: ``advance`` runs NUTS on at most this many chains one after another (``lax.map``: quicker to
    trace, see the module's docstring) and vmaps it over more (0, for a batch of fits: always, one lane per
    chain and fit).

    - ``begin(key, data) -> (state, start)``: the mode search, the Laplace mass
      matrix and the chains' starting points; ``state`` is NumPyro's NUTS state (vmapped over
      chains, as dicts: :func:`_plain`) or, for ``"hmc"``, the starting points; ``start`` holds ``mode``, ``cov``,
      ``converged``, the sampler's ``key`` and the ``weights`` of the group offsets' centring. The mode is
      searched with the offsets non-centred (where the joint mode of a hierarchical model stays away from
      zero spread); the chains then run with each offset centred as far as its group's runs inform it
      (:func:`~bayes_scaling._model.centring_weights`, from the Laplace variance there), with the Laplace
      covariance carried over by the map's Jacobian.
    - ``advance(state, data, first, n)``: NUTS iterations ``first .. first + n - 1`` (those
      past the last are skipped); returns the state and that chunk's draws (n, chains, dim)
      and statistics (n, chains).
    - ``finish(data, start, parts)``: each part's chunks joined, the parts' chains side by side, warm-up
      dropped, draws constrained (``parts``: a list over parts of lists over chunks).
    """
    total = settings.warmup + settings.draws

    def begin(key: jax.Array, data: dict) -> tuple:
        k_init, k_chains, k_run = jax.random.split(key, 3)
        flat, potential = _potential(target, data)
        flat0, _ = ravel_pytree(target.initial(data, k_init))
        dim = flat0.shape[0]
        weights = {}  # offsets non-centred (no map at all), unless the Laplace fit below sets how far to centre
        if settings.laplace_init:
            # Hierarchical models (groups) have more dimensions and curved ridges: more steps to the mode.
            mode, grad, hess = _newton(potential, flat0, steps=60 if dim <= 10 else 300)
            hess = 0.5 * (hess + hess.T)
            cov = jnp.linalg.inv(hess)
            chol = jnp.linalg.cholesky(cov)
            ok = jnp.all(jnp.isfinite(chol)) & jnp.all(jnp.isfinite(mode))
            # Not positive definite there (a saddle, or a flat direction): the curvature's magnitudes,
            # each at least a millionth of the largest, still give each direction a sensible scale.
            w, v = jnp.linalg.eigh(hess)
            w = jnp.maximum(jnp.abs(w), 1e-6 * jnp.max(jnp.abs(w)))
            fixed = (v / w) @ v.T
            usable = jnp.all(jnp.isfinite(fixed)) & jnp.all(jnp.isfinite(mode))
            mode = jnp.where(ok | usable, mode, flat0)
            cov = jnp.where(ok, cov, jnp.where(usable, fixed, jnp.eye(dim)))
            chol = jnp.where(ok, chol, jnp.where(usable, jnp.linalg.cholesky(fixed), 0.1 * jnp.eye(dim)))
            # Converged: one Newton step from the mode moves less than 0.1 posterior sd.
            newton = cov @ grad
            converged = ok & (jnp.max(jnp.abs(newton) / jnp.sqrt(jnp.diag(cov))) < 0.1)
            if target.offsets and settings.centre_offsets:
                found = centring_weights(target.offsets, flat(jnp.diag(cov)))
                weights = {z: jnp.where(jnp.isfinite(lam) & (ok | usable), lam, 0.0) for z, lam in found.items()}

                def move(v: jax.Array) -> jax.Array:
                    return ravel_pytree(centred(target.offsets, flat(v), weights))[0]

                jacobian = jax.jacfwd(move)(mode)
                mode, cov = move(mode), jacobian @ cov @ jacobian.T
                chol = jnp.linalg.cholesky(cov)
                good = (ok | usable) & jnp.all(jnp.isfinite(chol))
                cov, chol = jnp.where(good, cov, jnp.eye(dim)), jnp.where(good, chol, 0.1 * jnp.eye(dim))
        else:
            mode, cov, chol, converged = flat0, jnp.eye(dim), 0.1 * jnp.eye(dim), jnp.array(False)
        starts = mode + jax.random.normal(k_chains, (settings.chains, dim)) @ chol.T
        start = {"mode": mode, "converged": converged, "key": k_run, "weights": weights}
        if settings.algorithm == "hmc":
            return starts, {**start, "cov": cov if settings.dense else jnp.diag(jnp.diag(cov))}
        init, _ = _nuts(_potential(target, data, weights)[1], settings)
        inverse_mass = cov if settings.dense else jnp.diag(cov)
        state = jax.vmap(init, (0, 0, None))(starts, jax.random.split(k_run, settings.chains), inverse_mass)
        each = jax.tree.map(lambda a: jnp.broadcast_to(a, (settings.chains, *a.shape)), weights)
        return {**_plain(state), "weights": each}, start

    def advance(state: dict, data: dict, first: jax.Array, n: int) -> tuple:
        state = dict(state)
        each = state.pop("weights")  # the same for every chain: carried with the state, one row per chain
        state = _nuts_state(state)
        weights = jax.tree.map(lambda a: a[0], each)
        init, sample_kernel = _nuts(_potential(target, data, weights)[1], settings)
        # NumPyro's kernel reads its settings from Python variables that its init sets: trace it once (one chain).
        jax.eval_shape(init, state.z[0], state.rng_key[0], state.adapt_state.inverse_mass_matrix[0])
        step = partial(jax.lax.map, sample_kernel) if state.z.shape[0] <= mapped else jax.vmap(sample_kernel)

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

        state, trace = jax.lax.scan(one, state, first + jnp.arange(n))
        return {**_plain(state), "weights": each}, trace

    def finish(data: dict, start: dict, parts: list) -> dict:
        unravel, _ = _potential(target, data, start["weights"])
        joined = [jax.tree.map(lambda *a: jnp.concatenate(a), *chunks) for chunks in parts]  # (iterations, width, ...)
        zs, stats = jax.tree.map(lambda *a: jnp.concatenate(a, axis=1)[settings.warmup : total], *joined)
        # (draws, chains, ...) -> (chains, draws, ...)
        zs = jnp.swapaxes(zs, 0, 1)
        stats = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), stats)

        from numpyro.infer.util import constrain_fn

        def constrain(v: jax.Array) -> dict:
            return constrain_fn(target.model, (data,), {}, unravel(v), return_deterministic=True)

        samples = jax.vmap(jax.vmap(constrain))(zs)
        out = {"samples": samples, "stats": stats, "mode": constrain(start["mode"])}
        out["mode_converged"] = start["converged"]
        if checked:
            steps = 2**settings.max_tree_depth - 1
            out["health"] = _stats.site_health(samples, stats, tuple(checked), steps)
        return out

    return begin, advance, finish


def _plain(state: tuple) -> dict:
    """NumPyro's NUTS state as dicts: what crosses the boundaries of a chunked fit's stored programs (a process
    that reads them back needs no NumPyro types to rebuild it, nor NumPyro)."""
    return {**state._asdict(), "adapt_state": state.adapt_state._asdict()}


def _nuts_state(state: dict) -> tuple:
    """The NUTS state of :func:`_plain`'s dicts."""
    from numpyro.infer.hmc import HMCState
    from numpyro.infer.hmc_util import HMCAdaptState

    return HMCState(**{**state, "adapt_state": HMCAdaptState(**state["adapt_state"])})


def _nuts(potential: Callable, settings: Settings) -> tuple[Callable, Callable]:
    """NumPyro's NUTS kernel: ``init(z, key, inverse_mass) -> state`` for one chain, and its step."""
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential, algo="NUTS")

    def init(z: jax.Array, key: jax.Array, inverse_mass: jax.Array):
        return init_kernel(
            z,
            settings.warmup,
            inverse_mass_matrix=inverse_mass,
            dense_mass=settings.dense,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            # Unregularized dense adaptation keeps tiny posterior variances (3e-7 on the embedded runs)
            # sharp, but a window of draws shorter than the dimension (grouped models) is singular.
            regularize_mass_matrix=z.shape[-1] > 10,
            rng_key=key,
        )

    return init, sample_kernel


#: Off a terminal (a log file, a pipe), progress is written as plain lines, and only for fits that
#: have run this many seconds: short fits leave logs clean.
QUIET_SECONDS = 3.0


def _report(done: int, total: int, seconds: float) -> None:
    """Progress on stderr, ``done`` of ``total`` iterations after ``seconds``: a bar on a terminal, else a
    line at each quarter of a fit that has run for :data:`QUIET_SECONDS`."""
    if sys.stderr.isatty():
        width = 30
        bar = int(width * done / total)
        sys.stderr.write(f"\rsampling [{'#' * bar}{'.' * (width - bar)}] {done}/{total} iterations")
        if done == total:
            sys.stderr.write("\n")
    elif seconds >= QUIET_SECONDS and int(4 * done / total) > int(4 * (done - 1) / total):
        sys.stderr.write(f"sampling: {done}/{total} iterations ({seconds:.0f} s)\n")
    sys.stderr.flush()
