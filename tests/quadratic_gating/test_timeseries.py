"""The time-series entry point on a small CSV in the benchmark format: every activation, early stopping, resume."""

import numpy as np
import pytest

from common import runs
from common.config import ConfigError, load_config
from quadratic_gating import timeseries

TINY = ["lookback=24", "horizon=6", "model.patch_len=8", "model.stride=4", "model.layers=1", "model.dim=8",
        "model.heads=2", "model.ffn=16", "epochs=3", "patience=2", "batch_size=32", "learning_rate=0.003"]  # fmt: skip


def write_csv(path, rows=300, channels=2):
    t = np.arange(rows)
    values = np.stack([np.sin(t / (4 + c)) + 0.1 * c for c in range(channels)], -1)
    lines = ["date," + ",".join(f"x{c}" for c in range(channels))]
    lines += [f"2020-01-01 {i:05d}," + ",".join(f"{v:.5f}" for v in row) for i, row in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path, *overrides):
    csv = write_csv(tmp_path / "series.csv")
    return load_config(
        timeseries.Config,
        None,
        [f"results_dir={tmp_path / 'r'}", f"csv_path={csv}", "dataset=weather", *TINY, *overrides],
    )


def test_every_activation_trains_and_reports_test_mse_and_mae(tmp_path):
    cfg = config(tmp_path, "seeds=[0]")
    timeseries.main(cfg)
    results = {p.activation: runs.read_run(timeseries.point_dir(cfg, p))["results"] for p in timeseries.sweep(cfg)}
    assert set(results) == {"identity", "gelu", "relu", "silu", "sigmoid", "tanh"}
    for r in results.values():
        assert 0 < r["test_mse"] < 10 and 0 < r["test_mae"] < 10 and 1 <= r["best_epoch"] <= r["epochs"] <= 3


def test_a_crashed_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    reference = config(tmp_path, "activations=[gelu]", "seeds=[1]", f"results_dir={tmp_path / 'a'}")
    timeseries.main(reference)
    expected = runs.read_run(timeseries.point_dir(reference, timeseries.sweep(reference)[0]))
    cfg = config(tmp_path, "activations=[gelu]", "seeds=[1]", f"results_dir={tmp_path / 'b'}")
    real, calls = timeseries.evaluate, {"n": 0}

    def crash_in_epoch_two(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("node failure")
        return real(*args)

    monkeypatch.setattr(timeseries, "evaluate", crash_in_epoch_two)
    with pytest.raises(RuntimeError):
        timeseries.main(cfg)
    monkeypatch.setattr(timeseries, "evaluate", real)
    timeseries.main(cfg)
    resumed = runs.read_run(timeseries.point_dir(cfg, timeseries.sweep(cfg)[0]))
    assert resumed["results"]["test_mse"] == expected["results"]["test_mse"]
    assert np.array_equal(resumed["arrays"]["val_mse"], expected["arrays"]["val_mse"])


def test_bad_input_names_the_field_or_file(tmp_path):
    with pytest.raises(ConfigError, match="activations"):
        config(tmp_path, "activations=[softplus]")
    with pytest.raises(ConfigError, match="dataset"):
        config(tmp_path, "dataset=ETTh3")
    (tmp_path / "bad.csv").write_text("time,x\n0,1\n")
    with pytest.raises(ConfigError, match="bad.csv.*'date' column"):
        timeseries.main(config(tmp_path, f"csv_path={tmp_path / 'bad.csv'}"))
    with pytest.raises(ConfigError, match="lookback \\+ horizon"):
        timeseries.main(config(tmp_path, "lookback=250"))  # longer than the 210 training rows
