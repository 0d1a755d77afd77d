"""ViT-B/16 fine-tuning on VTAB-1K and FGVC with adapters on Q and V (RepLoRA Sec. 6 / Table 7, HyRA Sec. 5 / App. C.1).

    python -m hyra.vision --config hyra/configs/vtab.yaml data_root=/data/vtab-1k
    python -m replora.vision --config replora/configs/fgvc_sample_efficiency.yaml data_root=/data/fgvc

The sweep is tasks x methods x fractions x seeds x learning rates x weight decays (the papers' grid). Each point
builds the timm backbone (`vit_base_patch16_224.orig_in21k`, pre-trained on ImageNet-21k; or a local weights file in
`checkpoint_path`) with a new head for the task's classes, adapts it, trains on the `train_splits` subsampled to a
per-class fraction f for epochs / f epochs, and reports top-1 on the validation split and the test split; the tables
report the test accuracy at the grid point the validation accuracy selects (`common.finetune.selection`). Splits by
default: VTAB-1K trains on train800 and validates on val200, FGVC trains on train and validates on val.
`validation_split=none` is the papers' protocol: train on train800val200 (VTAB) or train + val (FGVC), no validation,
the grid selected on the test accuracy. Images: 224 x 224 bicubic resize, ImageNet normalisation, no augmentation.
Training resumes from the run's checkpoint after a requeue.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import ConfigError
from common.data.vision import (
    FGVC_DATASETS,
    FGVC_SPLITS,
    VTAB_SPLITS,
    VTAB_TASKS,
    ImageListDataset,
    eval_transform,
    fgvc_dataset,
    subsample_per_class,
    vtab_dataset,
)
from common.experiment import Experiment
from common.finetune.methods import Adaptation, adapt, check_methods, trainable
from common.finetune.selection import check_grid
from common.training.loop import Optimization, fit, predictions, top1, total_steps
from common.training.monitor import Monitoring
from common.training.sweeps import check_device, classification_results

BENCHMARKS = {"vtab": (VTAB_TASKS, VTAB_SPLITS), "fgvc": (FGVC_DATASETS, FGVC_SPLITS)}
DEFAULT_VALIDATION_SPLIT = {"vtab": "val200", "fgvc": "val"}
DEFAULT_TRAIN_SPLITS = {"vtab": ["train800"], "fgvc": ["train"]}  # with a validation split
PAPER_TRAIN_SPLITS = {"vtab": ["train800val200"], "fgvc": ["train", "val"]}  # without one


def _overlap(a: str, b: str) -> bool:
    """Whether two split names share images (VTAB-1K's train800val200 is train800 + val200)."""
    return a in b or b in a


@dataclass
class Config(Monitoring):
    results_dir: str = "results"  # runs in results/vision/<hash>, where the tables look
    benchmark: str = "vtab"  # vtab | fgvc
    data_root: str = ""  # VTAB-1K root (<task>/<split>.txt) or FGVC root (<dataset>/<split>.json)
    tasks: list[str] = field(default_factory=list)  # empty: every task of the benchmark
    train_splits: list[str] = field(default_factory=list)  # empty: the default of the benchmark (module docstring)
    validation_split: str = "auto"  # auto: val200 (VTAB) / val (FGVC); none: select on the test split (the papers)
    eval_split: str = "test"
    model: str = "vit_base_patch16_224.orig_in21k"  # a timm model name
    pretrained: bool = True  # load the model's pre-trained weights (from checkpoint_path when given)
    checkpoint_path: str = ""  # a local weights file in timm's format; empty: timm's own source
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model (tests: tiny sizes)
    image_size: int = 224
    methods: list[str] = field(default_factory=lambda: ["lora"])
    fractions: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    learning_rates: list[float] = field(default_factory=lambda: [1e-3])
    weight_decays: list[float] = field(default_factory=lambda: [1e-4])
    adaptation: Adaptation = field(default_factory=Adaptation)
    optimization: Optimization = field(default_factory=Optimization)  # its learning_rate/weight_decay: the grid's
    device: str = "auto"  # auto: cuda when available
    num_workers: int = 4
    eval_batch_size: int = 128
    checkpoint_every: int = 500

    def validate(self) -> None:
        super().validate()  # progress, tracker
        if self.benchmark not in BENCHMARKS:
            raise ConfigError.invalid("benchmark", self.benchmark, f"one of {', '.join(BENCHMARKS)}")
        names, splits = BENCHMARKS[self.benchmark]
        unknown = [t for t in self.tasks if t not in names]
        if unknown or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError.invalid("tasks", self.tasks, f"distinct {self.benchmark} tasks among {', '.join(names)}")
        for split in [*self.train_splits, self.eval_split]:
            if split not in splits:
                raise ConfigError.invalid(
                    "train_splits/eval_split", split, f"splits of {self.benchmark}: {', '.join(splits)}"
                )
        if self.validation_split not in ("auto", "none", *splits):
            raise ConfigError.invalid(
                "validation_split", self.validation_split, f"auto, none or a split of {self.benchmark}"
            )
        if any(_overlap(self.eval_split, split) for split in self.splits()):
            raise ConfigError.invalid("eval_split", self.eval_split, f"a split not trained on ({self.splits()})")
        val = self.val_split()
        if val and any(_overlap(val, split) for split in [*self.splits(), self.eval_split]):
            raise ConfigError.invalid(
                "validation_split", val, f"a split neither trained on ({self.splits()}) nor the eval_split"
            )
        check_methods(self.methods, adaptation=self.adaptation)
        if "prefix" in self.methods:
            raise ConfigError.invalid(
                "methods", self.methods, "methods without 'prefix' (peft's needs a transformers model)"
            )
        import timm

        if not timm.is_model(self.model):
            raise ConfigError.invalid("model", self.model, "a timm model name, e.g. vit_base_patch16_224.orig_in21k")
        if self.checkpoint_path and not Path(self.checkpoint_path).is_file():
            raise ConfigError.invalid("checkpoint_path", self.checkpoint_path, "an existing weights file")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError.invalid("fractions", self.fractions, "fractions of every class in (0, 1]")
        check_grid(self.learning_rates, self.weight_decays, self.seeds)
        check_device(self.device)

    def task_names(self) -> list[str]:
        return self.tasks or list(BENCHMARKS[self.benchmark][0])

    def val_split(self) -> str:
        """The validation split ('' for none)."""
        if self.validation_split == "auto":
            return DEFAULT_VALIDATION_SPLIT[self.benchmark]
        return "" if self.validation_split == "none" else self.validation_split

    def splits(self) -> list[str]:
        if self.train_splits:
            return self.train_splits
        return (DEFAULT_TRAIN_SPLITS if self.val_split() else PAPER_TRAIN_SPLITS)[self.benchmark]


@dataclass(frozen=True)
class Point:
    task: str
    method: str
    fraction: float
    seed: int
    learning_rate: float
    weight_decay: float


def schedule(cfg: Config, point: Point) -> Optimization:
    """The optimiser settings of a point: the config's, at the point's learning rate and weight decay."""
    return replace(cfg.optimization, learning_rate=point.learning_rate, weight_decay=point.weight_decay)


def datasets(cfg: Config, task: str) -> tuple[ImageListDataset, ImageListDataset | None, ImageListDataset]:
    """(train, validation or None, eval) of one task; every split file and every image it lists is checked first."""
    transform = eval_transform(cfg.image_size)
    read = vtab_dataset if cfg.benchmark == "vtab" else fgvc_dataset
    parts = [read(cfg.data_root, task, split, transform) for split in cfg.splits()]
    train = ImageListDataset([item for part in parts for item in part.items], parts[0].num_classes, transform)
    validation = read(cfg.data_root, task, cfg.val_split(), transform) if cfg.val_split() else None
    return train, validation, read(cfg.data_root, task, cfg.eval_split, transform)


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    import timm

    kwargs = dict(cfg.model_kwargs)
    if cfg.pretrained and cfg.checkpoint_path:
        kwargs["pretrained_cfg_overlay"] = {"file": cfg.checkpoint_path}
    return timm.create_model(cfg.model, pretrained=cfg.pretrained, num_classes=num_classes, **kwargs)


class Finetune(Experiment):
    """Fine-tuning a timm ViT on VTAB-1K or FGVC: every task, method, fraction, learning rate, weight decay and
    seed; top-1 accuracy on the evaluation split (and on the validation split that selects the grid point).
    RepLoRA and HyRA register it under their own names (``replora.vision``, ``hyra.vision``)."""

    Config = Config
    Point = Point
    run_name = "vision"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch

    @classmethod
    def sweep(cls, cfg: Config) -> list[Point]:
        return [
            Point(task, method, fraction, seed, lr, wd)
            for task in cfg.task_names()
            for fraction in cfg.fractions
            for lr in cfg.learning_rates
            for wd in cfg.weight_decays
            for seed in cfg.seeds
            for method in cfg.methods
        ]

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """What a point's numbers depend on (the data by its root folder and split names)."""
        return {
            **asdict(point),
            "benchmark": cfg.benchmark,
            "data_root": str(Path(cfg.data_root).absolute()),
            "train_splits": cfg.splits(),
            "validation_split": cfg.val_split(),
            "eval_split": cfg.eval_split,
            "model": cfg.model,
            "pretrained": cfg.pretrained,
            "checkpoint_path": cfg.checkpoint_path,
            "model_kwargs": dict(cfg.model_kwargs),
            "image_size": cfg.image_size,
            "adaptation": cfg.adaptation.record(point.method),
            "optimization": asdict(schedule(cfg, point)),
        }

    @classmethod
    def check_inputs(cls, cfg: Config) -> None:
        """Read every split of every task of the sweep (file layout, labels, images present): bad data fails here."""
        if not cfg.data_root:
            raise ConfigError.invalid("data_root", "", f"the root folder of the {cfg.benchmark} data")
        for task in cfg.task_names():
            datasets(cfg, task)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        started = time.perf_counter()
        train, validation, test = datasets(cfg, point.task)
        train = subsample_per_class(train, point.fraction, point.seed)
        torch.manual_seed(point.seed)
        backbone = build_model(cfg, train.num_classes)
        head = backbone.get_classifier()
        model = adapt(backbone, point.method, cfg.adaptation, head=head).to(device)
        counts = trainable(model, head)
        steps = total_steps(len(train), schedule(cfg, point), point.fraction)

        def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            images, labels = batch
            return nn.functional.cross_entropy(model(images.to(device)), labels.to(device))

        def predict_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return model(batch[0].to(device)).argmax(-1)

        collate = torch.utils.data.default_collate
        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, train, collate, loss_fn, schedule(cfg, point), steps, run_dir, point.seed, cfg.checkpoint_every,
            num_workers=cfg.num_workers, monitor=monitor,
        )  # fmt: skip
        predicted = predictions(model, test, collate, predict_fn, cfg.eval_batch_size, cfg.num_workers, monitor=monitor)
        results = classification_results(
            predicted, test.labels, len(train), train.num_classes, steps, losses, started, counts
        )
        arrays = {"losses": np.asarray(losses), "predictions": predicted}
        if validation is not None:
            val_predicted = predictions(
                model, validation, collate, predict_fn, cfg.eval_batch_size, cfg.num_workers, monitor=monitor
            )
            results |= {"val_accuracy": top1(val_predicted, validation.labels), "val_examples": len(validation)}
            arrays["val_predictions"] = val_predicted
        monitor.results(len(losses), results)
        return results, arrays

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point}: top-1 {results['accuracy']:.2f}%"
