"""A tiny training entry point (an Experiment subclass), for tests of checkpoint and resume.

python -m tests.toy_training seeds=[0] steps=40 results_dir=/tmp/toy_training

Each sweep point (a seed) fits a linear regression with SGD + momentum on minibatches drawn from a seeded
generator, `step_seconds` of sleep per step so that a job with a one-minute limit is still running when SLURM
signals it. It checkpoints through common.training.Checkpointer and resumes from the checkpoint when there is
one, so an interrupted run ends with exactly the numbers of an uninterrupted one. log.jsonl holds one
{"step", "loss"} line per step and one {"event": "start"} line per (re)start of the run.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common import runs
from common.config import ConfigError
from common.experiment import Experiment, register
from common.training import Checkpointer

DIM = 8
NUM_SAMPLES = 256
BATCH_SIZE = 16


@dataclass
class Config:
    """Seeds to train, steps per run, how often to checkpoint, and how long each step sleeps."""

    results_dir: str = "results/toy_training"
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 40
    checkpoint_every: int = 5
    step_seconds: float = 0.0
    learning_rate: float = 0.05

    def validate(self) -> None:
        for name in ("steps", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if self.step_seconds < 0:
            raise ConfigError.invalid("step_seconds", self.step_seconds, "a number >= 0")


@dataclass(frozen=True)
class Point:
    """One training run: its seed."""

    seed: int


@register("toy.training")
class Training(Experiment):
    """A seeded linear regression trained by SGD with checkpoints (an Experiment subclass)."""

    Config = Config
    Point = Point
    axes = ("seeds",)
    run_name = "toy_training"

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        # step_seconds and checkpoint_every change how the run is carried out, not its numbers.
        return {"seed": point.seed, "steps": cfg.steps, "learning_rate": cfg.learning_rate}

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device) -> tuple[dict, dict]:
        data = torch.Generator().manual_seed(point.seed)
        inputs = torch.randn(NUM_SAMPLES, DIM, generator=data)  # (n, d)
        targets = inputs @ torch.randn(DIM, 1, generator=data) + 0.1 * torch.randn(NUM_SAMPLES, 1, generator=data)
        torch.manual_seed(point.seed)
        model = torch.nn.Linear(DIM, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.9)
        batches = torch.Generator().manual_seed(point.seed + 1)

        with Checkpointer(run_dir, every_steps=cfg.checkpoint_every) as checkpointer:
            state = checkpointer.load()
            step = 0
            if state is not None:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                batches.set_state(state["batches"])
                step = state["step"]

            def training_state() -> dict:
                return {
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "batches": batches.get_state(),
                }

            runs.append_log(run_dir, {"event": "start", "step": step, "slurm_job_id": os.environ.get("SLURM_JOB_ID")})
            while step < cfg.steps:
                index = torch.randint(NUM_SAMPLES, (BATCH_SIZE,), generator=batches)
                loss = torch.nn.functional.mse_loss(model(inputs[index]), targets[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                runs.append_log(run_dir, {"step": step, "loss": loss.item()})
                time.sleep(cfg.step_seconds)
                checkpointer.step_done(step, training_state)
        with torch.no_grad():
            train_loss = torch.nn.functional.mse_loss(model(inputs), targets).item()
        return {"train_loss": train_loss}, {
            "weight": model.weight.detach().numpy(),
            "bias": model.bias.detach().numpy(),
        }


if __name__ == "__main__":
    Training.cli()
