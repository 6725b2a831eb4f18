import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import bayes_scaling as bs
from bayes_scaling.cli import main


def test_fit_on_embedded_data_writes_every_output(tmp_path, capsys, monkeypatch):
    args = [
        "fit",
        "--plain",
        "--out",
        str(tmp_path),
        "--preset",
        "gpt3",
        "--preset",
        "gpt4",
        "--drop-highest",
        "5",
        "--chains",
        str(FAST["chains"]),
        "--warmup",
        str(FAST["warmup"]),
        "--draws",
        str(FAST["draws"]),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "to 240 runs from chinchilla_hoffmann2022_fig4.csv (embedded)" in out
    assert "parameters N counted: total (embeddings included); embedding parameters not given" in out
    assert "sampler health: pass: max R-hat" in out and "share of divergent draws 0 (<= 0)" in out
    for name in ("E", "alpha", "beta", "r_hat", "ess_bulk", "GPT-3", "GPT-4 scale"):
        assert name in out
    forecast = pd.read_csv(tmp_path / "forecast.csv")
    assert list(forecast["target"]) == ["GPT-3", "GPT-4 scale"]
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0)
    assert 1.769 <= summary.loc["E", "median"] <= 1.871
    assert (tmp_path / "fit.png").read_bytes()[:4] == b"\x89PNG"
    back = bs.load(tmp_path / "posterior.nc")
    assert back.group("posterior")["E"].shape == (FAST["chains"], FAST["draws"])


def test_the_console_script_flushes_everything_before_its_quick_exit(tmp_path):
    """`bayes-scaling` ends with os._exit (no interpreter teardown): output through a pipe and files are whole."""
    command = [sys.executable, "-m", "bayes_scaling.cli", "fit", "--plain", "--drop-highest", "5", "--preset", "gpt4"]
    sampling = ["--chains", str(FAST["chains"]), "--warmup", str(FAST["warmup"]), "--draws", str(FAST["draws"])]
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout to a pipe: block-buffered
    proc = subprocess.run(
        [*command, *sampling, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=buffered,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("share of draws at tree depth 10 0 (<= 0)")  # the last line got out
    assert pd.read_csv(tmp_path / "forecast.csv")["target"].tolist() == ["GPT-4 scale"]
    assert (tmp_path / "fit.png").read_bytes()[-8:] == b"IEND\xaeB`\x82"  # a PNG written to its end
    back = bs.load(tmp_path / "posterior.nc")
    assert back.settings.draws == FAST["draws"] and back.seed == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("params,loss\n1e9,2.5\n", "missing column 'tokens'"),
        ("params,tokens,loss\n1e9,2e10,abc\n", "column 'loss', row 1 (line 2): non-numeric value 'abc'"),
    ],
)
def test_bad_input_is_one_clear_line_and_nonzero_exit(tmp_path, content, message):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "bayes_scaling.cli", "fit", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("bayes-scaling")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope.csv")]) == 2
    assert capsys.readouterr().err.strip().endswith("nope.csv: no such file")


def test_optimal_writes_the_allocation_table(tmp_path, capsys):
    args = [
        "optimal",
        "--out",
        str(tmp_path),
        "--flops",
        "1e24",
        "--budget",
        "1e24",
        "--tokens-per-param",
        "200",
        "--unique-tokens",
        "1e11",
        "--drop-highest",
        "5",
        "--chains",
        str(FAST["chains"]),
        "--warmup",
        str(FAST["warmup"]),
        "--draws",
        str(FAST["draws"]),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "IsoFLOP (Approach 2): a = " in out and "parametric (Approach 3): a = " in out
    table = pd.read_csv(tmp_path / "optimal.csv")
    assert list(table["C"]) == [1e24]
    for col in ("N_opt", "N_opt_lo", "N_opt_hi", "D_opt", "tokens_per_param", "loss_opt"):
        assert col in table
    budget = pd.read_csv(tmp_path / "budget.csv", index_col=0)
    assert budget.loc["bayes", "C"] <= 1e24 * (1 + 1e-9)
    over = pd.read_csv(tmp_path / "overtrained.csv")
    assert list(over["tokens_per_param"]) == [200] and over.loc[0, "D"] / over.loc[0, "N"] == pytest.approx(200)
    assert over.loc[0, "compute_multiplier"] > 1 and "over-training" in out
    for name in ("frontier.png", "isoflop.png", "overtrained.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    # A data limit, with a law that reads every token as fresh: the unlimited answer, said so.
    limited = pd.read_csv(tmp_path / "constrained.csv").iloc[0]
    assert limited["unique_tokens"] == 1e11 and limited["epochs"] == pytest.approx(limited["D_opt"] / 1e11)
    assert limited["loss_opt"] == pytest.approx(limited["loss_unlimited"], rel=1e-6)
    assert "law 'chinchilla' reads repeated tokens as fresh ones" in out
    choices = pd.read_csv(tmp_path / "constrained_decisions.csv", index_col=[0, 1, 2])
    assert {"bayes", "one epoch", "ignoring the limit"} <= set(choices.index.get_level_values("choice"))


def test_several_laws_are_fitted_compared_and_stacked(tmp_path, capsys):
    args = [
        "fit",
        "--plain",
        "--law",
        "chinchilla",
        "--law",
        "kaplan",
        "--out",
        str(tmp_path),
        "--drop-highest",
        "5",
        "--preset",
        "gpt4",
        "--target-accept",
        "0.95",
        "--chains",
        str(FAST["chains"]),
        "--warmup",
        str(FAST["warmup"]),
        "--draws",
        str(FAST["draws"]),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "PSIS-LOO comparison and stacking weights" in out
    assert "implied intrinsic dimension 4/beta" in out and "implied intrinsic dimension 4/alpha_D" in out
    comparison = pd.read_csv(tmp_path / "comparison.csv", index_col="law")
    assert set(comparison.index) == {"chinchilla", "kaplan"}
    assert comparison["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    assert "pareto_k_high" in comparison
    forecast = pd.read_csv(tmp_path / "forecast.csv")
    assert list(forecast["law"]) == ["chinchilla", "kaplan", "stacked"]
    for name in ("posterior_chinchilla.nc", "posterior_kaplan.nc", "fit_chinchilla.png", "fit_kaplan.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_downstream_metric_from_a_csv_with_units(tmp_path, capsys):
    truth = {"alpha": 2e3, "k": 0.15}
    runs = bs.simulate(
        truth, bs.datasets.sweep(n_range=(1e6, 1e10), sizes=16, ratios=4), law="downstream", sigma=0.1, seed=5
    )
    frame = pd.DataFrame({"FLOPs (1E21)": runs["flops"] / 1e21, "HumanEval": np.exp(-runs["loss"])})
    path = tmp_path / "scores.csv"
    frame.to_csv(path, index=False)
    args = [
        "fit",
        str(path),
        "--plain",
        "--law",
        "downstream",
        "--c-col",
        "FLOPs (1E21)",
        "--loss-col",
        "HumanEval",
        "--metric",
        "--units",
        "C=1e21",
        "--target-flops",
        "2.1e25",
        "--out",
        str(tmp_path / "out"),
        "--chains",
        str(FAST["chains"]),
        "--warmup",
        str(FAST["warmup"]),
        "--draws",
        str(FAST["draws"]),
    ]
    assert main(args) == 0
    forecast = pd.read_csv(tmp_path / "out" / "forecast.csv").iloc[0]
    true = 2e3 * 2.1e25**-0.15  # expected -log(pass rate) at GPT-4 scale
    assert forecast["loss_lo95"] <= true <= forecast["loss_hi95"]
    # Printed and written on the score's own scale, by its name: the pass rate's band is exp(-) of the loss's.
    assert forecast["score_lo95"] <= np.exp(-true) <= forecast["score_hi95"]
    assert forecast["score_lo95"] == pytest.approx(np.exp(-forecast["loss_hi95"]), rel=1e-9)
    out = capsys.readouterr().out
    assert "forecast: HumanEval: expected score (score_*)" in out and "nats" not in out and "loss_" not in out
    assert "parameters N counted" not in out  # a law of compute alone reads no parameter counts
    assert bs.load(tmp_path / "out" / "posterior.nc").metric == "HumanEval"


def test_every_sampler_setting_is_a_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--chains", 4), ("--warmup", 500), ("--draws", 1000), ("--target-accept", 0.9)]:
        assert flag in text and f"(default: {default})" in text
    for flag in ("--max-tree-depth", "--algorithm", "--dense, --no-dense", "--laplace-init, --no-laplace-init"):
        assert flag in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--drop-highest", "-3"], "argument --drop-highest: expected zero or more, got -3"),
        (["fit", "--units", "C=1e21"], "--units describe a CSV's columns; name the CSV"),
        (["fit", "--metric"], "--metric describe a CSV's columns; name the CSV"),
        (["fit", "--drop-highest", "245"], "--drop-highest 245 would drop all 245 runs"),
        (["fit", "--chains", "0"], "sampler setting chains must be a positive integer, got 0"),
    ],
)
def test_flags_that_make_no_sense_are_one_line_errors(args, message, capsys, tmp_path):
    try:
        status = main([*args, "--out", str(tmp_path / "out")])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not (tmp_path / "out").exists()  # nothing written


def test_optimal_of_a_law_without_n_and_d_is_refused_before_fitting(capsys, tmp_path):
    assert main(["optimal", "--law", "power-c", "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr()
    assert "law 'power-c' is not a function of N and D, so it has no compute-optimal split" in printed.err
    assert "fitting" not in printed.out and not (tmp_path / "out").exists()


def test_exit_status_three_only_when_a_check_fails(tmp_path, capsys, monkeypatch):
    """The same fit: a warn-level check gives one calm line and status 0; a failed check shouts and gives 3."""
    from bayes_scaling import diagnostics

    args = [
        "fit",
        "--plain",
        "--preset",
        "gpt4",
        "--drop-highest",
        "5",
        *(f"--{k}={FAST[k]}" for k in ("chains", "warmup", "draws")),
    ]
    monkeypatch.setattr(diagnostics, "THRESHOLDS", diagnostics.Thresholds(ess=(100_000.0, 10.0)))  # ESS warns
    assert main([*args, "--out", str(tmp_path / "warn")]) == 0
    out = capsys.readouterr()
    assert "sampler health: warn:" in out.out and "bulk ESS of E is" in out.out and "DID NOT CONVERGE" not in out.err
    monkeypatch.setattr(diagnostics, "THRESHOLDS", diagnostics.Thresholds(ess=(100_000.0, 90_000.0)))  # ESS fails
    with pytest.warns(bs.ConvergenceWarning):
        assert main([*args, "--out", str(tmp_path / "fail")]) == 3
    assert "THE SAMPLER DID NOT CONVERGE (chinchilla)" in capsys.readouterr().err
    assert (tmp_path / "fail" / "forecast.csv").exists()  # a failed fit still writes its outputs


def test_targets_at_real_runs(tmp_path, capsys):
    planned = tmp_path / "planned.csv"
    pd.DataFrame({"target": ["small", "big"], "N": [1e9, 8.7e9], "D": [2e10, 1.78e11]}).to_csv(planned, index=False)
    sampling = [f"--{k}={FAST[k]}" for k in ("chains", "warmup", "draws")]
    common = ["fit", "--plain", "--drop-highest", "5", *sampling]
    assert (
        main(
            [*common, "--target", "N=8.7e9,D=1.78e11,name=planned", "--target", "C=1e24", "--out", str(tmp_path / "a")]
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "a" / "forecast.csv")
    assert table["target"].tolist() == ["planned", "C=1e+24"]
    assert table.loc[0, "N"] == 8.7e9 and table.loc[0, "D"] == 1.78e11
    assert table.loc[0, "C"] == pytest.approx(6 * 8.7e9 * 1.78e11)
    assert main([*common, "--targets", str(planned), "--out", str(tmp_path / "b")]) == 0
    assert pd.read_csv(tmp_path / "b" / "forecast.csv")["target"].tolist() == ["small", "big"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["fit", "--target", "N=8.7e9"])
    assert "give N and D, or C" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message",
    [
        ("N,D\n", r"planned.csv: a header but no rows: no target to forecast"),
        ("N,D\n1e9,2e10\n-2e9,4e10\n", r"planned.csv: column 'N', row 2 \(line 3\): -2e\+09 is not a positive number"),
        ("N,D\n1e9,abc\n", r"planned.csv: column 'D', row 1 \(line 2\): 'abc' is not a positive number"),
        ("N,D,U\n1e9,2e10,1e10\n1e9,2e10,3e10\n", r"column 'U', row 2 \(line 3\): unique tokens U=3e\+10 above"),
        ("C,U\n1e22,1e10\n", r"column 'U', row 1 \(line 2\): unique tokens U belong to a run given by N and D"),
    ],
)
def test_a_targets_file_s_mistakes_name_the_file_column_and_row(tmp_path, text, message):
    """A targets file with a header only forecast the default presets; a U above D, or beside C alone, had no row
    (or was dropped); a negative number was shown as np.float64(...)."""
    from bayes_scaling.cli import _targets_file

    planned = tmp_path / "planned.csv"
    planned.write_text(text)
    with pytest.raises(ValueError, match=message):
        _targets_file(str(planned))


def test_a_law_named_twice_is_refused_before_any_fit(capsys):
    """`fit --law chinchilla --law chinchilla` fitted both, then stopped on compare's "different names"."""
    assert main(["fit", "--law", "chinchilla", "--law", "kaplan", "--law", "chinchilla"]) == 2  # bad input
    assert "--law chinchilla given more than once: name each law family once" in capsys.readouterr().err


def test_a_target_s_unique_tokens_belong_to_a_run_of_n_and_d(capsys):
    for target, message in [
        ("N=1e9,D=2e10,U=3e10", "unique tokens U=3e+10 above the tokens seen D=2e+10 (U is at most D)"),
        ("C=1e22,U=1e10", "unique tokens U belong to a run given by N and D"),
    ]:
        with pytest.raises(SystemExit):
            main(["fit", "--target", target])
        assert message in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"bayes-scaling {bs.__version__}"


def test_every_command_the_readme_shows_parses_and_the_fast_ones_run(tmp_path, capsys):
    """The README's commands (read as benchmarks/bench_readme.py reads them, which runs them all as written and
    checks their exit status) name only flags and values the command line takes; the fast ones (plain fits)
    run here, with the suite's short chains, and exit with status 0."""
    import importlib.util
    import shlex
    from pathlib import Path

    from bayes_scaling.cli import _parser

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("bench_readme", root / "benchmarks" / "bench_readme.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    commands = bench.commands((root / "README.md").read_text())
    assert "bayes-scaling fit --law chinchilla --law kaplan --law power-c --out results" in commands
    assert "bayes-scaling review" in commands and len(commands) >= 10
    for command in commands:
        args = _parser().parse_args(shlex.split(command)[1:])  # argparse exits (status 2) on a bad flag
        assert args.command == shlex.split(command)[1], command
    # and the reader is not blind: a flag the command line lacks fails to parse
    with pytest.raises(SystemExit):
        _parser().parse_args(["fit", "--no-such-flag"])
    capsys.readouterr()
    fast = [command for command in commands if "--plain" in command]
    assert len(fast) >= 2
    short = ["--chains", str(FAST["chains"]), "--warmup", str(FAST["warmup"]), "--draws", str(FAST["draws"])]
    for i, command in enumerate(fast):
        assert main([*shlex.split(command)[1:], *short, "--out", str(tmp_path / str(i))]) == 0, command
        assert (tmp_path / str(i) / "posterior.nc").is_file()


def test_parameter_counts_from_the_command_line(tmp_path, capsys):
    from bayes_scaling.cli import _counted, _load, _parser

    ne = np.geomspace(2e7, 2e9, 8)
    width = 64.0 * (ne / 1e6) ** (1 / 3)
    runs = pd.DataFrame(
        {"params": ne + 32000 * width, "tokens": 20 * ne, "loss": 2 + 400 * ne**-0.34, "d_model": width}
    )
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    flags = ["--fit-on", "non-embedding", "--vocab", "32000", "--width-col", "d_model"]
    data = _load(_parser().parse_args(["fit", str(path), *flags]), [bs.laws.get("chinchilla")])
    np.testing.assert_allclose(data.frame["N"], ne, rtol=1e-9)
    assert _counted(data) == (
        "parameters N counted: non-embedding; embedding parameters from vocabulary 32000 x column 'd_model'"
    )
    # Without embeddings, a non-embedding fit of a total count is an error (exit status 2); columns need a CSV.
    assert main(["fit", str(path), "--fit-on", "non-embedding", "--out", str(tmp_path / "out")]) == 2
    assert "to fit on non-embedding parameters when column 'params' counts total ones" in capsys.readouterr().err
    assert main(["fit", "--vocab", "32000", "--width-col", "d_model", "--out", str(tmp_path / "out")]) == 2
    assert "--vocab and --width-col describe a CSV's columns" in capsys.readouterr().err
