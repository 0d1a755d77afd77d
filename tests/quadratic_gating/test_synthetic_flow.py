"""The quadratic-gating theory checks end to end: config errors, the App. F.1 truth, smoke sweep -> figures."""

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from common.config import ConfigError, load_config
from common.manifest import load_figures
from common.synthetic import diagnostics, figures
from quadratic_gating import synthetic

PANELS = load_figures("quadratic_gating").panels

CONFIGS = Path(synthetic.__file__).parent / "configs"
TINY = ["sample_sizes=[200,400,800]", "replicates=2", "dim=2", "num_true=3", "num_atoms=[4]", "test_size=2000"]


def tiny_config(panel, results_dir):
    return load_config(synthetic.Config, CONFIGS / f"{panel}_smoke.yaml", [*TINY, f"results_dir={results_dir}"])


@pytest.mark.parametrize(
    "panel,override,message",
    [
        ("fig1_polynomial", "curves=[{gate: sigmoid, loss: sigmoid_l1}]", "'curves[0].gate' = 'sigmoid'"),
        (
            "fig1_monomial",
            "curves=[{gate: softmax, loss: softmax_l1}]",
            "'curves[0].loss' = 'softmax_l1' is not allowed: a Voronoi loss of softmax gating with the "
            "quadratic_monomial score: softmax_l3, softmax_mono_l2_r1, softmax_mono_l2_r2",
        ),
        ("fig1_polynomial", "curves=[{gate: softmax, regime: sparse, loss: softmax_l1}]", "'curves[0].regime'"),
        ("fig1_polynomial", "curves=[{gate: softmax, loss: softmax_l1, tabulate: [softmax_l3]}]", "tabulate"),
        ("fig1_polynomial", "curves=[{gate: softmax, loss: softmax_l1, expected: [-0.4, -0.5]}]", "expected"),
        ("fig1_polynomial", "score=cubic", "'score' = 'cubic' is not allowed: one of quadratic_polynomial"),
    ],
)
def test_bad_config_fails_naming_field_value_and_allowed(panel, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / f"{panel}.yaml", [override])


def test_truth_has_the_zero_reference_atom_and_small_gates():
    cfg = load_config(synthetic.Config, CONFIGS / "fig1_polynomial.yaml")
    problem = synthetic.fit_problem(cfg, cfg.curves[0], 9)
    gate = problem.theta_true[:, : problem.truth.gate_size]
    assert (gate[-1] == 0).all() and (gate[:-1] != 0).all()
    blocks = problem.truth.blocks(problem.theta_true)
    b_and_c = torch.cat([blocks["b"][:-1], blocks["c"][:-1]], dim=-1)  # stored as drawn (A is symmetrised)
    assert b_and_c.std().item() == pytest.approx(0.1 / cfg.dim**0.5, rel=0.2)  # variance 0.01 / d
    assert problem.fixed_gate_atom == 7 and problem.over_specified_atom == 0


def test_smoke_panels_run_and_draw(tmp_path):
    for panel in PANELS:
        synthetic.Synthetic.main(tiny_config(panel, tmp_path))
    original = figures.panel_config
    figures.panel_config = lambda paper, panel, variant, results_dir=None: tiny_config(panel, tmp_path)
    try:
        figures.main(
            figures.FiguresConfig(
                paper="quadratic_gating", variant="smoke", out_dir=str(tmp_path / "figs"), minimax=False
            )
        )
    finally:
        figures.panel_config = original
    for panel in PANELS:
        assert (tmp_path / "figs" / f"{panel}.png").stat().st_size > 0
    slopes = pd.read_csv(tmp_path / "figs" / "slopes.csv")
    columns = ["figure", "curve", "slope", "ci_low", "ci_high", "expected_low", "expected_high", "paper_slope"]
    assert set(columns) <= set(slopes.columns)
    drawn = slopes[slopes.drawn]
    # App. F.1's panels draw the estimator and both readings of the paper protocol; the local ones only the estimator
    assert list(drawn.loss) == ["softmax_l1"] * 6 + ["softmax_l3"] * 6 + ["softmax_l1"] * 2 + ["softmax_l3"] * 2
    assert list(drawn.fit[:3]) == ["least_squares", "paper_full_batch", "paper_minibatch"]
    assert drawn.expected_low.notna().all() and drawn.paper_slope.isna().all()  # QG prints no slopes
    assert set(slopes.loss) >= {"softmax_l2_r1", "softmax_mono_l2_r2", "regression_error"}  # tabulated losses
    assert torch.isfinite(torch.tensor(slopes.slope.to_numpy())).all()


def test_diagnostics_cover_both_gates(tmp_path):
    cfg = diagnostics.DiagnosticsConfig(
        paper="quadratic_gating",
        variant="smoke",
        fisher_size=4000,
        init_scales=[0.05, 0.2],
        n=300,
        replicates=1,
        results_dir=str(tmp_path),
    )
    diagnostics.main(cfg)
    out = tmp_path / "diagnostics" / "smoke"
    fisher = pd.read_csv(out / "fisher.csv")
    local = fisher[fisher.figure.str.endswith("_local")].set_index("curve")
    fisher = fisher[~fisher.figure.str.endswith("_local")].set_index("curve")
    names = {
        "softmax relu zero_reference",
        "softmax linear zero_reference",
        "softmax monomial relu zero_reference",
        "softmax monomial linear zero_reference",
    }
    assert set(fisher.index) == names and set(local.index) == names
    # the local setting (gate variance 1 instead of 0.01/d) is what makes n <= 1e5 asymptotic
    assert (local.n_local < fisher.loc[local.index].n_local / 100).all()
    # the zero reference atom removes the softmax translation (with linear experts and the paper's nearly
    # uniform gates the Fisher matrix is so ill-conditioned, 1e9-1e10, that near-zero eigenvalues appear)
    relu = ["softmax relu zero_reference", "softmax monomial relu zero_reference"]
    assert (fisher.loc[relu, "flat_directions"] == 0).all()
    assert (fisher.n_local > 1e6).all()  # QG App. F.1's gating variance 0.01/d: far from local at n <= 1e5
    # parameters: N* atoms of (A, [b], c, alpha, beta) with d = 3, less the reference atom's gate
    assert fisher.loc["softmax relu zero_reference", "parameters"] == 4 * (6 + 3 + 1 + 4) - (6 + 3 + 1)
    assert fisher.loc["softmax monomial relu zero_reference", "parameters"] == 4 * (6 + 1 + 4) - (6 + 1)
    assert len(pd.read_csv(out / "init_scale.csv")) == 2 * 8
