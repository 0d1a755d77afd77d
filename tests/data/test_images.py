"""IDX (MNIST / Fashion-MNIST) and CIFAR-10 readers on files written in the real formats, and the real
Fashion-MNIST where the Debian package is installed."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from common.config import ConfigError
from common.data.images import cifar10_dataset, idx_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path.with_suffix(".gz") if compress else path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_are_read_as_images_and_labels(tmp_path, compress):
    images = np.arange(4 * 5 * 6).reshape(4, 5, 6) % 256
    labels = np.array([0, 3, 9, 1])
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, compress)
    data = idx_dataset(tmp_path, "test")
    assert len(data) == 4 and data[1][0].shape == (5, 6) and int(data[2][1]) == 9
    assert np.array_equal(data.tensors[0].numpy(), images)


def test_cifar10_batches_are_read_as_hwc_images(tmp_path):
    data = np.arange(2 * 3072).reshape(2, 3072) % 256
    with open(tmp_path / "test_batch", "wb") as file:
        pickle.dump({b"data": data.astype(np.uint8), b"labels": [7, 2]}, file)
    test = cifar10_dataset(tmp_path, "test")
    image = test[0][0].numpy()
    assert image.shape == (32, 32, 3) and image[0, 0, 0] == data[0, 0] and image[0, 0, 1] == data[0, 1024]
    assert [int(y) for _, y in test] == [7, 2]


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_real_fashion_mnist():
    train, test = idx_dataset(FASHION, "train"), idx_dataset(FASHION, "test")
    assert (len(train), len(test)) == (60000, 10000) and train[0][0].shape == (28, 28)
    assert np.bincount(test.tensors[1].numpy()).tolist() == [1000] * 10


def test_bad_files_are_refused_naming_them(tmp_path):
    with pytest.raises(ConfigError, match="t10k-images-idx3-ubyte"):
        idx_dataset(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)
    with pytest.raises(ConfigError, match="not an IDX file"):
        idx_dataset(tmp_path, "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 2, 2)), False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 12]), False)
    with pytest.raises(ConfigError, match="label 12"):
        idx_dataset(tmp_path, "test")
    with pytest.raises(ConfigError, match="split"):
        idx_dataset(tmp_path, "validation")
    with pytest.raises(ConfigError, match="data_batch_1"):
        cifar10_dataset(tmp_path, "train")
