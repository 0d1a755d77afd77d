"""The time-series entry point on a small CSV in the benchmark format: every activation, early stopping, resume."""

import numpy as np
import pytest

from common import runs
from common.config import ConfigError, load_config
from quadratic_gating import timeseries
from tests.fixtures import write_series_csv

TINY = ["lookback=24", "horizon=6", "patchtst.patch_len=8", "patchtst.stride=4", "patchtst.layers=1",
        "patchtst.dim=8", "patchtst.heads=2", "patchtst.ffn=16", "epochs=3", "patience=2", "batch_size=32",
        "learning_rate=0.003"]  # fmt: skip
TRANSFORMER = ["architecture=transformer", "transformer.label_len=12", "transformer.dim=16", "transformer.heads=2",
               "transformer.ffn=32", "lr_schedule=type1"]  # fmt: skip


FIRST_POINT = timeseries.Point("identity", 0)


def write_csv(path, rows=300, channels=2):
    t = np.arange(rows)
    return write_series_csv(path, np.stack([np.sin(t / (4 + c)) + 0.1 * c for c in range(channels)], -1))


def config(tmp_path, *overrides):
    csv = write_csv(tmp_path / "series.csv")
    return load_config(
        timeseries.Config,
        None,
        [f"results_dir={tmp_path / 'r'}", f"csv_path={csv}", "dataset=weather", *TINY, *overrides],
    )


def test_every_activation_trains_and_reports_test_mse_and_mae(tmp_path):
    cfg = config(tmp_path, "seeds=[0]")
    timeseries.TimeSeries.main(cfg)
    results = {
        p.activation: runs.read_run(timeseries.TimeSeries.point_dir(cfg, p))["results"]
        for p in timeseries.TimeSeries.sweep(cfg)
    }
    assert set(results) == {"identity", "gelu", "relu", "silu", "sigmoid", "tanh"}
    for r in results.values():
        assert 0 < r["test_mse"] < 10 and 0 < r["test_mae"] < 10 and 1 <= r["best_epoch"] <= r["epochs"] <= 3


def test_the_encoder_decoder_transformer_trains_on_time_features_with_its_own_schedule(tmp_path):
    cfg = config(tmp_path, *TRANSFORMER, "activations=[identity,tanh]", "seeds=[0]")
    timeseries.TimeSeries.main(cfg)
    for point in timeseries.TimeSeries.sweep(cfg):
        run = runs.read_run(timeseries.TimeSeries.point_dir(cfg, point))
        assert 0 < run["results"]["test_mse"] < 10 and run["config"]["architecture"] == "transformer"
        assert "patchtst" not in run["config"] and run["config"]["transformer"]["label_len"] == 12
    assert [timeseries.learning_rate(cfg, e) for e in range(3)] == [0.003, 0.0015, 0.00075]
    patchtst = config(tmp_path)
    assert [timeseries.learning_rate(patchtst, e) for e in (0, 2, 3, 4)] == pytest.approx(
        [0.003, 0.003, 0.0027, 0.00243]
    )
    assert "transformer" not in timeseries.TimeSeries.record(patchtst, timeseries.TimeSeries.sweep(patchtst)[0])


@pytest.mark.parametrize(
    ("schedule", "device"), [("type3", "cpu"), ("tst", "cpu"), pytest.param("type3", "cuda", marks=pytest.mark.gpu)]
)
def test_a_crashed_run_resumes_to_the_same_numbers(tmp_path, monkeypatch, schedule, device):
    """Killed in its second epoch and run again, a point ends with the numbers of an uninterrupted run: on a GPU too,
    where the dropout masks (PatchTST's 0.3) come from the CUDA generator that the checkpoint saves."""
    overrides = ["activations=[gelu]", "seeds=[1]", f"lr_schedule={schedule}", f"device={device}"]
    reference = config(tmp_path, *overrides, f"results_dir={tmp_path / 'a'}")
    timeseries.TimeSeries.main(reference)
    expected = runs.read_run(timeseries.TimeSeries.point_dir(reference, timeseries.TimeSeries.sweep(reference)[0]))
    cfg = config(tmp_path, *overrides, f"results_dir={tmp_path / 'b'}")
    real, calls = timeseries.evaluate, {"n": 0}

    def crash_in_epoch_two(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("node failure")
        return real(*args)

    monkeypatch.setattr(timeseries, "evaluate", crash_in_epoch_two)
    with pytest.raises(RuntimeError):
        timeseries.TimeSeries.main(cfg)
    monkeypatch.setattr(timeseries, "evaluate", real)
    timeseries.TimeSeries.main(cfg)
    resumed = runs.read_run(timeseries.TimeSeries.point_dir(cfg, timeseries.TimeSeries.sweep(cfg)[0]))
    assert resumed["results"]["test_mse"] == expected["results"]["test_mse"]
    assert np.array_equal(resumed["arrays"]["val_mse"], expected["arrays"]["val_mse"])


def test_the_one_cycle_schedule_warms_up_then_decays_every_step(tmp_path):
    import torch

    cfg = config(tmp_path, "lr_schedule=tst", "pct_start=0.25", "epochs=4", "learning_rate=0.01")
    optimiser = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.learning_rate)
    scheduler = timeseries.one_cycle(cfg, optimiser, steps_per_epoch=10)
    rates = []
    for _ in range(40):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(0.01 / 25) and max(rates) == pytest.approx(0.01) and peak == 9  # 25 % of 40
    assert rates[-1] < 1e-5 and all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :], strict=False))
    record = timeseries.TimeSeries.record(cfg, timeseries.TimeSeries.sweep(cfg)[0])
    assert record["pct_start"] == 0.25 and "pct_start" not in timeseries.TimeSeries.record(
        config(tmp_path), FIRST_POINT
    )
    assert timeseries.learning_rate(config(tmp_path, "lr_schedule=constant"), 7) == 0.003


def test_bad_input_names_the_field_or_file(tmp_path):
    with pytest.raises(ConfigError, match="activations"):
        config(tmp_path, "activations=[softplus]")
    with pytest.raises(ConfigError, match="dataset"):
        config(tmp_path, "dataset=ETTh3")
    with pytest.raises(ConfigError, match="architecture.*patchtst, transformer"):
        config(tmp_path, "architecture=informer")
    with pytest.raises(ConfigError, match="lr_schedule"):
        config(tmp_path, "lr_schedule=type9")
    with pytest.raises(ConfigError, match="pct_start"):
        config(tmp_path, "lr_schedule=tst", "pct_start=1.5")
    with pytest.raises(ConfigError, match="label_len"):
        timeseries.TimeSeries.main(
            config(tmp_path, *TRANSFORMER, "transformer.label_len=30")
        )  # longer than the look-back
    (tmp_path / "bad.csv").write_text("time,x\n0,1\n")
    with pytest.raises(ConfigError, match="bad.csv.*'date' column"):
        timeseries.TimeSeries.main(config(tmp_path, f"csv_path={tmp_path / 'bad.csv'}"))
    with pytest.raises(ConfigError, match="lookback \\+ horizon"):
        timeseries.TimeSeries.main(config(tmp_path, "lookback=250"))  # longer than the 210 training rows
