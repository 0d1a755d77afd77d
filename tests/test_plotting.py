"""Tests of common.plotting: rate curves with fitted lines, pdf + png figures, csv + markdown tables."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from common.plotting import (
    RateCurve,
    markdown_table,
    plot_rate_curves,
    save_figure,
    use_house_style,
    write_table,
)


def _curve(label, slope, replicates=4):
    sample_sizes = np.array([100, 1000, 10000])
    rng = np.random.default_rng(0)
    mean = 2.0 * sample_sizes**slope  # (K,)
    values = mean[:, None] * rng.uniform(0.5, 1.5, size=(3, replicates))  # (K, R)
    return RateCurve(label, sample_sizes, values, slope=slope, intercept=np.log(2.0))


def test_plot_rate_curves_and_save_figure(tmp_path):
    use_house_style()
    assert matplotlib.rcParams["pdf.fonttype"] == 42
    fig, ax = plt.subplots()
    plot_rate_curves(ax, [_curve("sigmoid", -0.51), _curve("softmax", -0.24)])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "sigmoid: $n^{-0.51}$",
        "softmax: $n^{-0.24}$",
    ]
    fitted = [line for line in ax.get_lines() if line.get_linestyle() == "-."]
    assert len(fitted) == 2
    assert np.allclose(fitted[0].get_ydata(), 2.0 * np.array([100, 1000, 10000]) ** -0.51)
    assert ax.get_ylim()[0] > 0

    paths = save_figure(fig, tmp_path / "figures" / "fig1a")
    plt.close(fig)
    assert [p.name for p in paths] == ["fig1a.pdf", "fig1a.png"]
    assert paths[0].read_bytes().startswith(b"%PDF") and paths[1].read_bytes().startswith(b"\x89PNG")


def test_error_bars_are_clipped_above_zero():
    fig, ax = plt.subplots()
    curve = _curve("wide", -0.5, replicates=2)
    curve.values[:, 1] *= 50.0  # mean - 3 SD far below zero
    plot_rate_curves(ax, [curve])
    lower_ends = [seg[0][1] for collection in ax.collections for seg in collection.get_segments()]
    plt.close(fig)
    assert min(lower_ends) > 0


def test_rate_curve_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        RateCurve("bad", np.array([1, 2]), np.ones((3, 4)), slope=-0.5, intercept=0.0)


def test_write_table_csv_and_markdown(tmp_path):
    frame = pd.DataFrame({"setting": ["sigmoid|ReLU", "softmax"], "slope": [-0.5123, np.nan], "replicates": [20, 20]})
    csv_path, md_path = write_table(frame, tmp_path / "tables" / "slopes")
    assert pd.read_csv(csv_path).shape == (2, 3)
    assert csv_path.read_text().splitlines()[1] == "sigmoid|ReLU,-0.512,20"
    assert md_path.read_text().splitlines() == [
        "| setting | slope | replicates |",
        "| --- | ---: | ---: |",
        "| sigmoid\\|ReLU | -0.512 | 20 |",
        "| softmax |  | 20 |",
    ]
    assert markdown_table(frame, "%.1f").splitlines()[2] == "| sigmoid\\|ReLU | -0.5 | 20 |"
