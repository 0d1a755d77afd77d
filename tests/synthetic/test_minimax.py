"""The minimax family of the slow-rate theorems: its truths are the proofs' construction, and the fits cannot
tell them apart where the data cannot."""

import math

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from common.synthetic.minimax import envelope_rate, split_truth
from common.synthetic.sweep import fit_problem
from quadratic_gating import minimax as qg_minimax
from sigmoid_attention import minimax as sg_minimax

CONFIGS = {"sigmoid": sg_minimax, "softmax": qg_minimax}


def family(gate, extra=()):
    module = CONFIGS[gate]
    path = f"{'sigmoid_attention' if gate == 'sigmoid' else 'quadratic_gating'}/configs/minimax_smoke.yaml"
    return load_config(module.Config, path, list(extra)).expanded()


@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
def test_the_truths_are_the_construction(gate):
    cfg = family(gate)  # curves: linear at eps 0, 0.1, 1; ReLU at eps 0, 0.1, 1
    base = fit_problem(cfg, cfg.curves[0], cfg.num_atoms[0])
    assert base.theta_true.shape[0] == cfg.num_true  # eps = 0: G* itself
    model = base.truth
    g = model.blocks(base.theta_true)
    last = cfg.num_true - 1
    assert torch.all(g["A"][last] == 0) and torch.all(g["b"][last] == 0) and g["c"][last].item() == 0  # constant gate
    for c in (1, 2):
        eps = cfg.curves[c].split
        split = fit_problem(cfg, cfg.curves[c], cfg.num_atoms[0])
        s = split.truth.blocks(split.theta_true)
        assert split.theta_true.shape[0] == cfg.num_true + 1
        # untouched atoms
        torch.testing.assert_close(split.theta_true[:last], base.theta_true[:last])
        pair = [last, cfg.num_true]
        for i in pair:  # both halves sit on the split atom's gate ...
            assert torch.equal(s["A"][i], g["A"][last]) and torch.equal(s["b"][i], g["b"][last])
            assert torch.equal(s["alpha"][i], g["alpha"][last])
        # ... with half its mass each
        mass = torch.exp if gate == "softmax" else torch.sigmoid
        torch.testing.assert_close(mass(s["c"][pair]), mass(g["c"][last]).expand(2, 1) / 2)
        assert s["c"][pair[0]] == s["c"][pair[1]]
        # ... and expert biases beta* +- eps
        torch.testing.assert_close(s["beta"][pair].flatten(), g["beta"][last] + torch.tensor([eps, -eps]))
        # the fit starts from the family's common centre, not from G*_eps
        assert torch.equal(split.theta_start, base.theta_true) and split.over_specified_atom == last


def test_split_truth_matches_sg_app_b3_by_hand():
    from common.synthetic.models import MixtureOfExperts

    model = MixtureOfExperts("sigmoid", "quadratic_polynomial", "linear", dim=1, num_atoms=2)
    theta = model.pack(
        {
            "A": torch.tensor([[[0.5]], [[0.0]]], dtype=torch.float64),
            "b": torch.tensor([[0.2], [0.0]], dtype=torch.float64),
            "c": torch.tensor([[0.3], [0.0]], dtype=torch.float64),
            "alpha": torch.tensor([[1.0], [-2.0]], dtype=torch.float64),
            "beta": torch.tensor([[0.1], [0.7]], dtype=torch.float64),
        }
    )
    out = model.with_atoms(3).blocks(split_truth(model, theta, 1, 0.25))
    assert out["beta"].flatten().tolist() == pytest.approx([0.1, 0.95, 0.45])
    assert out["c"].flatten().tolist() == pytest.approx([0.3, -math.log(3), -math.log(3)])  # sigmoid(c) = 1/4
    assert out["alpha"].flatten().tolist() == [1.0, -2.0, -2.0]


def test_linear_experts_data_do_not_depend_on_the_split_and_the_fits_agree(tmp_path):
    """The pair on one gate with linear experts gives the same f for every eps: the same data, the same start,
    the same estimate; only the truth the loss compares with moves."""
    cfg = family("sigmoid", ["sample_sizes=[400,800]", "replicates=2", f"results_dir={tmp_path}"])
    sg_minimax.Minimax.main(load_config(sg_minimax.Config, "sigmoid_attention/configs/minimax_smoke.yaml",
                                ["sample_sizes=[400,800]", "replicates=2", f"results_dir={tmp_path}"]))  # fmt: skip
    from common.runs import read_run
    from common.synthetic.sweep import Point, point_dir

    linear = [read_run(point_dir(cfg, Point(c, 3, 800)))["arrays"] for c in (0, 1, 2)]
    for other in linear[1:]:
        np.testing.assert_allclose(other["theta"], linear[0]["theta"], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(other["regression_error"], linear[0]["regression_error"], rtol=1e-6)
    relu = [read_run(point_dir(cfg, Point(c, 3, 800)))["arrays"] for c in (3, 5)]
    assert not np.allclose(relu[0]["theta"], relu[1]["theta"])  # ReLU: the data see the split


def test_envelope_is_the_sup_over_splits():
    sizes = [100, 1000, 10000]
    flat = np.full((3, 4), 1.0)
    decaying = np.array([[2.0], [0.2], [0.02]]) * np.ones((3, 4))
    envelope, worst, slope, low, high = envelope_rate(sizes, np.stack([flat, decaying]))
    np.testing.assert_allclose(envelope, [2.0, 1.0, 1.0])
    assert worst.tolist() == [1, 0, 0] and low <= slope <= high


def test_bad_family_fails_before_any_work():
    with pytest.raises(ConfigError, match="'splits' = \\[0.1, 0.1\\]"):
        load_config(sg_minimax.Config, "sigmoid_attention/configs/minimax_smoke.yaml", ["splits=[0.1,0.1]"])
    with pytest.raises(ConfigError, match="'num_atoms' = \\[4\\] is not allowed: \\[N\\* \\+ 1\\] = \\[3\\]"):
        load_config(sg_minimax.Config, "sigmoid_attention/configs/minimax_smoke.yaml", ["num_atoms=[4]"])
    with pytest.raises(ConfigError, match="curves\\[0\\].gate"):
        load_config(qg_minimax.Config, "sigmoid_attention/configs/minimax_smoke.yaml", [])
