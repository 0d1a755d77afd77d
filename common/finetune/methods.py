"""Which parameters a fine-tuning run trains: an adapter method on the backbone's projections, or all of them.

    model = adapt(model, "hyra", Adaptation(rank=8, alpha=8, options={"hyra": {"hidden_dim": 16}}), head=model.head)

Methods: our `lora`, `replora`, `replora_linear`, `hyra`, the bottleneck `adapter`; peft's `peft_lora`, `dora`,
`vera`, `prefix`; `full`
(full fine-tuning); and *variants*, a name for a method with other options, e.g. the literal-text ablations

    adaptation.variants: {replora_relu: {method: replora, activation: relu},
                          hyra_paper_text: {method: hyra, init: paper_text, a_activation: sigmoid}}

A variant takes its method's `options` and overrides them. `match_params_of: <method>` raises the rank (and alpha
with it, keeping alpha / r) until the method has at least the trainable parameters of that one; the built-in
`lora_matched` is LoRA matched to RepLoRA. The new classification head always trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from common.adapters import (
    BOTTLENECK,
    METHODS,
    PEFT_METHODS,
    adapter_parameter_count,
    apply_adapters,
    check_method_options,
    count_trainable,
    lora_rank_for,
)
from common.config import ConfigError

FULL = "full"
MATCH = "match_params_of"  # variant option: raise the rank to this method's trainable parameters
BUILTIN_VARIANTS: dict[str, dict[str, Any]] = {"lora_matched": {"method": "lora", MATCH: "replora"}}
BASE_METHODS = (*METHODS, BOTTLENECK, *PEFT_METHODS, FULL)
ALL_METHODS = (*BASE_METHODS, *BUILTIN_VARIANTS)


@dataclass
class Adaptation:
    """Adapter settings shared by the methods of a sweep; ``options`` holds each method's own keywords and
    ``variants`` names other settings of a method (module docstring)."""

    targets: list[str] = field(default_factory=lambda: ["q", "v"])
    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def all_variants(self) -> dict[str, dict[str, Any]]:
        return {**BUILTIN_VARIANTS, **self.variants}

    def names(self) -> tuple[str, ...]:
        """Every method name a sweep may list."""
        return (*BASE_METHODS, *self.all_variants())

    def validate(self) -> None:
        unknown = sorted(set(self.options) - set(BASE_METHODS))
        if unknown:
            raise ConfigError.invalid("adaptation.options", unknown, f"keys among {', '.join(BASE_METHODS)}")
        for name, spec in self.variants.items():
            if name in BASE_METHODS or spec.get("method") not in BASE_METHODS:
                raise ConfigError.invalid(
                    f"adaptation.variants.{name}",
                    dict(spec),
                    f"a new name (not one of {', '.join(BASE_METHODS)}) with 'method' among {', '.join(BASE_METHODS)}",
                )
        for name in [*self.options, *self.variants]:
            method, options = self.resolve(name)
            reference = options.pop(MATCH, None)
            if reference is not None and (reference not in self.names() or reference == name):
                raise ConfigError.invalid(f"adaptation.variants.{name}.{MATCH}", reference, "another method's name")
            check_method_options(method, options, f"adaptation.options/variants.{name}")

    def resolve(self, name: str) -> tuple[str, dict[str, Any]]:
        """(the method, its options) of a method or variant name."""
        spec = dict(self.all_variants().get(name, {"method": name}))
        method = spec.pop("method")
        return method, {**self.options.get(method, {}), **spec}

    def record(self, name: str) -> dict[str, Any]:
        """What a run of ``name`` depends on: the shared settings and the method's resolved options."""
        method, options = self.resolve(name)
        return {
            "targets": list(self.targets), "rank": self.rank, "alpha": self.alpha, "dropout": self.dropout,
            "method": method, "options": options,
        }  # fmt: skip


def check_methods(methods: list[str], field_name: str = "methods", adaptation: Adaptation | None = None) -> None:
    """Raise unless every name in ``methods`` is a known method or variant and none repeats."""
    allowed = (adaptation or Adaptation()).names()
    unknown = [m for m in methods if m not in allowed]
    if not methods or unknown or len(set(methods)) != len(methods):
        raise ConfigError.invalid(field_name, methods, f"distinct names among {', '.join(allowed)}")


def adapt(model: nn.Module, method: str, adaptation: Adaptation, head: nn.Module | None = None) -> nn.Module:
    """``model`` with only ``method``'s parameters (and the ``head``'s) trainable; peft methods return a PeftModel.

    Sets ``model.adapter_base_params`` (the backbone's parameters before adaptation) so that ``trainable`` can
    report the share.
    """
    check_methods([method], "method", adaptation)
    base, options = adaptation.resolve(method)
    if base == FULL:
        for p in model.parameters():
            p.requires_grad_(True)
        model.adapter_base_params = sum(p.numel() for p in model.parameters())
        return model
    rank, alpha = adaptation.rank, adaptation.alpha
    reference = options.pop(MATCH, None)
    if reference is not None:
        ref_method, ref_options = adaptation.resolve(reference)
        params = adapter_parameter_count(model, ref_method, adaptation.targets, adaptation.rank, **ref_options)
        rank = lora_rank_for(model, adaptation.targets, params)
        alpha = adaptation.alpha * rank / adaptation.rank
    adapted = apply_adapters(
        model, base, targets=adaptation.targets, rank=rank, alpha=alpha, dropout=adaptation.dropout, **options
    )
    if head is not None:  # the same module object inside a PeftModel wrapper
        for p in head.parameters():
            p.requires_grad_(True)
    return adapted


def trainable(model: nn.Module, head: nn.Module | None = None) -> dict[str, float]:
    """Trainable parameters, their share (%) of the backbone, and the same without the head (the adapters alone),
    and the adapters' rank where there are adapters."""
    count, share = count_trainable(model)
    head_params = sum(p.numel() for p in head.parameters()) if head is not None else 0
    base = model.adapter_base_params
    counts = {
        "trainable_params": count,
        "trainable_pct": share,
        "adapter_params": count - head_params,
        "adapter_pct": 100.0 * (count - head_params) / base,
    }
    config = getattr(model, "adapter_config", None) or getattr(model, "peft_config", {}).get("default")
    rank = getattr(config, "rank", getattr(config, "r", None))
    return counts if rank is None else {**counts, "rank": rank}
