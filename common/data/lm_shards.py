"""Token shards for language-model pre-training (GPT2-MoE on FineWeb-Edu, quadratic-gating Table 3).

    write_shards(texts, encode, eot=50256, out_dir="data/fineweb10B", shard_tokens=100_000_000)
    train = ShardWindows("data/fineweb10B", "train", block_size=1024)

`write_shards` tokenises documents (any iterable of strings: a `datasets` stream of FineWeb-Edu sample-10BT, or a
local jsonl/parquet through `datasets`), puts the end-of-text token before each document, and writes uint16 shards
of `shard_tokens` tokens: `<name>_val_000000.npy` first (the first shard is the validation split), then
`<name>_train_000001.npy`, ... The tokenizer is any `encode(text) -> list[int]` with ids below 65,536 (GPT-2's BPE
through transformers or tiktoken, from a local copy on a machine without network; a character map in the tests).
`ShardWindows` serves (block_size + 1)-token windows of a split, non-overlapping, across its shards in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.runs import atomic_open

SPLITS = ("train", "val")


def write_shards(
    texts: Iterable[str], encode: Callable[[str], list[int]], eot: int, out_dir: str | Path, shard_tokens: int,
    name: str = "shard",
) -> list[Path]:  # fmt: skip
    """Tokenise `texts` into uint16 shards in `out_dir` (the first is the validation split); returns their paths."""
    if shard_tokens < 2:
        raise ConfigError.invalid("shard_tokens", shard_tokens, "an integer >= 2")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buffer = np.empty(shard_tokens, dtype=np.uint16)
    filled, paths = 0, []

    def flush(count: int) -> None:
        split = "val" if not paths else "train"
        path = out / f"{name}_{split}_{len(paths):06d}.npy"
        with atomic_open(path, "wb") as file:
            np.save(file, buffer[:count])
        paths.append(path)

    for text in texts:
        tokens = np.asarray([eot, *encode(text)])
        if tokens.max() >= 2**16 or tokens.min() < 0:
            raise ConfigError(f"token id {int(tokens.max())} does not fit the uint16 shards (ids must be < 65,536)")
        while len(tokens):
            take = min(shard_tokens - filled, len(tokens))
            buffer[filled : filled + take] = tokens[:take]
            filled, tokens = filled + take, tokens[take:]
            if filled == shard_tokens:
                flush(filled)
                filled = 0
    if filled:
        flush(filled)
    return paths


class ShardWindows(torch.utils.data.Dataset):
    """Non-overlapping windows of block_size + 1 tokens of one split's shards (a window never spans two shards)."""

    def __init__(self, directory: str | Path, split: str, block_size: int) -> None:
        if split not in SPLITS:
            raise ConfigError.invalid("split", split, "train or val")
        self.paths = sorted(Path(directory).glob(f"*_{split}_*.npy"))
        if not self.paths:
            raise ConfigError(f"no {split} shards (*_{split}_*.npy) in '{directory}'; write them with write_shards")
        self.shards = [np.load(path, mmap_mode="r") for path in self.paths]
        self.block_size = block_size
        counts = [max(0, (len(shard) - 1) // block_size) for shard in self.shards]
        if not sum(counts):
            raise ConfigError.invalid("block_size", block_size, f"shorter than the {split} shards of '{directory}'")
        self.offsets = np.cumsum([0, *counts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> torch.Tensor:
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        start = (index - self.offsets[shard]) * self.block_size
        return torch.from_numpy(self.shards[shard][start : start + self.block_size + 1].astype(np.int64))
