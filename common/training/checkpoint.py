"""Checkpoint and resume for long-running entry points: the training code owns resuming.

A training run keeps one checkpoint, ``<run dir>/checkpoint.pt`` (``runs.CHECKPOINT_FILE``, the one name that
saving and loading share), written atomically every ``every_steps`` steps and when the job is told to stop:

    with Checkpointer(run_dir, every_steps=100) as checkpointer:
        state = checkpointer.load()                        # None on a fresh start
        step = restore(state) if state else 0              # model, optimiser, RNG ... from `state`
        while step < total_steps:
            train_one_step(); step += 1
            checkpointer.step_done(step, lambda: {"step": step, "model": model.state_dict(), ...})
        write_results(); checkpointer.clear()

On a SLURM cluster submitit asks a job to stop with a signal (USR2 unless ``SUBMITIT_PREEMPT_SIGNAL`` says
otherwise; sbatch ``--signal``, ``signal_delay_s`` before the time limit, or on preemption). Inside the
``with`` block the Checkpointer catches that signal and only notes it: the step in flight finishes, the state
after it is saved, and then the signal goes on to the handler that was there before, submitit's, which
requeues the job and exits. The requeued job runs the same entry point, which loads the checkpoint.
SIGTERM, which SLURM sends before it kills a job (``scontrol requeue``, ``scancel``, preemption with a grace
time) and which ``kill`` sends, is treated the same way, except that after the checkpoint the process ends as
SIGTERM's default action would end it (submitit itself ignores SIGTERM). A job killed without any warning
(a node failure) resumes from the last periodic checkpoint.

The checkpoint also records how long ``log.jsonl`` was when it was written; ``load`` cuts the log back to that
length, so that steps redone after a resume are logged once, not twice.
"""

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit
import torch

from common import runs
from common.training import distributed

logger = logging.getLogger(__name__)

LOG_BYTES_KEY = "log_bytes"  # length of log.jsonl when the checkpoint was written


def preemption_signal() -> signal.Signals:
    """The signal submitit sends to a job to checkpoint (USR2, or $SUBMITIT_PREEMPT_SIGNAL)."""
    return signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"]


class Checkpointer:
    """Saves a run's training state atomically under one file name, and turns a stop signal into a checkpoint."""

    def __init__(self, run_dir: str | Path, every_steps: int) -> None:
        if every_steps < 1:
            raise ValueError(f"every_steps = {every_steps} is not allowed: a positive integer")
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / runs.CHECKPOINT_FILE
        self.every_steps = every_steps
        self.stop_signal: int | None = None  # the signal received, until it is passed on
        self._previous_handlers: dict[int, Any] = {}

    def __enter__(self) -> "Checkpointer":
        # Signal handlers can only be set from the main thread; elsewhere the periodic checkpoints remain.
        if threading.current_thread() is threading.main_thread():
            for signum in (preemption_signal(), signal.SIGTERM):
                self._previous_handlers[signum] = signal.signal(signum, self._note_signal)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _note_signal(self, signum: int, frame: Any) -> None:
        logger.warning("received %s: checkpointing after the current step", signal.Signals(signum).name)
        if self.stop_signal != preemption_signal():  # a pending requeue request wins over a later SIGTERM
            self.stop_signal = signum

    def load(self, map_location: str | torch.device = "cpu") -> dict | None:
        """The saved state, or None when there is no checkpoint; the log is cut back to the saved length (by
        rank 0, the process that writes it)."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location=map_location, weights_only=False)
        if distributed.is_main():
            _truncate_log(self.run_dir / runs.LOG_FILE, state.get(LOG_BYTES_KEY, 0))
        logger.info("resuming from %s (step %s)", self.path, state.get("step"))
        return state

    def save(self, state: dict) -> None:
        """Write `state` (plus the log length) to the checkpoint file atomically."""
        log = self.run_dir / runs.LOG_FILE
        runs.atomic_torch_save(self.path, {**state, LOG_BYTES_KEY: log.stat().st_size if log.is_file() else 0})

    def step_done(self, step: int, state_fn: Callable[[], dict]) -> None:
        """After step `step`: save every `every_steps` steps, and on a stop signal save and hand the signal on.

        Processes that train together (``common.training.distributed``) agree on the stop (any one's signal stops
        all), all call ``state_fn`` (it may gather from every process), rank 0 alone writes, and none goes on before
        the checkpoint is on disk."""
        stop = distributed.max_int(self.stop_signal or 0)  # one process: its own signal
        if not stop and step % self.every_steps:
            return
        state = state_fn()
        if distributed.is_main():
            self.save(state)
        distributed.barrier()
        if stop:
            self.stop_signal = self.stop_signal or stop
            self._pass_on_signal()

    def clear(self) -> None:
        """Delete the checkpoint once the run's results are written."""
        self.path.unlink(missing_ok=True)

    def _pass_on_signal(self) -> None:
        """Hand the stop signal on: the preemption signal to submitit's handler (requeue and exit) where there is
        one; otherwise end the process as the signal's default action would."""
        signum, self.stop_signal = self.stop_signal, None
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        if signum == preemption_signal() and callable(previous):
            # submitit requeues the job and exits. SLURM stops the step at once (SIGCONT, SIGTERM): a process that
            # a signal ends during interpreter shutdown (which resets the handlers) gets its job marked FAILED
            # instead of requeued. So SIGTERM is ignored from here on and the process leaves without the slow
            # shutdown, with submitit's exit code; the checkpoint and the log are already on disk.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                previous(signum, None)
            except SystemExit as exit_request:
                sys.stdout.flush()
                sys.stderr.flush()
                code = exit_request.code
                os._exit(code % 256 if isinstance(code, int) else 1)
            if distributed.active():
                # submitit requeues from the first task only and returns on the others: they leave too, rather
                # than wait in a collective for a process that is gone
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            return
        self.__exit__()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _truncate_log(path: Path, length: int) -> None:
    """Cut the log file at `path` back to its first `length` bytes (atomically), if it is longer."""
    if not path.is_file() or path.stat().st_size <= length:
        return
    with open(path, "rb") as file:
        kept = file.read(length)
    with runs.atomic_open(path, "wb") as file:
        file.write(kept)
