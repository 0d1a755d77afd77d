"""Token shards for language-model pre-training (GPT2-MoE on FineWeb-Edu, quadratic-gating Table 3).

    write_shards(texts, encode, eot=50256, out_dir="data/fineweb10B", shard_tokens=100_000_000)
    train = ShardWindows("data/fineweb10B", "train", block_size=1024)

`write_shards` tokenises documents (any iterable of strings: a `datasets` stream of FineWeb-Edu sample-10BT, or a
local jsonl/parquet through `datasets`), puts the end-of-text token before each document, and writes uint16 shards
of `shard_tokens` tokens: `<name>_val_000000.npy` first (the first shard is the validation split), then
`<name>_train_000001.npy`, ... The tokenizer is any `encode(text) -> list[int]` with ids below 65,536 (GPT-2's BPE
through transformers or tiktoken, from a local copy on a machine without network; a character map in the tests).
`ShardWindows` serves (block_size + 1)-token windows of a split, non-overlapping, across its shards in order.

The shards of the GPT2-MoE experiment (FineWeb-Edu sample-10BT, GPT-2's BPE, shards of 100M tokens):

    python -m common.data.lm_shards --source HuggingFaceFW/fineweb-edu --subset sample-10BT \
        --tokenizer gpt2 --out data/fineweb_edu10B

`--source` is a `datasets` hub name (streamed) or local `.jsonl` / `.parquet` files (a file or a folder of them)
with a `text` column; `--tokenizer` is `bytes` (UTF-8 bytes, nothing to download) or a transformers tokenizer by
hub name or local folder (see `load_tokenizer`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.runs import atomic_open

SPLITS = ("train", "val")
BYTES = "bytes"


@dataclass(frozen=True)
class Tokenizer:
    """What pre-training needs of a tokenizer: text -> ids (no special tokens), the end-of-text id, the id count."""

    name: str
    encode: Callable[[str], list[int]]
    eot: int
    vocab_size: int


def _utf8(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def load_tokenizer(name: str) -> Tokenizer:
    """`bytes`: UTF-8 bytes, ids 0-255 and end of text 256. Anything else: a transformers tokenizer, a local folder
    or a hub name (`gpt2`: GPT-2's BPE, 50,257 ids, end of text 50,256), whose end-of-sequence token ends texts."""
    if name == BYTES:
        return Tokenizer(BYTES, _utf8, eot=256, vocab_size=257)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise ConfigError.invalid(
            "tokenizer", name, f"'{BYTES}', a local tokenizer folder or a reachable hub name ({error})"
        ) from None
    if tokenizer.eos_token_id is None:
        raise ConfigError.invalid("tokenizer", name, "a tokenizer with an end-of-sequence token")

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    return Tokenizer(name, encode, eot=tokenizer.eos_token_id, vocab_size=len(tokenizer))


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


def documents(source: str, subset: str | None = None, column: str = "text") -> Iterator[str]:
    """The texts of a `datasets` source: local `.jsonl` / `.json` / `.parquet` files (a file or a folder), else a
    hub dataset streamed split `train` (`subset`: its configuration, e.g. FineWeb-Edu's `sample-10BT`)."""
    import datasets

    path = Path(source)
    if path.exists():
        files = sorted(
            p for p in (path.rglob("*") if path.is_dir() else [path]) if p.suffix in (".jsonl", ".json", ".parquet")
        )
        if not files:
            raise ConfigError.invalid("source", source, "a folder or file of .jsonl, .json or .parquet documents")
        kind = "parquet" if files[0].suffix == ".parquet" else "json"
        data = datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train", streaming=True)
    else:
        data = datasets.load_dataset(source, name=subset, split="train", streaming=True)
    for record in data:
        if column not in record:
            raise ConfigError.invalid("column", column, f"a column of {source} ({', '.join(record)})")
        yield record[column]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.data.lm_shards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="hub dataset name, or local .jsonl/.parquet file or folder")
    parser.add_argument("--subset", default=None, help="the hub dataset's configuration (FineWeb-Edu: sample-10BT)")
    parser.add_argument("--column", default="text", help="the text column")
    parser.add_argument("--tokenizer", default="gpt2", help=f"'{BYTES}', a tokenizer folder or a hub name")
    parser.add_argument("--out", required=True, help="folder to write the shards to")
    parser.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard")
    parser.add_argument("--name", default="shard", help="shard file prefix")
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(args.tokenizer)
    texts = documents(args.source, args.subset, args.column)
    paths = write_shards(texts, tokenizer.encode, tokenizer.eot, args.out, args.shard_tokens, args.name)
    tokens = sum(len(np.load(p, mmap_mode="r")) for p in paths)
    print(f"{len(paths)} shards, {tokens:,} tokens ({tokenizer.name}) in {args.out}")


if __name__ == "__main__":
    main()
