"""RepLoRA on VL-BART: the image-text (Table 5, Table 15) and video-text (Table 6, Table 16) understanding tasks.

    python -m common.data.clip_features source=images media_dir=/data/coco/images out=/data/features/coco.h5
    python -m replora.vision_language --config replora/configs/vl_image.yaml annotations_dir=/data/vl \
        features_paths=[/data/features/coco.h5,/data/features/gqa.h5,/data/features/nlvr2.h5]

One multitask model per benchmark group (VL-Adapter's setup): `tasks` are trained together, the examples of all of
them shuffled into each batch (each task in proportion to its training targets), and each is scored on its own
evaluation split with its standard metric (`common.finetune.vl_metrics`): VQA accuracy, GQA and NLVR2 accuracy, TVQA
/ How2QA multiple-choice accuracy, CIDEr for COCO captions, TVC and YC2C. The sweep is methods x seeds x learning
rates x weight decays. Each point builds VL-BART (`replora.vl_bart`: BART-base from transformers, a hub name or a
local folder, whose encoder reads "<task prefix>: <text>" and the projected CLIP features of the example's images or
video from the HDF5 feature stores, `common.data.features`: one per extraction), adapts its attention projections in
the encoder and the decoder (self- and cross-attention) with `method` through the shared injector (the new visual
embedding always trains), trains with Table 9's recipe (rank 128, alpha 128, AdamW, linear decay after a warm-up of
10 % of the steps; image-text LR 1e-3, batch 300, 20 epochs; video-text LR 3e-4, batch 40, 7 epochs) and reports
each task's score and their average.

Annotation files: `<annotations_dir>/<task>/` in each task's official layout (`common.data.vision_language`).
Training targets: VQA the answer with the highest soft score, GQA / NLVR2 the answer, captions every reference (one
training item per caption), TVQA / How2QA the correct candidate, whose candidates the input lists ("... choices: a0 |
a1 | ..."); the multiple-choice tasks are scored by the candidate the model finds most likely (mean token
log-likelihood), the others by greedy (captions: beam-search) generation.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import ConfigError
from common.data.features import FeatureStores, check_media
from common.data.vision_language import IMAGE_TASKS, TASKS, VIDEO_TASKS, Example, read_task, split_names
from common.experiment import Experiment, register
from common.finetune import vl_metrics
from common.finetune.methods import Adaptation, adapt, check_methods, trainable
from common.finetune.selection import GridPoint, check_grid, grid_points
from common.training.loop import Optimization, fit
from common.training.monitor import Monitoring
from common.training.sweeps import autocast, check_device
from replora.vl_bart import VLBart, VLBatch

PREFIXES = {"vqa": "vqa", "gqa": "gqa", "nlvr2": "nlvr", "caption": "caption", "tvqa": "tvqa", "how2qa": "how2qa",
            "tvc": "tvc", "yc2c": "yc2c"}  # fmt: skip
TRAIN_SPLITS = {"vqa": "train", "gqa": "train", "nlvr2": "train", "caption": "train", "tvqa": "train",
                "how2qa": "train", "tvc": "train", "yc2c": "train"}  # fmt: skip
EVAL_SPLITS = {"vqa": "val", "gqa": "testdev", "nlvr2": "dev", "caption": "test", "tvqa": "val", "how2qa": "val",
               "tvc": "val", "yc2c": "val"}  # fmt: skip


def _default_adaptation() -> Adaptation:
    return Adaptation(targets=["q", "v"], rank=128, alpha=128.0, dropout=0.0)  # Table 9


def _default_optimization() -> Optimization:
    # Table 9, image-text column (warm-up: warmup_ratio of the steps)
    return Optimization(epochs=20, batch_size=300, learning_rate=1e-3, weight_decay=0.0, scheduler="linear")


@dataclass
class Config(Monitoring):
    results_dir: str = "results"  # runs in results/vision_language/<hash>, where replora.tables looks
    tasks: list[str] = field(default_factory=lambda: list(IMAGE_TASKS))  # one multitask model over these
    annotations_dir: str = ""  # <annotations_dir>/<task>/: each task's official annotation files
    features_paths: list[str] = field(default_factory=list)  # HDF5 feature stores holding every media key, together
    train_splits: dict[str, Any] = field(default_factory=dict)  # task -> split; missing tasks: TRAIN_SPLITS
    eval_splits: dict[str, Any] = field(default_factory=dict)  # task -> split; missing tasks: EVAL_SPLITS
    model: str = "facebook/bart-base"  # a transformers BART: hub name or local folder (with its tokenizer)
    max_text_tokens: int = 64
    max_target_tokens: int = 24
    caption_beams: int = 5  # beam search for the captioning tasks (the others: greedy)
    methods: list[str] = field(default_factory=lambda: ["lora"])
    seeds: list[int] = field(default_factory=lambda: [0])
    learning_rates: list[float] = field(default_factory=lambda: [1e-3])
    weight_decays: list[float] = field(default_factory=lambda: [0.0])
    adaptation: Adaptation = field(default_factory=_default_adaptation)
    optimization: Optimization = field(default_factory=_default_optimization)  # learning_rate/weight_decay: the grid's
    warmup_ratio: float = 0.1  # Table 9: warm-up over this share of the steps (replaces optimization.warmup_steps)
    device: str = "auto"
    num_workers: int = 4
    eval_batch_size: int = 32
    checkpoint_every: int = 500

    def validate(self) -> None:
        super().validate()  # progress, tracker
        if not self.tasks or any(t not in TASKS for t in self.tasks) or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError.invalid("tasks", self.tasks, f"distinct tasks among {', '.join(TASKS)}")
        if set(self.tasks) & set(IMAGE_TASKS) and set(self.tasks) & set(VIDEO_TASKS):
            raise ConfigError.invalid(
                "tasks", self.tasks, f"one group: image-text ({', '.join(IMAGE_TASKS)}) or video-text "
                f"({', '.join(VIDEO_TASKS)})",
            )  # fmt: skip
        for name, splits in (("train_splits", self.train_splits), ("eval_splits", self.eval_splits)):
            for task, split in splits.items():
                if task not in self.tasks or split not in split_names(task):
                    allowed = f"a task of `tasks` mapped to one of its splits ({task}: {', '.join(split_names(task))})"
                    raise ConfigError.invalid(f"{name}.{task}", split, allowed if task in TASKS else "a task")
        check_methods(self.methods, adaptation=self.adaptation)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError.invalid("warmup_ratio", self.warmup_ratio, "a fraction in [0, 1)")
        for name in ("max_text_tokens", "max_target_tokens", "caption_beams"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        check_grid(self.learning_rates, self.weight_decays, self.seeds)
        check_device(self.device)

    def split(self, task: str, train: bool) -> str:
        return (self.train_splits if train else self.eval_splits).get(task) or (TRAIN_SPLITS if train else EVAL_SPLITS)[
            task
        ]


Point = GridPoint  # method, seed, learning_rate, weight_decay


@dataclass
class TaskData:
    train: list[Example]
    eval: list[Example]


def load_data(cfg: Config) -> tuple[dict[str, TaskData], FeatureStores]:
    """Every task's training and evaluation examples and the feature store, every media key checked present."""
    if not cfg.annotations_dir:
        raise ConfigError.invalid("annotations_dir", "", "the folder holding <task>/ annotation files")
    if not cfg.features_paths:
        raise ConfigError.invalid("features_paths", [], "HDF5 feature stores (python -m common.data.clip_features)")
    data = {
        task: TaskData(
            read_task(task, Path(cfg.annotations_dir) / task, cfg.split(task, True)),
            read_task(task, Path(cfg.annotations_dir) / task, cfg.split(task, False)),
        )
        for task in cfg.tasks
    }
    store = FeatureStores(cfg.features_paths)
    check_media([e for d in data.values() for e in (*d.train, *d.eval)], store, "features_paths")
    return data, store


def input_text(example: Example) -> str:
    """The encoder's text: the task prefix, the text, and the candidates of a multiple-choice question."""
    text = f"{PREFIXES[example.task]}: {example.text}".strip()
    return f"{text} choices: {' | '.join(example.choices)}" if example.choices else text


def training_targets(example: Example) -> list[str]:
    """The targets an example trains on: VQA's best answer, every caption, the correct candidate, the answer."""
    if example.task == "vqa":
        return [max(example.answers, key=example.answers.get)] if example.answers else []
    if example.choices:
        return [example.choices[example.label]] if example.label is not None else []
    return list(example.targets)


class TrainItems(torch.utils.data.Dataset):
    """(example, target text) pairs of every task: one per target (one per caption)."""

    def __init__(self, data: dict[str, TaskData]) -> None:
        self.items = [(e, t) for d in data.values() for e in d.train for t in training_targets(e)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Example, str]:
        return self.items[i]


class Collate:
    """Builds a `VLBatch`: tokenised inputs (and targets), every media item's features with its image index."""

    def __init__(self, tokenizer, store: FeatureStores, max_text: int, max_target: int) -> None:
        self.tokenizer, self.store, self.max_text, self.max_target = tokenizer, store, max_text, max_target

    def targets(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_target, return_tensors="pt")
        return encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)

    def __call__(self, items: list) -> VLBatch:
        examples = [item[0] if isinstance(item, tuple) else item for item in items]
        encoded = self.tokenizer([input_text(e) for e in examples], padding=True, truncation=True,
                                 max_length=self.max_text, return_tensors="pt")  # fmt: skip
        media = [[(k, self.store[key]) for k, key in enumerate(e.media)] for e in examples]
        rows = [sum(len(f) for _, f in m) for m in media]
        features = torch.zeros(len(examples), max(rows), self.store.dim)
        mask = torch.zeros(len(examples), max(rows), dtype=torch.long)
        image_ids = torch.zeros(len(examples), max(rows), dtype=torch.long)
        for i, items_of in enumerate(media):
            start = 0
            for k, f in items_of:
                features[i, start : start + len(f)], image_ids[i, start : start + len(f)] = f, k
                start += len(f)
            mask[i, :start] = 1
        labels = self.targets([item[1] for item in items]) if isinstance(items[0], tuple) else None
        return VLBatch(encoded.input_ids, encoded.attention_mask, features, mask, image_ids, labels)


def schedule(cfg: Config, point: Point, steps: int) -> Optimization:
    return replace(cfg.optimization, learning_rate=point.learning_rate, weight_decay=point.weight_decay,
                   warmup_steps=round(cfg.warmup_ratio * steps))  # fmt: skip


def load_model(cfg: Config, feature_dim: int) -> tuple[VLBart, Any]:
    from transformers import AutoTokenizer, BartForConditionalGeneration

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        bart = BartForConditionalGeneration.from_pretrained(cfg.model)
    except OSError as error:
        raise ConfigError.invalid("model", cfg.model, f"a BART hub name or a local folder ({error})") from None
    return VLBart(bart, feature_dim), tokenizer


BART_BASE = {"vocab_size": 50265, "d_model": 768, "encoder_layers": 6, "decoder_layers": 6,
             "encoder_attention_heads": 12, "decoder_attention_heads": 12, "encoder_ffn_dim": 3072,
             "decoder_ffn_dim": 3072, "max_position_embeddings": 1024}  # fmt: skip


def parameter_shares(methods: list[str], adaptation: Adaptation, feature_dim: int) -> list[dict]:
    """Trainable parameters of each method on VL-BART's real shapes (BART-base and the visual embedding of
    ``feature_dim`` features; the meta device: nothing allocated or downloaded), and their share (%) of the model
    before adaptation."""
    from transformers import BartConfig, BartForConditionalGeneration

    rows = []
    for method in methods:
        with torch.device("meta"):
            model = VLBart(BartForConditionalGeneration(BartConfig(**BART_BASE)), feature_dim)
            adapted = adapt(model, method, adaptation, head=model.visual)
        counts = trainable(adapted, model.visual)
        rows.append({"method": method, "feature_dim": feature_dim, "trainable_params": counts["trainable_params"],
                     "trainable_pct": counts["trainable_pct"]})  # fmt: skip
    return rows


@torch.no_grad()
def evaluate(cfg: Config, model: VLBart, tokenizer, examples: list[Example], collate: Collate, device) -> float:
    """The task's score (%) on ``examples``."""
    model.eval()
    task, outputs = examples[0].task, []
    for start in range(0, len(examples), cfg.eval_batch_size):
        chunk = examples[start : start + cfg.eval_batch_size]
        batch = collate(chunk).to(device)
        with autocast(device):
            if task in vl_metrics.CHOICE_TASKS:
                outputs += model.choose(batch, [collate.targets(list(e.choices)).to(device) for e in chunk])
            else:
                beams = cfg.caption_beams if task in vl_metrics.CAPTION_TASKS else 1
                outputs += model.generate(batch, tokenizer, cfg.max_target_tokens, beams)
    return vl_metrics.score(task, outputs, examples)


@register("replora.vision_language")
class VisionLanguage(Experiment):
    """One VL-BART per task group, trained on all its tasks; each task's score and their average."""

    Config = Config
    Point = Point
    run_name = "vision_language"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch
    load_inputs = staticmethod(load_data)

    @classmethod
    def sweep(cls, cfg: Config) -> list[Point]:
        return grid_points(cfg)

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        record = super().record(cfg, point)
        record.update(
            annotations_dir=str(Path(cfg.annotations_dir).absolute()),
            features_paths=[str(Path(p).absolute()) for p in cfg.features_paths],
            train_splits={t: cfg.split(t, True) for t in cfg.tasks},
            eval_splits={t: cfg.split(t, False) for t in cfg.tasks},
            adaptation=cfg.adaptation.record(point.method),
            # the point's learning rate and weight decay, and the warm-up of warmup_ratio, replace these
            optimization={k: v for k, v in asdict(cfg.optimization).items()
                          if k not in ("learning_rate", "weight_decay", "warmup_steps")},
        )  # fmt: skip
        for name in ("learning_rates", "weight_decays", "methods", "seeds"):
            record.pop(name, None)
        return record

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        started = time.perf_counter()
        data, store = load_data(cfg)
        torch.manual_seed(point.seed)
        model, tokenizer = load_model(cfg, store.dim)
        model = adapt(model, point.method, cfg.adaptation, head=model.visual).to(device)
        counts = trainable(model, model.visual)
        train = TrainItems(data)
        collate = Collate(tokenizer, store, cfg.max_text_tokens, cfg.max_target_tokens)
        steps = max(1, round(cfg.optimization.epochs * math.ceil(len(train) / cfg.optimization.batch_size)))

        def loss_fn(model: nn.Module, batch: VLBatch) -> torch.Tensor:
            with autocast(device):
                return model(batch.to(device))

        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, train, collate, loss_fn, schedule(cfg, point, steps), steps, run_dir, point.seed,
            cfg.checkpoint_every, num_workers=cfg.num_workers, monitor=monitor,
        )  # fmt: skip
        scores = {task: evaluate(cfg, model, tokenizer, data[task].eval, collate, device) for task in cfg.tasks}
        results = {
            "accuracy": scores,  # each task's score (%): VQA / GQA / NLVR2 / multiple-choice accuracy, CIDEr
            "average": float(np.mean(list(scores.values()))),
            "train_items": len(train),
            "eval_examples": {task: len(d.eval) for task, d in data.items()},
            "steps": steps,
            "final_loss": float(np.mean(losses[-10:])),
            "seconds": time.perf_counter() - started,
            **counts,
        }
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses)}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        scores = ", ".join(f"{t} {v:.1f}" for t, v in results["accuracy"].items())
        return f"{point}: {scores} (average {results['average']:.1f})"


if __name__ == "__main__":
    VisionLanguage.cli()
