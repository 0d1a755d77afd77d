"""Word-level WikiText-103 (or WikiText-2) for language modelling, tokenised once and cached.

    data = wikitext("data/wikitext-103", cache_dir="results/data/wikitext103")    # the released files, or
    data = wikitext("Salesforce/wikitext", subset="wikitext-103-v1", cache_dir=...)  # a `datasets` hub copy
    data.ids["train"], data.ids["valid"], data.ids["test"]                      # int32 token ids
    len(data.vocabulary)                                                        # 267,735 for WikiText-103

The released (already tokenised) files are `wiki.train.tokens`, `wiki.valid.tokens` and `wiki.test.tokens`; a hub
copy has the splits train / validation / test with one line per record in `text`. Every line, the empty ones too,
is split on whitespace and ends with `<eos>` (the usual word-level protocol; `<unk>` is already in the text). The
vocabulary is every word of the training split, most frequent first, so that an adaptive softmax's frequency
clusters are id ranges. The cache holds `vocabulary.txt` and one `.npy` per split; a second call reads it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import ConfigError
from common.runs import atomic_open, atomic_write_text

SPLITS = ("train", "valid", "test")
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
EOS = "<eos>"


@dataclass
class WikiText:
    vocabulary: list[str]
    ids: dict[str, np.ndarray]  # split -> int32 token ids


def lines(source: str | Path, split: str, subset: str | None = None) -> Iterator[str]:
    """The lines of one split: from `<source>/wiki.<split>.tokens` when `source` is a folder, else from the hub."""
    path = Path(source)
    if path.is_dir():
        file = path / f"wiki.{split}.tokens"
        if not file.is_file():
            raise ConfigError.invalid("data", str(source), f"a folder with wiki.{split}.tokens (the released files)")
        with open(file, encoding="utf-8") as handle:
            yield from handle
        return
    if path.suffix or path.is_absolute() or str(source).startswith("."):
        raise ConfigError.invalid("data", str(source), "an existing folder of wiki.*.tokens files or a hub name")
    import datasets

    for record in datasets.load_dataset(str(source), subset, split=HUB_SPLITS[split]):
        yield record["text"]


def _words(line: str) -> list[str]:
    return [*line.split(), EOS]


def build_vocabulary(train_lines: Iterator[str]) -> list[str]:
    counts = Counter()
    for line in train_lines:
        counts.update(_words(line))
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def encode(split_lines: Iterator[str], index: dict[str, int], split: str) -> np.ndarray:
    ids = array("i")  # 4 bytes a token: WikiText-103's 103M training tokens as a list would take ~4 GB
    for number, line in enumerate(split_lines, start=1):
        try:
            ids.extend(index[word] for word in _words(line))
        except KeyError as error:
            raise ConfigError(
                f"WikiText {split} line {number}: word {error.args[0]!r} is not in the training split"
            ) from None
    return np.frombuffer(ids, dtype=np.int32).copy()


def wikitext(source: str | Path, cache_dir: str | Path, subset: str | None = None) -> WikiText:
    """The vocabulary and the token ids of every split, from the cache when it is there."""
    cache = Path(cache_dir)
    files = [cache / "vocabulary.txt", *(cache / f"{split}.npy" for split in SPLITS)]
    if not all(file.is_file() for file in files):
        vocabulary = build_vocabulary(lines(source, "train", subset))
        index = {word: i for i, word in enumerate(vocabulary)}
        cache.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            with atomic_open(cache / f"{split}.npy", "wb") as handle:
                np.save(handle, encode(lines(source, split, subset), index, split))
        atomic_write_text(cache / "vocabulary.txt", "\n".join(vocabulary) + "\n")  # last: marks the cache complete
    vocabulary = (cache / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    return WikiText(vocabulary, {split: np.load(cache / f"{split}.npy") for split in SPLITS})
