from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.data import _load_together

TRUTH = {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}


def runs(n: int = 8) -> pd.DataFrame:
    return bs.simulate(
        {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}, bs.datasets.sweep(sizes=n, ratios=2)
    )


def test_embedded_dataset_has_245_runs_with_its_source():
    data = bs.datasets.chinchilla()
    assert len(data) == 245
    assert "embedded" in data.source
    # Epoch AI derived tokens as flops / (6 params): compute matches 6 N D to float precision.
    f = data.frame
    np.testing.assert_allclose(f["C"], 6 * f["N"] * f["D"], rtol=1e-6)
    assert len(bs.datasets.chinchilla(drop_highest=5)) == 240
    assert bs.datasets.chinchilla(drop_highest=5).frame["loss"].max() < f["loss"].nlargest(5).min()


def test_embedded_benchmark_scores_leave_out_models_that_scored_zero():
    """Every benchmark the docstring names loads; HumanEval's 16 and GSM8K's 3 models that scored 0 (-log 0 is
    infinite) are left out and counted in the source; MMLU has none."""
    table = Path(bs.__file__).parent / "_data" / "obsscaling_base_llm_benchmark_eval.csv"
    raw = pd.read_csv(table).dropna(subset=["FLOPs (1E21)"])
    for benchmark, zero in (("HumanEval", 16), ("GSM8K", 3), ("MMLU", 0)):
        data = bs.datasets.obsscaling(benchmark)
        scores = raw[benchmark].dropna()
        assert int((scores == 0).sum()) == zero
        assert data.source.endswith(f"{zero} models scoring 0 left out") == (zero > 0), data.source
        assert np.isfinite(data.frame["loss"]).all() and (data.frame["loss"] > 0).all()
        assert data.metric == benchmark
    # A score of 0 given directly: the error says why and what to do.
    frame = pd.DataFrame({"flops": [1e20, 1e21, 1e22], "HumanEval": [0.0, 0.1, 0.2]})
    with pytest.raises(ValueError, match=r"row 0: metric 0 is not in \(0, 1\].*infinite at 0; leave out the runs"):
        bs.load_data(frame, loss="HumanEval", needs=("C",), metric=True)


def test_token_counts_above_int32_keep_exact_logs():
    frame = pd.DataFrame({"params": [7e10] * 8, "tokens": np.arange(1, 9) * 2**33, "loss": np.linspace(2, 3, 8)})
    frame["tokens"] = frame["tokens"].astype(np.int64)
    logs = bs.load_data(frame).logs()
    np.testing.assert_allclose(logs["D"], np.log(np.arange(1, 9) * 2.0**33), rtol=1e-12)
    np.testing.assert_allclose(logs["C"], np.log(6 * 7e10 * np.arange(1, 9) * 2.0**33), rtol=1e-12)


def test_missing_column_names_the_file_and_column(tmp_path):
    path = tmp_path / "runs.csv"
    runs().drop(columns="tokens").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"runs\.csv: missing column 'tokens'"):
        bs.load_data(path)


def test_a_missing_column_says_how_to_name_another_and_which_may_be_it():
    """Porian et al.'s isoflop tables name their columns N, D, loss_star: the error says which flag (and keyword)
    names the column to read, and the columns that may be it (not 'hparams' for 'params')."""
    optima = runs().rename(columns={"params": "N_star", "tokens": "D_star", "loss": "loss_star"})
    optima = optima.assign(hparams="base", loss_star_std=0.01)
    with pytest.raises(
        ValueError,
        match=r"missing column 'loss' .*; name the column to read with --loss-col "
        r"\(load_data\(\.\.\., loss=\.\.\.\)\), perhaps loss_star, loss_star_std$",
    ):
        bs.load_data(optima)
    points = runs().rename(columns={"params": "N", "tokens": "D"}).assign(hparams="base")
    with pytest.raises(
        ValueError, match=r"missing column 'params' .*--n-col \(load_data\(\.\.\., n=\.\.\.\)\), perhaps N$"
    ):
        bs.load_data(points)
    assert bs.load_data(points, n="N", d="D").frame["N"].tolist() == points["N"].tolist()
    scores = runs().drop(columns="loss").assign(MMLU=0.5)  # nothing like it: the flag alone
    with pytest.raises(ValueError, match=r"--loss-col \(load_data\(\.\.\., loss=\.\.\.\)\)$"):
        bs.load_data(scores)


def test_configurable_column_names():
    frame = runs().rename(columns={"params": "n_params", "loss": "val_loss"})
    data = bs.load_data(frame, n="n_params", loss="val_loss")
    assert data.columns == {
        "N": "n_params",
        "D": "tokens",
        "C": "flops",
        "loss": "val_loss",
        "metric": False,
        "group": None,
        "params": "total",
        "embedding": None,
    }


def test_non_numeric_value_names_column_and_row(tmp_path):
    frame = runs().astype(object)
    frame.loc[3, "loss"] = "n/a"
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column 'loss', row 4 \(line 5\): non-numeric value 'n/a'"):
        bs.load_data(path)


def test_nan_names_column_and_row():
    frame = runs()
    frame.loc[2, "params"] = np.nan
    with pytest.raises(ValueError, match=r"column 'params', row 2: no value \(an empty cell, or NaN\): leave the run"):
        bs.load_data(frame)


def test_inf_names_column_and_row():
    frame = runs()
    frame.loc[5, "flops"] = np.inf
    with pytest.raises(ValueError, match=r"column 'flops', row 5: value is inf"):
        bs.load_data(frame)


@pytest.mark.parametrize("bad", [0.0, -3.0])
def test_zero_or_negative_names_column_and_row(bad):
    frame = runs()
    frame.loc[1, "tokens"] = bad
    with pytest.raises(ValueError, match=rf"column 'tokens', row 1: value {bad:g} is not positive"):
        bs.load_data(frame)


def test_too_few_rows_for_the_model():
    with pytest.raises(ValueError, match=r"6 rows, but the model needs at least 7"):
        bs.fit(runs(3), draws=10)


def test_duplicate_rows_warn():
    frame = runs()
    frame = pd.concat([frame, frame.iloc[[2]]], ignore_index=True)
    with pytest.warns(bs.DataWarning, match=r"1 duplicate row\(s\), first at row 16"):
        bs.load_data(frame)


def test_compute_far_from_6nd_warns():
    frame = runs()
    frame.loc[4, "flops"] *= 3
    with pytest.warns(bs.DataWarning, match=r"first at row 4 \(C / \(6·N·D\) = 3\)"):
        bs.load_data(frame)


def test_compute_defaults_to_6nd():
    data = bs.load_data(runs().drop(columns="flops"))
    f = data.frame
    np.testing.assert_allclose(f["C"], 6 * f["N"] * f["D"], rtol=1e-12)
    assert data.columns["C"] is None


def test_unreadable_file(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.csv: no such file"):
        bs.load_data(tmp_path / "nope.csv")


def test_frames_checked_together_equal_frames_checked_one_by_one():
    frames = [runs(8), runs(6).assign(loss=lambda f: f["loss"] * 1.01), runs(7)]
    frames.append(frames[0].copy())  # the same runs twice are two data sets, not duplicate rows
    together = _load_together(frames, needs=("N", "D"), min_rows=6)
    assert [len(d) for d in together] == [16, 12, 14, 16]
    for got, frame in zip(together, frames, strict=True):
        want = bs.load_data(frame)
        pd.testing.assert_frame_equal(got.frame, want.frame)
        assert (got.source, got.columns) == (want.source, want.columns)


def test_frames_checked_together_leave_every_finding_to_the_single_check():
    good = runs(8)
    assert _load_together([good, good.iloc[:3]], needs=("N", "D"), min_rows=6) is None  # one too short
    assert _load_together([good, pd.concat([good, good.iloc[:1]])], needs=("N", "D")) is None  # a duplicate
    assert _load_together([good, good.assign(loss=-1.0)], needs=("N", "D")) is None  # a bad value
    assert _load_together([good, good.rename(columns={"loss": "val"})], needs=("N", "D")) is None


def test_fit_many_names_the_bad_data_set():
    bad = runs(8)
    bad.loc[5, "loss"] = np.nan
    with pytest.raises(ValueError, match=r"data set 1 of 2: your DataFrame: column 'loss', row 5: no value"):
        bs.fit_many([runs(8), bad])


@pytest.mark.parametrize(
    ("column", "scale", "message"),
    [
        ("params", 1e30, r"column 'params', row 1 \(line 2\): 1e\+3\d parameters lies outside what any training run"),
        ("tokens", 1e-12, r"column 'tokens', row 1 \(line 2\): .* training tokens lies outside"),
    ],
)
def test_implausible_sizes_are_errors_unless_allowed(tmp_path, column, scale, message):
    frame = bs.simulate(TRUTH, bs.datasets.sweep())
    frame[column] *= scale
    path = tmp_path / "runs.csv"
    frame.drop(columns="flops").to_csv(path, index=False)
    with pytest.raises(ValueError, match=message + r".*--units.*--allow-unusual"):
        bs.load_data(path)
    with pytest.warns(bs.DataWarning, match=message):
        assert len(bs.load_data(path, allow_unusual=True)) == len(frame)


def test_a_loss_above_20_nats_or_of_true_false_values_is_named():
    frame = bs.simulate(TRUTH, bs.datasets.sweep())
    with pytest.raises(ValueError, match=r"row 3: loss 36 is above 20 nats/token.*perplexity.*--metric"):
        bs.load_data(frame.assign(loss=np.where(np.arange(len(frame)) == 3, 36.0, frame["loss"])))
    with pytest.raises(ValueError, match=r"column 'loss' holds true/false values, not numbers"):
        bs.load_data(frame.assign(loss=True))


def test_files_that_are_not_csv_say_what_they_are(tmp_path):
    frame = bs.simulate(TRUTH, bs.datasets.sweep())
    packed = tmp_path / "runs.csv"
    frame.to_csv(packed, index=False, compression="gzip")  # gzip data under a .csv name: read as such
    assert len(bs.load_data(packed)) == len(frame)
    book = tmp_path / "runs.xlsx"
    book.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(ValueError, match=r"runs\.xlsx: is a ZIP archive \(an Excel \.xlsx workbook\?\), not a CSV"):
        bs.load_data(book)
    binary = tmp_path / "runs.bin"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(ValueError, match=r"runs\.bin: not a text CSV file"):
        bs.load_data(binary)


def test_a_dataframe_from_python_is_called_yours():
    frame = runs()
    with pytest.warns(bs.DataWarning, match=r"^your DataFrame: 1 duplicate row\(s\), first at row 16"):
        bs.load_data(pd.concat([frame, frame.iloc[:1]], ignore_index=True))


def _repeated(tmp_path, value: object, row: int = 3):
    """A CSV of repeated-data runs with ``value`` in column unique_tokens at ``row`` (0-based)."""
    frame = bs.simulate(dict(E=1.8, A=500.0, B=1500.0, alpha=0.35, beta=0.35), bs.datasets.repeated()).astype(object)
    frame.loc[row, "unique_tokens"] = value
    path = tmp_path / "repeated.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (9e99, r"column 'unique_tokens', row 4 \(line 5\): 9e\+99 unique tokens, more than the 8e\+08 tokens seen"),
        (0.0, r"column 'unique_tokens', row 4 \(line 5\): value 0 is not positive"),
        (-1e9, r"column 'unique_tokens', row 4 \(line 5\): value -1e\+09 is not positive"),
        ("lots", r"column 'unique_tokens', row 4 \(line 5\): non-numeric value 'lots'"),
    ],
)
def test_bad_unique_tokens_name_file_column_and_row(tmp_path, value, message):
    path = _repeated(tmp_path, value)
    with pytest.raises(ValueError, match=rf"{path}: {message}"):
        bs.load_data(path, needs=("N", "D", "U"))


def test_unique_tokens_are_read_and_an_empty_cell_is_one_epoch(tmp_path):
    data = bs.load_data(_repeated(tmp_path, ""), needs=("N", "D", "U"))
    frame = data.frame
    assert frame.loc[3, "U"] == frame.loc[3, "D"] == 8e8  # empty: every token seen once
    assert frame.loc[4, "U"] == 1e8 and frame.loc[4, "D"] == 1.6e9  # 16 epochs of 1e8 unique tokens
    # No such column: a single epoch everywhere.
    plain = bs.load_data(runs(), needs=("N", "D", "U"))
    np.testing.assert_array_equal(plain.frame["U"], plain.frame["D"])


def embedded_sweep() -> pd.DataFrame:
    """Runs whose parameter column counts embeddings too: a 32,000-token vocabulary times a width that grows as
    the cube root of the non-embedding parameters (64 at 1e6)."""
    ne = np.geomspace(2e7, 2e9, 6)
    width = 64.0 * (ne / 1e6) ** (1 / 3)
    return pd.DataFrame(
        {
            "params": ne + 32000 * width,
            "tokens": 20 * ne,
            "loss": 2.0 + 400 * ne**-0.34,
            "embedding_params": 32000 * width,
            "d_model": width,
            "non_embedding": ne,
        }
    )


def test_parameter_counts_fit_on_either_convention():
    runs = embedded_sweep()
    ne, total = runs["non_embedding"].to_numpy(), runs["params"].to_numpy()
    data = bs.load_data(runs, fit_on="non-embedding")
    np.testing.assert_allclose(data.frame["N"], ne, rtol=1e-12)
    np.testing.assert_allclose(data.frame["N_embedding"], runs["embedding_params"], rtol=1e-12)
    assert data.columns["params"] == "non-embedding" and data.columns["embedding"] == "column 'embedding_params'"
    # Compute stays the compute of the runs as given: 6 x total x D
    np.testing.assert_allclose(data.frame["C"], 6 * total * runs["tokens"], rtol=1e-12)
    plain = bs.load_data(runs)  # the default: fit on what the column counts (total), embeddings kept beside
    np.testing.assert_allclose(plain.frame["N"], total, rtol=1e-12)
    assert plain.columns["params"] == "total"
    # Vocabulary size times width gives the same embeddings; a non-embedding column is turned into totals.
    by_width = bs.load_data(runs.drop(columns="embedding_params"), vocab=32000, width="d_model", fit_on="non-embedding")
    np.testing.assert_allclose(by_width.frame["N"], ne, rtol=1e-9)
    assert by_width.columns["embedding"] == "vocabulary 32000 x column 'd_model'"
    kaplan = runs.assign(params=ne)
    both = bs.load_data(kaplan, params="non-embedding", fit_on="total")
    np.testing.assert_allclose(both.frame["N"], total, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (
            {"embedding_params": [1e9] * 6},
            {},
            r"your DataFrame: column 'embedding_params', row 0: 1e\+09 embedding parameters, not fewer than the",
        ),
        ({"embedding_params": [1e6, 1e6, -5.0, 1e6, 1e6, 1e6]}, {}, "column 'embedding_params', row 2: value -5"),
        (None, {"fit_on": "non-embedding", "embedding": None}, "to fit on non-embedding parameters when column"),
        (None, {"params": "all"}, "params = 'all'; a parameter count is one of total, non-embedding"),
        (None, {"vocab": 32000}, "embedding parameters from vocabulary size and width need both"),
    ],
)
def test_bad_parameter_counts_are_named(change, options, message):
    runs = embedded_sweep()
    if change:
        runs = runs.assign(**change)
    if options.get("vocab") or options.get("embedding", "x") is None:
        runs = runs.drop(columns="embedding_params")
    with pytest.raises(ValueError, match=message):
        bs.load_data(runs, **options)


def test_simulate_takes_the_law_s_parameters_and_a_noise_scale_of_zero_or_more():
    """A truth missing parameters stopped on KeyError 'A'; an unknown one (a typo) or a negative noise scale
    was used silently."""
    with pytest.raises(ValueError, match=r"law 'chinchilla' takes parameters E, A, B, alpha, beta; missing A, B"):
        bs.simulate({"E": 1.7, "alpha": 0.3, "beta": 0.3})
    with pytest.raises(ValueError, match=r"; unknown aplha$"):
        bs.simulate({**TRUTH, "aplha": 0.3})
    with pytest.raises(ValueError, match=r"sigma, the noise scale of log loss, must be zero or more, got -0.1"):
        bs.simulate(TRUTH, sigma=-0.1)
    with pytest.raises(ValueError, match=r"df, the Student-t degrees of freedom, must be positive, got 0"):
        bs.simulate(TRUTH, df=0)
    exact = bs.simulate(TRUTH, sigma=0.0)  # no noise: the law itself
    law = TRUTH["E"] + TRUTH["A"] / exact["params"] ** TRUTH["alpha"] + TRUTH["B"] / exact["tokens"] ** TRUTH["beta"]
    np.testing.assert_allclose(exact["loss"], law, rtol=1e-12)
