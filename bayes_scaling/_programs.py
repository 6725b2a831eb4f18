"""Every compiled program of the package, in one registry, optionally kept on disk.

A program is a jitted function of arrays (a sampler step, the convergence checks, the law
at many points ...). :data:`PROGRAMS` holds each one under an explicit key, so that every
caller asking for the same program shares one compilation per argument shape.

On disk (off unless :meth:`Programs.enable` is called; the command line calls it): JAX's
persistent compilation cache skips XLA compilation in a later process, but that process
must still trace the Python code (NUTS through NumPyro: seconds) to find the program it
wants. So each program with a ``tag`` is also serialized with ``jax.export`` after its
first trace, and a later process reads it back; its compilation then hits JAX's cache. A
stored program's file name is a hash of everything it depends on: its tag (the law,
priors and sampler settings, as text), the shapes and dtypes of its arguments, the
versions of jax, jaxlib and numpyro, the backend, 64-bit mode, and this package's source
files, so an edited package or an upgraded JAX never reads a stale program. A program
without a tag (a law defined outside the package: its code is in no hash) stays in memory.

Lock policy, the only locks around compiled programs:

- the registry's lock guards its table, held only to look up or insert an entry, never
  while tracing, reading or compiling;
- each :class:`Program` holds two locks of its own, one held while it reads or traces itself
  for a new argument shape, one while it compiles itself: threads asking for the same program
  at once wait for one compilation instead of each doing it, and a thread that only needs the
  program's output shapes (to prepare the next program) need not wait for its compilation.
  Calls of a compiled program take no lock;
- :data:`COMPILING`, a semaphore: at most two XLA compilations at once (a fit compiles its sampler's
  steps side by side on two cores; more at once would add XLA's memory, not speed);
- :data:`TRACING`, one lock for the whole process, held only while a program is traced (not while
  XLA compiles it): NumPyro keeps its effect handlers on one process-wide stack, so two threads
  tracing models at once (a fit's internal refits, on a machine with many cores and an empty
  cache) would push and pop each other's handlers.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

import jax
import numpy as np

#: Held while any program is traced (see the module's docstring); re-entrant.
TRACING = threading.RLock()
#: Held while XLA compiles a program: at most two compilations at once (one per core on a two-core machine:
#: a fit's sampler steps compile side by side; more at once would add XLA's memory without adding cores).
COMPILING = threading.BoundedSemaphore(max(1, min(2, os.cpu_count() or 1)))
#: XLA's options for the sampler's programs on a CPU, where this XLA knows them: its elemental emitters instead
#: of the newer fusion emitters (XLA of jaxlib 0.10 has both, later ones only the new). NUTS steps of the
#: Chinchilla law compile in 50 - 70% of the time and run as fast; a program of wide array arithmetic (the
#: kappa grid, since computed in NumPy) ran 2.4 - 2.6 times slower, so the others keep XLA's defaults.
SAMPLER = {"xla_cpu_use_fusion_emitters": False}
#: And for a sampler's program that runs once per fit (the mode search and the chains' start, the draws'
#: summary, the prior's draws): no backend (LLVM) optimization. The Chinchilla law's start compiles in about
#: a third of the time and runs in 12 ms instead of 4.
ONCE = {"xla_backend_optimization_level": 0}
#: Held while :func:`compiler_options` tries options.
_PROBING = threading.Lock()


@functools.cache
def _knows(name: str, value: object) -> bool:
    """Whether this XLA knows compiler option ``name``: tried once, on a program of one addition."""
    try:
        jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(np.float32(0)).compile()
    except jax.errors.JaxRuntimeError:  # "No such compile option"
        return False
    return True


def compiler_options(once: bool = False) -> dict | None:
    """XLA's options for a sampler's program (None: XLA's defaults): :data:`SAMPLER` and, for one that runs once
    per fit, :data:`ONCE`, each only where the default backend is a CPU and its XLA knows the option (each is
    tried once, on a program of one addition)."""
    if jax.default_backend() != "cpu":
        return None
    with _PROBING:  # threads starting fits at once try each option once, not once each
        options = {k: v for k, v in {**SAMPLER, **(ONCE if once else {})}.items() if _knows(k, v)}
    return options or None


@functools.cache
def _source_hash() -> str:
    """Versions of the libraries a program is traced with, and this package's source code."""
    from importlib.metadata import version

    import jaxlib

    # NumPyro's version as installed: importing it would cost a run that traces nothing (bayes_scaling._lazy).
    digest = hashlib.sha256(f"{jax.__version__} {jaxlib.__version__} {version('numpyro')}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _unplaced(a: object) -> object:
    """``a`` without its placement, if it is a :class:`jax.ShapeDtypeStruct`."""
    if isinstance(a, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type)
    return a


def signature(args: object) -> tuple:
    """What a compiled program depends on in its arguments ``args`` (a pytree): its structure, and each leaf's
    shape and dtype (hashable)."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((np.shape(a), getattr(a, "dtype", type(a))) for a in leaves)


class Program:
    """A jitted function of arrays, compiled once per argument shape, kept on disk when it has a tag.

    Parameters
    ----------
    fn : the function to compile (jitted here, once); arguments and results are pytrees of arrays.
    tag : everything besides the arguments' shapes that fixes the program, as text;
        None never stores it.
    registry : the :class:`Programs` whose folder (if any) stores it.
    options : XLA's compiler options (None: its defaults; :func:`compiler_options`).
    """

    def __init__(self, fn: Callable, tag: str | None, registry: Programs, options: dict | None = None) -> None:
        self.options = options
        self.fn = jax.jit(fn, compiler_options=options)
        self.tag, self._registry = tag, registry
        self._found: dict[str, Callable] = {}  # read back or traced, jitted
        self._keys: dict[tuple, tuple[str, Path | None]] = {}  # arguments' signature -> (key, file)
        self._compiled: set[str] = set()
        self._finding, self._compiling = threading.Lock(), threading.Lock()

    def __call__(self, *args: object) -> object:
        return self._ready(args)(*args)

    def prepare(self, *args: object) -> None:
        """Read (or trace) and compile the program for arguments shaped like ``args``, without running it.

        ``args`` may hold :class:`jax.ShapeDtypeStruct` in place of arrays. XLA's work is
        done outside Python's lock, so a thread can prepare a program that runs later while
        others sample. A placed ShapeDtypeStruct (``sharding=``) describes an output of a stored program;
        a program kept in memory is compiled for unplaced arguments, as it will be called (compiled for
        placed ones, it would compile again at its first call).
        """
        if self._find(args)[1] is self.fn:
            args = jax.tree.map(_unplaced, args)
        self._ready(args)

    def shapes(self, *args: object) -> object:
        """The shapes of the outputs for arguments shaped like ``args`` (a pytree of ShapeDtypeStruct).

        Reads (or traces) the program but does not compile it.
        """
        program = self._find(args)[1]
        with TRACING:
            return jax.eval_shape(program, *args)

    def _find(self, args: tuple) -> tuple[str, Callable]:
        """``(key, jitted program)`` for ``args``' shapes, read back (or traced and stored) once."""
        tree, leaves = shaped = signature(args)
        memo = (self._registry.directory, shaped)
        if memo not in self._keys:  # a chunked fit calls its programs dozens of times: the key is made once
            shapes = [(tuple(shape), str(getattr(dtype, "name", dtype))) for shape, dtype in leaves]
            key, path = f"{tree} {shapes}", None  # in memory only, unless stored
            folder = self._registry.directory
            if folder is not None and self.tag is not None:
                text = f"{_source_hash()} {jax.default_backend()} {jax.config.jax_enable_x64} {self.tag} {key}"
                key = hashlib.sha256(text.encode()).hexdigest()[:32]
                path = folder / f"{key}.jaxexport"
            self._keys[memo] = key, path
        key, path = self._keys[memo]
        if key not in self._found:
            with self._finding:
                if key not in self._found:
                    self._found[key] = self.fn if path is None else self._load(path, args)
        return key, self._found[key]

    def _ready(self, args: tuple) -> Callable:
        """The jitted program for ``args``' shapes, compiled (jit's own cache keeps the executable)."""
        key, call = self._find(args)
        if key not in self._compiled:
            with self._compiling:
                if key not in self._compiled:
                    with TRACING:
                        lowered = call.lower(*args)
                    with COMPILING:
                        lowered.compile()
                    self._compiled.add(key)
        return call

    def _load(self, path: Path, args: tuple) -> Callable:
        """The stored program at ``path``, else trace, export and store it."""
        if path.is_file():
            try:
                exported = jax.export.deserialize(bytearray(path.read_bytes()))
                return jax.jit(exported.call, compiler_options=self.options)
            except Exception:  # unreadable (truncated, foreign format): trace again and overwrite
                pass
        try:
            with TRACING:
                exported = jax.export.export(self.fn)(*args)
            blob = exported.serialize()
        except Exception:  # a program JAX cannot export (or serialize): keep it in memory only
            return self.fn
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
                f.write(blob)
            os.replace(f.name, path)  # atomic: concurrent processes never read a partial file
        except OSError:  # an unwritable cache folder costs the next process time, not this one its fit
            pass
        return jax.jit(exported.call, compiler_options=self.options)


class Programs:
    """The registry of compiled programs (see the module's docstring for its lock policy).

    Attributes
    ----------
    directory : the folder of exported programs, or None (programs stay in memory).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._table: dict[Hashable, Program] = {}
        self._lock = threading.Lock()

    def get(
        self, key: Hashable, build: Callable[[], Callable], tag: str | None = None, options: dict | None = None
    ) -> Program:
        """The program registered under ``key``; ``build()`` makes its function on first request.

        Parameters
        ----------
        key : a hashable that fixes the program in this process (it may hold a law's record,
            priors as text, sampler settings, ...).
        build : returns the function to compile (not jitted: the program jits it, with ``options``); called
            once per key, under the registry's lock (nothing is traced until the program is first called or
            prepared).
        tag : text that fixes the program across processes (None: never stored on disk).
        options : XLA's compiler options (None: its defaults; :func:`compiler_options`).
        """
        with self._lock:
            if key not in self._table:
                self._table[key] = Program(build(), tag, self, options)
            return self._table[key]

    def enable(self, directory: str | Path | None = None) -> Path | None:
        """Keep compiled and traced programs on disk; return the folder (None: left off).

        Parameters
        ----------
        directory : the cache folder. Default: ``$BAYES_SCALING_CACHE``, else
            ``~/.cache/bayes_scaling``; an empty ``$BAYES_SCALING_CACHE`` leaves the cache off.
            XLA executables go to ``xla/`` inside it, exported programs to ``programs/``.
        """
        if directory is None:
            directory = os.environ.get("BAYES_SCALING_CACHE", str(Path.home() / ".cache" / "bayes_scaling"))
            if not directory:
                return None
        root = Path(directory)
        jax.config.update("jax_compilation_cache_dir", str(root / "xla"))
        # Every executable, small ones too: reading one back takes a millisecond, compiling it 10-50 ms.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        self.directory = root / "programs"
        return root

    def disable(self) -> None:
        """Stop reading and writing exported programs (JAX's compilation cache stays as configured)."""
        self.directory = None


#: The package's programs.
PROGRAMS = Programs()


def enable_cache(directory: str | Path | None = None) -> Path | None:
    """Keep compiled programs on disk, so that a fresh process neither traces nor compiles them.

    See :meth:`Programs.enable`; the command line does this by default.
    """
    return PROGRAMS.enable(directory)
