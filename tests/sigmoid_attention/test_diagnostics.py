"""The diagnostics that explain the sigmoid-attention slopes, on the smoke configs."""

import pandas as pd

from common.synthetic import diagnostics


def test_fisher_finds_the_sparse_flat_directions_and_init_scale_refits(tmp_path):
    cfg = diagnostics.DiagnosticsConfig(
        paper="sigmoid_attention",
        variant="smoke",
        fisher_size=4000,
        init_scales=[0.05, 0.2],
        n=300,
        replicates=1,
        results_dir=str(tmp_path),
    )
    diagnostics.main(cfg)
    out = tmp_path / "diagnostics" / "smoke"
    fisher = pd.read_csv(out / "fisher.csv").set_index("curve")
    assert len(fisher) == 6  # one row per (gate, expert, regime)
    # constant sigmoid gates: the (c, alpha, beta) scale of each of the 2 zero-gate atoms (ReLU), and with
    # linear experts also every split of the two atoms' expert parameters (only their sums are seen)
    assert fisher.loc["sigmoid relu sparse", "flat_directions"] == 2
    assert fisher.loc["sigmoid linear sparse", "flat_directions"] > 2
    assert (fisher.loc[["sigmoid relu dense", "softmax relu dense"], "flat_directions"] == 0).all()
    errors = fisher["worst_atom_error_n1e3"] / fisher["worst_atom_error_n1e5"]
    assert ((errors - 10).abs() < 0.05).all()  # predicted errors scale as n^-1/2 (tables are rounded)
    scales = pd.read_csv(out / "init_scale.csv")
    assert len(scales) == 2 * 6  # two scales for each distinct (curve, drawn N) of the four panels
    assert (scales.groupby("curve")["init_scale"].min() == 0.05).all()
    assert (scales[scales.init_scale == 0.05]["loss_ratio_to_smallest_scale"] == 1).all()
