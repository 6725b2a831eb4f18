"""A benchmark's report: each line printed as it comes, and all of them written to a file at the end if asked.

A results file keeps its history: a new report goes on top, stamped with the date and commit, and what the file
held before follows under ``# earlier runs:``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


class Report:
    """Call it with a line of text to print it (flushed) and keep it; :meth:`write` saves the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def write(self, path: str | None) -> None:
        """Put every line on top of ``path`` (nothing when it is None), see :func:`prepend`."""
        if path:
            prepend(path, "\n".join(self.lines))


def stamp() -> str:
    """``# (YYYY-MM-DD HH:MM UTC, commit <short hash>[, uncommitted changes])`` of the checkout run from."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = ", uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"# ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, commit {commit}{dirty})"


def prepend(path: str | Path, text: str) -> None:
    """Write ``text`` at the top of ``path`` under a :func:`stamp` line; what the file held follows it under
    ``# earlier runs:`` (a benchmark's results file keeps every earlier run)."""
    path = Path(path)
    before = path.read_text() if path.exists() else ""
    body = f"{stamp()}\n{text.rstrip()}\n"
    path.write_text(body + (f"\n# earlier runs:\n{before}" if before.strip() else ""))
