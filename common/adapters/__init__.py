"""LoRA, RepLoRA and HyRA on one shared adapter base for transformers and timm backbones (see README.md).

from common.adapters import apply_adapters, merge_adapters, export_peft_lora, count_trainable
model = apply_adapters(model, "replora", targets=("q", "v"), rank=8, alpha=8)
"""

from common.adapters.accounting import ppt
from common.adapters.baselines import PEFT_METHODS
from common.adapters.export import export_peft_lora
from common.adapters.model import (
    BOTTLENECK,
    METHODS,
    AdapterConfig,
    adapter_parameter_count,
    adapter_state_dict,
    apply_adapters,
    check_method_options,
    count_trainable,
    load_adapters,
    lora_factors,
    lora_rank_for,
    merge_adapters,
    save_adapters,
    unmerge_adapters,
)

__all__ = [
    "BOTTLENECK",
    "METHODS",
    "PEFT_METHODS",
    "AdapterConfig",
    "adapter_parameter_count",
    "adapter_state_dict",
    "apply_adapters",
    "check_method_options",
    "count_trainable",
    "export_peft_lora",
    "load_adapters",
    "lora_factors",
    "lora_rank_for",
    "merge_adapters",
    "ppt",
    "save_adapters",
    "unmerge_adapters",
]
