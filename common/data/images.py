"""Small image-classification sets in their standard on-disk formats: MNIST-style IDX files and the CIFAR-10 python
batches.

    train = idx_dataset("/usr/share/datasets/fashion-mnist", "train")   # Debian `dataset-fashion-mnist`
    test = cifar10_dataset("data/cifar-10-batches-py", "test")

Layouts: IDX (`{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`: a big-endian header of magic number and
sizes, then uint8 pixels / labels) as MNIST and Fashion-MNIST ship; CIFAR-10 as its python release
(`data_batch_1` ... `data_batch_5`, `test_batch`: pickled dicts with `data` (N, 3072) uint8 and `labels`).
Both return uint8 images (N, H, W) or (N, H, W, 3) and int64 labels as tensors, checked before use.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError

IDX_PREFIX = {"train": "train", "test": "t10k"}
IDX_MAGIC = {3: 2051, 1: 2049}  # dimensions -> magic number of an unsigned-byte IDX file
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _check_split(split: str) -> None:
    if split not in IDX_PREFIX:
        raise ConfigError.invalid("split", split, "train or test")


def _idx_file(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"IDX file '{root / name}' (or .gz) does not exist")


def read_idx(path: str | Path, dims: int) -> np.ndarray:
    """The array of an unsigned-byte IDX file with `dims` dimensions (gzip or not)."""
    path = Path(path)
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    header = 4 + 4 * dims
    magic = int.from_bytes(data[:4], "big")
    if len(data) < header or magic != IDX_MAGIC[dims]:
        raise ConfigError(f"'{path}' is not an IDX file of {dims}-dimensional unsigned bytes (magic {magic})")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    values = np.frombuffer(data, dtype=np.uint8, offset=header)
    if values.size != int(np.prod(shape)):
        raise ConfigError(
            f"'{path}' holds {values.size} bytes after its header, its shape {shape} needs {np.prod(shape)}"
        )
    return values.reshape(shape)


def idx_dataset(root: str | Path, split: str, num_classes: int = 10) -> torch.utils.data.TensorDataset:
    """(uint8 images (N, H, W), int64 labels) of MNIST or Fashion-MNIST in `root`."""
    _check_split(split)
    root = Path(root)
    images = read_idx(_idx_file(root, f"{IDX_PREFIX[split]}-images-idx3-ubyte"), 3)
    labels = read_idx(_idx_file(root, f"{IDX_PREFIX[split]}-labels-idx1-ubyte"), 1)
    return _dataset(images, labels, num_classes, root)


def cifar10_dataset(root: str | Path, split: str) -> torch.utils.data.TensorDataset:
    """(uint8 images (N, 32, 32, 3), int64 labels) of the CIFAR-10 python batches in `root`."""
    _check_split(split)
    root = Path(root)
    images, labels = [], []
    for name in CIFAR10_FILES[split]:
        path = root / name
        if not path.is_file():
            raise ConfigError(f"CIFAR-10 batch file '{path}' does not exist")
        with open(path, "rb") as file:
            batch = pickle.load(file, encoding="bytes")
        data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
        batch_labels = batch.get(b"labels", batch.get("labels")) if isinstance(batch, dict) else None
        if data is None or batch_labels is None or np.asarray(data).shape[1:] != (3072,):
            raise ConfigError(f"'{path}' is not a CIFAR-10 python batch (a dict with 'data' (N, 3072) and 'labels')")
        images.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch_labels))
    return _dataset(np.concatenate(images), np.concatenate(labels), 10, root)


def _dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, root: Path) -> torch.utils.data.TensorDataset:
    if len(images) != len(labels):
        raise ConfigError(f"'{root}': {len(images)} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"'{root}': label {int(labels.max())} is outside [0, {num_classes})")
    return torch.utils.data.TensorDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))
