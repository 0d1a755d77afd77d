"""What every training entry point does around its training: the point record, the sweep loop, the results and
the run record."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import runs
from common.config import ConfigError
from common.training.loop import top1


def point_record(point: Any, cfg: Any, omit: Sequence[str] = (), paths: Sequence[str] = ()) -> dict:
    """What a sweep point's numbers depend on: its own fields and the config's, except the fields in `omit` (where and
    how the run is carried out), with the path fields in `paths` made absolute."""
    record = {name: value for name, value in asdict(cfg).items() if name not in omit}
    record.update({name: str(Path(getattr(cfg, name)).absolute()) for name in paths})
    return {**asdict(point), **record}


def check_names(field: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    """A config list of names (activations, variants, ...): not empty, each one of `allowed`."""
    if not values or any(value not in allowed for value in values):
        raise ConfigError.invalid(field, list(values), f"names among {', '.join(allowed)}")


def check_positive(cfg: Any, *fields: str) -> None:
    """Integer config fields that must be at least 1."""
    for name in fields:
        if getattr(cfg, name) < 1:
            raise ConfigError.invalid(name, getattr(cfg, name), "a positive integer")


def set_threads(threads: int) -> None:
    """torch's CPU threads for this run (0: leave torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def classification_results(
    predicted: np.ndarray, labels: Sequence[int], train_examples: int, classes: int, steps: int,
    losses: list[float], started: float, counts: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    """The results of a classification run: top-1 accuracy (%), sizes, the last losses, wall time, parameters."""
    return {
        "accuracy": top1(predicted, labels),
        "train_examples": train_examples,
        "test_examples": len(labels),
        "classes": classes,
        "steps": steps,
        "final_loss": float(np.mean(losses[-10:])),
        "seconds": time.perf_counter() - started,
        **counts,
    }


def finish(path: Path, record: dict, results: dict, arrays: dict, seed: int, device: str = "cpu") -> Path:
    """Write the finished run (results last) and drop its checkpoint."""
    runs.write_run(path, record, results, arrays, seed, device)
    (path / runs.CHECKPOINT_FILE).unlink(missing_ok=True)
    return path


def run_all(points: list, is_done: Callable, run_point: Callable, summary: Callable[[Any, dict], str]) -> None:
    """Run every point not yet done, printing `summary(point, results)` of each one computed now."""
    for i, point in enumerate(points, start=1):
        done = is_done(point)
        path = run_point(point)
        if not done:
            print(f"[{i}/{len(points)}] {summary(point, runs.read_run(path)['results'])} ({path})")


def check_device(device: str) -> None:
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError.invalid("device", device, "auto, cpu or cuda[:index]")


def autocast(device: torch.device, dtype: str = "auto"):
    """The forward pass's precision: bfloat16 autocast on a GPU (`dtype` auto or bfloat16) or where `dtype` says
    bfloat16; float32 otherwise."""
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_of(device: str) -> torch.device:
    """The torch device a config's `device` names; auto: the first GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
