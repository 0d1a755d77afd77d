"""GPT2-MoE pre-training on FineWeb-Edu, evaluated on HellaSwag (Table 3; App. F.4, Tables 5-6): GPT-2 (124M)
dense, or with every FFN an MoE of 8 experts (width 1536, top-2) with a linear or a quadratic (rank 32) router.

    python -m common.data.lm_shards --source HuggingFaceFW/fineweb-edu --subset sample-10BT \\
        --tokenizer gpt2 --out data/fineweb_edu10B
    python -m quadratic_gating.pretrain --config quadratic_gating/configs/pretrain_fineweb.yaml \\
        shards_dir=data/fineweb_edu10B hellaswag_path=data/hellaswag/hellaswag_val.jsonl

The sweep is variants x seeds. Each point trains on random (block_size + 1)-token windows of the train shards
(`common.data.lm_shards`) with the shared loop: AdamW, `optimization.batch_size` windows per step accumulated over
micro-batches, linear warm-up then cosine decay to `min_lr`, gradient clipping, checkpoints every
`checkpoint_every` steps (a preempted job resumes). The MoE load-balancing loss is weighted by `aux_weight`. On a
GPU the forward pass runs in bfloat16 autocast. It reports the validation loss (nats per token) over the first
`val_windows` windows of the validation shard and the HellaSwag accuracy by completion likelihood
(`common.data.hellaswag`).

Table 6 prints warmup_steps = 19,073; that is the number of steps of one pass over 10B tokens at 524,288 tokens per
step, and a warm-up that long leaves no cosine decay. We train 19,073 steps and warm up for 715 (the GPT-3 ratio of
375M tokens); `optimization.warmup_steps` changes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.data.hellaswag import hellaswag_accuracy, load_hellaswag
from common.data.lm_shards import ShardWindows, load_tokenizer
from common.experiment import Experiment, register
from common.training import sweeps
from common.training.loop import Optimization, fit
from common.training.monitor import Monitoring
from common.training.sweeps import autocast, check_device
from quadratic_gating.models import gpt2_moe, moe_aux_loss, next_token_loss, parameter_counts

VARIANTS = {"dense": None, "moe_linear": "linear", "moe_quadratic": "quadratic"}
DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class Config(Monitoring):
    results_dir: str = "results/quadratic_gating"
    shards_dir: str = ""  # the output of `python -m common.data.lm_shards`
    tokenizer: str = "gpt2"  # the one that wrote the shards: bytes, a tokenizer folder or a hub name
    hellaswag_path: str = ""  # hellaswag_val.jsonl; "" skips HellaSwag
    hellaswag_examples: int = 0  # the first n examples; 0: all
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    seeds: list[int] = field(default_factory=lambda: [0])
    block_size: int = 1024
    layers: int = 12
    heads: int = 12
    dim: int = 768
    dense_ffn: int = 3072  # GPT2-dense (Table 5)
    experts: int = 8
    top_k: int = 2
    expert_ffn: int = 1536  # GPT2-MoE (Table 5)
    rank: int = 32  # the quadratic router's rank
    moe_every: int = 1  # MoE in every block (1), or every n-th (4: the reading of Table 5's totals)
    dropout: float = 0.0
    aux_weight: float = 0.01
    steps: int = 19_073
    optimization: Optimization = field(
        default_factory=lambda: Optimization(
            batch_size=512,
            micro_batch_size=64,
            learning_rate=6e-4,
            weight_decay=0.1,
            warmup_steps=715,
            scheduler="cosine",
            max_grad_norm=1.0,
        )  # fmt: skip
    )
    min_lr: float = 6e-5
    val_windows: int = 10_240  # 10.5M validation tokens at block_size 1024
    eval_batch_size: int = 64
    dtype: str = "auto"  # auto: bfloat16 autocast on a GPU, float32 on a CPU
    device: str = "auto"
    checkpoint_every: int = 250
    threads: int = 0

    def validate(self) -> None:
        super().validate()  # progress, tracker
        sweeps.check_names("variants", self.variants, list(VARIANTS))
        if not self.shards_dir:
            raise ConfigError.invalid("shards_dir", "", "the folder of token shards (python -m common.data.lm_shards)")
        if self.dtype not in DTYPES:
            raise ConfigError.invalid("dtype", self.dtype, f"one of {', '.join(DTYPES)}")
        check_device(self.device)
        if not 0 <= self.min_lr <= self.optimization.learning_rate:
            raise ConfigError.invalid("min_lr", self.min_lr, "in [0, optimization.learning_rate]")
        sweeps.check_positive(self, "block_size", "steps", "val_windows", "layers", "eval_batch_size", "moe_every")


@dataclass(frozen=True)
class Point:
    variant: str
    seed: int


def load_data(cfg: Config):
    """The tokenizer, the train and validation windows and the HellaSwag examples, read and checked."""
    tokenizer = load_tokenizer(cfg.tokenizer)
    train = ShardWindows(cfg.shards_dir, "train", cfg.block_size)
    val = ShardWindows(cfg.shards_dir, "val", cfg.block_size)
    for shard, path in ((val.shards[0], val.paths[0]), (train.shards[0], train.paths[0])):
        if int(shard.max()) >= tokenizer.vocab_size:  # written by another tokenizer
            raise ConfigError.invalid(
                "tokenizer", cfg.tokenizer, f"the tokenizer of the shards: {path} has ids >= {tokenizer.vocab_size}"
            )
    examples = load_hellaswag(cfg.hellaswag_path) if cfg.hellaswag_path else []
    if cfg.hellaswag_examples:
        examples = examples[: cfg.hellaswag_examples]
    return tokenizer, train, val, examples


def build(cfg: Config, variant: str, vocab_size: int) -> torch.nn.Module:
    from transformers import GPT2Config

    config = GPT2Config(
        vocab_size=vocab_size, n_positions=cfg.block_size, n_embd=cfg.dim, n_layer=cfg.layers, n_head=cfg.heads,
        n_inner=cfg.dense_ffn, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    return gpt2_moe(config, VARIANTS[variant], cfg.experts, cfg.top_k, cfg.expert_ffn, cfg.rank, cfg.moe_every)


@torch.no_grad()
def validation_loss(cfg: Config, model: torch.nn.Module, val: ShardWindows, device: torch.device) -> float:
    model.eval()
    count = min(cfg.val_windows, len(val))
    total = 0.0
    for start in range(0, count, cfg.eval_batch_size):
        batch = torch.stack([val[i] for i in range(start, min(count, start + cfg.eval_batch_size))]).to(device)
        with autocast(device, cfg.dtype):
            total += next_token_loss(model, batch).item() * len(batch)
    return total / count


@register("quadratic_gating.pretrain")
class Pretrain(Experiment):
    """Each variant pretrained from each seed; validation loss and HellaSwag accuracy."""

    Config = Config
    Point = Point
    axes = ("variants", "seeds")
    run_name = "pretrain"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """The shared record, with the shards and (when given) HellaSwag by their absolute paths."""
        record = super().record(cfg, point)
        for name in ("shards_dir", "hellaswag_path") if cfg.hellaswag_path else ("shards_dir",):
            record[name] = str(Path(getattr(cfg, name)).absolute())
        return record

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        tokenizer, train, val, examples = load_data(cfg)
        torch.manual_seed(point.seed)
        model = build(cfg, point.variant, tokenizer.vocab_size).to(device)

        def loss_fn(model, batch):
            with autocast(device, cfg.dtype):
                return next_token_loss(model, batch) + cfg.aux_weight * moe_aux_loss(model)

        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, train, lambda items: torch.stack(items).to(device), loss_fn, cfg.optimization, cfg.steps, run_dir,
            point.seed, cfg.checkpoint_every, final_lr_fraction=cfg.min_lr / cfg.optimization.learning_rate,
            monitor=monitor,
        )  # fmt: skip
        val_loss = validation_loss(cfg, model, val, device)
        with autocast(device, cfg.dtype):
            hellaswag = hellaswag_accuracy(model, tokenizer.encode, examples, cfg.block_size) if examples else None
        counts = parameter_counts(model)
        results = {
            "val_loss": val_loss,
            "hellaswag": hellaswag,
            "hellaswag_examples": len(examples),
            "train_loss": float(np.mean(losses[-50:])),
            "active_params": counts["active"],
            "total_params": counts["total"],
            "steps": cfg.steps,
            "tokens": cfg.steps * cfg.optimization.batch_size * cfg.block_size,
        }
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses)}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        hellaswag = "" if results["hellaswag"] is None else f", HellaSwag {results['hellaswag']:.2f}%"
        return f"{point.variant} seed={point.seed}: validation loss {results['val_loss']:.4f}{hellaswag}"


if __name__ == "__main__":
    Pretrain.cli()
