"""Active attention on image classification (Figure 2a): a ViT or CaiT with shifted patch tokens and locality
self-attention, one run per value activation and seed, on CIFAR-10 (python batches) or an IDX set (MNIST,
Fashion-MNIST).

    python -m quadratic_gating.vision --config quadratic_gating/configs/vision_fashion_mnist.yaml
    python -m quadratic_gating.vision --config quadratic_gating/configs/vision_cifar10_vit_tiny.yaml \
        data_root=data/cifar-10-batches-py

The sweep is activations x seeds. Each point trains `SmallViT` (a CaiT when `model.class_layers` > 0) with AdamW,
linear warm-up and cosine decay (`common.training.loop`) on the training set (or a per-class `train_fraction` of it,
the same images for every point), and reports top-1 accuracy on the whole test set. Images are scaled to [0, 1] and
normalised with the training set's per-channel mean and standard deviation; with `augment`, training images are
randomly flipped and cropped from a 4-pixel zero-padded copy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from common.config import ConfigError
from common.data.images import cifar10_dataset, idx_dataset
from common.data.sampling import per_class_subset
from common.experiment import Experiment, register
from common.layers.attention import VALUE_ACTIVATIONS
from common.training import sweeps
from common.training.loop import Optimization, fit, predictions, total_steps
from common.training.monitor import Monitoring
from common.training.sweeps import check_device, classification_results
from quadratic_gating.models import SmallViT

DATASETS = {"cifar10": (32, 3), "fashion_mnist": (28, 1), "mnist": (28, 1)}  # image size, channels


@dataclass
class ViTConfig:
    patch: int = 4
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp: int = 128
    dropout: float = 0.0
    spt: bool = True
    locality: bool = True
    class_layers: int = 0  # > 0: CaiT, with this many class-attention layers after the `depth` patch layers
    layer_scale: float = 0.0  # > 0: LayerScale started at this value


@dataclass
class Config(Monitoring):
    results_dir: str = "results/quadratic_gating"
    dataset: str = "fashion_mnist"
    data_root: str = "/usr/share/datasets/fashion-mnist"
    activations: list[str] = field(default_factory=lambda: list(VALUE_ACTIVATIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train_fraction: float = 1.0  # a per-class fraction of the training set (CPU-sized runs)
    model: ViTConfig = field(default_factory=ViTConfig)
    augment: bool = False  # random flips and 4-pixel-padded crops of the training images
    optimization: Optimization = field(
        default_factory=lambda: Optimization(
            epochs=5, batch_size=128, learning_rate=1e-3, weight_decay=0.05, warmup_steps=100, scheduler="cosine"
        )  # fmt: skip
    )
    eval_batch_size: int = 512
    device: str = "auto"
    checkpoint_every: int = 200
    threads: int = 0

    def validate(self) -> None:
        super().validate()  # progress, tracker
        if self.dataset not in DATASETS:
            raise ConfigError.invalid("dataset", self.dataset, f"one of {', '.join(DATASETS)}")
        sweeps.check_names("activations", self.activations, VALUE_ACTIVATIONS)
        check_device(self.device)
        if not 0 < self.train_fraction <= 1:
            raise ConfigError.invalid("train_fraction", self.train_fraction, "a fraction in (0, 1]")
        size = DATASETS[self.dataset][0]
        if size % self.model.patch:
            raise ConfigError.invalid("model.patch", self.model.patch, f"a divisor of the image size {size}")


@dataclass(frozen=True)
class Point:
    activation: str
    seed: int


def load_data(cfg: Config) -> tuple[TensorDataset, TensorDataset]:
    """The (train, test) sets, read and checked."""
    read = cifar10_dataset if cfg.dataset == "cifar10" else idx_dataset
    return read(cfg.data_root, "train"), read(cfg.data_root, "test")


class Normalise:
    """uint8 (N, H, W[, C]) batches -> float (N, C, H, W) scaled with the training set's channel statistics."""

    def __init__(self, train_images: torch.Tensor) -> None:
        x = self._float(train_images)
        self.mean, self.std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)

    @staticmethod
    def _float(images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)

    def __call__(self, items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([image for image, _ in items])
        return (self._float(images) - self.mean[0:1]) / self.std[0:1], torch.stack([label for _, label in items])


def flip_and_crop(images: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Each (C, H, W) image of the batch flipped left-right with probability 1/2 and cropped at a random offset from
    a copy zero-padded by `pad` pixels (torch's RNG: seeded and checkpointed by the training loop)."""
    B, _, H, W = images.shape
    flip = torch.rand(B) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (B,)), torch.randint(0, 2 * pad + 1, (B,))
    rows = (dy[:, None] + torch.arange(H)).to(images.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(W)).to(images.device)  # (B, W)
    batch = torch.arange(B, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@register("quadratic_gating.vision")
class Vision(Experiment):
    """Each value activation trained from each seed; top-1 accuracy on the test set."""

    Config = Config
    Point = Point
    axes = ("activations", "seeds")
    run_name = "vision"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch
    paths = ("data_root",)

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        started = time.perf_counter()
        train, test = load_data(cfg)
        keep = per_class_subset(train.tensors[1].numpy(), cfg.train_fraction, seed=0)  # one subset for every point
        train = TensorDataset(*(t[torch.from_numpy(keep)] for t in train.tensors))
        normalise = Normalise(train.tensors[0])

        def collate(items):
            return tuple(t.to(device) for t in normalise(items))

        size, channels = DATASETS[cfg.dataset]
        torch.manual_seed(point.seed)
        model = SmallViT(size, channels, 10, value_activation=point.activation, **asdict(cfg.model)).to(device)
        steps = total_steps(len(train), cfg.optimization)

        def loss_fn(model, batch):
            images, labels = batch
            if cfg.augment:
                images = flip_and_crop(images)
            return torch.nn.functional.cross_entropy(model(images), labels)

        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model,
            train,
            collate,
            loss_fn,
            cfg.optimization,
            steps,
            run_dir,
            point.seed,
            cfg.checkpoint_every,
            monitor=monitor,
        )
        predicted = predictions(
            model, test, collate, lambda m, b: m(b[0]).argmax(-1), cfg.eval_batch_size, monitor=monitor
        )
        counts = {"parameters": sum(p.numel() for p in model.parameters())}
        labels = test.tensors[1].numpy()
        results = classification_results(predicted, labels, len(train), 10, steps, losses, started, counts)
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses), "predictions": predicted}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point.activation} seed={point.seed}: top-1 {results['accuracy']:.2f}%"


if __name__ == "__main__":
    Vision.cli()
