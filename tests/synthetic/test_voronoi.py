"""The generic Voronoi loss on small hand-computed cases, for each paper's named configuration."""

import math

import pytest
import torch

from common.synthetic import LOSSES, MixtureOfExperts, VoronoiLoss, losses_for, sample_ground_truth, sigmoid_l2


def blocks(**values):
    """Blocks (R=1, atoms, k) from per-atom lists; eta is (alpha, beta[, scale])."""
    out = {k: torch.tensor([v], dtype=torch.float64) for k, v in values.items()}
    out["eta"] = torch.cat([out[k] for k in ("alpha", "beta", "scale") if k in out], dim=-1)
    return out


# Two true atoms on a 1-d problem: A and b are 1x1, c scalar, expert (alpha, beta).
TRUE = dict(A=[[0.0], [4.0]], b=[[0.0], [4.0]], c=[[0.0], [0.5]], alpha=[[1.0], [-1.0]], beta=[[0.0], [0.0]])


def test_softmax_l1_exact_and_over_specified_cells():
    # atoms 0 and 1 sit in cell 0 (over-specified, m = 2), atom 2 in cell 1 (exact)
    fit = blocks(
        A=[[0.1], [-0.2], [4.0]],
        b=[[0.0], [0.1], [4.3]],
        c=[[math.log(0.4)], [math.log(0.5)], [0.5]],
        alpha=[[1.0], [1.0], [-1.0]],
        beta=[[0.2], [0.0], [0.0]],
    )
    terms = LOSSES["softmax_l1"].terms(fit, blocks(**TRUE))
    mass = abs(0.4 + 0.5 - 1.0) + 0.0
    # over-specified cell: exponents rbar(2)/2 = 2 on A, rbar(2) = 4 on b, 2 on eta; weighted by exp(c)
    over = 0.4 * (0.1**2 + 0 + 0.2**2) + 0.5 * (0.2**2 + 0.1**4 + 0)
    exact = math.exp(0.5) * (0 + 0.3)  # exponent 1, weight e^{c}
    assert terms["cell_sizes"].tolist() == [[2, 1]]
    assert terms["mass"].item() == pytest.approx(mass)
    assert terms["total"].item() == pytest.approx(mass + over + exact)
    assert terms["per_cell"][0].tolist() == pytest.approx([mass + over, exact])


def test_softmax_l1_refuses_a_cell_whose_rbar_is_unknown():
    # four fitted atoms in cell 0: rbar(4) is unknown, so the A and b exponents of QG Eq. (17) are too
    fit = blocks(
        A=[[0.1], [-0.1], [0.2], [-0.2], [4.0]],
        b=[[0.0], [0.1], [0.0], [0.1], [4.0]],
        c=[[math.log(0.25)]] * 4 + [[0.5]],
        alpha=[[1.0]] * 4 + [[-1.0]],
        beta=[[0.0]] * 5,
    )
    with pytest.raises(ValueError, match=r"'softmax_l1'.*cell holds 4 fitted atoms.*'A'"):
        LOSSES["softmax_l1"].terms(fit, blocks(**TRUE))
    # three atoms in a cell (rbar(3) = 6) are fine, and so is a loss with fixed exponents on four
    three = {k: torch.cat([v[:, :3], v[:, 4:]], dim=1) for k, v in fit.items()}
    assert LOSSES["softmax_l1"].terms(three, blocks(**TRUE))["cell_sizes"].tolist() == [[3, 1]]
    assert LOSSES["softmax_l2_r1"].terms(fit, blocks(**TRUE))["cell_sizes"].tolist() == [[4, 1]]


def test_a_sweep_records_the_undefined_loss_of_one_replicate_as_nan_and_keeps_the_others():
    """The fit of one replicate with four atoms in a cell must not cost the point its other replicates' losses."""
    from common.synthetic.experiment import _loss_or_undefined

    four = blocks(
        A=[[0.1], [-0.1], [0.2], [-0.2], [4.0]],
        b=[[0.0], [0.1], [0.0], [0.1], [4.0]],
        c=[[math.log(0.25)]] * 4 + [[0.5]],
        alpha=[[1.0]] * 4 + [[-1.0]],
        beta=[[0.0]] * 5,
    )
    three = blocks(  # three atoms in cell 0, two in cell 1
        A=[[0.1], [-0.1], [0.2], [4.2], [4.0]],
        b=[[0.0], [0.1], [0.0], [4.1], [4.0]],
        c=[[math.log(0.3)]] * 3 + [[0.2], [0.1]],
        alpha=[[1.0]] * 3 + [[-1.0]] * 2,
        beta=[[0.0]] * 5,
    )
    both = {k: torch.cat([three[k], four[k]]) for k in four}  # replicate 0: defined, replicate 1: not
    totals, sizes = _loss_or_undefined(LOSSES["softmax_l1"], both, blocks(**TRUE))
    expected = LOSSES["softmax_l1"].terms(three, blocks(**TRUE))
    assert totals[0].item() == pytest.approx(expected["total"].item()) and math.isnan(totals[1].item())
    assert sizes[0].tolist() == [3, 2] and all(math.isnan(v) for v in sizes[1].tolist())


def test_empty_cell_counts_its_whole_true_mass():
    # both fitted atoms are nearest to true atom 0: cell 1 is empty
    fit = blocks(A=[[0.0], [0.1]], b=[[0.0], [0.0]], c=[[0.0], [0.0]], alpha=[[1.0], [1.0]], beta=[[0.0], [0.0]])
    for name, true_mass in (("softmax_l1", math.exp(0.5)), ("sigmoid_l1", 1 / (1 + math.exp(-0.5)))):
        terms = LOSSES[name].terms(fit, blocks(**TRUE))
        assert terms["cell_sizes"].tolist() == [[2, 0]]
        fitted_mass = 2 * (1.0 if name == "softmax_l1" else 0.5)
        base_mass = 1.0 if name == "softmax_l1" else 0.5
        assert terms["mass"].item() == pytest.approx(abs(fitted_mass - base_mass) + true_mass)


def test_sigmoid_l1_unweighted_with_c_only_in_exact_cells():
    fit = blocks(
        A=[[0.0], [0.5], [4.0]],
        b=[[0.0], [0.0], [4.0]],
        c=[[0.1], [0.2], [0.9]],
        alpha=[[1.0], [1.0], [-1.0]],
        beta=[[0.0], [0.0], [0.0]],
    )
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    terms = LOSSES["sigmoid_l1"].terms(fit, blocks(**TRUE))
    assert terms["mass"].item() == pytest.approx(abs(sig(0.1) + sig(0.2) - 0.5))  # only the over cell
    assert terms["atoms"].item() == pytest.approx(0.5**2 + 0.4)  # ||dA||^2 over; |dc| = 0.4 exact


def test_l2r_uses_one_exponent_everywhere():
    fit = blocks(A=[[0.5], [4.0]], b=[[0.0], [4.0]], c=[[0.0], [0.5]], alpha=[[1.0], [-1.0]], beta=[[0.0], [0.3]])
    for r in (1, 2):
        terms = sigmoid_l2(r).terms(fit, blocks(**TRUE))
        assert terms["mass"].item() == 0  # no over-specified cell
        assert terms["atoms"].item() == pytest.approx(0.5**r + 0.3**r)


def test_monomial_gate_losses_have_no_b_and_cells_on_a_and_eta():
    # a monomial gate has no b block; with b the cell of atom 1 would flip to true atom 1
    true = {k: v for k, v in TRUE.items() if k != "b"}
    fit = blocks(
        A=[[0.2], [0.0], [4.0]],
        c=[[math.log(0.5)]] * 2 + [[0.5]],
        alpha=[[1.0], [1.0], [-1.0]],
        beta=[[0.0], [0.1], [0.0]],
    )
    l3 = LOSSES["softmax_l3"].terms(fit, blocks(**true))
    assert l3["cell_sizes"].tolist() == [[2, 1]]
    # QG Eq. (25): exponent 2 on A and eta in the over-specified cell, 1 in the exact one, weights e^c
    assert l3["total"].item() == pytest.approx(0 + 0.5 * 0.2**2 + 0.5 * 0.1**2 + 0)
    l2 = LOSSES["softmax_mono_l2_r1"].terms(fit, blocks(**true))
    assert l2["total"].item() == pytest.approx(0.5 * 0.2 + 0.5 * 0.1)


def test_losses_for_each_gate_and_score():
    assert set(losses_for("softmax", "quadratic_polynomial")) == {"softmax_l1", "softmax_l2_r1", "softmax_l2_r2"}
    assert set(losses_for("softmax", "quadratic_monomial")) == {
        "softmax_l3",
        "softmax_mono_l2_r1",
        "softmax_mono_l2_r2",
    }
    assert set(losses_for("sigmoid", "quadratic_polynomial")) == {
        "sigmoid_l1",
        "sigmoid_l2_r1",
        "sigmoid_l2_r2",
        "sigmoid_l3",
    }
    assert losses_for("sigmoid", "quadratic_monomial") == {}  # SG's L4/L5 are not implemented
    assert set(losses_for("softmax", "linear")) == {
        "softmax_linear_l1",
        "softmax_linear_l2_r1",
        "softmax_linear_l2_r2",
    }


def test_softmax_linear_l1_on_omega_and_scaled_experts():
    # SM Eq. (6): cells on (omega, eta) with eta = (a, b, scale); omega is the linear score's b block
    true = dict(b=[[0.0], [3.0]], c=[[0.0], [0.5]], alpha=[[1.0], [-1.0]], beta=[[0.0], [0.0]], scale=[[1.0], [2.0]])
    fit = blocks(
        b=[[0.1], [-0.1], [3.0]],
        c=[[math.log(0.5)], [math.log(0.5)], [0.5]],
        alpha=[[1.0], [1.0], [-1.0]],
        beta=[[0.0], [0.0], [0.0]],
        scale=[[1.0], [1.2], [1.5]],
    )
    terms = LOSSES["softmax_linear_l1"].terms(fit, blocks(**true))
    assert terms["cell_sizes"].tolist() == [[2, 1]]
    over = 0.5 * 0.1**2 + 0.5 * (0.1**2 + 0.2**2)  # exponent 2 on omega and eta in the over-specified cell
    exact = math.exp(0.5) * 0.5  # exponent 1, |d scale| = 0.5
    assert terms["total"].item() == pytest.approx(over + exact)


def test_sigmoid_l3_against_best_approximation_and_ties():
    assert LOSSES["sigmoid_l3"].reference == "best_approximation"
    # a fitted atom exactly between two true atoms joins the first (smallest index) cell
    loss = VoronoiLoss("tie", cell_blocks=("A",), exact={"A": 1}, over={"A": 1}, mass_cells="none", weighted=False)
    fit = blocks(A=[[2.0]], b=[[0.0]], c=[[0.0]], alpha=[[0.0]], beta=[[0.0]])
    terms = loss.terms(fit, blocks(**TRUE))
    assert terms["cell_sizes"].tolist() == [[1, 0]] and terms["atoms"].item() == pytest.approx(2.0)


def test_loss_is_zero_at_the_truth_and_batched_over_replicates():
    true = blocks(**TRUE)
    fit = {k: v.expand(3, -1, -1) for k, v in true.items()}
    for name in ("softmax_l1", "softmax_l2_r1", "sigmoid_l1", "sigmoid_l3", "sigmoid_l2_r2"):
        assert LOSSES[name](fit, true).tolist() == [0.0, 0.0, 0.0]


def test_temperature_losses_see_the_scale_curve_that_the_model_does_not():
    # spec Sec. 2.3-5: (omega, beta, tau) -> s (omega, beta, tau) leaves softmax((omega^T x + beta) / tau)
    # unchanged; SM Eq. (16) moves along it, the scale-free L1 on (omega / tau, beta / tau) does not
    model = MixtureOfExperts("softmax", "linear_temperature", "normalised_tanh", dim=2, num_atoms=3)
    truth = sample_ground_truth(model, seed=0, gate_variance=1.0, expert_variance=1.0, temperature=0.5)
    scaled = truth.clone()
    scaled[:, : model.gate_size] *= 1.5
    scaled[:, model.block_slices["rho"]] += math.log(1.5)
    x = torch.rand(1, 50, 2, dtype=torch.float64) * 2 - 1
    features = model.features(x)
    torch.testing.assert_close(model.predict(scaled[None], features), model.predict(truth[None], features))
    fitted, true = model.blocks(scaled[None]), model.blocks(truth)
    assert LOSSES["softmax_temperature_scale_free_l1"](fitted, true).item() == pytest.approx(0, abs=1e-12)
    raw = LOSSES["softmax_temperature_l3_r1"].terms(fitted, true)
    omega = (fitted["b"] - true["b"]).norm(dim=-1)  # (1, 3)
    mass = torch.exp(fitted["c_over_tau"]).squeeze(-1)  # e^{beta / tau}: unchanged by the scaling
    expected = (mass * (omega + 0.25)).sum()  # |d tau| = 0.75 - 0.5 on every atom
    assert raw["mass"].item() == pytest.approx(0, abs=1e-12) and raw["total"].item() == pytest.approx(expected.item())


def test_hierarchical_loss_matches_groups_then_atoms():
    # SM Eq. (25) on 1-d blocks: two true groups of two experts; fitted group 0 has three experts (one extra),
    # and the fitted groups are listed in the other order, so the first level must match them by omega
    from common.synthetic.voronoi import HierarchicalVoronoiLoss

    loss = HierarchicalVoronoiLoss(
        "hier", outer_cell_blocks=("omega_g",), outer_mass_block="beta_g", inner=LOSSES["softmax_linear_l1"]
    )
    true = dict(
        group=[[0.0], [0.0], [1.0], [1.0]],
        omega_g=[[2.0], [2.0], [0.0], [0.0]],
        beta_g=[[0.3], [0.3], [0.0], [0.0]],
        b=[[1.0], [0.0], [-1.0], [0.0]],
        c=[[0.2], [0.0], [0.4], [0.0]],
        alpha=[[1.0], [-1.0], [2.0], [-2.0]],
        beta=[[0.0], [0.0], [0.0], [0.0]],
    )
    fit = dict(
        group=[[0.0], [0.0], [1.0], [1.0], [1.0]],
        omega_g=[[0.1], [0.1], [2.2], [2.2], [2.2]],  # fitted group 0 sits at true group 1 and vice versa
        beta_g=[[0.0], [0.0], [0.5], [0.5], [0.5]],
        b=[[-1.0], [0.0], [1.0], [1.1], [0.0]],
        c=[[0.4], [0.0], [0.2 - math.log(2)], [0.2 - math.log(2)], [0.0]],
        alpha=[[2.0], [-2.0], [1.0], [1.0], [-1.0]],
        beta=[[0.0], [0.0], [0.0], [0.0], [0.0]],
    )
    terms = loss.terms(blocks(**fit), blocks(**true))
    f, t = blocks(**fit), blocks(**true)
    inner0 = LOSSES["softmax_linear_l1"]({k: v[:, 2:] for k, v in f.items()}, {k: v[:, :2] for k, v in t.items()})
    inner1 = LOSSES["softmax_linear_l1"]({k: v[:, :2] for k, v in f.items()}, {k: v[:, 2:] for k, v in t.items()})
    assert inner0.item() == pytest.approx(math.exp(0.2) / 2 * 0.1**2)  # over-specified cell: e^c ||d b||^2, one copy
    outer = abs(math.exp(0.5) - math.exp(0.3)) + abs(1 - 1) + math.exp(0.5) * 0.2 + 1.0 * 0.1
    expected = outer + math.exp(0.5) * inner0.item() + 1.0 * inner1.item()
    assert terms["total"].item() == pytest.approx(expected)
    assert terms["mass"].item() == pytest.approx(abs(math.exp(0.5) - math.exp(0.3)))
    assert terms["cell_sizes"].tolist() == [[2, 1, 1, 1]]
    assert terms["per_cell"].sum().item() == pytest.approx(expected)


def test_hierarchical_loss_with_constant_head_weights_matched_by_index():
    # HyRA Eq. (7): heads matched by index, head weights pi as masses, |pi - pi*| as the first-level mass term
    from common.synthetic.voronoi import HierarchicalVoronoiLoss

    loss = HierarchicalVoronoiLoss(
        "heads", outer_cell_blocks=(), outer_mass_block="pi", inner=LOSSES["softmax_linear_l1"], outer_mass="identity"
    )
    atoms = dict(b=[[0.0], [3.0]] * 2, c=[[0.0], [0.0]] * 2, alpha=[[1.0], [1.0]] * 2, beta=[[0.0], [0.0]] * 2)
    true = blocks(group=[[0.0], [0.0], [1.0], [1.0]], pi=[[0.35], [0.35], [0.65], [0.65]], **atoms)
    fitted = blocks(group=[[0.0], [0.0], [1.0], [1.0]], pi=[[0.3], [0.3], [0.7], [0.7]], **atoms)
    fitted["b"] = fitted["b"] + torch.tensor([0.0, 0.0, 0.0, 0.2], dtype=torch.float64)[None, :, None]
    terms = loss.terms(fitted, true)
    assert terms["mass"].item() == pytest.approx(0.05 + 0.05)
    assert terms["total"].item() == pytest.approx(0.1 + 0.7 * 0.2)  # exact cell: e^0 * |d b| = 0.2 in head 2
