"""Tests of common.runs: atomic writes survive a crash, run records round-trip, results.json marks done."""

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from common import runs
from common.config import config_hash


@dataclass
class Point:
    normalizer: str = "sigmoid"
    sample_sizes: tuple = (10, 20)


def _crash_on_replace(*args, **kwargs):
    raise OSError("simulated crash between write and rename")


@pytest.mark.parametrize(
    "write",
    [
        lambda path: runs.atomic_write_text(path, "new"),
        lambda path: runs.atomic_write_json(path, {"new": 1}),
        lambda path: runs.atomic_save_npz(path, a=np.ones(3)),
        lambda path: runs.atomic_torch_save(path, {"new": torch.ones(2)}),
    ],
    ids=["text", "json", "npz", "torch"],
)
def test_a_crash_mid_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, write):
    target = tmp_path / "target"
    target.write_text("old")
    monkeypatch.setattr(os, "replace", _crash_on_replace)
    with pytest.raises(OSError, match="simulated crash"):
        write(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_an_error_inside_the_block_leaves_no_target(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with pytest.raises(ValueError):
        with runs.atomic_open(target) as file:
            file.write("half")
            raise ValueError("writer failed")
    assert list(target.parent.iterdir()) == []


def test_atomic_writes_round_trip(tmp_path):
    runs.atomic_write_json(tmp_path / "r.json", {"loss": np.float64(0.5), "curve": np.arange(3)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"loss": 0.5, "curve": [0, 1, 2]}
    runs.atomic_save_npz(tmp_path / "a.npz", x=np.eye(2))
    assert np.array_equal(np.load(tmp_path / "a.npz")["x"], np.eye(2))
    runs.atomic_torch_save(tmp_path / runs.CHECKPOINT_FILE, {"step": 3})
    assert torch.load(tmp_path / runs.CHECKPOINT_FILE) == {"step": 3}


def test_write_run_read_run_round_trip(tmp_path):
    path = runs.run_dir(tmp_path, "fig1a", Point())
    assert path == tmp_path / "fig1a" / config_hash(Point())
    arrays = {"losses": np.arange(6.0).reshape(2, 3)}
    runs.write_run(path, Point(), {"slope": -0.51}, arrays=arrays, seed=7)
    record = runs.read_run(path)
    assert record["config"] == {"normalizer": "sigmoid", "sample_sizes": [10, 20]}
    assert record["results"] == {"slope": -0.51}
    assert record["environment"]["seed"] == 7
    assert np.array_equal(record["arrays"]["losses"], arrays["losses"])


def test_read_run_without_arrays(tmp_path):
    runs.write_run(tmp_path, {"a": 1}, {"b": 2})
    assert runs.read_run(tmp_path)["arrays"] == {}


def test_is_done_only_after_results(tmp_path, monkeypatch):
    assert not runs.is_done(tmp_path)
    with pytest.raises(FileNotFoundError, match=runs.RESULTS_FILE):
        runs.read_run(tmp_path)
    # A run that crashes while writing arrays has its config but is not done.
    monkeypatch.setattr(runs, "atomic_save_npz", lambda path, **arrays: _crash_on_replace())
    with pytest.raises(OSError):
        runs.write_run(tmp_path, {"a": 1}, {"b": 2}, arrays={"x": np.ones(1)})
    assert (tmp_path / runs.CONFIG_FILE).is_file() and not runs.is_done(tmp_path)
    monkeypatch.undo()
    runs.write_run(tmp_path, {"a": 1}, {"b": 2}, arrays={"x": np.ones(1)})
    assert runs.is_done(tmp_path)


def test_environment_record_keys():
    record = runs.environment_record(seed=3, device="cpu")
    expected = {
        "git_sha",
        "git_dirty",
        "python",
        "platform",
        "hostname",
        "packages",
        "torch_threads",
        "device",
        "cuda_device_name",
        "slurm_job_id",
        "seed",
        "time_utc",
    }
    assert set(record) == expected
    assert record["seed"] == 3 and record["device"] == "cpu"
    assert record["packages"]["torch"] == torch.__version__.split("+")[0]
    assert record["packages"]["numpy"] == np.__version__
    json.dumps(record)


def test_append_log_writes_one_line_per_record(tmp_path):
    runs.append_log(tmp_path, {"step": 1, "loss": np.float32(0.25)})
    runs.append_log(tmp_path, {"step": 2, "loss": 0.125})
    lines = (tmp_path / runs.LOG_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 1, "loss": 0.25}, {"step": 2, "loss": 0.125}]
