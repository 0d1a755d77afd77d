"""LoRA (Hu et al.): the factors are the parameters. Delta W = (alpha / r) B A, B zero-initialised, A
Kaiming-uniform (nn.Linear's default, as peft does), so the adapted model starts as the base model."""

from __future__ import annotations

import torch
from torch import nn

from common.adapters.layers import FactorGenerator, kaiming_uniform
from common.adapters.targets import Target


class LoRAFactors(FactorGenerator):
    """Independent (B, A) per target: the plain low-rank update, Eq. (17) of RepLoRA."""

    def __init__(self, targets: list[Target], rank: int):
        super().__init__(targets, rank)
        self.lora_A = nn.ParameterDict({t.name: kaiming_uniform(rank, t.in_features) for t in targets})  # (r, in)
        self.lora_B = nn.ParameterDict({t.name: nn.Parameter(torch.zeros(t.out_features, rank)) for t in targets})

    def generate(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {name: (self.lora_B[name], self.lora_A[name]) for name in self.target_shapes}
