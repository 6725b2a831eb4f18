import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs


def test_presets_and_bands(epoch_fit):
    table = bs.forecast(epoch_fit, preset=["gpt3", "gopher", "chinchilla", "gpt4"])
    assert list(table["target"]) == ["GPT-3", "Gopher", "Chinchilla", "GPT-4 scale"]
    assert table.loc[0, "N"] == 175e9 and table.loc[0, "D"] == 300e9
    assert table.loc[0, "C"] == pytest.approx(6 * 175e9 * 300e9)
    assert table.loc[3, "C"] == 2.1e25
    np.testing.assert_allclose(table.loc[3, "N"] * table.loc[3, "D"] * 6, 2.1e25, rtol=1e-9)
    for level in ("50", "80", "95"):
        assert (table[f"loss_lo{level}"] < table["loss_median"]).all()
        assert (table["loss_median"] < table[f"loss_hi{level}"]).all()
        # A new run carries noise on top of the law's uncertainty: its band is wider.
        assert (
            table[f"run_hi{level}"] - table[f"run_lo{level}"] > table[f"loss_hi{level}"] - table[f"loss_lo{level}"]
        ).all()
    assert (table["loss_hi95"] - table["loss_lo95"] > table["loss_hi50"] - table["loss_lo50"]).all()


def test_forecast_median_is_the_law_at_the_posterior(epoch_fit):
    table = bs.forecast(epoch_fit, N=[1e9, 7e10], D=[2e10, 1.4e12], levels=(0.9,))
    draws = epoch_fit.draws()
    n, d = table["N"].to_numpy()[None], table["D"].to_numpy()[None]
    loss = (
        draws["E"][:, None]
        + draws["A"][:, None] / n ** draws["alpha"][:, None]
        + draws["B"][:, None] / d ** draws["beta"][:, None]
    )
    np.testing.assert_allclose(table["loss_median"], np.median(loss, axis=0), rtol=1e-4)
    np.testing.assert_allclose(table["loss_lo90"], np.quantile(loss, 0.05, axis=0), rtol=1e-4)
    assert list(table.columns[-6:]) == ["loss_median", "loss_lo90", "loss_hi90", "run_median", "run_lo90", "run_hi90"]


def test_compute_budget_is_split_at_the_median_optimum(epoch_fit):
    row = bs.forecast(epoch_fit, flops=5.76e23).iloc[0]
    p = epoch_fit.draws()
    a, b = p["alpha"], p["beta"]  # Hoffmann et al. (2022), Appendix D.2, per draw, in float64
    log_n = (np.log(a * p["A"] / (b * p["B"])) + b * np.log(5.76e23 / 6)) / (a + b)
    assert row["N"] == pytest.approx(np.exp(np.median(log_n)), rel=1e-9)
    assert row["N"] * row["D"] * 6 == pytest.approx(5.76e23, rel=1e-9)


def test_bad_levels_and_targets(epoch_fit):
    with pytest.raises(ValueError, match=r"credible levels must lie in \(0, 1\), got 95"):
        bs.forecast(epoch_fit, preset="gpt4", levels=(95,))
    with pytest.raises(ValueError, match=r"unknown preset 'gpt5'"):
        bs.forecast(epoch_fit, preset="gpt5")
    with pytest.raises(ValueError, match=r"give both N and D"):
        bs.forecast(epoch_fit, N=1e9)
    # Points given as a frame were not checked: a negative size gave a row of NaN bands.
    with pytest.raises(ValueError, match=r"your DataFrame: column 'N', row 1: value -1e\+09 is not positive"):
        bs.forecast(epoch_fit, pd.DataFrame({"N": [1e9, -1e9], "D": [2e10, 2e10]}))
    with pytest.raises(ValueError, match=r"your DataFrame: column 'D', row 0: non-numeric value 'many'"):
        bs.forecast(epoch_fit, pd.DataFrame({"N": [1e9], "D": ["many"]}))
    # A group named for a fit without groups was ignored: the whole sweep's forecast, read as the group's.
    with pytest.raises(ValueError, match=r"group 'rw': this fit's runs have no groups"):
        bs.forecast(epoch_fit, preset="gpt4", group="rw")


def test_save_and_load_round_trip(epoch_fit, tmp_path):
    path = epoch_fit.save(tmp_path / "fit.nc")
    assert path.read_bytes()[:4] == b"\x89HDF"  # netCDF4/HDF5, not pickle
    back = bs.load(path)
    for name in ("E", "A", "B", "alpha", "beta", "sigma"):
        np.testing.assert_array_equal(back.group("posterior")[name], epoch_fit.group("posterior")[name])
    assert back.law is epoch_fit.law and back.spec.to_json() == epoch_fit.spec.to_json()
    assert back.problems == epoch_fit.problems and back.health() == epoch_fit.health()
    a = bs.forecast(epoch_fit, preset=["gpt3", "gpt4"])
    b = bs.forecast(back, preset=["gpt3", "gpt4"])
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_load_rejects_other_files(epoch_fit, tmp_path):
    with pytest.raises(ValueError, match=r"missing\.nc: no such file"):
        bs.load(tmp_path / "missing.nc")
    text = tmp_path / "runs.nc"
    text.write_text("params,tokens,loss\n1,2,3\n")
    with pytest.raises(ValueError, match=r"runs\.nc: not a complete saved result"):
        bs.load(text)
    whole = epoch_fit.save(tmp_path / "fit.nc").read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(whole[: len(whole) // 2])  # a write stopped half-way
    with pytest.raises(ValueError, match=r"cut\.nc: not a complete saved result"):
        bs.load(cut)


def test_plot_is_a_png_with_log_axes(epoch_fit, tmp_path):
    table = bs.forecast(epoch_fit, preset="gpt4")
    fig = bs.plots.fit(epoch_fit, table, path=tmp_path / "fit.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlim()[1] >= 2.1e25  # carried out to the target
    label = ax.xaxis.get_major_formatter()
    assert [label(v, 0) for v in (1e20, 3e20, 1e-3)] == ["10\u00b2\u2070", "", "10\u207b\u00b3"]  # 10^20, 10^-3
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = bs.plots.fit(epoch_fit, table, path=tmp_path / "fit.svg")
    assert b"<svg" in (tmp_path / "fit.svg").read_bytes()[:2000]
    with pytest.raises(ValueError, match=r"fit\.jpg: figures are written as \.png or \.svg"):
        bs.plots.fit(epoch_fit, table, path=tmp_path / "fit.jpg")


def test_a_target_far_beyond_the_data_is_flagged_in_the_table(epoch_fit):
    with pytest.warns(bs.ExtrapolationWarning, match=r"FORECAST FAR BEYOND THE DATA: C=1e\+60 \(37\.\d decades\)"):
        table = bs.forecast(epoch_fit, flops=1e60)
    largest = epoch_fit.data()["C"].max()
    assert table["decades_beyond"].iloc[0] == pytest.approx(np.log10(1e60 / largest))
    near = bs.forecast(epoch_fit, preset="gpt4")  # 3.2 decades out: in the table, no warning
    assert near["decades_beyond"].iloc[0] == pytest.approx(np.log10(2.1e25 / largest))
    assert near["law"].iloc[0] == "chinchilla"


def test_a_plot_refuses_the_forecast_of_another_law(epoch_fit):
    table = bs.forecast(epoch_fit, preset="gpt4")
    with pytest.raises(ValueError, match=r"the forecast table is of law kaplan, the fit of 'chinchilla'"):
        bs.plots.fit(epoch_fit, table.assign(law="kaplan"))
