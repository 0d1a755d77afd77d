"""peft's LoRA, DoRA, VeRA and prefix tuning as baselines, behind the same ``apply_adapters(model, method, ...)``.

The target modules are the ones our injector finds, so a config switches between our methods and peft's by
the method name alone.
"""

from __future__ import annotations

from torch import nn

from common.adapters.targets import TARGETS, find_sites, is_conv1d
from common.config import ConfigError

PEFT_METHODS = ("peft_lora", "dora", "vera", "prefix")


def apply_peft(
    model: nn.Module, method: str, targets=("q", "v"), rank: int = 8, alpha: float = 8.0, dropout: float = 0.0, **kwargs
) -> nn.Module:
    """peft's LoRA, DoRA, VeRA or prefix tuning on ``model``; returns the ``PeftModel``.

    On a fused projection peft adapts the whole weight (Q, K and V rows): Q/V-only adaptation of a fused
    ``qkv`` needs our own ``lora``. Prefix tuning needs a transformers model (it reads the layer and head counts
    from its config); ``num_virtual_tokens`` defaults to ``rank``.
    """
    import peft

    if method not in PEFT_METHODS:
        raise ConfigError.invalid("method", method, f"one of {', '.join(PEFT_METHODS)}")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ConfigError.invalid("targets", list(targets), f"names among {', '.join(TARGETS)}")
    base_params = sum(p.numel() for p in model.parameters())
    if method == "prefix":
        if not hasattr(model, "config") or not hasattr(model.config, "num_hidden_layers"):
            raise ConfigError.invalid(
                "method", method, "peft_lora, dora or vera for a model without a transformers config"
            )
        kwargs.setdefault("task_type", _task_type(model))
        config = peft.PrefixTuningConfig(num_virtual_tokens=kwargs.pop("num_virtual_tokens", rank), **kwargs)
    else:
        paths = sorted({t.path for site in find_sites(model, list(targets)) for t in site.targets})
        conv = any(is_conv1d(model.get_submodule(p)) for p in paths)
        if method == "vera":
            config = peft.VeraConfig(r=rank, target_modules=paths, vera_dropout=dropout, fan_in_fan_out=conv, **kwargs)
        else:
            config = peft.LoraConfig(
                r=rank,
                lora_alpha=alpha,
                lora_dropout=dropout,
                target_modules=paths,
                use_dora=method == "dora",
                fan_in_fan_out=conv,
                **kwargs,
            )
    peft_model = peft.get_peft_model(model, config)
    peft_model.adapter_base_params = base_params
    return peft_model


def _task_type(model: nn.Module) -> str:
    names = type(model).__name__
    if names.endswith("ForCausalLM"):
        return "CAUSAL_LM"
    if names.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    return "FEATURE_EXTRACTION"
