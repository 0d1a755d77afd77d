"""The active-attention image-classification entry point on IDX and CIFAR-10 fixtures."""

import pickle

import numpy as np
import pytest

from common import runs
from common.config import ConfigError, load_config
from quadratic_gating import vision
from tests.data.test_images import write_idx

TINY = ["model.dim=16", "model.depth=1", "model.heads=2", "model.mlp=32", "optimization.epochs=1",
        "optimization.batch_size=16", "optimization.warmup_steps=1", "seeds=[0]"]  # fmt: skip


def write_fashion(root, per_class=3):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", per_class), ("t10k", 2)):
        labels = np.repeat(np.arange(10), count)
        images = rng.integers(0, 256, (len(labels), 28, 28))
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, compress=True)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, compress=True)
    return root


def test_every_activation_trains_on_fashion_mnist_files(tmp_path):
    root = write_fashion(tmp_path / "fashion")
    cfg = load_config(
        vision.Config, None, [f"results_dir={tmp_path / 'r'}", f"data_root={root}", "model.patch=7", *TINY]
    )
    vision.main(cfg)
    for point in vision.sweep(cfg):
        results = runs.read_run(vision.point_dir(cfg, point))["results"]
        assert results["test_examples"] == 20 and results["train_examples"] == 30 and 0 <= results["accuracy"] <= 100
    assert len(vision.sweep(cfg)) == 6
    from quadratic_gating import tables

    tables.main(tables.TablesConfig(results_dir=cfg.results_dir, out_dir=str(tmp_path / "tables")))
    drawn = (tmp_path / "tables" / "figure2_vision.csv").read_text()
    assert (
        drawn.splitlines()[1].startswith("fashion_mnist,identity")
        and (tmp_path / "tables" / "figure2_vision.png").is_file()
    )


def test_cifar10_batches_and_a_training_fraction(tmp_path):
    root = tmp_path / "cifar"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as file:
            pickle.dump(
                {b"data": rng.integers(0, 256, (20, 3072)).astype(np.uint8), b"labels": list(range(10)) * 2}, file
            )
    cfg = load_config(vision.Config, None, [f"results_dir={tmp_path / 'r'}", f"data_root={root}", "dataset=cifar10",
                                            "activations=[tanh]", "train_fraction=0.1", *TINY])  # fmt: skip
    vision.main(cfg)
    results = runs.read_run(vision.point_dir(cfg, vision.sweep(cfg)[0]))["results"]
    assert results["train_examples"] == 10 and results["test_examples"] == 20  # 10 of each class's 10 -> 1 each


def test_bad_input_names_the_field_or_file(tmp_path):
    with pytest.raises(ConfigError, match="activations"):
        load_config(vision.Config, None, ["activations=[softplus]"])
    with pytest.raises(ConfigError, match="model.patch"):
        load_config(vision.Config, None, ["model.patch=5"])
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte"):
        vision.main(load_config(vision.Config, None, [f"data_root={tmp_path}", f"results_dir={tmp_path / 'r'}"]))
