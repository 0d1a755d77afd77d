"""The feature store of the vision-language experiments: pre-extracted visual features in one HDF5 file.

    from common.data.features import FeatureStore, check_media, write_store

    write_store("data/features/coco_clip.h5", [("coco_391895", grid)], attrs={"model": "openai/clip-vit-base-patch32"})
    store = FeatureStore("data/features/coco_clip.h5")  # python -m common.data.clip_features fills one
    check_media(examples, store)  # every media key of the examples is stored, before any training step
    store["coco_391895"]  # float32 (49, 768): the patch-token grid of one image

Layout: the file's root group holds one float16 dataset (N, D) per media key (`coco_391895`, `nlvr2_dev-850-0-img0`,
`tvqa_castle_s01e01_seg02_clip_00`, ...): the N grid cells of an image or the N sampled frames of a video, each a
D-dimensional feature. D is the same for every entry and is stored as the file attribute `dim`; other file
attributes record how the features were made (`model`, `source`, `frames`, ...). Keys cannot hold "/" (HDF5's group
separator). The file is written once, atomically, by `write_store`, and only read afterwards; a `FeatureStore` opens
it lazily in each process that reads it, so it works in DataLoader workers (an HDF5 handle must not cross a fork).
"""

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from common.config import ConfigError

DIM_ATTRIBUTE = "dim"


class FeatureStore:
    """One HDF5 file: a dataset per media key, float16 (N, D) for an image (N grid cells) or (T, D) for a video
    (T frames); items are read as float32 tensors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        if not self.path.is_file():
            raise ConfigError(f"feature store '{self.path}' does not exist")
        if not h5py.is_hdf5(self.path):
            raise ConfigError(f"feature store '{self.path}' is not an HDF5 file")
        with h5py.File(self.path, "r") as file:
            if DIM_ATTRIBUTE not in file.attrs:
                raise ConfigError(
                    f"feature store '{self.path}' has no '{DIM_ATTRIBUTE}' attribute: it was not written by write_store"
                )
            self.dim = int(file.attrs[DIM_ATTRIBUTE])
            self.attrs = {name: value for name, value in file.attrs.items() if name != DIM_ATTRIBUTE}
            self._keys = sorted(file.keys())
        self._key_set = set(self._keys)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def keys(self) -> list[str]:
        """Every media key of the store, sorted."""
        return list(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._key_set

    def __len__(self) -> int:
        return len(self._keys)

    def _handle(self) -> h5py.File:
        """The file, opened by this process: a handle inherited through fork is dropped, never used."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._key_set:
            raise ConfigError(f"media key {key!r} is not in the feature store '{self.path}' ({len(self)} keys)")
        return torch.from_numpy(self._handle()[key][()]).float()  # (N, D)

    def close(self) -> None:
        """Close this process's handle; a later read opens the file again."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into spawned DataLoader workers: without the handle, which each worker opens for itself.
        return {**self.__dict__, "_file": None, "_pid": None}


class FeatureStores:
    """Several feature stores read as one (an extraction per source: COCO, GQA and NLVR2 images; each video set): a key
    is read from the store that holds it. Stores of different widths, or a key in two of them, are errors."""

    def __init__(self, paths: Sequence[str | Path], field: str = "features_paths") -> None:
        if not paths:
            raise ConfigError.invalid(field, list(paths), "one or more feature stores")
        self.stores = [FeatureStore(p) for p in paths]
        self.path = ", ".join(str(store.path) for store in self.stores)  # for messages
        dims = {store.dim for store in self.stores}
        if len(dims) > 1:
            raise ConfigError.invalid(
                field, [str(p) for p in paths], f"stores of one feature width, not {sorted(dims)}"
            )
        self.dim = dims.pop()
        self._where: dict[str, FeatureStore] = {}
        for store in self.stores:
            for key in store.keys():
                if key in self._where:
                    raise ConfigError.invalid(field, [str(p) for p in paths], f"stores without a common key ({key!r})")
                self._where[key] = store

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._where:
            raise ConfigError(f"media key {key!r} is in none of the feature stores {self.path}")
        return self._where[key][key]


def write_store(path: str | Path, items: Iterable[tuple[str, np.ndarray]], attrs: dict | None = None) -> Path:
    """Write (media key, (N, D) array) items as a feature store at `path`, as float16, with the file attributes
    `attrs` and `dim` = D. The file appears only once complete: it is written to a temporary file in the same folder
    and renamed over `path`, so a job killed mid-write leaves the previous store (or none). `items` may be a
    generator: it is consumed once, one item in memory at a time."""
    path = Path(path).absolute()
    attrs = dict(attrs or {})
    if DIM_ATTRIBUTE in attrs:
        raise ValueError(f"write_store sets the '{DIM_ATTRIBUTE}' attribute itself; do not pass it in attrs")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with h5py.File(tmp_path, "w-") as file:
            file.attrs.update(attrs)
            dim = None
            for key, array in items:
                features = np.asarray(array)
                if not isinstance(key, str) or not key or "/" in key:
                    raise ValueError(f"media key {key!r} is not a non-empty string without '/'")
                if key in file:
                    raise ValueError(f"media key {key!r} is written twice")
                if features.ndim != 2 or features.shape[0] < 1:
                    raise ValueError(f"features of {key!r} have shape {features.shape}; they must be (N, D), N >= 1")
                dim = features.shape[1] if dim is None else dim
                if features.shape[1] != dim:
                    raise ValueError(f"features of {key!r} have D = {features.shape[1]}, the earlier ones D = {dim}")
                with np.errstate(over="ignore"):  # overflow is the error raised next, not a warning
                    half = features.astype(np.float16)
                if not np.isfinite(half).all():
                    raise ValueError(f"features of {key!r} are not finite in float16 (NaN, or beyond +-65504)")
                file.create_dataset(key, data=half)
            if dim is None:
                raise ValueError(f"no items to write to the feature store '{path}'")
            file.attrs[DIM_ATTRIBUTE] = dim
        with open(tmp_path, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def check_media(examples: Sequence, store: FeatureStore, field: str = "features_path") -> None:
    """Raise `ConfigError` on config field `field` (the store's path) unless every media key of `examples` (anything
    with a `media` tuple, e.g. `vision_language.Example`) is in `store`."""
    keys = list(dict.fromkeys(key for example in examples for key in example.media))
    missing = [key for key in keys if key not in store]
    if missing:
        first = next(example for example in examples if missing[0] in example.media)
        raise ConfigError.invalid(
            field,
            str(store.path),
            f"a feature store holding every media key of the examples: {len(missing)} of their {len(keys)} keys are "
            f"missing, the first is {missing[0]!r} (example {first.id!r})",
        )
