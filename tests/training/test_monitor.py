"""What a long run shows: progress lines in a log file, a live bar in a terminal, TensorBoard curves, a clear error
for a tracker that cannot be used."""

import io
import json
import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import runs
from common.config import ConfigError, load_config
from common.training.loop import fit, predictions, total_steps
from common.training.monitor import TENSORBOARD_DIR, Monitor, Progress, check_tracker, flat_hparams
from tests.training.test_loop import SCHEDULE, Data, loss_fn, model

COLLATE = torch.utils.data.default_collate


class Terminal(io.StringIO):
    def isatty(self):
        return True


def scalars(run_dir, tag):
    events = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def test_in_a_file_progress_is_one_plain_line_every_log_every_steps(tmp_path):
    log = io.StringIO()
    steps = total_steps(len(Data()), SCHEDULE)  # 15
    monitor = Monitor(tmp_path, name="toy", progress=True, progress_seconds=3600, tracker="none", file=log)
    fit(model(), Data(), COLLATE, loss_fn, SCHEDULE, steps, tmp_path, seed=0, log_every=4, monitor=monitor)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [re.match(r"toy train: (\d+)/15 ", line).group(1) for line in lines] == ["4", "8", "12", "15"]
    assert all("loss=" in line and "lr=" in line and "step/s" in line for line in lines)
    assert not (tmp_path / TENSORBOARD_DIR).exists()  # tracker=none writes nothing


def test_a_slow_run_writes_a_line_after_progress_seconds_even_between_intervals(monkeypatch):
    clock = iter(range(0, 1000, 7))  # every call: 7 seconds later
    monkeypatch.setattr("common.training.monitor.time.monotonic", lambda: next(clock))
    log = io.StringIO()
    progress = Progress(100, "slow", every=50, seconds=10, file=log)
    for _ in range(4):
        progress.update()
    # t = 0 at the start; updates at 7 (no line), 14 (line: 14 s since 0), 21 (no), 28 (line)
    assert [line.split(":")[0] for line in log.getvalue().splitlines()] == ["slow", "slow"]
    assert "2/100" in log.getvalue().splitlines()[0] and "4/100" in log.getvalue().splitlines()[1]


def test_in_a_terminal_progress_is_a_live_bar_and_progress_false_is_silent():
    terminal = Terminal()
    progress = Progress(5, "bar", file=terminal)
    for _ in range(5):
        progress.update(loss=0.5)
    progress.close()
    assert "\r" in terminal.getvalue() and "bar:" in terminal.getvalue()  # tqdm redraws one line
    for file in (Terminal(), io.StringIO()):
        silent = Progress(5, "bar", enabled=False, file=file)
        for _ in range(5):
            silent.update()
        silent.write("a line")
        silent.close()
        assert file.getvalue() == ""


def test_evaluation_shows_its_batches():
    log = io.StringIO()
    monitor = Monitor(progress=True, file=log)
    predictions(model(), Data(), COLLATE, lambda m, b: m(b[0]).argmax(-1), batch_size=4, monitor=monitor)
    assert log.getvalue().splitlines()[-1].startswith("eval: 10/10 (100%)")


def test_tensorboard_holds_the_loss_of_every_logged_step_once_after_a_crash_and_resume(tmp_path):
    steps = total_steps(len(Data()), SCHEDULE)
    calls = {"n": 0}

    def crashing(net, batch):
        calls["n"] += 1
        if calls["n"] == 11:
            raise RuntimeError("node failure")
        return loss_fn(net, batch)

    record = {"method": "lora", "optimization": {"learning_rate": 0.05}, "seeds": [0, 1]}
    with pytest.raises(RuntimeError):
        monitor = Monitor(tmp_path, tracker="tensorboard", record=record)
        fit(model(), Data(), COLLATE, crashing, SCHEDULE, steps, tmp_path, 0, checkpoint_every=4, log_every=2,
            monitor=monitor)  # fmt: skip
    monitor.close()  # what the end of the crashed process does to its writer
    monitor = Monitor(tmp_path, tracker="tensorboard", record=record)
    fit(model(), Data(), COLLATE, loss_fn, SCHEDULE, steps, tmp_path, 0, checkpoint_every=4, log_every=2,
        monitor=monitor)  # fmt: skip
    monitor.results(steps, {"accuracy": 50.0, "per_task": {"boolq": 60.0}, "method": "lora"})
    logged = [json.loads(line) for line in (tmp_path / runs.LOG_FILE).read_text().splitlines()]
    loss = scalars(tmp_path, "loss")
    assert [step for step, _ in loss] == [entry["step"] for entry in logged] == [2, 4, 6, 8, 10, 12, 14, 15]
    assert [value for _, value in loss] == pytest.approx([entry["loss"] for entry in logged], rel=1e-6)
    assert len(scalars(tmp_path, "examples_per_s")) == len(loss) and scalars(tmp_path, "lr")
    assert scalars(tmp_path, "results/accuracy") == [(steps, 50.0)]
    assert scalars(tmp_path, "results/per_task/boolq") == [(steps, 60.0)]
    events = EventAccumulator(str(tmp_path / TENSORBOARD_DIR))
    events.Reload()
    hparams = events.PluginTagToContent("hparams")  # the record, once (the resumed writer does not repeat it)
    assert set(hparams) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert b"optimization.learning_rate" in hparams["_hparams_/session_start_info"]


def test_the_record_becomes_flat_hyper_parameters():
    assert flat_hparams({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x", "f": True}) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "d": "null",
        "e": "x",
        "f": True,
    }


def test_an_unknown_tracker_or_a_missing_wandb_is_refused_naming_the_field(monkeypatch, tmp_path):
    from quadratic_gating import vision

    with pytest.raises(ConfigError, match=r"'tracker' = 'mlflow' is not allowed: one of tensorboard, wandb, none"):
        load_config(vision.Config, None, ["tracker=mlflow"])
    with pytest.raises(ConfigError, match="progress_seconds"):
        load_config(vision.Config, None, ["progress_seconds=0"])
    monkeypatch.setattr("common.training.monitor.importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="wandb package is not installed"):
        check_tracker("wandb")
    assert load_config(vision.Config, None, ["tracker=none", "progress=false"]).tracker == "none"
