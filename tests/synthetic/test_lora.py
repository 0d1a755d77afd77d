"""LoRA as MoE: the vector-output model, its factor gauge, and the product-level Voronoi losses."""

import pytest
import torch

from common.synthetic import LOSSES, losses_for
from common.synthetic.lora import LoRAMoE, frozen_matrices, sample_lora_truth


def model(variant, atoms=2, rank=1, identity_key=True):
    return LoRAMoE(variant, dim=3, num_atoms=atoms, rank=rank, frozen=frozen_matrices(3, 0, identity_key))


@pytest.mark.parametrize("variant", ["vanilla", "shared", "shared_sigmoid", "shared_tanh"])
def test_predict_is_repLoRA_eq_11_13_15(variant):
    m = model(variant, rank=2, identity_key=False)
    theta = torch.randn(2, 2, m.params_per_atom, dtype=torch.float64)  # (R, N, P)
    x = torch.rand(2, 5, 3, dtype=torch.float64) * 2 - 1
    f = m.predict(theta, m.features(x))
    assert f.shape == (2, 5, 3)
    m_q, m_k, m_v = m.frozen
    zq, zv = m.products(theta)
    for r in range(2):
        for i in range(5):
            X = x[r, i]
            scores = torch.stack([X @ (m_q + zq[r, j]) @ m_k @ X + theta[r, j, 0] for j in range(2)])
            expected = sum(torch.softmax(scores, 0)[j] * (m_v + zv[r, j]) @ X for j in range(2))
            torch.testing.assert_close(f[r, i], expected)
    if variant == "shared_sigmoid":
        u, v = theta[..., 1:7].reshape(2, 2, 3, 2), theta[..., 7:].reshape(2, 2, 2, 3)
        torch.testing.assert_close(zq, torch.sigmoid(u) @ torch.sigmoid(v))


def test_factor_gauge_moves_raw_factors_but_not_products_or_f():
    # (B, A) -> (B s, A / s) leaves every product, hence f, unchanged (spec Sec. 2.3-4)
    m = model("vanilla")
    truth = sample_lora_truth(m, seed=0, factor_std=0.5)
    gauged = truth.clone()
    blocks = m.block_slices
    gauged[:, blocks["BQ"]] *= 2.0
    gauged[:, blocks["AQ"]] /= 2.0
    x = torch.rand(1, 20, 3, dtype=torch.float64)
    torch.testing.assert_close(m.predict(gauged[None], (x,)), m.predict(truth[None], (x,)))
    fitted, true = m.blocks(gauged[None]), m.blocks(truth)
    assert LOSSES["lora_vanilla_product_d1_r1"](fitted, true).item() == pytest.approx(0, abs=1e-12)
    assert LOSSES["lora_vanilla_d1_r1"](fitted, true).item() > 0.1


def test_truth_has_the_reference_constant_and_separated_products():
    m = model("shared", atoms=3)
    theta = sample_lora_truth(m, seed=1, factor_std=0.5, constant=0.5, min_separation=0.5)
    assert theta[:, 0].tolist() == [0.5, 0.5, 0.0]
    z = m.blocks(theta)["Z"]
    assert torch.cdist(z, z).fill_diagonal_(1e9).min() >= 0.5


def test_lora_losses_by_variant():
    assert set(losses_for("softmax", "lora_vanilla")) == {
        "lora_vanilla_d1_r1",
        "lora_vanilla_d1_r2",
        "lora_vanilla_product_d1_r1",
        "lora_vanilla_product_d1_r2",
    }
    assert set(losses_for("softmax", "lora_shared")) == {"lora_d2"}
    assert set(losses_for("softmax", "lora_shared_tanh")) == {"lora_d2", "lora_d3"}


def test_rank_and_variant_are_checked():
    with pytest.raises(ValueError, match="rank = 4 is not allowed"):
        model("shared", rank=4)
    with pytest.raises(ValueError, match="variant = 'dora' is not allowed"):
        model("dora")


@pytest.mark.parametrize("variant", ["vanilla", "shared", "shared_sigmoid", "shared_tanh"])
def test_analytic_jacobian_matches_autograd(variant):
    m = model(variant, atoms=3, rank=2, identity_key=False)
    theta = torch.randn(2, 3, m.params_per_atom, dtype=torch.float64)
    x = torch.rand(2, 4, 3, dtype=torch.float64) * 2 - 1
    f, jac = m.jacobian(theta, (x,))
    assert jac.shape == (2, 4, 3, 3, m.params_per_atom)
    torch.testing.assert_close(f, m.predict(theta, (x,)))
    for r in range(2):
        expected = torch.func.jacrev(lambda t, r=r: m.predict(t[None], (x[r : r + 1],))[0])(theta[r])
        torch.testing.assert_close(jac[r], expected)
