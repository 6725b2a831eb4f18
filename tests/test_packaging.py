import subprocess
import sys
import zipfile
from pathlib import Path

import bayes_scaling as bs

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_models_and_embedded_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("bayes_scaling-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for model in (ROOT / "models").glob("*.toml"):
        assert f"bayes_scaling/_models/{model.name}" in names
    assert "bayes_scaling/_data/chinchilla_hoffmann2022_fig4.csv" in names
    assert "bayes_scaling/_data/README.md" in names
    csv = zipfile.ZipFile(wheel).read("bayes_scaling/_data/chinchilla_hoffmann2022_fig4.csv").decode()
    assert csv.splitlines()[0] == "params,tokens,flops,loss" and len(csv.splitlines()) == 246


def test_importing_the_package_leaves_arviz_numpyro_and_scipy_stats_unloaded():
    """A fresh `bayes-scaling fit` must not pay seconds for imports it does not use (README, speed)."""
    code = (
        "import sys, bayes_scaling; print(sorted(m for m in ('arviz', 'numpyro', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_a_fit_whose_programs_are_stored_runs_without_numpyro(tmp_path):
    """NumPyro traces models; a process that reads every program back (a warm run) never imports it."""
    code = (
        "import sys, bayes_scaling as bs; bs.enable_cache(); "
        "r = bs.fit(seed=1, calibrate=False, chains=4, warmup=300, draws=500); bs.forecast(r, preset='gpt4'); "
        "r.save(sys.argv[1]); "
        "print('numpyro' in sys.modules)"
    )
    # The suite's program cache (conftest); the first process stores what it traces, if another test has not.
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"{i}.nc")],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        for i in range(2)
    ]
    assert runs[1].stdout.split()[-1] == "False", runs[1].stdout
    first, second = (bs.load(tmp_path / f"{i}.nc") for i in range(2))
    assert (first.group("posterior")["E"] == second.group("posterior")["E"]).all()  # the same draws either way


def test_importing_the_package_leaves_the_garbage_collector_as_it_found_it():
    """The collector pauses while the package imports (README, speed) and resumes only if it ran before."""
    # (Python 3.12 starts with objects frozen already: the count is compared before and after.)
    code = (
        "import gc{}; n = gc.get_freeze_count(); import bayes_scaling; "
        "print(gc.isenabled(), gc.get_freeze_count() == n)"
    )
    for before, expected in (("", "True True"), ("; gc.disable()", "False True")):
        out = subprocess.run(
            [sys.executable, "-c", code.format(before)], check=True, capture_output=True, text=True, timeout=120
        )
        assert out.stdout.strip() == expected


def test_the_installed_numpy_and_ml_dtypes_are_not_the_slow_pair():
    """ml_dtypes 0.7 adds about 0.9 s to every import of jax under NumPy < 2.5 (pyproject.toml bounds it)."""
    from importlib.metadata import version

    numpy, ml_dtypes = (tuple(int(part) for part in version(name).split(".")[:2]) for name in ("numpy", "ml_dtypes"))
    assert numpy >= (2, 5) or ml_dtypes < (0, 7), f"numpy {numpy} with ml_dtypes {ml_dtypes}"
