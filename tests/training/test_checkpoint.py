"""Checkpoint and resume: an interrupted training run ends with exactly the numbers and log of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from common import runs
from common.training import Checkpointer, preemption_signal
from tests import toy_training

REPO_ROOT = Path(__file__).resolve().parents[2]


class Stop(Exception):
    """Stands for the end of the process: submitit's handler requeues and exits, or the node dies."""


def _config(results_dir, **overrides):
    return toy_training.Config(results_dir=str(results_dir), steps=40, checkpoint_every=5, **overrides)


def _interrupt_at(monkeypatch, step, action):
    """Run `action` in the sleep that follows training step `step` (1-based)."""
    calls = {"n": 0}

    def sleep(seconds):
        calls["n"] += 1
        if calls["n"] == step:
            action()

    monkeypatch.setattr(toy_training.time, "sleep", sleep)


def _log(path):
    return [json.loads(line) for line in (path / runs.LOG_FILE).read_text().splitlines()]


def _assert_same_run(path, reference):
    run, ref = runs.read_run(path), runs.read_run(reference)
    assert {k: v for k, v in run["results"].items() if k != "seconds"} == {
        k: v for k, v in ref["results"].items() if k != "seconds"
    }  # a run's wall time is the one thing a resumed run may not share
    for name in ("weight", "bias"):
        np.testing.assert_array_equal(run["arrays"][name], ref["arrays"][name])
    steps = [record for record in _log(path) if "step" in record and "loss" in record]
    assert steps == [record for record in _log(reference) if "loss" in record]  # every step once, same loss
    assert not (path / runs.CHECKPOINT_FILE).exists()


@pytest.fixture
def reference(tmp_path_factory):
    cfg = _config(tmp_path_factory.mktemp("reference"))
    return toy_training.Training.run_point(cfg, toy_training.Point(0))


def test_the_stop_signal_checkpoints_after_the_step_then_reaches_the_previous_handler(tmp_path, monkeypatch, reference):
    def previous_handler(signum, frame):
        raise Stop(signum)

    old = signal.signal(preemption_signal(), previous_handler)
    try:
        cfg = _config(tmp_path)
        _interrupt_at(monkeypatch, 13, lambda: os.kill(os.getpid(), preemption_signal()))
        with pytest.raises(Stop):
            toy_training.Training.run_point(cfg, toy_training.Point(0))
        path = toy_training.Training.point_dir(cfg, toy_training.Point(0))
        assert torch.load(path / runs.CHECKPOINT_FILE, weights_only=False)["step"] == 13  # not 10: saved on the signal
        assert signal.getsignal(preemption_signal()) is previous_handler  # ours is gone after the run

        monkeypatch.setattr(toy_training.time, "sleep", lambda seconds: None)
        toy_training.Training.run_point(cfg, toy_training.Point(0))
    finally:
        signal.signal(preemption_signal(), old)
    assert [record["step"] for record in _log(path) if record.get("event") == "start"] == [0, 13]
    _assert_same_run(path, reference)


def test_a_hard_kill_resumes_from_the_last_periodic_checkpoint_and_logs_no_step_twice(tmp_path, monkeypatch, reference):
    cfg = _config(tmp_path)

    def die():
        raise Stop("killed")

    _interrupt_at(monkeypatch, 17, die)
    with pytest.raises(Stop):
        toy_training.Training.run_point(cfg, toy_training.Point(0))
    path = toy_training.Training.point_dir(cfg, toy_training.Point(0))
    assert len([record for record in _log(path) if "loss" in record]) == 17
    assert torch.load(path / runs.CHECKPOINT_FILE, weights_only=False)["step"] == 15

    monkeypatch.setattr(toy_training.time, "sleep", lambda seconds: None)
    toy_training.Training.run_point(cfg, toy_training.Point(0))
    assert [record["step"] for record in _log(path) if record.get("event") == "start"] == [0, 15]
    _assert_same_run(path, reference)


@pytest.mark.parametrize("stop", [preemption_signal(), signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_the_signal_ends_the_process_after_the_checkpoint(tmp_path, reference, stop):
    """SIGTERM, and the preemption signal outside submitit, end the process as they would, after saving the step."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "tests.toy_training", f"results_dir={tmp_path}", "step_seconds=0.05"]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT)
    path = toy_training.Training.point_dir(_config(tmp_path), toy_training.Point(0))
    deadline = time.time() + 60
    while not (path / runs.LOG_FILE).is_file() or len(_log(path)) < 11:  # the start line and 10 steps
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(stop)
    assert process.wait(timeout=60) == -stop
    saved = torch.load(path / runs.CHECKPOINT_FILE, weights_only=False)["step"]
    assert 10 <= saved < 40
    assert len([record for record in _log(path) if "loss" in record]) == saved  # saved after the last logged step

    subprocess.run([*command[:-1], "step_seconds=0"], env=env, cwd=REPO_ROOT, check=True)
    _assert_same_run(path, reference)


def test_every_steps_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="every_steps = 0"):
        Checkpointer(tmp_path, every_steps=0)
