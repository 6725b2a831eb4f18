"""Notebook 05 (real sweeps in groups) runs top to bottom in fast mode and passes its checks."""

from pathlib import Path

from test_notebooks import ALL, run


def test_notebook_of_real_sweeps_in_groups(tmp_path, monkeypatch):
    (path,) = [p for p in ALL if p.stem.startswith("05")]
    run(Path(path), tmp_path, monkeypatch)
