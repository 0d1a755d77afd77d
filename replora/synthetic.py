"""Synthetic rate experiments of RepLoRA Sec. 4: LoRA as a mixture of experts, RL-1 ... RL-3.

One attention head with frozen M_Q, M_K, M_V and softmax-gated rank-r LoRA experts (``common.synthetic.lora``),
fitted over-specified (L' = L + 1) by least squares: vanilla LoRA with separate query and value factors
(Thm 4.1: slower than any polynomial rate), against one shared product Z = B A (linear reparameterisation,
Thm 4.2) and Z = sigmoid(U) sigmoid(V) (non-linear, Thm 4.3), both parametric. The paper is theory only;
the settings are the spec's proposal (spec Sec. 6.4). One entry point, one config per panel:

    python -m replora.synthetic --config replora/configs/lora.yaml [key=value ...]

Points are stored under ``results_dir/points/<config hash>`` and skipped when done; ``python -m
replora.figures`` draws the panels. The sweep is the shared ``common.synthetic.sweep`` with the LoRA family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from common.config import ConfigError, cli_config
from common.synthetic.lora import VARIANTS, LoRAMoE, frozen_matrices, sample_lora_truth
from common.synthetic.sweep import (  # noqa: F401  (the experiment contract of slurm.submit)
    CurveConfig,
    Point,
    SweepConfig,
    fit_problem,
    is_done,
    main,
    point_dir,
    run_point,
    sweep,
)
from common.synthetic.voronoi import VoronoiLoss, losses_for


def _default_curve() -> CurveConfig:
    return CurveConfig(label="shared Z", gate="softmax", expert="shared", regime="dense", loss="lora_d2")


@dataclass
class Config(SweepConfig):
    figure: str = "lora"
    curves: list[CurveConfig] = field(default_factory=lambda: [_default_curve()])  # expert: the LoRA variant
    num_atoms: list[int] = field(default_factory=lambda: [3])  # L' = L + 1
    num_true: int = 2  # L
    dim: int = 4  # d-bar
    rank: int = 1  # r
    identity_key: bool = True  # M_K = I as in the proofs; false: random like M_Q, M_V
    factor_std: float = 0.5  # true B, A entries (spec Sec. 6.4)
    squashed_factor_std: float = 1.0  # true U, V entries of the non-linear reparameterisation
    true_constant: float = 0.5  # c* of every atom but the reference (c* = 0)
    min_separation: float | None = 0.5  # between the true products (Z_Q, Z_V)
    results_dir: str = "results/replora"

    def check_family(self) -> None:
        if not 1 <= self.rank <= self.dim:
            raise ConfigError.invalid("rank", self.rank, f"an integer in [1, dim = {self.dim}]")
        for name in ("factor_std", "squashed_factor_std"):
            if getattr(self, name) <= 0:
                raise ConfigError.invalid(name, getattr(self, name), "a positive number")

    def check_curve(self, i: int, curve: CurveConfig) -> None:
        if curve.gate != "softmax":
            raise ConfigError.invalid(f"curves[{i}].gate", curve.gate, "softmax (RepLoRA Eq. (11))")
        if curve.expert not in VARIANTS:
            raise ConfigError.invalid(f"curves[{i}].expert", curve.expert, f"a LoRA variant: {', '.join(VARIANTS)}")
        if curve.regime != "dense":
            raise ConfigError.invalid(f"curves[{i}].regime", curve.regime, "dense (every atom is random)")

    def describe(self, curve: CurveConfig) -> str:
        return f"the {curve.expert} LoRA family"

    def curve_losses(self, curve: CurveConfig) -> dict[str, VoronoiLoss]:
        return losses_for("softmax", f"lora_{curve.expert}")

    def true_model(self, curve: CurveConfig) -> LoRAMoE:
        frozen = frozen_matrices(self.dim, self.truth_seed, self.identity_key)
        return LoRAMoE(curve.expert, self.dim, self.num_true, self.rank, frozen)

    def draw_truth(self, curve: CurveConfig, model: LoRAMoE) -> torch.Tensor:
        std = self.factor_std if curve.expert in ("vanilla", "shared") else self.squashed_factor_std
        separation = 0.5 if self.min_separation is None else self.min_separation
        return sample_lora_truth(
            model, seed=self.truth_seed, factor_std=std, constant=self.true_constant, min_separation=separation
        )

    def model_record(self, curve: CurveConfig) -> dict:
        keys = ("rank", "identity_key", "factor_std", "squashed_factor_std", "true_constant")
        return {"family": "lora", **{k: getattr(self, k) for k in keys}}


if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
