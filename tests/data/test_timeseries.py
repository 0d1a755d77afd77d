"""Forecasting splits: the standard borders, train-only scaling, window counts, and bad input."""

from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError
from common.data.timeseries import forecasting_splits, load_series, split_borders

ETTH1 = Path(__file__).resolve().parents[3] / "shared" / "data" / "ETT-small" / "ETTh1.csv"


def write_csv(path: Path, rows: int, channels: int = 3) -> Path:
    values = np.arange(rows * channels, dtype=float).reshape(rows, channels) % 97
    lines = ["date," + ",".join(f"c{i}" for i in range(channels))]
    lines += [f"2020-01-01 {i:05d}," + ",".join(f"{v:g}" for v in row) for i, row in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ett_and_ratio_borders():
    assert split_borders("ETTh1", 17420) == [(0, 8640), (8640, 11520), (11520, 14400)]
    assert split_borders("ETTm2", 69680) == [(0, 34560), (34560, 46080), (46080, 57600)]
    assert split_borders("weather", 52696) == [(0, 36887), (36887, 42157), (42157, 52696)]


def test_windows_overlap_the_previous_part_by_the_lookback_and_scaling_uses_train_only(tmp_path):
    values = load_series(write_csv(tmp_path / "w.csv", 200), "weather")
    train, val, test, scaler = forecasting_splits(values, "weather", lookback=10, horizon=5)
    assert values.shape == (200, 3)
    assert np.allclose(scaler.mean, values[:140].mean(0)) and np.allclose(scaler.std, values[:140].std(0), atol=1e-6)
    assert (len(train), len(val), len(test)) == (140 - 14, 20 + 10 - 14, 40 + 10 - 14)
    x, y = test[0]
    assert x.shape == (10, 3) and y.shape == (5, 3)
    assert np.allclose(y[0].numpy(), scaler(values[160]))  # the first test target is the test part's first row


@pytest.mark.skipif(not ETTH1.is_file(), reason="the shared ETTh1 file is not here")
def test_real_etth1_has_the_published_window_counts():
    train, val, test, _ = forecasting_splits(load_series(ETTH1, "ETTh1"), "ETTh1", lookback=336, horizon=192)
    assert (len(train), len(val), len(test)) == (8113, 2689, 2689)
    assert train[0][0].shape == (336, 7)


def test_bad_input_names_the_file_or_field(tmp_path):
    with pytest.raises(ConfigError, match="dataset"):
        load_series(write_csv(tmp_path / "a.csv", 50), "ETTh3")
    (tmp_path / "b.csv").write_text("time,x\n1,2\n")
    with pytest.raises(ConfigError, match="b.csv.*'date' column"):
        load_series(tmp_path / "b.csv", "weather")
    (tmp_path / "c.csv").write_text("date,x\n1,abc\n")
    with pytest.raises(ConfigError, match="c.csv', row 2"):
        load_series(tmp_path / "c.csv", "weather")
    values = load_series(write_csv(tmp_path / "d.csv", 100), "weather")
    with pytest.raises(ConfigError, match="lookback \\+ horizon.*75.*70 rows of the train part"):
        forecasting_splits(values, "weather", lookback=70, horizon=5)  # a context longer than the data
    with pytest.raises(ConfigError, match="needs 14400 rows"):
        forecasting_splits(values, "ETTh1", lookback=10, horizon=5)
