"""Active attention on ImageNet (Figure 2b): timm's ViT-Base and a CaiT-Medium trained from scratch with each value
activation swapped into every attention (`common.layers.attention.use_value_activation`).

    python -m quadratic_gating.imagenet --config quadratic_gating/configs/imagenet_vit_base.yaml \
        data_root=/data/imagenet

`data_root` holds ImageNet in the usual folder layout (`train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`). The sweep is
activations x seeds. Each point trains `model` (a timm name; `model_kwargs` override its settings) with the DeiT
recipe through timm: RandAugment, random erasing, Mixup / CutMix with label smoothing, stochastic depth, AdamW with
warm-up and cosine decay (the shared loop, micro-batches when `optimization.micro_batch_size` is set), bfloat16
autocast on a GPU; it reports the top-1 accuracy on the validation images (resize and 87.5 % centre crop).

The paper names the models only (App. F.3); the recipe is DeiT's (300 epochs, batch 1024, peak 1e-3, weight decay
0.05, 5 warm-up epochs), run on one GPU with gradient accumulation. CaiT-Medium is timm's CaiT-S24 widened to the
paper's 768 / 16 heads (FFN 3072): `model_kwargs: {embed_dim: 768, num_heads: 16}`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import ConfigError
from common.data.vision import image_folder
from common.experiment import Experiment, register
from common.layers.attention import VALUE_ACTIVATIONS, use_value_activation
from common.training import sweeps
from common.training.loop import Optimization, fit, predictions, total_steps
from common.training.monitor import Monitoring
from common.training.sweeps import autocast, check_device, classification_results


@dataclass
class Recipe:
    """DeiT's data augmentation and regularisation (timm's names)."""

    auto_augment: str = "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.25
    mixup: float = 0.8
    cutmix: float = 1.0
    label_smoothing: float = 0.1
    drop_path: float = 0.1


@dataclass
class Config(Monitoring):
    results_dir: str = "results/quadratic_gating"
    data_root: str = ""
    model: str = "vit_base_patch16_224"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    activations: list[str] = field(default_factory=lambda: list(VALUE_ACTIVATIONS))
    seeds: list[int] = field(default_factory=lambda: [0])
    image_size: int = 224
    recipe: Recipe = field(default_factory=Recipe)
    optimization: Optimization = field(
        default_factory=lambda: Optimization(
            epochs=300,
            batch_size=1024,
            micro_batch_size=128,
            learning_rate=1e-3,
            weight_decay=0.05,
            warmup_steps=6255,
            scheduler="cosine",
        )  # fmt: skip
    )
    eval_batch_size: int = 256
    num_workers: int = 8
    device: str = "auto"
    checkpoint_every: int = 500
    threads: int = 0

    def validate(self) -> None:
        super().validate()  # progress, tracker
        sweeps.check_names("activations", self.activations, VALUE_ACTIVATIONS)
        if not self.data_root:
            raise ConfigError.invalid("data_root", "", "the ImageNet folder (train/ and val/ of class folders)")
        import timm

        if not timm.is_model(self.model):
            raise ConfigError.invalid("model", self.model, "a timm model name (timm.list_models())")
        check_device(self.device)


@dataclass(frozen=True)
class Point:
    activation: str
    seed: int


def load_data(cfg: Config):
    """(train, val) image folders with the recipe's transforms; both must have the same classes."""
    from timm.data import create_transform

    train_transform = create_transform(
        cfg.image_size, is_training=True, auto_augment=cfg.recipe.auto_augment or None, re_prob=cfg.recipe.re_prob,
        interpolation="bicubic",
    )  # fmt: skip
    eval_transform = create_transform(cfg.image_size, is_training=False, crop_pct=0.875, interpolation="bicubic")
    train, classes = image_folder(cfg.data_root, "train", train_transform)
    val, val_classes = image_folder(cfg.data_root, "val", eval_transform)
    if val_classes != classes:
        missing = sorted(set(classes) ^ set(val_classes))[:5]
        raise ConfigError(f"'{cfg.data_root}': train/ and val/ have different class folders (e.g. {missing})")
    return train, val


def build_model(cfg: Config, activation: str, num_classes: int) -> nn.Module:
    import timm

    model = timm.create_model(
        cfg.model, pretrained=False, num_classes=num_classes, drop_path_rate=cfg.recipe.drop_path, **cfg.model_kwargs
    )
    if activation != "identity":
        use_value_activation(model, activation)
    return model


@register("quadratic_gating.imagenet")
class ImageNet(Experiment):
    """Each value activation trained from each seed with DeiT's recipe; top-1 accuracy on the validation set."""

    Config = Config
    Point = Point
    axes = ("activations", "seeds")
    run_name = "imagenet"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch
    paths = ("data_root",)

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        started = time.perf_counter()
        train, val = load_data(cfg)
        torch.manual_seed(point.seed)
        random.seed(point.seed)  # Mixup / CutMix draw from Python's and NumPy's RNGs
        np.random.seed(point.seed)
        model = build_model(cfg, point.activation, train.num_classes).to(device)
        recipe = cfg.recipe
        mix = Mixup(
            mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, label_smoothing=recipe.label_smoothing,
            num_classes=train.num_classes,
        ) if recipe.mixup > 0 or recipe.cutmix > 0 else None  # fmt: skip
        soft_loss = SoftTargetCrossEntropy()

        def loss_fn(model, batch):
            images, labels = (t.to(device, non_blocking=True) for t in batch)
            if mix is not None and len(images) % 2 == 0:  # timm's Mixup pairs images: an even batch
                images, targets = mix(images, labels)
                with autocast(device):
                    return soft_loss(model(images).float(), targets)
            with autocast(device):
                logits = model(images).float()
                return nn.functional.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)

        def predict_fn(model, batch):
            with autocast(device):
                return model(batch[0].to(device)).argmax(-1)

        steps = total_steps(len(train), cfg.optimization)
        collate = torch.utils.data.default_collate
        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, train, collate, loss_fn, cfg.optimization, steps, run_dir, point.seed, cfg.checkpoint_every,
            num_workers=cfg.num_workers, monitor=monitor,
        )  # fmt: skip
        predicted = predictions(model, val, collate, predict_fn, cfg.eval_batch_size, cfg.num_workers, monitor=monitor)
        counts = {"parameters": sum(p.numel() for p in model.parameters())}
        results = classification_results(
            predicted, val.labels, len(train), train.num_classes, steps, losses, started, counts
        )
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses), "predictions": predicted}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point.activation} seed={point.seed}: top-1 {results['accuracy']:.2f}%"


if __name__ == "__main__":
    ImageNet.cli()
