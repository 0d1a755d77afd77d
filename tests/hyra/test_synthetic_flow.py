"""HyRA's multi-head LoRA checks: config errors before any work, the truth of spec Sec. 7.1 (e), a tiny fit."""

import re
from pathlib import Path

import pytest
import torch

from common.config import ConfigError, load_config
from common.synthetic import FitConfig
from common.synthetic.experiment import fit_replicates, regression_error
from common.synthetic.truth import make_generator, sample_inputs
from hyra import synthetic

CONFIGS = Path(synthetic.__file__).parent / "configs"


@pytest.mark.parametrize(
    "override,message",
    [
        ("rank=5", "config field 'rank' = 5 is not allowed: an integer in [1, dim = 4]"),
        ("head_weights=[0.5]", "'head_weights' = [0.5] is not allowed: at least 2 head weights pi*_h in (0, 1)"),
        ("head_weights=[0.5,1.5]", "'head_weights' = [0.5, 1.5] is not allowed"),
        (
            "curves=[{gate: softmax, expert: shared, loss: multihead_d2}]",
            "'curves[0].expert' = 'shared' is not allowed: vanilla, shared_sigmoid or shared_tanh",
        ),
        (
            "curves=[{gate: softmax, expert: vanilla, loss: multihead_d2}]",
            "'curves[0].loss' = 'multihead_d2' is not allowed: a Voronoi loss of the multi-head vanilla LoRA family",
        ),
        ("num_atoms=[1]", "N >= num_true (N* = 2)"),
    ],
)
def test_bad_config_fails_naming_field_value_and_allowed(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / "multihead.yaml", [override])


def test_truth_has_per_head_frozen_matrices_shared_a_and_the_head_weights():
    cfg = load_config(synthetic.Config, CONFIGS / "multihead.yaml")
    problem = synthetic.fit_problem(cfg, cfg.curves[1], 3)  # HY-2
    model, blocks = problem.truth, problem.truth.blocks(problem.theta_true)
    torch.testing.assert_close(blocks["pi"][[0, 2], 0], torch.tensor([0.35, 0.65], dtype=torch.float64))
    torch.testing.assert_close(blocks["V"][:2], blocks["V"][2:])  # A_j shared across heads
    assert not torch.allclose(blocks["U"][:2], blocks["U"][2:])  # B_h,j per head
    assert not torch.allclose(model.inners[0].frozen[0], model.inners[1].frozen[0])
    torch.testing.assert_close(model.inners[1].frozen[1], torch.eye(4, dtype=torch.float64))  # P_K = I
    assert blocks["c"][:, 0].tolist() == [0.5, 0.0, 0.5, 0.0]
    vanilla = synthetic.fit_problem(cfg, cfg.curves[0], 3).truth.blocks(
        synthetic.fit_problem(cfg, cfg.curves[0], 3).theta_true
    )
    assert not torch.allclose(vanilla["AV"][:2], vanilla["AV"][2:])  # HY-1: independent factors per head


def test_shared_fit_recovers_the_function_and_head_weights_at_large_n():
    # The products Z_h,j themselves need far more data in this setting (Fisher n_local ~ 5e7, README): the
    # function and the head weights are what 2e4 samples pin down.
    cfg = load_config(synthetic.Config, CONFIGS / "multihead.yaml", ["num_atoms=[2]"])
    problem = synthetic.fit_problem(cfg, cfg.curves[1], 2)  # HY-2, exactly specified
    x = sample_inputs(20000, cfg.dim, make_generator(1, "test"))
    pi_true = problem.truth.blocks(problem.theta_true)["pi"]
    errors = []
    for n in (500, 20000):
        fit, _ = fit_replicates(problem, n, seed=0, replicates=range(2), fit=FitConfig(max_iter=100))
        function = regression_error(problem.fitted, fit.theta, problem.truth, problem.theta_true, x).max().item()
        errors.append((function, (problem.fitted.blocks(fit.theta)["pi"] - pi_true).abs().max().item()))
    (f_small, _), (f_large, pi_large) = errors
    assert f_large < f_small / 3 and pi_large < 0.01, errors  # 40x the data: ~6x smaller
