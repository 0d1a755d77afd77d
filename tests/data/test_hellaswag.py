"""HellaSwag scoring: the ending with the lowest mean token loss wins; the jsonl reader's checks."""

import json
from types import SimpleNamespace

import pytest
import torch

from common.config import ConfigError
from common.data.hellaswag import ending_losses, hellaswag_accuracy, load_hellaswag


class Counting(torch.nn.Module):
    """A language model over 128 byte values that is sure the next byte is the current one plus one."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids):
        logits = torch.full((*input_ids.shape, 128), -10.0)
        logits.scatter_(-1, ((input_ids + 1) % 128).unsqueeze(-1), 10.0)
        return SimpleNamespace(logits=logits)


def encode(text):
    return [ord(c) % 128 for c in text]


def test_the_ending_the_model_predicts_wins_whatever_its_length():
    example = {"ctx": "abc", "endings": ["qzqzqzqzq", '!"#$%&', "zz", "yxw"], "label": 1}
    losses = ending_losses(Counting(), encode, example)
    assert losses.shape == (4,) and int(losses.argmin()) == 1  # " !\"#$%&" counts up from the space
    assert hellaswag_accuracy(Counting(), encode, [example, {**example, "label": 0}]) == 50.0


def test_reader_checks_every_line(tmp_path):
    good = {"ctx": "a man", "endings": ["w", "x", "y", "z"], "label": 2}
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "label": "3"}) + "\n")
    assert [e["label"] for e in load_hellaswag(path)] == [2, 3]
    path.write_text(json.dumps({**good, "endings": ["w", "x"]}) + "\n")
    with pytest.raises(ConfigError, match="line 1: needs 'ctx'"):
        load_hellaswag(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "label": 4}) + "\n")
    with pytest.raises(ConfigError, match="line 2: label 4"):
        load_hellaswag(path)


class Recording(Counting):
    """`Counting` that remembers the widest input it saw."""

    widest = 0

    def forward(self, input_ids):
        self.widest = max(self.widest, input_ids.shape[1])
        return super().forward(input_ids)


def test_a_long_context_loses_its_start_so_that_every_row_fits_the_model():
    example = {"ctx": "x" * 50 + "abc", "endings": ["qzqzqzqzq", '!"#$%&', "zz", "yxw"], "label": 1}
    model = Recording()
    truncated = ending_losses(model, encode, example, max_tokens=16)
    assert model.widest == 16 and int(truncated.argmin()) == 1
    # the endings' losses depend only on the context's last character here: the same as untruncated
    assert torch.allclose(truncated, ending_losses(Counting(), encode, example))
    with pytest.raises(ConfigError, match="ending of 10 tokens does not fit the model's 8"):
        ending_losses(model, encode, example, max_tokens=8)
