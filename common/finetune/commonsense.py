"""LLaMA fine-tuning on the merged commonsense-reasoning set and per-task evaluation by generation (RepLoRA Table 1 /
Table 8, HyRA Table 3 / App. C.1; the LLM-Adapters protocol, `common.data.commonsense`).

    python -m replora.commonsense --config replora/configs/commonsense_llama7b.yaml data_root=/data/commonsense
    python -m hyra.commonsense --config hyra/configs/commonsense_llama13b.yaml data_root=/data/commonsense

The sweep is methods x fractions x seeds x learning rates x weight decays (the papers fix one point each). First
`validation_size` records of the training file are held out (LLM-Adapters' `val_set_size` = 120; the same records for
every run); the validation loss on them selects the grid point (`common.finetune.selection`). Each point loads the
model (a hub name or a local folder), adapts it
(`adaptation.targets`), trains on the Alpaca prompts of the other records cut to `cutoff_len` tokens (in a
sample-efficiency sweep, HyRA Sec. 5: a fraction f of each class for epochs / f epochs; the merged file does not say
which task a record comes from, so a class is a record's `answer` word, e.g. true, solution2, ending3), then
answers every test question of each task with beam search (4 beams, 32 new tokens) and scores the first answer word
of each response by exact match. Adapters of our methods are merged into the weights before generation, which
changes nothing but the speed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import runs
from common.adapters import METHODS, merge_adapters
from common.config import ConfigError
from common.data import commonsense
from common.data.sampling import per_class_subset
from common.experiment import RUN_SETTINGS, Experiment
from common.finetune.methods import Adaptation, adapt, check_methods, trainable
from common.finetune.selection import check_grid
from common.training import sweeps
from common.training.loop import Optimization, fit, total_steps
from common.training.monitor import Monitoring
from common.training.sweeps import check_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _default_optimization() -> Optimization:  # RepLoRA Table 8 (r = 32) / HyRA App. C.1
    return Optimization(epochs=3, batch_size=32, micro_batch_size=4, warmup_steps=100, scheduler="linear")


@dataclass
class Config(Monitoring):
    results_dir: str = "results"  # runs in results/commonsense/<hash>, where the tables look
    model: str = "yahma/llama-7b-hf"  # a hub name or a local folder with config.json
    data_root: str = ""  # holds `train_file` and <task>/test.json
    train_file: str = "commonsense_170k.json"
    tasks: list[str] = field(default_factory=list)  # empty: all eight
    methods: list[str] = field(default_factory=lambda: ["lora"])
    fractions: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    adaptation: Adaptation = field(
        default_factory=lambda: Adaptation(targets=["q", "k", "v", "up", "down"], rank=32, alpha=64, dropout=0.05)
    )
    learning_rates: list[float] = field(default_factory=lambda: [1e-4])  # RepLoRA Table 8; HyRA App. C.1: 2e-4
    weight_decays: list[float] = field(default_factory=lambda: [0.0])
    validation_size: int = 120  # training records held out to select on (LLM-Adapters' val_set_size); 0: none
    optimization: Optimization = field(default_factory=_default_optimization)  # learning_rate/weight_decay: the grid's
    cutoff_len: int = 256
    train_on_inputs: bool = True
    eval_batch_size: int = 4
    max_eval_examples: int = 0  # per task; 0: every test question
    dtype: str = "auto"  # auto: bfloat16 on a GPU, float32 on a CPU
    device: str = "auto"
    checkpoint_every: int = 200

    def validate(self) -> None:
        super().validate()  # progress, tracker
        unknown = [t for t in self.tasks if t not in commonsense.TASKS]
        if unknown or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError.invalid("tasks", self.tasks, f"distinct tasks among {', '.join(commonsense.TASKS)}")
        check_methods(self.methods, adaptation=self.adaptation)
        check_grid(self.learning_rates, self.weight_decays)
        if self.validation_size < 0:
            raise ConfigError.invalid("validation_size", self.validation_size, "an integer >= 0")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError.invalid("fractions", self.fractions, "fractions of the training records in (0, 1]")
        if not self.seeds:
            raise ConfigError.invalid("seeds", self.seeds, "at least one seed")
        sweeps.check_positive(self, "cutoff_len", "eval_batch_size", "checkpoint_every")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ConfigError.invalid("dtype", self.dtype, f"auto or one of {', '.join(DTYPES)}")
        check_device(self.device)
        if Path(self.model).exists() and not (Path(self.model) / "config.json").is_file():
            raise ConfigError.invalid("model", self.model, "a hub name or a local model folder with config.json")

    def task_names(self) -> list[str]:
        return self.tasks or list(commonsense.TASKS)


@dataclass(frozen=True)
class Point:
    method: str
    fraction: float
    seed: int
    learning_rate: float
    weight_decay: float


def schedule(cfg: Config, point: Point) -> Optimization:
    return replace(cfg.optimization, learning_rate=point.learning_rate, weight_decay=point.weight_decay)


def load_data(cfg: Config) -> dict[str, list[dict[str, str]]]:
    """Read the training file and every task's test file (keys, answers): bad data fails before any training.
    Returns {"train": records, "validation": the held-out training records, <task>: records}."""
    if not cfg.data_root:
        raise ConfigError.invalid("data_root", "", "the folder holding the commonsense training and test files")
    root = Path(cfg.data_root)
    if not root.is_dir():
        raise ConfigError.invalid("data_root", cfg.data_root, "an existing folder")
    data = {"train": commonsense.load_train(root / cfg.train_file)}
    if cfg.validation_size >= len(data["train"]):
        raise ConfigError.invalid(
            "validation_size", cfg.validation_size, f"fewer than the {len(data['train'])} training records"
        )
    held_out = np.zeros(len(data["train"]), dtype=bool)
    held_out[np.random.default_rng(0).permutation(len(held_out))[: cfg.validation_size]] = True
    data["validation"] = [r for r, h in zip(data["train"], held_out, strict=True) if h]
    data["train"] = [r for r, h in zip(data["train"], held_out, strict=True) if not h]
    for task in cfg.task_names():
        data[task] = commonsense.load_test(root, task)
    return data


def _dtype(cfg: Config, device: torch.device) -> torch.dtype:
    if cfg.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[cfg.dtype]


def load_model(cfg: Config, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = 0  # LLM-Adapters: LLaMA's <unk>
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=_dtype(cfg, device)).to(device)
    return model, tokenizer


class Features(torch.utils.data.Dataset):
    def __init__(self, features: list[dict[str, list[int]]], pad_token_id: int, device: torch.device):
        self.features, self.pad, self.device = features, pad_token_id, device

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.features[index]

    def collate(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Right-padded input ids, attention mask and labels (-100 on padding), on the device."""
        width = max(len(item["input_ids"]) for item in items)
        batch = {}
        for key, pad in (("input_ids", self.pad), ("attention_mask", 0), ("labels", -100)):
            rows = [item[key] + [pad] * (width - len(item[key])) for item in items]
            batch[key] = torch.tensor(rows, device=self.device)
        return batch


def _loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss


@torch.no_grad()
def generate(model: nn.Module, tokenizer, records: list[dict[str, str]], batch_size: int) -> list[str]:
    """The decoded responses of ``model`` to the prompts of ``records`` (left-padded batches, beam search)."""
    model.eval()
    tokenizer.padding_side = "left"
    out = []
    device = next(model.parameters()).device
    for first in range(0, len(records), batch_size):
        prompts = [commonsense.prompt(r, with_output=False) for r in records[first : first + batch_size]]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        generated = model.generate(
            **inputs,
            **commonsense.generation_config(),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        out += tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


@torch.no_grad()
def validation_loss(model: nn.Module, tokenizer, records: list[dict[str, str]], cfg: Config, device) -> float:
    """The mean per-token training loss on the held-out training records (what LLM-Adapters' eval loss reports)."""
    model.eval()
    features = [commonsense.tokenize_for_training(r, tokenizer, cfg.cutoff_len, cfg.train_on_inputs) for r in records]
    data = Features(features, tokenizer.pad_token_id, device)
    total, tokens = 0.0, 0
    for first in range(0, len(data), cfg.eval_batch_size):
        batch = data.collate([data[i] for i in range(first, min(first + cfg.eval_batch_size, len(data)))])
        count = int((batch["labels"][:, 1:] != -100).sum())  # the shifted labels the loss averages over
        total += float(model(**batch).loss) * count
        tokens += count
    return total / max(tokens, 1)


class Finetune(Experiment):
    """Fine-tuning LLaMA on the commonsense mixture: every method, fraction, grid point and seed; accuracy on each
    task's test set (and the held-out loss that selects the grid point). RepLoRA and HyRA register it under their
    own names (``replora.commonsense``, ``hyra.commonsense``)."""

    Config = Config
    Point = Point
    run_name = "commonsense"

    @classmethod
    def sweep(cls, cfg: Config) -> list[Point]:
        grid = [(lr, wd) for lr in cfg.learning_rates for wd in cfg.weight_decays]
        return [Point(m, f, s, *g) for f in cfg.fractions for g in grid for s in cfg.seeds for m in cfg.methods]

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        omit = (*RUN_SETTINGS, "methods", "fractions", "seeds", "learning_rates", "weight_decays", "adaptation",
                "optimization")  # fmt: skip
        return {
            **sweeps.point_record(point, cfg, omit, paths=["data_root"]),
            "tasks": cfg.task_names(),
            "adaptation": cfg.adaptation.record(point.method),
            "optimization": asdict(schedule(cfg, point)),
        }

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        data = load_data(cfg)
        keep = per_class_subset([record["answer"] for record in data["train"]], point.fraction, point.seed)
        records = [record for record, kept in zip(data["train"], keep, strict=True) if kept]
        torch.manual_seed(point.seed)
        model, tokenizer = load_model(cfg, device)
        features = [
            commonsense.tokenize_for_training(r, tokenizer, cfg.cutoff_len, cfg.train_on_inputs) for r in records
        ]
        train = Features(features, tokenizer.pad_token_id, device)
        # Adapter parameters are made in float32 (peft's too) whatever the backbone's precision, on the CPU: move them.
        model = adapt(model, point.method, cfg.adaptation).to(device)
        counts = trainable(model)
        steps = total_steps(len(train), schedule(cfg, point), point.fraction)
        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model,
            train,
            train.collate,
            _loss,
            schedule(cfg, point),
            steps,
            run_dir,
            point.seed,
            cfg.checkpoint_every,
            monitor=monitor,
        )
        val_loss = validation_loss(model, tokenizer, data["validation"], cfg, device) if data["validation"] else None
        if point.method in METHODS:
            merge_adapters(model)
        results, arrays = {}, {"losses": np.asarray(losses)}
        for task in cfg.task_names():
            test = data[task][: cfg.max_eval_examples or None]
            responses = generate(model, tokenizer, test, cfg.eval_batch_size)
            answers = [r["answer"] for r in test]
            results[task] = 100.0 * commonsense.accuracy(task, responses, answers)
            extracted = [commonsense.extract_answer(task, text) for text in responses]
            arrays[f"correct_{task}"] = np.array([e == a for e, a in zip(extracted, answers, strict=True)])
            runs.append_log(run_dir, {"task": task, "accuracy": results[task], "examples": len(test)})
        results = {
            "accuracy": results,
            "average": float(np.mean(list(results.values()))),
            "train_examples": len(train),
            "steps": steps,
            "final_loss": float(np.mean(losses[-10:])),
            **counts,
            **({} if val_loss is None else {"val_loss": val_loss, "val_examples": len(data["validation"])}),
        }
        monitor.results(len(losses), results)
        return results, arrays

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point}: average {results['average']:.2f}%"
