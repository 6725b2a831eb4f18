"""Compiled programs kept on disk, so that a fresh process neither traces nor compiles them again.

JAX's persistent compilation cache skips XLA compilation in a later process, but that
process must still trace the Python code (NUTS through NumPyro: seconds) to find the
program it wants. Here each sampler program is also serialized with ``jax.export``
after its first trace; a later process reads it back, and its compilation then hits
JAX's cache. A stored program's key covers everything it depends on: its tag (the law,
priors and sampler settings), the shapes and dtypes of its arguments, the versions of
jax, jaxlib and numpyro, the backend and 64-bit mode, and a hash of this package's
source files, so an edited package or an upgraded JAX never reads a stale program.

Off unless :func:`enable` is called (the command line does).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

_PROGRAMS: Path | None = None


def enable(directory: str | Path | None = None) -> Path | None:
    """Keep compiled and traced programs on disk; return the folder (None: left off).

    Parameters
    ----------
    directory : the cache folder. Default: ``$BAYES_SCALING_CACHE``, else
        ``~/.cache/bayes_scaling``; an empty ``$BAYES_SCALING_CACHE`` leaves the cache off.
        XLA executables go to ``xla/`` inside it, exported programs to ``programs/``.
    """
    global _PROGRAMS
    if directory is None:
        directory = os.environ.get("BAYES_SCALING_CACHE", str(Path.home() / ".cache" / "bayes_scaling"))
        if not directory:
            return None
    root = Path(directory)
    jax.config.update("jax_compilation_cache_dir", str(root / "xla"))
    # Every executable, small ones too: reading one back takes a millisecond, compiling it 10-50 ms.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _PROGRAMS = root / "programs"
    return root


def disable() -> None:
    """Stop reading and writing exported programs (JAX's compilation cache stays as configured)."""
    global _PROGRAMS
    _PROGRAMS = None


@functools.cache
def _source_hash() -> str:
    """Versions of the libraries a program is traced with, and this package's source code."""
    import jaxlib
    import numpyro

    digest = hashlib.sha256(f"{jax.__version__} {jaxlib.__version__} {numpyro.__version__}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


_SHARED: dict[tuple, Stored] = {}
_SHARED_LOCK = threading.Lock()


def shared(fn: Callable, tag: str | None, *static: object) -> Stored:
    """``fn`` with its leading arguments ``static`` fixed, jitted and stored under ``tag``.

    One per ``(fn, tag)`` in a process (per ``(fn, *static)`` when there is no tag, which
    then must be hashable), so every caller with the same program shares its compilation.
    """
    key = (fn, tag) if tag is not None else (fn, *static)
    with _SHARED_LOCK:  # threads asking at once get one object, so one compilation
        if key not in _SHARED:
            _SHARED[key] = Stored(jax.jit(functools.partial(fn, *static)), tag)
        return _SHARED[key]


class Stored:
    """A jitted function of arrays whose traced program is kept on disk, one per argument shape.

    Safe to call from several threads: the first call for a shape traces (or reads) and
    compiles the program in one thread while the others wait, instead of each doing it.

    Parameters
    ----------
    fn : the jitted function; arguments and results are pytrees of arrays.
    tag : everything besides the arguments' shapes that fixes the program (law, priors,
        settings, as text); None never stores it (a user's own law: its code is not
        covered by the package's source hash).
    """

    def __init__(self, fn: Callable, tag: str | None) -> None:
        self.fn, self.tag = fn, tag
        self._found: dict[str, Callable] = {}  # read back or traced, jitted
        self._calls: dict[str, Callable] = {}  # and compiled
        self._lock = threading.Lock()

    def __call__(self, *args: object) -> object:
        return self._program(args)(*args)

    def prepare(self, *args: object) -> None:
        """Read (or trace) and compile the program for arguments shaped like ``args``, without running it.

        ``args`` may hold :class:`jax.ShapeDtypeStruct` in place of arrays. XLA's work is
        done outside Python's lock, so a thread can prepare a program that runs later while
        others sample (reading several programs back at once gained nothing measurable here).
        """
        self._program(args)

    def shapes(self, *args: object) -> object:
        """The shapes of the outputs for arguments shaped like ``args`` (a pytree of ShapeDtypeStruct).

        Reads (or traces) the program but does not compile it.
        """
        return jax.eval_shape(self._found_for(args)[1], *args)

    def _found_for(self, args: tuple) -> tuple[str, Callable]:
        """``(key, jitted program)`` for ``args``' shapes, read back (or traced and stored) once per process."""
        leaves, tree = jax.tree.flatten(args)
        shapes = [(tuple(getattr(a, "shape", np.shape(a))), str(getattr(a, "dtype", type(a).__name__))) for a in leaves]
        key, path = f"{tree} {shapes}", None  # in memory only, unless stored
        if _PROGRAMS is not None and self.tag is not None:
            text = f"{_source_hash()} {jax.default_backend()} {jax.config.jax_enable_x64} {self.tag} {key}"
            key = hashlib.sha256(text.encode()).hexdigest()[:32]
            path = _PROGRAMS / f"{key}.jaxexport"
        if key not in self._found:
            with self._lock:  # one thread reads or traces; the others then find it
                if key not in self._found:
                    self._found[key] = self.fn if path is None else self._load(path, args)
        return key, self._found[key]

    def _program(self, args: tuple) -> Callable:
        """The jitted program for ``args``' shapes, compiled once per process (jit's caches keep it)."""
        key, call = self._found_for(args)
        if key not in self._calls:
            with self._lock:
                if key not in self._calls:
                    call.lower(*args).compile()
                    self._calls[key] = call
        return call

    def _load(self, path: Path, args: tuple) -> Callable:
        """The stored program at ``path``, else trace, export and store it."""
        if path.is_file():
            try:
                return jax.jit(jax.export.deserialize(bytearray(path.read_bytes())).call)
            except Exception:  # unreadable (truncated, foreign format): trace again and overwrite
                pass
        try:
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
        return jax.jit(exported.call)
