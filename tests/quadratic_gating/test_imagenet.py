"""The ImageNet entry point (Figure 2b) on a tiny image folder in ImageNet's layout, with tiny timm ViT and CaiT
models: the DeiT recipe through timm, value activations swapped in, reproducibility and bad input."""

import pytest
from PIL import Image

from common import runs
from common.config import ConfigError, load_config
from quadratic_gating import imagenet

COLOURS = {"n01440764": (255, 0, 0), "n01443537": (0, 0, 255), "n01484850": (0, 255, 0)}
TINY = ["image_size=32", "seeds=[0]", "num_workers=0", "eval_batch_size=8", "optimization.epochs=2",
        "optimization.batch_size=8", "optimization.micro_batch_size=4", "optimization.warmup_steps=1"]  # fmt: skip
VIT = [
    "model=vit_base_patch16_224",
    "model_kwargs={embed_dim: 32, depth: 1, num_heads: 2, img_size: 32, patch_size: 8}",
]


def write_imagenet(root, per_class=4):
    for split, count in (("train", per_class), ("val", 2)):
        for wnid, colour in COLOURS.items():
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 36), colour).save(folder / f"{wnid}_{i}.JPEG", "JPEG")
    return root


def config(tmp_path, *overrides):
    root = tmp_path / "imagenet"
    if not root.exists():
        write_imagenet(root)
    return load_config(imagenet.Config, None, [f"results_dir={tmp_path / 'r'}", f"data_root={root}", *TINY, *overrides])


def test_vit_and_cait_train_with_value_activations_and_reproduce(tmp_path):
    cfg = config(tmp_path, *VIT, "activations=[identity,relu]")
    imagenet.ImageNet.main(cfg)
    for point in imagenet.ImageNet.sweep(cfg):
        results = runs.read_run(imagenet.ImageNet.point_dir(cfg, point))["results"]
        assert results["train_examples"] == 12 and results["test_examples"] == 6 and results["classes"] == 3
        assert results["steps"] == 2 * 2  # 2 epochs of ceil(12 / 8) steps
    relu = imagenet.build_model(cfg, "relu", 3)
    assert type(relu.blocks[0].attn.qkv).__name__ == "ActivatedRows"
    again = config(tmp_path, *VIT, "activations=[relu]", f"results_dir={tmp_path / 'again'}")
    imagenet.ImageNet.main(again)
    first = runs.read_run(imagenet.ImageNet.point_dir(cfg, imagenet.Point("relu", 0)))
    second = runs.read_run(imagenet.ImageNet.point_dir(again, imagenet.Point("relu", 0)))
    assert (first["arrays"]["losses"] == second["arrays"]["losses"]).all()  # augmentation and Mixup seeded too

    cait = config(tmp_path, "model=cait_s24_224", "activations=[gelu]",
                  "model_kwargs={embed_dim: 32, depth: 1, num_heads: 2, img_size: 32, patch_size: 8}")  # fmt: skip
    imagenet.ImageNet.main(cait)
    assert runs.is_done(imagenet.ImageNet.point_dir(cait, imagenet.Point("gelu", 0)))
    model = imagenet.build_model(cait, "gelu", 3)
    assert type(model.blocks_token_only[0].attn.v).__name__ == "ActivatedRows"  # the class attention too

    from quadratic_gating import tables

    tables.main(tables.TablesConfig(results_dir=cfg.results_dir, out_dir=str(tmp_path / "tables")))
    drawn = (tmp_path / "tables" / "figure2_vision.csv").read_text()
    assert "cait_s24_224 width 32 (imagenet),gelu" in drawn and "vit_base_patch16_224 width 32 (imagenet),relu" in drawn


def test_bad_input_names_the_field_or_folder(tmp_path):
    with pytest.raises(ConfigError, match="model"):
        config(tmp_path, "model=vit_gigantic_patch3")
    with pytest.raises(ConfigError, match="activations"):
        config(tmp_path, "activations=[softplus]")
    with pytest.raises(ConfigError, match="data_root.*'train/'"):
        imagenet.ImageNet.main(config(tmp_path, *VIT, f"data_root={tmp_path / 'nowhere'}"))
    (tmp_path / "imagenet" / "val" / "n01484850").rename(tmp_path / "imagenet" / "val" / "n09999999")
    with pytest.raises(ConfigError, match="different class folders"):
        imagenet.ImageNet.main(config(tmp_path, *VIT))
