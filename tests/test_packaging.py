import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_importing_the_package_leaves_arviz_and_scipy_stats_unloaded():
    """A fresh `bayes-scaling fit` must not pay seconds for imports it does not use (README, speed)."""
    code = "import sys, bayes_scaling; print(sorted(m for m in ('arviz', 'scipy.stats') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


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
