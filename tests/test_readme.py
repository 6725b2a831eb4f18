"""Every Python snippet of the README runs, in order, as one session (``pytest -m readme`` runs it alone).

``benchmarks/bench_readme.py`` runs them exactly as written, with the library's defaults (minutes); here
they run with the suite's short chains and smaller versions of the two slow examples (:data:`SHORTER`: every
eighth of one data set's Porian et al. runs in 2 short chains, 8 short SBC simulations),
and the objects they leave behind are checked.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST

import bayes_scaling as bs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
_spec = importlib.util.spec_from_file_location("bench_readme", ROOT / "benchmarks" / "bench_readme.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

#: Text of the README -> what runs here: the same calls on less data and shorter chains; each must occur as often
#: as stated.
SHORTER = {
    "porian = bs.datasets.porian()": (
        'porian = bs.datasets.porian(("rw",)); porian = porian.subset(porian.frame.index % 8 == 0)',
        1,
    ),
    "bs.fit(porian": ("bs.fit(porian, chains=2, warmup=150, draws=150, max_tree_depth=6", 2),
    "n_sims=200": ("n_sims=8, warmup=100, draws=100", 1),
    # The fit_many call's chains as the SBC's: one compiled program (same law, priors, batch, shapes) serves both.
    'algorithm="hmc", seed=0)': ('algorithm="hmc", seed=0, warmup=100, draws=100)', 1),
}
#: Run before the snippets: the library's default chains become the suite's short ones, and the session reads and
#: writes the suite's program cache (``$BAYES_SCALING_CACHE``, set by conftest): the programs other tests compiled for
#: the same data and settings are read back (as written, a Python session keeps its programs in memory).
PREAMBLE = f"""
import dataclasses, bayes_scaling as _bs, bayes_scaling._sampler as _s
_bs.enable_cache()
_defaults = {{f.name: f.default for f in dataclasses.fields(_s.Settings)}}
_defaults.update(chains={FAST["chains"]}, warmup={FAST["warmup"]}, draws={FAST["draws"]})
_s.Settings.__init__.__defaults__ = tuple(_defaults.values())
"""
#: Run after them: what the session left behind, as JSON.
EPILOGUE = """
import json, pathlib
print("FACTS " + json.dumps({
    "law": result.law.name, "forecast rows": len(table), "saturated": saturated.law.name,
    "round trip": bool((same.summary()["mean"] == result.summary()["mean"]).all()),
    "groups": len(pooled.group("posterior")["E"].coords["group"]),
    "compared": sorted(bs.compare([shared, pooled], names=["shared", "pooled"]).index),
    "picks": len(picks), "pick cost": float(picks["C"].sum()),
    "verdict": review.verdict, "fits": len(results), "sbc parameters": sorted(cal.table.index),
    "files": sorted(str(p) for p in pathlib.Path(".").rglob("*") if p.suffix in (".png", ".nc", ".html")),
}), flush=True)
"""


def session(tmp_path: Path) -> dict:
    code, _ = bench.split(README)
    text = "\n".join(code)
    for old, (_, count) in SHORTER.items():
        assert text.count(old) == count, f"the README no longer has {old!r} {count} time(s)"
    code = [PREAMBLE] + [_shorter(s) for s in code] + [EPILOGUE]
    argv = [sys.executable, "-c", bench.SESSION, *code]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("FACTS ", 1)[1].splitlines()[0])


def _shorter(snippet: str) -> str:
    for old, (new, _) in SHORTER.items():
        snippet = snippet.replace(old, new)
    return snippet


@pytest.mark.readme
def test_every_python_snippet_of_the_readme_runs_as_one_session(tmp_path):
    assert len(bench.snippets(README)) == 7
    facts = session(tmp_path)
    assert facts["law"] == "chinchilla" and facts["forecast rows"] == 3 and facts["round trip"]
    assert facts["saturated"] == "saturating"
    assert facts["groups"] == 5 and facts["compared"] == ["pooled", "shared"]
    assert 1 <= facts["picks"] <= 5 and facts["pick cost"] <= 1e21
    assert facts["verdict"] in ("low", "medium", "high")
    assert facts["fits"] == 8 and facts["sbc parameters"] == ["A", "B", "E", "alpha", "beta", "sigma"]
    for name in ("fit.png", "fit.nc", "design.png", "sbc.png", "review/report.html"):
        assert name in facts["files"], (name, facts["files"])


def test_the_cluster_snippet_saves_every_fit_once(tmp_path):
    """The several-hosts snippet as a one-process cluster on localhost (``tests/test_many.py`` runs two)."""
    _, (cluster,) = bench.split(README)
    code = PREAMBLE + bench.on_localhost(cluster, bench.free_port(), 1, 0)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    truth = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
    for i in range(8):
        fit = bs.load(tmp_path / f"fit_{i}.nc")
        assert fit.group("posterior")["E"].shape == (FAST["chains"], FAST["draws"])
        expected = bs.simulate(truth, bs.datasets.sweep(), seed=i)
        observed = fit.group("observed_data")["log_loss"].to_numpy()
        np.testing.assert_allclose(observed, np.log(expected["loss"].to_numpy(float)), rtol=1e-6)
