"""Dense vs MoE language models at matched active parameters (Table 3 at small scale): a character-level GPT on a
text file (tiny-shakespeare), with its FFNs dense, or MoE blocks with a linear or a quadratic router.

    python -m quadratic_gating.language --config quadratic_gating/configs/language_shakespeare.yaml \
        text_path=data/tinyshakespeare/input.txt

The sweep is variants x seeds. The text's characters are the vocabulary; the first 90 % of the text trains, the
rest validates. Each point trains a GPT-2-shaped model (`quadratic_gating.models.gpt2_moe`) for `steps` AdamW
steps on random `block_size` windows (the shared loop: warm-up, cosine decay, seeded order, checkpoints) with the
MoE load-balancing loss weighted by `aux_weight`, and reports the mean validation loss (nats per character) over
`eval_windows` fixed windows. Each expert is `dense_ffn / top_k` wide, so that a token uses as many FFN parameters
in the MoE models as in the dense one (active parameters match up to the router and top_k - 1 output biases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.data.files import existing_file
from common.experiment import Experiment, register
from common.training import sweeps
from common.training.loop import Optimization, fit
from common.training.monitor import Monitoring
from quadratic_gating.models import gpt2_moe, moe_aux_loss, next_token_loss, parameter_counts

VARIANTS = {"dense": None, "moe_linear": "linear", "moe_quadratic": "quadratic"}


@dataclass
class Config(Monitoring):
    results_dir: str = "results/quadratic_gating"
    text_path: str = ""
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    block_size: int = 128
    layers: int = 4
    dim: int = 128
    heads: int = 4
    dense_ffn: int = 512
    experts: int = 8
    top_k: int = 2
    rank: int = 16  # the quadratic router's rank
    aux_weight: float = 0.01
    steps: int = 2000
    eval_windows: int = 256
    optimization: Optimization = field(
        default_factory=lambda: Optimization(
            batch_size=32, learning_rate=1e-3, weight_decay=0.1, warmup_steps=100, scheduler="cosine"
        )  # fmt: skip
    )
    checkpoint_every: int = 200
    threads: int = 0
    device: str = "auto"  # auto: the first GPU when one is visible

    def validate(self) -> None:
        super().validate()  # progress, tracker
        sweeps.check_device(self.device)
        sweeps.check_names("variants", self.variants, list(VARIANTS))
        if not self.text_path:
            raise ConfigError.invalid("text_path", "", "the path of a UTF-8 text file")
        if self.dense_ffn % self.top_k:
            raise ConfigError.invalid("dense_ffn", self.dense_ffn, f"a multiple of top_k = {self.top_k}")
        sweeps.check_positive(self, "block_size", "steps", "eval_windows", "layers")


@dataclass(frozen=True)
class Point:
    variant: str
    seed: int


def load_text(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(train ids, validation ids, vocabulary) of the text; a text too short for one window of each fails here."""
    text = existing_file(cfg.text_path, "text file").read_text(encoding="utf-8")
    vocabulary = sorted(set(text))
    index = {c: i for i, c in enumerate(vocabulary)}
    ids = torch.tensor([index[c] for c in text])
    split = int(0.9 * len(ids))
    train, val = ids[:split], ids[split:]
    for name, part in (("training", train), ("validation", val)):
        if len(part) <= cfg.block_size:
            allowed = f"shorter than the {len(part)} characters of the {name} part of '{cfg.text_path}'"
            raise ConfigError.invalid("block_size", cfg.block_size, allowed)
    return train, val, vocabulary


class Windows(torch.utils.data.Dataset):
    """Every window of block_size + 1 characters (input and next-character target)."""

    def __init__(self, ids: torch.Tensor, block_size: int) -> None:
        self.ids, self.block_size = ids, block_size

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.ids[index : index + self.block_size + 1]


def build(cfg: Config, variant: str, vocabulary_size: int):
    from transformers import GPT2Config

    config = GPT2Config(vocab_size=vocabulary_size, n_positions=cfg.block_size, n_embd=cfg.dim, n_layer=cfg.layers,
                        n_head=cfg.heads, n_inner=cfg.dense_ffn, bos_token_id=None, eos_token_id=None)  # fmt: skip
    return gpt2_moe(config, VARIANTS[variant], cfg.experts, cfg.top_k, cfg.dense_ffn // cfg.top_k, cfg.rank)


@register("quadratic_gating.language")
class Language(Experiment):
    """Each variant trained from each seed; the validation loss in nats per character."""

    Config = Config
    Point = Point
    axes = ("variants", "seeds")
    run_name = "language"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch
    paths = ("text_path",)

    load_inputs = staticmethod(load_text)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        train_ids, val_ids, vocabulary = load_text(cfg)
        torch.manual_seed(point.seed)
        model = build(cfg, point.variant, len(vocabulary)).to(device)

        def loss_fn(model, batch):
            return next_token_loss(model, batch.to(device)) + cfg.aux_weight * moe_aux_loss(model)

        train = Windows(train_ids, cfg.block_size)
        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model,
            train,
            torch.stack,
            loss_fn,
            cfg.optimization,
            cfg.steps,
            run_dir,
            point.seed,
            cfg.checkpoint_every,
            monitor=monitor,
        )
        val = Windows(val_ids, cfg.block_size)
        starts = np.linspace(0, len(val) - 1, cfg.eval_windows).astype(int)  # fixed, evenly spread windows
        model.eval()
        with torch.no_grad():
            batch = torch.stack([val[int(i)] for i in starts]).to(device)
            val_loss = next_token_loss(model, batch).item()
        counts = parameter_counts(model)
        results = {
            "val_loss": val_loss,
            "train_loss": float(np.mean(losses[-50:])),
            "active_params": counts["active"],
            "total_params": counts["total"],
            "steps": cfg.steps,
        }
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses)}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point.variant} seed={point.seed}: validation loss {results['val_loss']:.4f}"


if __name__ == "__main__":
    Language.cli()
