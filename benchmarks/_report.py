"""A benchmark's report: each line printed as it comes, and all of them written to a file at the end if asked."""

from __future__ import annotations

from pathlib import Path


class Report:
    """Call it with a line of text to print it (flushed) and keep it; :meth:`write` saves the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def write(self, path: str | None) -> None:
        """Write every line to ``path`` (nothing when it is None)."""
        if path:
            Path(path).write_text("\n".join(self.lines) + "\n")
