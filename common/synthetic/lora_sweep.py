"""The sweep settings of the LoRA-as-MoE families (RepLoRA Sec. 4, HyRA Sec. 3), shared by both papers.

``LoRASweepConfig`` is a ``SweepConfig`` whose curves name a LoRA variant in their ``expert`` field (vanilla,
shared, shared_sigmoid, shared_tanh; ``common.synthetic.lora``); a paper subclasses it with its defaults, and
HyRA's multi-head model overrides the model and truth hooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.config import ConfigError
from common.synthetic.lora import VARIANTS, LoRAMoE, frozen_matrices, sample_lora_truth
from common.synthetic.sweep import CurveConfig, SweepConfig
from common.synthetic.voronoi import VoronoiLoss, losses_for


@dataclass
class LoRASweepConfig(SweepConfig):
    num_atoms: list[int] | None = None  # L' per setting (set by the paper)
    num_true: int = 2  # L
    dim: int = 4  # d-bar
    rank: int = 1  # r
    identity_key: bool = True  # M_K = I as in the proofs; false: random like M_Q, M_V
    factor_std: float = 0.5  # true B, A entries (spec Sec. 6.4)
    squashed_factor_std: float = 1.0  # true U, V entries of the non-linear reparameterisation
    true_constant: float = 0.5  # c* of every atom but the reference (c* = 0)
    min_separation: float | None = 0.5  # between the true products (Z_Q, Z_V)

    def check_family(self) -> None:
        if not 1 <= self.rank <= self.dim:
            raise ConfigError.invalid("rank", self.rank, f"an integer in [1, dim = {self.dim}]")
        for name in ("factor_std", "squashed_factor_std"):
            if getattr(self, name) <= 0:
                raise ConfigError.invalid(name, getattr(self, name), "a positive number")

    def check_curve(self, i: int, curve: CurveConfig) -> None:
        if curve.gate != "softmax":
            raise ConfigError.invalid(f"curves[{i}].gate", curve.gate, "softmax (RepLoRA Eq. (11), HyRA Eq. (6))")
        if curve.expert not in VARIANTS:
            raise ConfigError.invalid(f"curves[{i}].expert", curve.expert, f"a LoRA variant: {', '.join(VARIANTS)}")
        if curve.regime != "dense":
            raise ConfigError.invalid(f"curves[{i}].regime", curve.regime, "dense (every atom is random)")

    def describe(self, curve: CurveConfig) -> str:
        return f"the {curve.expert} LoRA family"

    def curve_losses(self, curve: CurveConfig) -> dict[str, VoronoiLoss]:
        return losses_for("softmax", f"lora_{curve.expert}")

    def factor_std_of(self, curve: CurveConfig) -> float:
        return self.factor_std if curve.expert in ("vanilla", "shared") else self.squashed_factor_std

    @property
    def separation(self) -> float:
        return 0.5 if self.min_separation is None else self.min_separation

    def true_model(self, curve: CurveConfig) -> LoRAMoE:
        frozen = frozen_matrices(self.dim, self.truth_seed, self.identity_key)
        return LoRAMoE(curve.expert, self.dim, self.num_true, self.rank, frozen)

    def draw_truth(self, curve: CurveConfig, model: LoRAMoE) -> torch.Tensor:
        return sample_lora_truth(
            model,
            seed=self.truth_seed,
            factor_std=self.factor_std_of(curve),
            constant=self.true_constant,
            min_separation=self.separation,
        )

    def model_record(self, curve: CurveConfig) -> dict:
        keys = ("rank", "identity_key", "factor_std", "squashed_factor_std", "true_constant")
        return {"family": "lora", **{k: getattr(self, k) for k in keys}}
