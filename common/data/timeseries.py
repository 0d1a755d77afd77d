"""Long-horizon forecasting data (ETT, Weather, Traffic, Electricity, Illness) with the standard splits of the
Informer / Autoformer / PatchTST codebases.

    data = load_series("ETTh1.csv", "ETTh1")                   # every column but `date`, as float32
    train, val, test, scaler = forecasting_splits(data, "ETTh1", lookback=336, horizon=192)
    x, y = train[0]                                            # (336, channels), (192, channels), scaled

    marks = time_features(load_dates("ETTh1.csv"))             # encoder-decoder models (Informer family)
    train, val, test, _ = forecasting_splits(data, "ETTh1", 96, 192, marks=marks, label_len=48)
    x, x_marks, y, y_marks = train[0]                          # y: the last 48 look-back rows, then 192 to predict

Splits: ETT hourly files use 12 / 4 / 4 months of 30 days (8640 / 2880 / 2880 rows), the 15-minute ETTm files
four times as many rows; every other dataset 70 % / 10 % / 20 % of its rows (the test part rounded down, the
validation part what is left). Validation and test windows start `lookback` rows before their split, so that
their first target is the split's first row. The scaler (per-channel mean and standard deviation) is fitted on
the training rows only and applied to all three. Windows slide by one row; the test loader keeps its last
incomplete batch (no `drop_last`). Time features (the Informer family's `timeF`, hourly): hour of day, day of
week, day of month and day of year, each scaled to [-0.5, 0.5].
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.data.files import existing_file

DATASETS = ("ETTh1", "ETTh2", "ETTm1", "ETTm2", "weather", "traffic", "electricity", "illness")
DATE_COLUMN = "date"
ETT_MONTH_ROWS = {"ETTh": 30 * 24, "ETTm": 30 * 24 * 4}


def _check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise ConfigError.invalid("dataset", name, f"one of {', '.join(DATASETS)} (the split rule depends on it)")


def load_series(path: str | Path, dataset: str) -> np.ndarray:
    """The values of every column but `date`, (rows, channels) float32; the file must have a `date` column."""
    _check_dataset(dataset)
    path = existing_file(path, "time-series CSV file")
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        if DATE_COLUMN not in header or len(header) < 2:
            raise ConfigError(
                f"time-series CSV file '{path}' needs a '{DATE_COLUMN}' column and at least one value column; "
                f"its header is {header}"
            )
        keep = [i for i, name in enumerate(header) if name != DATE_COLUMN]
        rows = []
        for number, row in enumerate(reader, start=2):
            try:
                rows.append([float(row[i]) for i in keep])
            except (ValueError, IndexError):
                raise ConfigError(f"time-series CSV file '{path}', row {number}: not {len(keep)} numbers") from None
    if not rows:
        raise ConfigError(f"time-series CSV file '{path}' has no rows")
    return np.asarray(rows, dtype=np.float32)


def load_dates(path: str | Path) -> np.ndarray:
    """The `date` column of a time-series CSV file as datetime64, checked to parse."""
    import pandas as pd

    path = existing_file(path, "time-series CSV file")
    try:
        dates = pd.read_csv(path, usecols=[DATE_COLUMN])[DATE_COLUMN]
    except ValueError:
        raise ConfigError(f"time-series CSV file '{path}' needs a '{DATE_COLUMN}' column") from None
    parsed = pd.to_datetime(dates, errors="coerce")
    if parsed.isna().any():
        row = int(parsed.isna().to_numpy().argmax()) + 2
        raise ConfigError(f"time-series CSV file '{path}', row {row}: date {dates.iloc[row - 2]!r} does not parse")
    return parsed.to_numpy()


def time_features(dates: np.ndarray) -> np.ndarray:
    """(rows, 4) float32: hour of day, day of week, day of month, day of year, each in [-0.5, 0.5]."""
    import pandas as pd

    index = pd.DatetimeIndex(dates)
    features = [index.hour / 23.0, index.day_of_week / 6.0, (index.day - 1) / 30.0, (index.day_of_year - 1) / 365.0]
    return (np.stack(features, axis=1) - 0.5).astype(np.float32)


def split_borders(dataset: str, rows: int) -> list[tuple[int, int]]:
    """(start, end) rows of the train, validation and test parts, before the look-back overlap."""
    _check_dataset(dataset)
    if dataset.startswith("ETT"):
        month = ETT_MONTH_ROWS[dataset[:4]]
        return [(0, 12 * month), (12 * month, 16 * month), (16 * month, 20 * month)]
    train, test = int(rows * 0.7), int(rows * 0.2)
    return [(0, train), (train, rows - test), (rows - test, rows)]


@dataclass
class Scaler:
    mean: np.ndarray  # (channels,)
    std: np.ndarray

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std


class Windows(torch.utils.data.Dataset):
    """Every (look-back window, horizon window) pair of a part of the series, sliding by one row."""

    def __init__(self, values: np.ndarray, lookback: int, horizon: int) -> None:
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        self.lookback, self.horizon = lookback, horizon

    def __len__(self) -> int:
        return max(0, len(self.values) - self.lookback - self.horizon + 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.values[index : index + self.lookback]  # (lookback, channels)
        y = self.values[index + self.lookback : index + self.lookback + self.horizon]  # (horizon, channels)
        return x, y


class MarkedWindows(Windows):
    """Windows for encoder-decoder forecasters: (x, x_marks, y, y_marks) with the rows' time features, where y is the
    decoder's span, the last `label_len` look-back rows followed by the `horizon` rows to predict."""

    def __init__(self, values: np.ndarray, marks: np.ndarray, lookback: int, horizon: int, label_len: int) -> None:
        super().__init__(values, lookback, horizon)
        self.marks = torch.from_numpy(np.ascontiguousarray(marks, dtype=np.float32))
        self.label_len = label_len

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        end = index + self.lookback
        span = slice(end - self.label_len, end + self.horizon)
        return self.values[index:end], self.marks[index:end], self.values[span], self.marks[span]


def forecasting_splits(
    values: np.ndarray, dataset: str, lookback: int, horizon: int, marks: np.ndarray | None = None,
    label_len: int = 0,
) -> tuple[Windows, Windows, Windows, Scaler]:  # fmt: skip
    """Train, validation and test windows of a series (scaled with the training rows' statistics), and the scaler;
    with `marks` (the rows' time features), `MarkedWindows` with a decoder start of `label_len` rows."""
    for name, value in (("lookback", lookback), ("horizon", horizon)):
        if value < 1:
            raise ConfigError.invalid(name, value, "a positive integer")
    if not 0 <= label_len <= lookback:
        raise ConfigError.invalid("label_len", label_len, f"in [0, lookback = {lookback}]")
    if marks is not None and len(marks) != len(values):
        raise ConfigError(f"{len(marks)} rows of time features for {len(values)} rows of values")
    borders = split_borders(dataset, len(values))
    if borders[-1][1] > len(values):
        raise ConfigError(f"{dataset} needs {borders[-1][1]} rows for its standard splits; the file has {len(values)}")
    train_rows = values[borders[0][0] : borders[0][1]]
    scaler = Scaler(train_rows.mean(0), train_rows.std(0) + 1e-8)
    scaled = scaler(values)
    parts = []
    for name, (start, end) in zip(("train", "validation", "test"), borders, strict=True):
        first = max(0, start - lookback) if name != "train" else start
        if marks is None:
            part = Windows(scaled[first:end], lookback, horizon)
        else:
            part = MarkedWindows(scaled[first:end], marks[first:end], lookback, horizon, label_len)
        if not len(part):
            raise ConfigError.invalid(
                "lookback + horizon",
                lookback + horizon,
                f"at most the {end - first} rows of the {name} part of {dataset}",
            )
        parts.append(part)
    return parts[0], parts[1], parts[2], scaler
