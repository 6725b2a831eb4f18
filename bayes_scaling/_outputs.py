"""Outputs written whole or not at all.

A file is written to a temporary name beside its target and renamed onto it when complete
(:func:`atomic_file`): a reader never sees half a file. A run's output folder is written as
a fresh hidden sibling and swapped in as one (:class:`Folder`): a run stopped at any moment
leaves the previous run's complete outputs (or none), never a mix of two runs. Two runs
aimed at one folder each write their own sibling; the swaps take turns, so the folder ends
holding one of them, complete.

The swap exchanges the two folders in one step (Linux's ``renameat2`` with
``RENAME_EXCHANGE``); where that is missing it renames the old folder aside and the new one
into place, two steps with a moment in between in which the folder is absent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not on Windows: the swaps are then not serialized
    fcntl = None

#: A file in every folder this package wrote; a non-empty folder without it is not ours to replace.
MARKER = ".bayes-scaling"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Temporary files and folders are made private (0600, 0700); outputs get the usual permissions.
_UMASK = _umask()


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block ends without error.

    The temporary file is removed if the block raises. The folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield Path(name)
        os.chmod(name, 0o666 & ~_UMASK)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


class Folder:
    """An output folder replaced as a whole: ``with Folder(out) as tmp:`` write into ``tmp``; at the end of
    the block ``tmp`` becomes ``out`` (and the previous ``out`` is removed); after an error it is removed.

    Checked when made, before any work: ``out`` must be a folder this package wrote (it holds
    :data:`MARKER`), an empty folder, or not exist yet, and its parent must be writable.

    Raises
    ------
    ValueError
        Naming the folder, when it is a file or holds files this package did not write.
    OSError
        When its parent cannot be written.
    """

    def __init__(self, out: str | Path, note: str = "") -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out}: is a file, not an output folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / MARKER).exists():
            raise ValueError(
                f"{self.out}: holds files that bayes-scaling did not write; give a new or empty output folder "
                "(a run replaces its output folder as a whole)"
            )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(self.out)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.partial-{os.getpid()}-"))
        os.chmod(self.tmp, 0o777 & ~_UMASK)
        (self.tmp / MARKER).write_text(f"written by bayes-scaling, {time.strftime('%Y-%m-%d %H:%M:%S')}\n{note}\n")

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self.publish()

    def publish(self) -> None:
        """Swap the written folder into place (one swap at a time per parent folder)."""
        with _locked(self.out.parent):
            if not self.out.exists():
                os.rename(self.tmp, self.out)
                return
            if _exchange(self.tmp, self.out):
                shutil.rmtree(self.tmp, ignore_errors=True)  # now the previous outputs
                return
            old = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.old-{os.getpid()}-"))
            os.rename(self.out, old / "out")
            os.rename(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Exchange two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (the folder itself, no lock file) for the block."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _clean_stale(out: Path) -> None:
    """Tidy hidden siblings left by runs of ``out`` that were stopped (their process is gone).

    A half-written folder is removed. A previous output folder set aside by a swap that did
    not finish (two-step swaps only) is put back when ``out`` is missing, else removed.
    """
    for kind in ("partial", "old"):
        prefix = f".{out.name}.{kind}-"
        for path in out.parent.glob(prefix + "*"):
            pid = path.name[len(prefix) :].split("-")[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if kind == "old" and not out.exists() and (path / "out").is_dir():
                os.rename(path / "out", out)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
