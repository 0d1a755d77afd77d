"""Synthetic rate experiments of the softmax-gating rates paper: one panel per row of its Table 1 (SM-1 ... SM-4).

Softmax MoE regression fitted over-specified (k = k* + 1): a linear gate omega^T x + beta with experts
c * tanh(a^T x / ||x|| + b), strongly identifiable (SM Def. 1), against linear experts a^T x + b (SM-1, SM-2);
the dense-to-sparse gate with a learnt temperature, (omega^T x + beta) / tau (SM-3), and with a tanh router,
(tanh(omega^T x) + beta) / tau (SM-4). The paper is theory only; the settings are the spec's proposal
(spec Sec. 5). Each panel is a config of one entry point:

    python -m softmax_moe_rates.synthetic --config softmax_moe_rates/configs/softmax.yaml [key=value ...]

Points are stored under ``results_dir/points/<config hash>`` and skipped when done;
``python -m softmax_moe_rates.figures`` draws the panels. The sweep is the shared ``common.synthetic.sweep``;
this module holds the paper's defaults and restrictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError, cli_config
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

SCORES = ("linear", "linear_temperature", "tanh_temperature")  # SM Eq. (2), (12), (17)


def _default_curve() -> CurveConfig:
    return CurveConfig(
        label="tanh", gate="softmax", expert="normalised_tanh", regime="zero_reference", loss="softmax_linear_l1"
    )


@dataclass
class Config(SweepConfig):
    figure: str = "softmax"
    curves: list[CurveConfig] = field(default_factory=lambda: [_default_curve()])
    num_atoms: list[int] = field(default_factory=lambda: [4])  # k = k* + 1, spec Sec. 5.1 (e)
    num_true: int = 3  # k*
    dim: int = 4
    score: str = "linear"
    block_variances: dict[str, float] | None = field(
        default_factory=lambda: {"b": 1.0, "c": 0.25, "alpha": 1.0, "beta": 0.25}  # omega, beta, a, b of SM-1
    )
    min_separation: float | None = 1.0
    min_active_fraction: float = 0.0  # a rule for ReLU experts; these are tanh or linear
    results_dir: str = "results/softmax_moe_rates"

    def validate(self) -> None:
        if self.score not in SCORES:
            raise ConfigError.invalid("score", self.score, f"one of {', '.join(SCORES)} (the rows of SM Table 1)")
        for i, curve in enumerate(self.curves):
            if curve.gate != "softmax":
                raise ConfigError.invalid(f"curves[{i}].gate", curve.gate, "softmax (SM Sec. 2)")
            if curve.regime != "zero_reference":
                raise ConfigError.invalid(
                    f"curves[{i}].regime", curve.regime, "zero_reference (SM (A.3): the last gating pair is zero)"
                )
        super().validate()


if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
