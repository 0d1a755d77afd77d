"""Synthetic MoE regression engine: batched models, least-squares fitting, Voronoi losses, rate fitting."""

from common.synthetic.fitting import FitConfig, FitResult, fit_least_squares
from common.synthetic.models import EXPERTS, GATES, SCORES, MixtureOfExperts, gate_mass, gate_mass_inverse
from common.synthetic.rates import RateFit, fit_rate
from common.synthetic.truth import (
    cell_blocks,
    initialise_near_truth,
    make_generator,
    sample_data,
    sample_ground_truth,
    softmax_reference_gauge,
)
from common.synthetic.voronoi import (
    LOSSES,
    HierarchicalVoronoiLoss,
    VoronoiLoss,
    losses_for,
    rbar,
    sigmoid_l2,
    softmax_l2,
    softmax_mono_l2,
)

__all__ = [
    "EXPERTS",
    "GATES",
    "LOSSES",
    "SCORES",
    "FitConfig",
    "FitResult",
    "HierarchicalVoronoiLoss",
    "MixtureOfExperts",
    "RateFit",
    "VoronoiLoss",
    "cell_blocks",
    "fit_least_squares",
    "fit_rate",
    "gate_mass",
    "gate_mass_inverse",
    "initialise_near_truth",
    "losses_for",
    "make_generator",
    "rbar",
    "sample_data",
    "sample_ground_truth",
    "sigmoid_l2",
    "softmax_l2",
    "softmax_mono_l2",
    "softmax_reference_gauge",
]
