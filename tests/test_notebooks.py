"""The notebooks run top to bottom in fast mode, pass their own final checks, and show their key figure.

Notebooks 01-04 run here; 05 (grouped real sweeps, the longest) in test_notebooks_groups.py, so that
the two files can run on different test workers.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ALL = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
NOTEBOOKS = [p for p in ALL if not p.stem.startswith("05")]


def test_there_are_five_notebooks():
    assert [p.stem[:2] for p in ALL] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_passes_its_checks(path, tmp_path, monkeypatch):
    run(path, tmp_path, monkeypatch)


def run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAYES_SCALING_FAST", "1")  # short chains; the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    # A failing cell (the final checks are asserts) raises CellExecutionError and fails the test.
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the notebook's outputs"
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert os.environ["BAYES_SCALING_FAST"] == "1"
