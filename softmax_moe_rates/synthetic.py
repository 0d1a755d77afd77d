"""Synthetic rate experiments of the softmax-gating rates paper: one panel per row of its Table 1 (SM-1 ... SM-6).

Softmax MoE regression fitted over-specified (k = k* + 1): a linear gate omega^T x + beta with experts
c * tanh(a^T x / ||x|| + b), strongly identifiable (SM Def. 1), against linear experts a^T x + b (SM-1, SM-2);
the dense-to-sparse gate with a learnt temperature, (omega^T x + beta) / tau (SM-3), and with a tanh router,
(tanh(omega^T x) + beta) / tau (SM-4); and the two-level hierarchical MoE (SM Eq. (20)) with a known number of
groups and over-specified experts in each (SM-5, SM-6; ``common.synthetic.grouped``). The paper is theory only;
the settings are the spec's proposal (spec Sec. 5). Each panel is a config of one entry point:

    python -m softmax_moe_rates.synthetic --config softmax_moe_rates/configs/softmax.yaml [key=value ...]

Points are stored under ``results_dir/points/<config hash>`` and skipped when done; ``python -m
common.synthetic.figures paper=softmax_moe_rates`` draws the panels. The sweep is the shared
``common.synthetic.sweep``; this module holds the paper's defaults and restrictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from common.config import ConfigError
from common.experiment import register
from common.synthetic.grouped import GroupedMixture
from common.synthetic.models import MixtureOfExperts
from common.synthetic.sweep import (  # noqa: F401  (used by the figures and diagnostics)
    CurveConfig,
    Point,
    SweepConfig,
    fit_problem,
)
from common.synthetic.sweep import Synthetic as SyntheticSweep
from common.synthetic.truth import make_generator, sample_ground_truth

SCORES = ("linear", "linear_temperature", "tanh_temperature", "hierarchical_linear")  # SM Eq. (2), (12), (17), (20)


def _default_curve() -> CurveConfig:
    return CurveConfig(
        label="tanh", gate="softmax", expert="normalised_tanh", regime="zero_reference", loss="softmax_linear_l1"
    )


@dataclass
class Config(SweepConfig):
    figure: str = "softmax"
    curves: list[CurveConfig] = field(default_factory=lambda: [_default_curve()])
    num_atoms: list[int] = field(default_factory=lambda: [4])  # k = k* + 1, spec Sec. 5.1 (e)
    num_true: int = 3  # k* (hierarchical: k2*, true experts per group)
    num_groups: int = 1  # k1*: groups of the hierarchical model (known, fitted exactly); 1 for the flat rows
    dim: int = 4
    score: str = "linear"
    block_variances: dict[str, float] | None = field(
        default_factory=lambda: {"b": 1.0, "c": 0.25, "alpha": 1.0, "beta": 0.25}  # omega, beta, a, b of SM-1
    )
    min_separation: float | None = 1.0
    min_active_fraction: float = 0.0  # a rule for ReLU experts; these are tanh or linear
    results_dir: str = "results/softmax_moe_rates"

    @property
    def hierarchical(self) -> bool:
        return self.score == "hierarchical_linear"

    def validate(self) -> None:
        if self.score not in SCORES:
            raise ConfigError.invalid("score", self.score, f"one of {', '.join(SCORES)} (the rows of SM Table 1)")
        if self.hierarchical and self.num_groups < 2:
            raise ConfigError.invalid("num_groups", self.num_groups, "an integer >= 2 for the hierarchical model")
        if not self.hierarchical and self.num_groups != 1:
            raise ConfigError.invalid("num_groups", self.num_groups, f"1 for the flat score {self.score!r}")
        for i, curve in enumerate(self.curves):
            if curve.gate != "softmax":
                raise ConfigError.invalid(f"curves[{i}].gate", curve.gate, "softmax (SM Sec. 2)")
            if curve.regime != "zero_reference":
                raise ConfigError.invalid(
                    f"curves[{i}].regime", curve.regime, "zero_reference (SM (A.3): the last gating pair is zero)"
                )
        super().validate()

    def check_family(self) -> None:  # the scores are checked in validate
        pass

    def true_model(self, curve: CurveConfig):
        if not self.hierarchical:
            return super().true_model(curve)
        inner = MixtureOfExperts(curve.gate, "linear", curve.expert, self.dim, self.num_true)
        return GroupedMixture((inner,) * self.num_groups, outer="softmax")

    def draw_truth(self, curve: CurveConfig, model) -> torch.Tensor:
        """Flat rows: ``SweepConfig.draw_truth``. Hierarchical (spec Sec. 5.4 (e)): each group's experts drawn
        as a flat SM-1 truth from its own stream (last expert's (kappa, nu) = 0); group gates omega_g with the
        variance of b, beta_g with that of c, the last group's zero; groups at least min_separation apart."""
        if not self.hierarchical:
            return super().draw_truth(curve, model)
        inner = model.inner
        variances = self.block_variances or {}
        separation = 0.5 if self.min_separation is None else self.min_separation
        groups = [
            sample_ground_truth(
                inner,
                seed=self.truth_seed,
                gate_variance=self.gate_variance or 1.0 / self.dim,
                expert_variance=self.expert_variance or 1.0 / self.dim,
                zero_gate_atoms=(self.num_true - 1,),
                variances=variances,
                min_separation=separation,
                min_active_fraction=self.min_active_fraction,
                stream=("truth", g),
            )
            for g in range(self.num_groups)
        ]
        generator = make_generator(self.truth_seed, "outer")
        for _ in range(1000):
            outer = {
                "outer_b": torch.randn(self.num_groups, self.dim, generator=generator, dtype=torch.float64),
                "outer_c": torch.randn(self.num_groups, 1, generator=generator, dtype=torch.float64),
            }
            outer["outer_b"] *= math.sqrt(variances.get("b", self.gate_variance or 1.0 / self.dim))
            outer["outer_c"] *= math.sqrt(variances.get("c", self.gate_variance or 1.0 / self.dim))
            for block in outer.values():
                block[-1] = 0.0
            distances = torch.cdist(outer["outer_b"], outer["outer_b"]).fill_diagonal_(math.inf)
            if distances.min() >= separation:
                return model.assemble(groups, outer)
        raise ConfigError.invalid("min_separation", separation, "a separation of the group gates met in 1000 draws")

    def model_record(self, curve: CurveConfig) -> dict:
        return {"num_groups": self.num_groups} if self.hierarchical else {}


@register("softmax_moe_rates.synthetic")
class Synthetic(SyntheticSweep):
    Config = Config


if __name__ == "__main__":
    Synthetic.cli()
