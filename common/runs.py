"""Run directories and result records: one directory per (experiment, config hash), written atomically.

A run directory holds

    config.yaml        the fully resolved config of the run
    environment.json   git sha and dirty flag, package versions, host, device, seed, time
    arrays.npz         named numpy arrays (optional)
    log.jsonl          progress records, one JSON object a line (optional)
    checkpoint.pt      training state for resuming (optional, written by the training code)
    results.json       the metrics; written LAST, so its presence means the run is finished

Every file is written through a temporary file in the same directory, fsync'ed and renamed over the target:
a job killed mid-write leaves the previous file (or none), never a truncated one that a later step trusts.
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import yaml

from common.config import config_hash, config_to_dict

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"
ARRAYS_FILE = "arrays.npz"
ENV_FILE = "environment.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"

RECORDED_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "omegaconf",
    "submitit",
    "pandas",
    "matplotlib",
    "transformers",
    "timm",
    "datasets",
)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file object whose content replaces `path` only when the block exits without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name created exclusively ("x"): permissions follow the umask, like the target's would.
    tmp_path = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp_path, mode.replace("w", "x")) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _to_json(value: Any) -> Any:
    """JSON form of the numpy and torch values that results may hold."""
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} cannot be written to JSON: {value!r}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_open(path, "w") as file:
        file.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically; numpy/torch values become lists or numbers."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_to_json) + "\n")


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Save named arrays to an .npz file at `path` atomically."""
    with atomic_open(path, "wb") as file:
        np.savez(file, **arrays)


def atomic_save_safetensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Save named tensors to a safetensors file at `path` atomically (adapter weights)."""
    from safetensors.torch import save

    with atomic_open(path, "wb") as file:
        file.write(save(tensors))


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """torch.save `obj` to `path` atomically (checkpoints)."""
    with atomic_open(path, "wb") as file:
        torch.save(obj, file)


def _git(*args: str) -> str | None:
    """Output of a git command run in the directory of this file, or None if it fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_record(seed: int | None = None, device: str = "cpu") -> dict:
    """Where and with what a run was computed: code version, host, packages, device, seed and time."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": _git("rev-parse", "HEAD") or None,
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "packages": {name: _package_version(name) for name in RECORDED_PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda_device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "seed": seed,
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run_dir(root: str | Path, name: str, cfg: Any) -> Path:
    """The directory of the run of experiment `name` with config `cfg`: root/name/<config_hash(cfg)>."""
    return Path(root) / name / config_hash(cfg)


def is_done(path: str | Path) -> bool:
    """Whether the run in `path` finished: its results file, written last, is there."""
    return (Path(path) / RESULTS_FILE).is_file()


def write_run(
    path: str | Path,
    cfg: Any,
    results: dict,
    arrays: dict[str, np.ndarray] | None = None,
    seed: int | None = None,
    device: str = "cpu",
) -> Path:
    """Record a finished run in `path`: config, environment, arrays, then results last; returns `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # A rewrite un-finishes the run first, so that a crash part-way never pairs old results with new files.
    (path / RESULTS_FILE).unlink(missing_ok=True)
    atomic_write_text(path / CONFIG_FILE, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    atomic_write_json(path / ENV_FILE, environment_record(seed=seed, device=device))
    if arrays:
        atomic_save_npz(path / ARRAYS_FILE, **arrays)
    else:
        (path / ARRAYS_FILE).unlink(missing_ok=True)
    atomic_write_json(path / RESULTS_FILE, results)
    return path


def read_run(path: str | Path) -> dict:
    """A finished run as {"config", "results", "environment", "arrays"}; arrays maps name -> np.ndarray."""
    path = Path(path)
    if not is_done(path):
        raise FileNotFoundError(f"run '{path}' is not finished: it has no {RESULTS_FILE}")
    arrays = {}
    if (path / ARRAYS_FILE).is_file():
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    return {
        "config": yaml.safe_load((path / CONFIG_FILE).read_text()),
        "results": json.loads((path / RESULTS_FILE).read_text()),
        "environment": json.loads((path / ENV_FILE).read_text()),
        "arrays": arrays,
    }


def append_log(path: str | Path, record: dict) -> None:
    """Append `record` as one JSON line to the run's log.jsonl."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOG_FILE, "a") as file:
        file.write(json.dumps(record, default=_to_json) + "\n")
