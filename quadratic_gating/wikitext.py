"""Active attention in language modelling (Figure 2c): the small word-level Transformer and Performer LMs of App. F.3
(16 layers, width 128, 8 heads, FFN 2048, context 256) on WikiText-103 with each value activation.

    python -m quadratic_gating.wikitext --config quadratic_gating/configs/wikitext103.yaml data=data/wikitext-103

`data` is a folder of the released `wiki.{train,valid,test}.tokens` files or a `datasets` hub name (`subset`: its
configuration); the ids are cached in `cache_dir` (`common.data.wikitext`). The sweep is normalisers (softmax, the
Performer) x activations x seeds. Each point trains on non-overlapping (block_size + 1)-token windows of the training
split in a seeded order with the shared loop (AdamW, warm-up then cosine decay, gradient clipping, checkpoints) and
reports the validation and test perplexity over every non-overlapping window of those splits. On a GPU the forward
pass runs in bfloat16 autocast.

The paper gives the architecture only. Training settings are ours: 120,000 steps of 64 windows (2.0B tokens, about
Transformer-XL base's budget on WikiText-103), peak learning rate 2.5e-4, dropout 0.1, an adaptive softmax with
cutoffs 20k / 40k / 200k; the Performer's random features are drawn once per run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.data.wikitext import wikitext
from common.experiment import Experiment, register
from common.layers.attention import VALUE_ACTIVATIONS
from common.training import sweeps
from common.training.loop import Optimization, fit
from common.training.monitor import Monitoring
from common.training.sweeps import autocast, check_device
from quadratic_gating.models import TransformerLM

LM_NORMALISERS = ("softmax", "performer")


@dataclass
class Config(Monitoring):
    results_dir: str = "results/quadratic_gating"
    data: str = ""  # a folder of wiki.*.tokens, or a hub name such as Salesforce/wikitext
    subset: str = "wikitext-103-v1"  # the hub dataset's configuration (unused for a folder)
    cache_dir: str = "results/data/wikitext103"
    normalisers: list[str] = field(default_factory=lambda: list(LM_NORMALISERS))
    activations: list[str] = field(default_factory=lambda: list(VALUE_ACTIVATIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    block_size: int = 256
    layers: int = 16
    dim: int = 128
    heads: int = 8
    ffn: int = 2048
    dropout: float = 0.1
    features: int = 0  # the Performer's random features; 0: head_dim x ceil(log head_dim)
    cutoffs: list[int] = field(default_factory=lambda: [20_000, 40_000, 200_000])
    div_value: float = 1.0
    steps: int = 120_000
    optimization: Optimization = field(
        default_factory=lambda: Optimization(
            batch_size=64,
            learning_rate=2.5e-4,
            weight_decay=0.01,
            warmup_steps=4000,
            scheduler="cosine",
            max_grad_norm=0.25,
        )  # fmt: skip
    )
    eval_batch_size: int = 64
    device: str = "auto"
    checkpoint_every: int = 1000
    threads: int = 0

    def validate(self) -> None:
        super().validate()  # progress, tracker
        if not self.data:
            raise ConfigError.invalid("data", "", "a folder of wiki.*.tokens files or a datasets hub name")
        sweeps.check_names("normalisers", self.normalisers, LM_NORMALISERS)
        sweeps.check_names("activations", self.activations, VALUE_ACTIVATIONS)
        if self.dim % self.heads:
            raise ConfigError.invalid("heads", self.heads, f"a divisor of dim = {self.dim}")
        check_device(self.device)
        sweeps.check_positive(self, "block_size", "steps", "layers", "eval_batch_size")


@dataclass(frozen=True)
class Point:
    normaliser: str
    activation: str
    seed: int


class Blocks(torch.utils.data.Dataset):
    """Non-overlapping (block_size + 1)-token windows of one split (consecutive windows share one token)."""

    def __init__(self, ids: np.ndarray, block_size: int) -> None:
        # kept as int32 (WikiText-103's train split: 0.4 GB, not 0.8); each window widens to int64 when served
        self.ids, self.block_size = torch.from_numpy(ids), block_size

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.block_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        start = index * self.block_size
        return self.ids[start : start + self.block_size + 1].long()


def load_data(cfg: Config):
    """The tokenised splits (built and cached on the first call) and their windows."""
    data = wikitext(cfg.data, cfg.cache_dir, cfg.subset)
    splits = {split: Blocks(ids, cfg.block_size) for split, ids in data.ids.items()}
    for split, blocks in splits.items():
        if not len(blocks):
            raise ConfigError.invalid("block_size", cfg.block_size, f"shorter than the {split} split")
    return data.vocabulary, splits


@torch.no_grad()
def perplexity(cfg: Config, model: TransformerLM, blocks: Blocks, device: torch.device) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(blocks), cfg.eval_batch_size):
        batch = torch.stack([blocks[i] for i in range(start, min(len(blocks), start + cfg.eval_batch_size))])
        with autocast(device):
            total += model(batch.to(device)).item() * len(batch)
    return math.exp(total / len(blocks))


@register("quadratic_gating.wikitext")
class WikiText(Experiment):
    """Each normaliser and value activation trained from each seed; validation and test perplexity."""

    Config = Config
    Point = Point
    axes = ("normalisers", "activations", "seeds")
    run_name = "wikitext"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """The shared record without the tokenisation cache (where, not what); a local data folder by its absolute
        path, a hub name as it is."""
        record = super().record(cfg, point)
        record.pop("cache_dir")
        if Path(cfg.data).is_dir():
            record["data"] = str(Path(cfg.data).absolute())
        return record

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        vocabulary, splits = load_data(cfg)
        torch.manual_seed(point.seed)
        model = TransformerLM(
            len(vocabulary), cfg.block_size, cfg.dim, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout, point.normaliser,
            point.activation, cfg.features, tuple(cfg.cutoffs), cfg.div_value,
        ).to(device)  # fmt: skip

        def loss_fn(model, batch):
            with autocast(device):
                return model(batch)

        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, splits["train"], lambda items: torch.stack(items).to(device), loss_fn, cfg.optimization, cfg.steps,
            run_dir, point.seed, cfg.checkpoint_every, monitor=monitor,
        )  # fmt: skip
        results = {
            "val_ppl": perplexity(cfg, model, splits["valid"], device),
            "test_ppl": perplexity(cfg, model, splits["test"], device),
            "train_loss": float(np.mean(losses[-50:])),
            "vocabulary": len(vocabulary),
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps": cfg.steps,
        }
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses)}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point.normaliser} {point.activation} seed={point.seed}: test perplexity {results['test_ppl']:.2f}"


if __name__ == "__main__":
    WikiText.cli()
