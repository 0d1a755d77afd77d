"""Trainable-parameter shares of our adapters on the papers' real model shapes, next to the printed ones.

    python -m common.adapters.shares      # prints the markdown table quoted in common/adapters/README.md

Models are built on the meta device (shapes only: nothing is allocated or downloaded). A share is 100 x
trainable / backbone parameters; for ViT-B/16 the new classification head counts in both (it trains and is
part of the fine-tuned model) and the share is averaged over the benchmark's datasets, which reproduces the
LoRA baselines the papers print.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import timm
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common.adapters.model import apply_adapters, count_trainable
from common.data.vision import FGVC_DATASETS, VTAB_TASKS

LLAMA = {
    "LLaMA-7B": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "LLaMA-13B": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
}
# classes per dataset: VTAB-1K's 19 tasks and the five FGVC datasets
VTAB_CLASSES = tuple(VTAB_TASKS.values())
FGVC_CLASSES = tuple(FGVC_DATASETS.values())


@dataclass
class Share:
    source: str  # paper and table
    backbone: str  # LLaMA-7B | LLaMA-13B | ViT-B/16 VTAB-1K | ViT-B/16 FGVC
    method: str
    targets: tuple[str, ...]
    rank: int
    printed: float  # the printed "#Params (%)"
    kwargs: dict = field(default_factory=dict)


SHARES = [
    Share("RepLoRA T1", "LLaMA-7B", "lora", ("q", "k", "v", "up", "down"), 32, 0.83),
    Share("RepLoRA T1", "LLaMA-7B", "replora", ("q", "k", "v", "up", "down"), 32, 1.01),
    Share("RepLoRA T1", "LLaMA-13B", "lora", ("q", "k", "v", "up", "down"), 32, 0.67),
    Share("RepLoRA T1", "LLaMA-13B", "replora", ("q", "k", "v", "up", "down"), 32, 0.99),
    Share("HyRA T3", "LLaMA-7B", "lora", ("q", "v"), 32, 0.25),
    Share("HyRA T3", "LLaMA-7B", "hyra", ("q", "v"), 32, 0.28, {"hidden_dim": 40}),
    Share("HyRA T3", "LLaMA-13B", "lora", ("q", "v"), 32, 0.2),
    Share("HyRA T3", "LLaMA-13B", "hyra", ("q", "v"), 32, 0.21, {"hidden_dim": 40}),
    Share("HyRA T5", "LLaMA-13B", "lora", ("q", "v", "up", "down"), 32, 0.57),
    Share("HyRA T5", "LLaMA-13B", "hyra", ("q", "v", "up", "down"), 32, 0.57, {"hidden_dim": 40}),
    Share("HyRA T1", "ViT-B/16 VTAB-1K", "lora", ("q", "v"), 8, 0.39),
    Share("HyRA T1", "ViT-B/16 VTAB-1K", "hyra", ("q", "v"), 8, 0.47, {"hidden_dim": 16}),
    Share("HyRA T2", "ViT-B/16 FGVC", "lora", ("q", "v"), 8, 0.55),
    Share("HyRA T2", "ViT-B/16 FGVC", "hyra", ("q", "v"), 8, 0.64, {"hidden_dim": 16}),
]


def backbone(name: str) -> torch.nn.Module:
    """The backbone on the meta device (ViT-B/16 without its head)."""
    with torch.device("meta"):
        if name in LLAMA:
            return LlamaForCausalLM(
                LlamaConfig(vocab_size=32000, num_key_value_heads=LLAMA[name]["num_attention_heads"], **LLAMA[name])
            )
        return timm.create_model("vit_base_patch16_224", num_classes=0)


def share(row: Share) -> float:
    """Our trainable share (%) for one printed row."""
    model = backbone(row.backbone)
    with torch.device("meta"):
        apply_adapters(model, row.method, targets=row.targets, rank=row.rank, alpha=2 * row.rank, **row.kwargs)
    trainable, percent = count_trainable(model)
    if not row.backbone.startswith("ViT"):
        return percent
    base, width = model.adapter_base_params, model.embed_dim
    classes = VTAB_CLASSES if "VTAB" in row.backbone else FGVC_CLASSES
    heads = [(width + 1) * c for c in classes]  # a new Linear(width, c) per dataset
    return sum(100 * (trainable + h) / (base + h) for h in heads) / len(heads)


def table() -> list[dict]:
    rows = []
    for row in SHARES:
        ours = share(row)
        rows.append(
            {
                "source": row.source,
                "backbone": row.backbone,
                "method": row.method,
                "targets": ",".join(row.targets),
                "rank": row.rank,
                "ours": ours,
                "printed": row.printed,
                "reproduced": round(ours, 2) == row.printed,
            }
        )
    return rows


def main() -> None:
    print("| source | backbone | method | targets | r | ours (%) | printed (%) | reproduced |")
    print("|---|---|---|---|---:|---:|---:|---|")
    for r in table():
        print(
            f"| {r['source']} | {r['backbone']} | {r['method']} | {r['targets']} | {r['rank']} | {r['ours']:.4f} | "
            f"{r['printed']} | {'yes' if r['reproduced'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
