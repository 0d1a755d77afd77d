"""Export any of our adapters as a standard peft LoRA directory.

Every method materialises to plain LoRA factors (B, A) per adapted weight, so the export is exact for every
backbone: a separate projection (q_proj, value, ...) becomes one peft LoRA layer of rank r and alpha; a fused
projection (GPT-2 ``c_attn``, timm ``qkv``) whose Q and V rows are adapted becomes one peft LoRA layer of rank
2r on the whole fused weight, with A = [A_Q; A_V] (2r, in) and a block B (3d, 2r) holding B_Q in the Q rows,
B_V in the V rows and zeros in the K rows; its alpha is 2 alpha so that the scaling alpha / r is unchanged
(peft's ``rank_pattern`` / ``alpha_pattern``). peft then computes exactly our Delta W, K rows untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from common.adapters.model import lora_factors, projections_of, refuse_bottleneck
from common.adapters.targets import is_conv1d
from common.config import ConfigError
from common.runs import atomic_save_safetensors

PEFT_WEIGHTS = "adapter_model.safetensors"


def export_peft_lora(model: nn.Module, directory: str | Path) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` that ``peft.PeftModel.from_pretrained(base,
    directory)`` loads onto the unadapted base model, reproducing this model's outputs."""
    from peft import LoraConfig

    if not hasattr(model, "adapter_config"):
        raise ConfigError.invalid("model", type(model).__name__, "a model adapted by apply_adapters")
    refuse_bottleneck(model, "export_peft_lora")
    cfg = model.adapter_config
    conv = {is_conv1d(projection.base) for _, projection in projections_of(model)}
    if len(conv) > 1:
        raise ConfigError(
            "export_peft_lora: peft's fan_in_fan_out is one flag per adapter; this model mixes "
            "Conv1D and Linear projections"
        )
    state, rank_pattern, alpha_pattern = {}, {}, {}
    factors = lora_factors(model)
    for path, parts in factors.items():
        out_features = model.get_submodule(path).base.weight.shape[1 if conv == {True} else 0]
        rank = cfg.rank * len(parts)
        A = torch.cat([a for _, _, _, a in parts])  # (rank, in)
        B = A.new_zeros(out_features, rank)  # (out, rank): block-diagonal by target
        for i, (_, rows, b, _) in enumerate(parts):
            B[rows, i * cfg.rank : (i + 1) * cfg.rank] = b
        state[f"base_model.model.{path}.lora_A.weight"] = A.contiguous()
        state[f"base_model.model.{path}.lora_B.weight"] = B.contiguous()
        if rank != cfg.rank:
            rank_pattern[path], alpha_pattern[path] = rank, cfg.alpha * len(parts)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=sorted(factors),
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        fan_in_fan_out=conv == {True},
    ).save_pretrained(str(directory))
    atomic_save_safetensors(directory / PEFT_WEIGHTS, state)
    return directory
