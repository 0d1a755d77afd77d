"""Token shards: documents with end-of-text, split into uint16 shards (validation first), windows across shards."""

import numpy as np
import pytest
import torch

from common.config import ConfigError
from common.data.lm_shards import ShardWindows, write_shards


def encode(text):
    return [ord(c) for c in text]


def test_documents_become_eot_prefixed_uint16_shards_validation_first(tmp_path):
    paths = write_shards(["abc", "defgh", "ij"], encode, eot=0, out_dir=tmp_path, shard_tokens=4, name="toy")
    names = ["toy_val_000000.npy", "toy_train_000001.npy", "toy_train_000002.npy", "toy_train_000003.npy"]
    assert [p.name for p in paths] == names
    tokens = np.concatenate([np.load(p) for p in paths])
    assert tokens.dtype == np.uint16 and tokens.tolist() == [0, 97, 98, 99, 0, 100, 101, 102, 103, 104, 0, 105, 106]


def test_windows_cover_each_split_in_order_without_spanning_shards(tmp_path):
    write_shards(["x" * 30, "y" * 30], encode, eot=1, out_dir=tmp_path, shard_tokens=20)
    train = ShardWindows(tmp_path, "train", block_size=4)
    assert len(train) == 4 + 4  # 62 tokens: a validation shard of 20, train shards of 20, 20, 2 -> 4, 4, 0 windows
    windows = [train[i] for i in range(len(train))]
    assert all(w.shape == (5,) and w.dtype == torch.int64 for w in windows)
    shard = np.load(sorted(tmp_path.glob("*_train_*.npy"))[1])
    assert windows[4].tolist() == shard[:5].tolist() and windows[5].tolist() == shard[4:9].tolist()


def test_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="uint16"):
        write_shards(["a"], lambda text: [70000], eot=0, out_dir=tmp_path, shard_tokens=4)
    with pytest.raises(ConfigError, match="no val shards"):
        ShardWindows(tmp_path / "empty", "val", 4)
    write_shards(["abc"], encode, eot=0, out_dir=tmp_path / "small", shard_tokens=100)
    with pytest.raises(ConfigError, match="block_size"):
        ShardWindows(tmp_path / "small", "val", 16)
