"""Synthetic rate experiments of the sigmoid-attention paper (Yan et al.): Figures 1a, 1b, 2a, 2b.

Each panel is a config (``sigmoid_attention/configs/<panel>[_smoke].yaml``) of this one entry point:

    python -m sigmoid_attention.synthetic --config sigmoid_attention/configs/fig1a.yaml [key=value ...]

A sweep point is (curve, number of fitted atoms N, sample size n): R replicate least-squares fits of a
quadratic-gating MoE (SG Eq. (5), App. E) batched into one program, their Voronoi losses and the regression error
||f_G-hat - f_G*||. Points are stored under ``results_dir/points/<config hash>`` and skipped when done; ``python -m
common.synthetic.figures paper=sigmoid_attention`` draws the panels from them. The sweep itself is the shared
``common.synthetic.sweep``; this module holds the paper's defaults and restrictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError
from common.experiment import register
from common.synthetic.sweep import (  # noqa: F401  (used by the figures and diagnostics)
    CurveConfig,
    Point,
    SweepConfig,
    best_approximation,
    fit_problem,
    needs_best_approximation,
    zero_gate_atoms,
)
from common.synthetic.sweep import Synthetic as SyntheticSweep

REGIMES = ("dense", "sparse")


@dataclass
class Config(SweepConfig):
    figure: str = "fig1a"
    curves: list[CurveConfig] = field(default_factory=lambda: [CurveConfig()])
    noise_variance: float = 0.01  # nu of SG App. E; gate and expert variances default to 1/d (App. E)
    results_dir: str = "results/sigmoid_attention"

    def validate(self) -> None:
        if self.score != "quadratic_polynomial":
            raise ConfigError.invalid(
                "score", self.score, "quadratic_polynomial (SG App. E; the partial score's L4/L5 are not implemented)"
            )
        for i, curve in enumerate(self.curves):
            if curve.regime not in REGIMES:
                raise ConfigError.invalid(f"curves[{i}].regime", curve.regime, f"one of {', '.join(REGIMES)}")
        super().validate()


@register("sigmoid_attention.synthetic")
class Synthetic(SyntheticSweep):
    Config = Config


if __name__ == "__main__":
    Synthetic.cli()
