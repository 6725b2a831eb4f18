"""Outputs whole or not at all: atomic files, output folders swapped in as one, runs killed while writing,
two runs into one folder, a reader that closes the pipe."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST

import bayes_scaling as bs
from bayes_scaling._outputs import MARKER, Folder, atomic_file

SAMPLING = ["--chains", str(FAST["chains"]), "--warmup", str(FAST["warmup"]), "--draws", str(FAST["draws"])]
OUTPUTS = {"posterior.nc", "summary.csv", "fit.png", "forecast.csv"}
CLI = [sys.executable, "-m", "bayes_scaling.cli"]


def test_an_atomic_file_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_file(target) as partial:
        partial.write_text("complete")
        assert not target.exists()  # nothing under the name until the block ends
    assert target.read_text() == "complete"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the usual permissions, not 0600
    with pytest.raises(RuntimeError), atomic_file(target) as partial:
        partial.write_text("half")
        raise RuntimeError("stopped")
    assert target.read_text() == "complete" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_folder_is_replaced_as_a_whole_and_foreign_folders_are_refused(tmp_path):
    out = tmp_path / "results"
    with Folder(out) as tmp:
        (tmp / "one.csv").write_text("1")
    with Folder(out) as tmp:
        (tmp / "two.csv").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "two.csv"]  # the first run's file is gone with it
    with pytest.raises(RuntimeError), Folder(out) as tmp:
        (tmp / "three.csv").write_text("3")
        raise RuntimeError("stopped")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "two.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no hidden folder left behind
    mine = tmp_path / "my_work"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"my_work: holds files that bayes-scaling did not write"):
        Folder(mine)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"a_file: is a file, not an output folder"):
        Folder(tmp_path / "a_file")


def test_a_stopped_run_leaves_no_hidden_folder_for_the_next(tmp_path):
    out = tmp_path / "results"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".results.partial-{dead.stdout.strip()}-abc"  # a run killed while writing
    stale.mkdir()
    with Folder(out) as tmp:
        (tmp / "x").write_text("")
    assert not stale.exists() and out.is_dir()


# A run of the command line that dies (as under kill -9: no clean-up) at one point of its writing.
DYING = textwrap.dedent(
    """
    import os, sys
    import xarray as xr
    from bayes_scaling import _outputs
    from bayes_scaling.cli import run
    where = sys.argv.pop(1)
    if where == "netcdf":  # half-way through the netCDF file: after its first group
        write = xr.Dataset.to_netcdf
        def dying(self, path, *args, **kwargs):
            write(self, path, *args, **kwargs)
            if kwargs.get("group") == "sample_stats":
                os._exit(9)
        xr.Dataset.to_netcdf = dying
    elif where == "swap":  # every file written, before the folder is swapped in
        _outputs.Folder.publish = lambda self: os._exit(9)
    elif where == "exchanged":  # swapped in, before the previous outputs are removed
        exchange = _outputs._exchange
        def swapped_then_dying(a, b):
            if exchange(a, b):
                os._exit(9)
            return False
        _outputs._exchange = swapped_then_dying
    sys.argv = ["bayes-scaling", *sys.argv[1:]]
    run()
    """
)


def cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bayes_scaling.cli", *args], text=True, timeout=300, **kwargs)


def test_a_run_killed_at_any_point_of_its_writing_leaves_the_previous_outputs(tmp_path):
    out = tmp_path / "results"
    first = cli("fit", "--plain", "--preset", "gpt3", "--out", str(out), *SAMPLING, capture_output=True)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert OUTPUTS <= set(before)
    for where in ("netcdf", "swap", "exchanged"):
        command = [sys.executable, "-c", DYING, where, "fit", "--plain", "--preset", "gpt4", "--out", str(out)]
        died = subprocess.run([*command, *SAMPLING], capture_output=True, text=True, timeout=300)
        assert died.returncode == 9, (where, died.stderr[-2000:])
        now = {p.name: p.read_bytes() for p in out.iterdir()}
        if where == "exchanged":  # the new run is in place, whole: its forecast is of GPT-4 scale
            assert set(now) == set(before)
            assert pd.read_csv(out / "forecast.csv")["target"].tolist() == ["GPT-4 scale"]
        else:  # the previous run, untouched
            assert now == before, where
        assert bs.load(out / "posterior.nc").group("posterior")["E"].shape == (FAST["chains"], FAST["draws"])
    # The hidden folders the killed runs left are tidied by the next run.
    again = cli("fit", "--plain", "--preset", "gpt3", "--out", str(out), *SAMPLING, capture_output=True)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_two_runs_into_one_folder_each_land_whole(tmp_path):
    out = tmp_path / "same"
    runs = [
        subprocess.Popen(
            [*CLI, "fit", "--plain", "--seed", str(seed), "--out", str(out), *SAMPLING],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for proc in runs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert OUTPUTS <= {p.name for p in out.iterdir()}
    seed = bs.load(out / "posterior.nc").seed
    assert seed in (1, 2)
    forecast = pd.read_csv(out / "forecast.csv")
    assert len(forecast) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["same"]


def test_a_closed_pipe_does_not_stop_the_run(tmp_path):
    """`bayes-scaling fit | head -3`: the reader leaves early; the run still writes its files and exits 0."""
    command = [sys.executable, "-m", "bayes_scaling.cli", "fit", "--plain", "--out", str(tmp_path / "r"), *SAMPLING]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err
    assert OUTPUTS <= {p.name for p in (tmp_path / "r").iterdir()}


def test_the_output_folder_is_checked_before_any_fitting(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    started = cli("fit", "--plain", "--out", str(tmp_path), *SAMPLING, capture_output=True)
    assert started.returncode == 2
    assert started.stderr.strip().endswith("(a run replaces its output folder as a whole)")
    assert "fitting" not in started.stdout  # refused before the runs were even read
    blocked = tmp_path / "a file"
    blocked.write_text("")
    refused = cli("fit", "--out", str(blocked / "out"), capture_output=True)
    assert refused.returncode == 2 and "bayes-scaling: error:" in refused.stderr and "fitting" not in refused.stdout


def test_a_saved_result_is_written_whole(epoch_fit, tmp_path, monkeypatch):
    path = epoch_fit.save(tmp_path / "fit.nc")
    whole = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("xarray.Dataset.to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        epoch_fit.save(path)
    assert path.read_bytes() == whole and [p.name for p in Path(tmp_path).iterdir()] == ["fit.nc"]


def test_a_result_is_not_saved_under_another_formats_name(epoch_fit, tmp_path):
    """``fit.pkl`` would hold netCDF under a pickle's name: refused, saying what to name it; nothing written."""
    for name in ("fit.pkl", "fit.json", "fit.PICKLE"):
        with pytest.raises(ValueError, match=r"saved as netCDF .*never pickle.*name the file fit\.nc"):
            epoch_fit.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    for name in ("fit.NC", "fit.h5", "fit"):  # netCDF's own names, and none
        assert bs.load(epoch_fit.save(tmp_path / name)).law.name == epoch_fit.law.name
