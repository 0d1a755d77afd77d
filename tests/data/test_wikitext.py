"""Word-level WikiText: the released file layout, <eos> per line, a frequency-sorted vocabulary, the cache."""

import numpy as np
import pytest

from common.config import ConfigError
from common.data.wikitext import EOS, wikitext

TRAIN = " = Valkyria = \n\n the cat sat on the mat . \n the dog <unk> . \n"
VALID = " the cat . \n"
TEST = "\n the mat <unk> \n"


def write_wikitext(root, train=TRAIN, valid=VALID, test=TEST):
    root.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (root / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
    return root


def test_every_line_ends_with_eos_and_ids_follow_frequency(tmp_path):
    data = wikitext(write_wikitext(tmp_path / "wt"), tmp_path / "cache")
    vocabulary = data.vocabulary
    assert vocabulary[:2] == [EOS, "the"]  # 4 lines (one empty) -> 4 <eos>; "the" 3 times
    assert len(data.ids["train"]) == 3 + 1 + 1 + 7 + 1 + 4 + 1
    decoded = [vocabulary[i] for i in data.ids["test"]]
    assert decoded == [EOS, "the", "mat", "<unk>", EOS]
    assert data.ids["valid"].dtype == np.int32
    (tmp_path / "wt" / "wiki.train.tokens").unlink()  # the cache answers from now on
    again = wikitext(tmp_path / "wt", tmp_path / "cache")
    assert again.vocabulary == vocabulary and np.array_equal(again.ids["test"], data.ids["test"])


def test_bad_input_names_the_field_or_line(tmp_path):
    with pytest.raises(ConfigError, match="wiki.train.tokens"):
        wikitext(tmp_path, tmp_path / "c1")  # a folder without the files
    with pytest.raises(ConfigError, match="data.*hub name"):
        wikitext(tmp_path / "missing" / "wiki", tmp_path / "c2")
    with pytest.raises(ConfigError, match="valid line 1: word 'zebra'"):
        wikitext(write_wikitext(tmp_path / "bad", valid=" the zebra \n"), tmp_path / "c3")
    assert not (tmp_path / "c3" / "vocabulary.txt").exists()  # no half-written cache
