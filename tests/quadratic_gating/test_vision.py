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
    vision.Vision.main(cfg)
    for point in vision.Vision.sweep(cfg):
        results = runs.read_run(vision.Vision.point_dir(cfg, point))["results"]
        assert results["test_examples"] == 20 and results["train_examples"] == 30 and 0 <= results["accuracy"] <= 100
    assert len(vision.Vision.sweep(cfg)) == 6
    from quadratic_gating import tables

    tables.main(tables.TablesConfig(results_dir=cfg.results_dir, out_dir=str(tmp_path / "tables")))
    drawn = (tmp_path / "tables" / "figure2_vision.csv").read_text()
    assert (
        drawn.splitlines()[1].startswith("ViT (fashion_mnist),identity")
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
    vision.Vision.main(cfg)
    results = runs.read_run(vision.Vision.point_dir(cfg, vision.Vision.sweep(cfg)[0]))["results"]
    assert results["train_examples"] == 10 and results["test_examples"] == 20  # 10 of each class's 10 -> 1 each
    # CaiT-Tiny's layout (patch layers, then class attention with LayerScale), with augmentation
    cait = load_config(vision.Config, None, [f"results_dir={tmp_path / 'c'}", f"data_root={root}", "dataset=cifar10",
                                             "activations=[gelu]", *TINY, "model.class_layers=2",
                                             "model.layer_scale=0.1", "augment=true"])  # fmt: skip
    vision.Vision.main(cait)
    run = runs.read_run(vision.Vision.point_dir(cait, vision.Vision.sweep(cait)[0]))
    assert run["config"]["model"]["class_layers"] == 2 and 0 <= run["results"]["accuracy"] <= 100


def test_cait_class_attention_reads_the_patches_but_leaves_them_alone():
    import torch

    from quadratic_gating.models import SmallViT

    torch.manual_seed(0)
    cait = SmallViT(8, 1, 3, patch=4, dim=8, depth=1, heads=2, mlp=16, class_layers=2, layer_scale=0.1)
    assert cait.position.shape == (1, 4, 8) and len(cait.class_blocks) == 2  # positions of the 4 patches only
    tokens = torch.randn(2, 5, 8)
    out = cait.class_blocks[0](tokens)
    assert torch.equal(out[:, 1:], tokens[:, 1:]) and not torch.allclose(out[:, :1], tokens[:, :1])
    changed = tokens.clone()
    changed[:, 3] += torch.randn(8)  # a patch token changes what the class token reads
    assert not torch.allclose(cait.class_blocks[0](changed)[:, 0], out[:, 0])
    assert torch.allclose(cait.blocks[0].scale1, torch.full((8,), 0.1))


def test_flip_and_crop_moves_pixels_without_changing_them():
    import torch

    torch.manual_seed(0)
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    out = vision.flip_and_crop(images, pad=2)
    assert out.shape == images.shape
    for i in range(2):
        kept = out[i][out[i] != 0]  # every non-padding pixel comes from the image (flipped or not)
        assert set(kept.tolist()) <= set(images[i].flatten().tolist())
    assert torch.equal(vision.flip_and_crop(images, pad=0).sort(-1).values, images.sort(-1).values)


def test_bad_input_names_the_field_or_file(tmp_path):
    with pytest.raises(ConfigError, match="activations"):
        load_config(vision.Config, None, ["activations=[softplus]"])
    with pytest.raises(ConfigError, match="model.patch"):
        load_config(vision.Config, None, ["model.patch=5"])
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte"):
        vision.Vision.main(load_config(vision.Config, None, [f"data_root={tmp_path}", f"results_dir={tmp_path / 'r'}"]))
