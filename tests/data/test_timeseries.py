"""Forecasting splits: the standard borders, train-only scaling, window counts, and bad input."""

from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError
from common.data.timeseries import forecasting_splits, load_dates, load_series, split_borders, time_features
from tests.fixtures import write_series_csv

ETTH1 = Path(__file__).resolve().parents[3] / "shared" / "data" / "ETT-small" / "ETTh1.csv"


def write_csv(path: Path, rows: int, channels: int = 3) -> Path:
    return write_series_csv(path, np.arange(rows * channels, dtype=float).reshape(rows, channels) % 97)


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


def test_time_features_and_the_decoder_span_of_marked_windows(tmp_path):
    path = write_csv(tmp_path / "w.csv", 200)
    values, marks = load_series(path, "weather"), time_features(load_dates(path))
    assert marks.shape == (200, 4) and marks.min() >= -0.5 and marks.max() <= 0.5
    # row 30: 2020-01-02 06:00, a Thursday: hour 6/23, weekday 3/6, day of month 1/30, day of year 1/365 (- 0.5)
    assert np.allclose(marks[30], np.array([6 / 23, 3 / 6, 1 / 30, 1 / 365]) - 0.5)
    train, _, test, scaler = forecasting_splits(values, "weather", lookback=10, horizon=5, marks=marks, label_len=4)
    x, x_marks, y, y_marks = test[0]
    assert x.shape == (10, 3) and x_marks.shape == (10, 4) and y.shape == (4 + 5, 3) and y_marks.shape == (9, 4)
    assert np.allclose(y[:4].numpy(), x[-4:].numpy()) and np.allclose(y_marks[:4].numpy(), x_marks[-4:].numpy())
    assert np.allclose(y[4].numpy(), scaler(values[160])) and np.allclose(y_marks[4].numpy(), marks[160])
    assert len(train) == 140 - 14  # the same windows as without marks
    with pytest.raises(ConfigError, match="label_len"):
        forecasting_splits(values, "weather", lookback=10, horizon=5, marks=marks, label_len=11)


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
    (tmp_path / "e.csv").write_text("date,x\n2020-01-01 00:00:00,1\nyesterday,2\n")
    with pytest.raises(ConfigError, match="e.csv', row 3: date 'yesterday'"):
        load_dates(tmp_path / "e.csv")
    (tmp_path / "c.csv").write_text("date,x\n1,abc\n")
    with pytest.raises(ConfigError, match="c.csv', row 2"):
        load_series(tmp_path / "c.csv", "weather")
    values = load_series(write_csv(tmp_path / "d.csv", 100), "weather")
    with pytest.raises(ConfigError, match="lookback \\+ horizon.*75.*70 rows of the train part"):
        forecasting_splits(values, "weather", lookback=70, horizon=5)  # a context longer than the data
    with pytest.raises(ConfigError, match="needs 14400 rows"):
        forecasting_splits(values, "ETTh1", lookback=10, horizon=5)
