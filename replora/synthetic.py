"""Synthetic rate experiments of RepLoRA Sec. 4: LoRA as a mixture of experts, RL-1 ... RL-3.

One attention head with frozen M_Q, M_K, M_V and softmax-gated rank-r LoRA experts (``common.synthetic.lora``),
fitted over-specified (L' = L + 1) by least squares: vanilla LoRA with separate query and value factors
(Thm 4.1: slower than any polynomial rate), against one shared product Z = B A (linear reparameterisation,
Thm 4.2) and Z = sigmoid(U) sigmoid(V) (non-linear, Thm 4.3), both parametric. The paper is theory only;
the settings are the spec's proposal (spec Sec. 6.4). One entry point, one config per panel:

    python -m replora.synthetic --config replora/configs/lora.yaml [key=value ...]

Points are stored under ``results_dir/points/<config hash>`` and skipped when done; ``python -m
common.synthetic.figures paper=replora`` draws the panels. The sweep is the shared ``common.synthetic.sweep`` with
the LoRA family (``common.synthetic.lora_sweep``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.experiment import register
from common.synthetic.lora_sweep import LoRASweepConfig
from common.synthetic.sweep import (  # noqa: F401  (used by the figures and diagnostics)
    CurveConfig,
    Point,
    SweepConfig,
    fit_problem,
)
from common.synthetic.sweep import Synthetic as SyntheticSweep


def _default_curve() -> CurveConfig:
    return CurveConfig(label="shared Z", gate="softmax", expert="shared", regime="dense", loss="lora_d2")


@dataclass
class Config(LoRASweepConfig):
    figure: str = "lora"
    curves: list[CurveConfig] = field(default_factory=lambda: [_default_curve()])  # expert: the LoRA variant
    num_atoms: list[int] = field(default_factory=lambda: [3])  # L' = L + 1
    results_dir: str = "results/replora"


@register("replora.synthetic")
class Synthetic(SyntheticSweep):
    Config = Config


if __name__ == "__main__":
    Synthetic.cli()
