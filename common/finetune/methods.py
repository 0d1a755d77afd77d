"""Which parameters a fine-tuning run trains: an adapter method on the backbone's projections, or all of them.

    model = adapt(model, "hyra", Adaptation(rank=8, alpha=8, options={"hyra": {"hidden_dim": 16}}), head=model.head)

Methods: our `lora`, `replora`, `replora_linear`, `hyra`; peft's `peft_lora`, `dora`, `vera`, `prefix`; and `full`
(full fine-tuning). The new classification head always trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from common.adapters import METHODS, PEFT_METHODS, apply_adapters, count_trainable
from common.config import ConfigError

FULL = "full"
ALL_METHODS = (*METHODS, *PEFT_METHODS, FULL)


@dataclass
class Adaptation:
    """Adapter settings shared by the methods of a sweep; ``options`` holds each method's own keywords."""

    targets: list[str] = field(default_factory=lambda: ["q", "v"])
    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        unknown = sorted(set(self.options) - set(ALL_METHODS))
        if unknown:
            raise ConfigError.invalid("adaptation.options", unknown, f"keys among {', '.join(ALL_METHODS)}")


def check_methods(methods: list[str], field_name: str = "methods") -> None:
    """Raise unless every name in ``methods`` is a known method and none repeats."""
    unknown = [m for m in methods if m not in ALL_METHODS]
    if not methods or unknown or len(set(methods)) != len(methods):
        raise ConfigError.invalid(field_name, methods, f"distinct names among {', '.join(ALL_METHODS)}")


def adapt(model: nn.Module, method: str, adaptation: Adaptation, head: nn.Module | None = None) -> nn.Module:
    """``model`` with only ``method``'s parameters (and the ``head``'s) trainable; peft methods return a PeftModel.

    Sets ``model.adapter_base_params`` (the backbone's parameters before adaptation) so that ``trainable`` can
    report the share.
    """
    check_methods([method], "method")
    if method == FULL:
        for p in model.parameters():
            p.requires_grad_(True)
        model.adapter_base_params = sum(p.numel() for p in model.parameters())
        return model
    adapted = apply_adapters(
        model,
        method,
        targets=adaptation.targets,
        rank=adaptation.rank,
        alpha=adaptation.alpha,
        dropout=adaptation.dropout,
        **adaptation.options.get(method, {}),
    )
    if head is not None:  # the same module object inside a PeftModel wrapper
        for p in head.parameters():
            p.requires_grad_(True)
    return adapted


def trainable(model: nn.Module, head: nn.Module | None = None) -> dict[str, float]:
    """Trainable parameters, their share (%) of the backbone, and the same without the head (the adapters alone)."""
    count, share = count_trainable(model)
    head_params = sum(p.numel() for p in head.parameters()) if head is not None else 0
    base = model.adapter_base_params
    return {
        "trainable_params": count,
        "trainable_pct": share,
        "adapter_params": count - head_params,
        "adapter_pct": 100.0 * (count - head_params) / base,
    }
