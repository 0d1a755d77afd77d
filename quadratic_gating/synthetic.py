"""Synthetic rate experiments of the quadratic-gating paper (Akbarian et al.): Figure 1, QG-1 ... QG-4.

Softmax MoE regression with a quadratic polynomial gate x^T A x + b^T x + c or a quadratic monomial gate
x^T A x + c, ReLU or linear experts, fitted over-specified (N = N* + 1). Each panel is a config of this one
entry point:

    python -m quadratic_gating.synthetic --config quadratic_gating/configs/fig1_polynomial.yaml [key=value ...]

A sweep point is (curve, N, n): R replicate least-squares fits batched into one program, all the Voronoi losses
defined for the gate (QG Eq. (17), (25), (27)) and the regression error ||f_G-hat - f_G*||. Points are stored under
``results_dir/points/<config hash>`` and skipped when done; ``python -m common.synthetic.figures
paper=quadratic_gating`` draws the panels. The sweep is the shared ``common.synthetic.sweep``; this module holds the
paper's defaults (QG App. F.1) and restrictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError
from common.experiment import register
from common.synthetic.sweep import (  # noqa: F401  (used by the figures and diagnostics)
    CurveConfig,
    Point,
    SweepConfig,
    fit_problem,
)
from common.synthetic.sweep import Synthetic as SyntheticSweep

REGIMES = ("zero_reference", "dense")


def _default_curve() -> CurveConfig:
    return CurveConfig(label="ReLU", gate="softmax", expert="relu", regime="zero_reference", loss="softmax_l1")


@dataclass
class Config(SweepConfig):
    figure: str = "fig1_polynomial"
    curves: list[CurveConfig] = field(default_factory=lambda: [_default_curve()])
    num_atoms: list[int] = field(default_factory=lambda: [9])  # over-specified, N = N* + 1 (spec Sec. 3.5)
    noise_variance: float = 0.049  # sigma^2 of QG App. F.1
    gate_variance: float | None = 0.01 / 8  # 0.01 / d of QG App. F.1, here for the default d = 8
    results_dir: str = "results/quadratic_gating"

    def validate(self) -> None:
        for i, curve in enumerate(self.curves):
            if curve.gate != "softmax":
                raise ConfigError.invalid(f"curves[{i}].gate", curve.gate, "softmax (the paper's gate)")
            if curve.regime not in REGIMES:
                raise ConfigError.invalid(f"curves[{i}].regime", curve.regime, f"one of {', '.join(REGIMES)}")
        super().validate()


@register("quadratic_gating.synthetic")
class Synthetic(SyntheticSweep):
    Config = Config


if __name__ == "__main__":
    Synthetic.cli()
