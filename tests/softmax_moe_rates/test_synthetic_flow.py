"""The softmax-gating rates theory checks end to end: config errors, the SM-1 truth, smoke sweep -> figures."""

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from common.config import ConfigError, load_config
from common.manifest import load_figures
from common.synthetic import diagnostics, figures
from softmax_moe_rates import synthetic

PANELS = load_figures("softmax_moe_rates").panels

CONFIGS = Path(synthetic.__file__).parent / "configs"
TINY = ["sample_sizes=[200,400,800]", "replicates=2", "test_size=2000"]


def tiny_config(panel, results_dir):
    return load_config(synthetic.Config, CONFIGS / f"{panel}_smoke.yaml", [*TINY, f"results_dir={results_dir}"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("curves=[{gate: sigmoid, regime: zero_reference, loss: sigmoid_l1}]", "'curves[0].gate' = 'sigmoid'"),
        ("curves=[{gate: softmax, regime: dense, loss: softmax_linear_l1}]", "'curves[0].regime' = 'dense'"),
        (
            "curves=[{gate: softmax, expert: normalised_cosh, regime: zero_reference, loss: softmax_linear_l1}]",
            "'curves[0].expert' = 'normalised_cosh' is not allowed",
        ),
        ("block_variances={omega: 1.0}", "unknown config key 'block_variances.omega'"),
        ("block_variances.c=-1", "'block_variances.c' = -1.0 is not allowed: a positive variance"),
        ("num_atoms=[2]", "N >= num_true (N* = 3)"),
        ("temperature=0", "'temperature' = 0.0 is not allowed: a positive temperature"),
        ("fit.bound=-1", "'fit.bound' = -1.0 is not allowed: a positive bound"),
        ("fit.bound=1", "'fit.bound' = 1.0 is not allowed: a bound above the largest true parameter, 1.9"),
        (
            "score=quadratic_monomial",
            "'score' = 'quadratic_monomial' is not allowed: one of linear, linear_temperature",
        ),
    ],
)
def test_bad_config_fails_naming_field_value_and_allowed(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / "softmax.yaml", [override])


def test_truth_follows_the_proposal():
    cfg = load_config(synthetic.Config, CONFIGS / "softmax.yaml")
    problem = synthetic.fit_problem(cfg, cfg.curves[0], 4)
    blocks = problem.truth.blocks(problem.theta_true)
    assert (blocks["b"][-1] == 0).all() and (blocks["c"][-1] == 0).all()  # SM (A.3)
    assert ((blocks["scale"].abs() >= 0.5) & (blocks["scale"].abs() <= 1.5)).all()
    omega = blocks["b"]
    assert (omega[:-1].std() - 1).abs() < 0.7 and (blocks["c"][:-1].abs() < 2).all()  # N(0, I) and N(0, 0.25)


def test_smoke_panel_runs_draws_and_diagnoses(tmp_path):
    for panel in PANELS:
        synthetic.Synthetic.main(tiny_config(panel, tmp_path))
    original = figures.panel_config
    figures.panel_config = lambda paper, panel, variant, results_dir=None: tiny_config(panel, tmp_path)
    try:
        figures.main(figures.FiguresConfig(paper="softmax_moe_rates", variant="smoke", out_dir=str(tmp_path / "figs")))
    finally:
        figures.panel_config = original
    for panel in PANELS:
        assert (tmp_path / "figs" / f"{panel}.png").stat().st_size > 0
    slopes = pd.read_csv(tmp_path / "figs" / "slopes.csv")
    assert list(slopes[slopes.drawn].curve) == ["tanh", "linear", "raw L3,r", "scale-free L1", "GELU", "tanh", "linear"]
    assert set(slopes[slopes.figure == "softmax"].loss) == {
        "softmax_linear_l1",
        "softmax_linear_l2_r1",
        "softmax_linear_l2_r2",
        "regression_error",
    }
    # the two curves of the linear-router panel are the same fits: one point each, two losses
    assert len(list((tmp_path / "points").iterdir())) == 2 * 3 + 3 + 3 + 2 * 3
    diagnostics.main(
        diagnostics.DiagnosticsConfig(
            paper="softmax_moe_rates",
            variant="smoke",
            tables=["fisher"],
            fisher_size=4000,
            results_dir=str(tmp_path / "diag"),
        )
    )
    fisher = pd.read_csv(tmp_path / "diag" / "diagnostics" / "smoke" / "fisher.csv").set_index("curve")
    # k* = 3 atoms of (omega, beta, a, b[, scale]) with d = 2, less the reference atom's gating pair
    assert fisher.loc["softmax linear-score normalised_tanh zero_reference", "parameters"] == 3 * (3 + 4) - 3
    assert fisher.loc["softmax linear-score linear zero_reference", "parameters"] == 3 * (3 + 3) - 3
    # the shared temperature adds one parameter; with a linear router it is not identified: scaling
    # (omega, beta, tau) together leaves the gate unchanged (spec Sec. 2.3-5), with a tanh router it is
    tempered = fisher.filter(like="temperature", axis=0)
    assert (tempered.parameters == 3 * (3 + 4) - 3 + 1).all()
    assert fisher.filter(like="softmax linear-score", axis=0).flat_directions.tolist() == [0, 0]
    assert fisher.loc[[i for i in fisher.index if "linear_temperature" in i], "flat_directions"].tolist() == [1]
    assert fisher.loc[[i for i in fisher.index if "tanh_temperature" in i], "flat_directions"].tolist() == [0]
    # hierarchical: 2 groups of k2* = 2 experts, each group less its reference's (kappa, nu), and the first
    # group's (omega, beta) (the last group's is the first-level reference); with tanh experts no flat direction
    hierarchical = fisher.filter(like="hierarchical", axis=0)
    assert hierarchical.parameters.tolist() == [2 * (2 * 7 - 3) + 3, 2 * (2 * 6 - 3) + 3]
    assert hierarchical.flat_directions.tolist()[0] == 0


def test_curves_that_differ_only_in_the_loss_share_their_points():
    cfg = load_config(synthetic.Config, CONFIGS / "temperature_linear.yaml")
    assert len(cfg.curves) == 2 and len(synthetic.Synthetic.sweep(cfg)) == len(cfg.sample_sizes)


@pytest.mark.parametrize(
    "override,message",
    [
        ("num_groups=1", "'num_groups' = 1 is not allowed: an integer >= 2 for the hierarchical model"),
        ("score=linear", "'num_groups' = 2 is not allowed: 1 for the flat score 'linear'"),
        (
            "curves=[{gate: softmax, expert: linear, regime: zero_reference, loss: softmax_linear_l1}]",
            "'curves[0].loss' = 'softmax_linear_l1' is not allowed: a Voronoi loss of softmax gating with the "
            "hierarchical_linear score: hierarchical_l5",
        ),
    ],
)
def test_bad_hierarchical_config_fails_before_any_work(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / "hierarchical.yaml", [override])


def test_hierarchical_truth_follows_the_proposal():
    # spec Sec. 5.4 (e): two groups of two experts, both gauges of SM (A.3), groups drawn independently
    cfg = load_config(synthetic.Config, CONFIGS / "hierarchical.yaml")
    problem = synthetic.fit_problem(cfg, cfg.curves[0], 3)
    blocks = problem.truth.blocks(problem.theta_true)
    assert blocks["group"][:, 0].tolist() == [0, 0, 1, 1]
    assert (blocks["outer_b"][2:] == 0).all() and (blocks["outer_c"][2:] == 0).all()  # last group
    assert (blocks["outer_b"][0] != 0).all()
    assert (blocks["b"][[1, 3]] == 0).all() and (blocks["c"][[1, 3]] == 0).all()  # each group's last expert
    assert not torch.allclose(blocks["eta"][0], blocks["eta"][2])  # the groups' experts differ
    assert problem.fitted.initial_sources(4, problem.over_specified_atom) == [0, 1, 0, 2, 3, 2]
