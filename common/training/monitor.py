"""What a long run shows while it runs: progress (tqdm) and training curves (TensorBoard, or W&B offline).

    monitor = Monitor.of(cfg, run_dir, record, name="gelu seed=1")   # cfg: a config with the Monitoring fields
    losses = fit(..., monitor=monitor)                                 # steps: progress, loss / lr / throughput
    monitor.scalars(step, {"val_accuracy": 81.2})                      # any other metric, at a training step
    monitor.close()

Progress is a live tqdm bar in a terminal. Written to a file (a SLURM log, ``> log``) it is one plain line, in the
same format, every ``every`` updates or ``progress_seconds`` seconds, whichever comes first, and never a stream of
carriage returns. ``progress=false`` silences it. ``log.jsonl`` stays the run's record; the tracker is a view of it:
``tracker=tensorboard`` (default) writes event files to ``<run dir>/tensorboard`` through
``torch.utils.tensorboard`` (the run's hashed record as hyper-parameters), ``tracker=wandb`` logs to W&B in offline
mode (``<run dir>/wandb``; the ``wandb`` package is not a dependency), ``tracker=none`` writes nothing. A resumed run
drops the events after its checkpoint's step (TensorBoard's ``purge_step``), so every step is shown once.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from common.config import ConfigError, flatten

TRACKERS = ("tensorboard", "wandb", "none")
TENSORBOARD_DIR = "tensorboard"
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


@dataclass
class Monitoring:
    """The run settings of a training entry point's config (inherit it): never hashed, never change a number."""

    progress: bool = True  # a tqdm bar in a terminal, a plain line in a file; false: silent
    progress_seconds: float = 30.0  # in a file: at least one line this often
    tracker: str = "tensorboard"  # tensorboard | wandb (offline) | none

    def validate(self) -> None:
        if not self.progress_seconds > 0:
            raise ConfigError.invalid("progress_seconds", self.progress_seconds, "a positive number of seconds")
        check_tracker(self.tracker)


def check_tracker(tracker: str) -> None:
    """A clear error for an unknown tracker, or for W&B where its package is not installed."""
    if tracker not in TRACKERS:
        raise ConfigError.invalid("tracker", tracker, f"one of {', '.join(TRACKERS)}")
    if tracker == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ConfigError.invalid("tracker", tracker, "tensorboard or none: the wandb package is not installed")


class Progress:
    """Counts updates of one piece of work (training steps, evaluation batches, sweep points)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        initial: int = 0,
        unit: str = "it",
        enabled: bool = True,
        every: int = 10,
        seconds: float = 30.0,
        file: IO[str] | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.initial = total, desc, unit, initial
        self.n, self.every, self.seconds = initial, max(1, every), seconds
        self.file = file if file is not None else sys.stderr
        self.enabled = enabled
        self.live = enabled and _is_terminal(self.file)
        self.started = self.last_line = time.monotonic()
        self.postfix: dict[str, Any] = {}
        self.bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.file, dynamic_ncols=True, leave=False)
            if self.live
            else None
        )

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.n += n
        if postfix:
            self.postfix = postfix
        if self.bar is not None:
            self.bar.set_postfix(_short(self.postfix), refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        done = self.total is not None and self.n >= self.total
        if self.enabled and (self.n % self.every == 0 or done or now - self.last_line >= self.seconds):
            self.last_line = now
            print(self.line(now), file=self.file, flush=True)

    def line(self, now: float | None = None) -> str:
        """The progress as one line: tqdm's meter without the bar."""
        elapsed = (now if now is not None else time.monotonic()) - self.started
        postfix = ", ".join(f"{k}={v}" for k, v in _short(self.postfix).items())
        return tqdm.format_meter(
            self.n, self.total, elapsed, prefix=self.desc, unit=self.unit, postfix=postfix or None,
            bar_format=LINE_FORMAT if self.total else "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]",
            initial=self.initial,
        )  # fmt: skip

    def write(self, message: str) -> None:
        """A line of text that does not break a live bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.file)
        else:
            print(message, file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal(file: IO[str]) -> bool:
    isatty = getattr(file, "isatty", None)
    return bool(isatty and isatty())


def _short(values: dict[str, Any]) -> dict[str, Any]:
    return {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in values.items()}


class Tracker:
    """Scalars of a run, by training step, in a tracker's format; this base class writes nothing (tracker=none)."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, run_dir: Path, hparams: dict, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        # a resumed run continues after its checkpoint's step: what the crashed process wrote after it is dropped
        purge_step = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=purge_step)
        if hparams:
            # the hyper-parameters plugin's three summaries, in this run's own event file
            for summary in hparams_summary(hparams, {}):
                self.writer.file_writer.add_summary(summary)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, run_dir: Path, hparams: dict, resume_step: int | None) -> None:
        import wandb

        self.run = wandb.init(
            dir=str(run_dir), mode="offline", config=hparams, id=run_dir.name, name=run_dir.name, resume="allow"
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def flat_hparams(record: dict) -> dict[str, Any]:
    """A run record as TensorBoard hyper-parameters: nested keys dotted, lists and None as text."""
    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in flatten(record).items()}


def open_tracker(kind: str, run_dir: str | Path, record: dict | None = None, resume_step: int | None = None):
    """The tracker ``kind`` writing into ``run_dir``; ``resume_step``: the step a resumed run continues from."""
    check_tracker(kind)
    if kind == "none":
        return Tracker()
    cls = TensorBoardTracker if kind == "tensorboard" else WandbTracker
    return cls(Path(run_dir), flat_hparams(record or {}), resume_step)


class Monitor:
    """The progress and the tracker of one run (one sweep point); ``Monitor()`` shows and writes nothing."""

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        name: str = "",
        progress: bool = False,
        progress_seconds: float = 30.0,
        tracker: str = "none",
        record: dict | None = None,
        file: IO[str] | None = None,
    ) -> None:
        check_tracker(tracker)
        if tracker != "none" and run_dir is None:
            raise ValueError(f"tracker={tracker} needs a run directory")
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.name, self.progress, self.seconds, self.file = name, progress, progress_seconds, file
        self.kind, self.record = tracker, record or {}
        self.tracker: Tracker | None = None
        self.opened = False

    @classmethod
    def of(cls, cfg: Any, run_dir: str | Path, record: dict | None = None, name: str = "") -> Monitor:
        """The monitor a config's ``Monitoring`` fields ask for (a config without them: progress only)."""
        return cls(
            run_dir,
            name=name,
            progress=getattr(cfg, "progress", True),
            progress_seconds=getattr(cfg, "progress_seconds", 30.0),
            tracker=getattr(cfg, "tracker", "none"),
            record=record,
        )

    def start(self, resume_step: int | None = None) -> None:
        """Open the tracker where it is closed. The hyper-parameters go with the first opening of a fresh run; a
        resumed run (``resume_step``: the step it continues from) drops the events written after that step."""
        if self.tracker is not None:
            return
        if self.run_dir is None:
            self.tracker = Tracker()
            return
        record = self.record if resume_step is None and not self.opened else None
        self.tracker = open_tracker(self.kind, self.run_dir, record, resume_step)
        self.opened = True

    def bar(self, total: int | None, desc: str, initial: int = 0, unit: str = "it", every: int = 10) -> Progress:
        label = f"{self.name} {desc}".strip()
        return Progress(
            total, label, initial=initial, unit=unit, enabled=self.progress, every=every, seconds=self.seconds,
            file=self.file,
        )  # fmt: skip

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.start()
        self.tracker.scalars(step, {k: float(v) for k, v in values.items() if v is not None})

    def flush(self) -> None:
        """Write what the tracker holds (the end of training; the evaluation's numbers follow)."""
        if self.tracker is not None:
            self.tracker.flush()

    def results(self, step: int, results: dict) -> None:
        """A point's final numbers (each number of ``results``, nested keys joined by "/") at ``step``; closes."""
        self.scalars(step, {f"results/{name}": value for name, value in _numbers(results).items()})
        self.close()

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None


def _numbers(values: dict) -> dict[str, float]:
    """The numbers of nested ``values`` (keys joined by "/"), as floats; NaN and booleans left out."""
    return {
        k: float(v)
        for k, v in flatten(values, "/").items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    }
