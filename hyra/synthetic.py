"""Synthetic rate experiments of HyRA Sec. 3: multi-head LoRA as a hierarchical mixture of experts, HY-1, HY-2.

H attention heads with their own frozen matrices P_Q,h, P_K,h, P_V,h and constant head weights pi_h, each a
softmax mixture of rank-r LoRA experts (HyRA Eq. (6)), fitted with a known number of heads and over-specified
experts per head (L' = L + 1) by least squares (``common.synthetic.grouped``): independent vanilla factors per
head (Thm 1: slower than any polynomial rate) against the shared structure Z_h,j = sigmoid(B_h,j) sigmoid(A_j),
A_j shared by all heads (Eq. (9) with W = I, Thm 2: parametric). The paper is theory only; the settings are the
spec's proposal (spec Sec. 7.1 (e)). One entry point, one config per panel:

    python -m hyra.synthetic --config hyra/configs/multihead.yaml [key=value ...]

Points are stored under ``results_dir/points/<config hash>`` and skipped when done; ``python -m
common.synthetic.figures paper=hyra`` draws the panel. The sweep is the shared ``common.synthetic.sweep`` with the
LoRA family of ``common.synthetic.lora_sweep``, grouped into heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from common.config import ConfigError
from common.experiment import register
from common.synthetic.grouped import GroupedMixture
from common.synthetic.lora import LoRAMoE, frozen_matrices, sample_lora_truth
from common.synthetic.lora_sweep import LoRASweepConfig
from common.synthetic.sweep import (  # noqa: F401  (used by the figures and diagnostics)
    CurveConfig,
    Point,
    SweepConfig,
    fit_problem,
)
from common.synthetic.sweep import Synthetic as SyntheticSweep
from common.synthetic.voronoi import VoronoiLoss, losses_for

TIED = {"shared_sigmoid": ("V",), "shared_tanh": ("V",)}  # A_j of Eq. (9), shared across heads: block V


def _default_curve() -> CurveConfig:
    return CurveConfig(label="shared", gate="softmax", expert="shared_sigmoid", regime="dense", loss="multihead_d2")


@dataclass
class Config(LoRASweepConfig):
    figure: str = "multihead"
    curves: list[CurveConfig] = field(default_factory=lambda: [_default_curve()])  # expert: the LoRA variant
    num_atoms: list[int] = field(default_factory=lambda: [3])  # L' = L + 1 experts per head
    head_weights: list[float] = field(default_factory=lambda: [0.35, 0.65])  # pi*_h; their number is H
    results_dir: str = "results/hyra"

    def check_family(self) -> None:
        super().check_family()
        if len(self.head_weights) < 2 or not all(0 < w < 1 for w in self.head_weights):
            raise ConfigError.invalid("head_weights", self.head_weights, "at least 2 head weights pi*_h in (0, 1)")

    def check_curve(self, i: int, curve: CurveConfig) -> None:
        super().check_curve(i, curve)
        if curve.expert == "shared":
            raise ConfigError.invalid(
                f"curves[{i}].expert", curve.expert, "vanilla, shared_sigmoid or shared_tanh (HyRA Eq. (6), (9))"
            )

    def describe(self, curve: CurveConfig) -> str:
        return f"the multi-head {curve.expert} LoRA family"

    def curve_losses(self, curve: CurveConfig) -> dict[str, VoronoiLoss]:
        return losses_for("softmax", f"multihead_lora_{curve.expert}")

    def true_model(self, curve: CurveConfig) -> GroupedMixture:
        heads = tuple(
            LoRAMoE(
                curve.expert,
                self.dim,
                self.num_true,
                self.rank,
                frozen_matrices(self.dim, self.truth_seed, self.identity_key, h),
            )
            for h in range(len(self.head_weights))
        )
        return GroupedMixture(heads, outer="constant", tied=TIED.get(curve.expert, ()))

    def draw_truth(self, curve: CurveConfig, model: GroupedMixture) -> torch.Tensor:
        """Each head's experts as a RepLoRA truth from its own stream (c* = (0.5, 0)), pi* from the config; with
        A_j shared, every head takes head 0's A_j, and draws repeat until each head's products are apart."""
        pi = torch.tensor(self.head_weights, dtype=torch.float64)[:, None]
        for attempt in range(100):
            heads = [
                sample_lora_truth(
                    head,
                    seed=self.truth_seed,
                    factor_std=self.factor_std_of(curve),
                    constant=self.true_constant,
                    min_separation=self.separation,
                    stream=("lora-truth", h, attempt),
                )
                for h, head in enumerate(model.inners)
            ]
            theta = model.assemble(heads, {"pi_logit": torch.logit(pi)})
            blocks = model.blocks(theta)
            location = blocks["Z"] if "Z" in blocks else torch.cat([blocks["ZQ"], blocks["ZV"]], -1)
            K = self.num_true
            apart = all(torch.pdist(location[h * K : (h + 1) * K]).min() >= self.separation for h in range(len(heads)))
            if apart:
                return theta
        raise ConfigError.invalid("min_separation", self.separation, "a separation the shared A_j meet in 100 draws")

    def model_record(self, curve: CurveConfig) -> dict:
        return {**super().model_record(curve), "family": "multihead_lora", "head_weights": list(self.head_weights)}


@register("hyra.synthetic")
class Synthetic(SyntheticSweep):
    Config = Config


if __name__ == "__main__":
    Synthetic.cli()
