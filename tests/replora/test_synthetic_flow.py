"""RepLoRA's LoRA-as-MoE checks: config errors before any work, and the fit on a tiny problem."""

import re
from pathlib import Path

import pytest
import torch

from common.config import ConfigError, load_config
from common.synthetic import FitConfig
from common.synthetic.experiment import fit_replicates
from replora import synthetic

CONFIGS = Path(synthetic.__file__).parent / "configs"


@pytest.mark.parametrize(
    "override,message",
    [
        ("rank=5", "config field 'rank' = 5 is not allowed: an integer in [1, dim = 4]"),
        ("curves=[{gate: softmax, expert: dora, loss: lora_d2}]", "'curves[0].expert' = 'dora' is not allowed"),
        (
            "curves=[{gate: softmax, expert: shared, loss: lora_d3}]",
            "'curves[0].loss' = 'lora_d3' is not allowed: a Voronoi loss of the shared LoRA family: lora_d2",
        ),
        ("curves=[{gate: sigmoid, expert: shared, loss: lora_d2}]", "'curves[0].gate' = 'sigmoid'"),
        ("factor_std=0", "'factor_std' = 0.0 is not allowed"),
    ],
)
def test_bad_config_fails_naming_field_value_and_allowed(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / "lora.yaml", [override])


def test_shared_lora_fit_recovers_the_products_at_large_n():
    cfg = load_config(synthetic.Config, CONFIGS / "lora.yaml", ["num_atoms=[2]"])
    problem = synthetic.fit_problem(cfg, cfg.curves[1], 2)  # shared Z, exactly specified
    errors = []
    for n in (500, 20000):
        fit, _ = fit_replicates(problem, n, seed=0, replicates=range(2), fit=FitConfig(max_iter=100))
        z, z_true = problem.fitted.blocks(fit.theta)["Z"], problem.truth.blocks(problem.theta_true)["Z"]
        errors.append((z - z_true).norm(dim=-1).max().item())
        if n == 20000:
            assert fit.converged.all()
    assert errors[1] < errors[0] / 3 and errors[1] < 0.1, errors  # 40x the data: ~6x smaller
    assert torch.isfinite(torch.tensor(errors)).all()
