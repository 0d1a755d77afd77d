"""Gates, scores and experts of the batched MoE: shapes, analytic Jacobians, gauges, parameter layout."""

import itertools

import pytest
import torch

from common.synthetic import MixtureOfExperts, sample_ground_truth, softmax_reference_gauge

FAMILIES = list(
    itertools.product(
        ("softmax", "sigmoid"),
        ("quadratic_polynomial", "quadratic_monomial", "linear", "linear_temperature", "tanh_temperature"),
        ("linear", "relu", "gelu", "polynomial", "normalised_tanh", "normalised_gelu", "normalised_sigmoid"),
    )
)


@pytest.mark.parametrize("gate,score,expert", FAMILIES)
def test_shapes_and_jacobian_match_autograd(gate, score, expert):
    model = MixtureOfExperts(gate, score, expert, dim=3, num_atoms=4, expert_degree=2)
    theta = torch.randn(2, 4, model.params_per_atom, dtype=torch.float64)  # (R, N, P)
    x = torch.rand(2, 7, 3, dtype=torch.float64) * 2 - 1  # (R, n, d)
    features = model.features(x)
    f, jac = model.jacobian(theta, features)
    assert f.shape == (2, 7) and jac.shape == (2, 7, 4, model.params_per_atom)
    torch.testing.assert_close(f, model.predict(theta, features))
    for r in range(2):
        expected = torch.func.jacrev(lambda t, r=r: model.predict(t[None], [v[r : r + 1] for v in features])[0])(
            theta[r]
        )
        torch.testing.assert_close(jac[r], expected)


def test_quadratic_score_is_x_A_x_plus_b_x_plus_c():
    model = MixtureOfExperts("sigmoid", "quadratic_polynomial", "linear", dim=3, num_atoms=1)
    A, b, c = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64), torch.tensor([0.3])
    theta = model.pack(
        {
            "A": A[None],
            "b": b[None],
            "c": c[None].double(),
            "alpha": torch.zeros(1, 3).double(),
            "beta": torch.ones(1, 1).double(),
        }
    )[None]  # expert == 1, so f = sigmoid(score)
    x = torch.rand(1, 5, 3, dtype=torch.float64)
    score = torch.einsum("ni,ij,nj->n", x[0], A, x[0]) + x[0] @ b + c
    torch.testing.assert_close(model.predict(theta, model.features(x))[0], torch.sigmoid(score).double())
    blocks = model.blocks(theta)
    torch.testing.assert_close(blocks["A"].reshape(3, 3), 0.5 * (A + A.T))  # stored as sym(A)


def test_softmax_reference_gauge_keeps_f_and_zeroes_reference():
    model = MixtureOfExperts("softmax", "quadratic_polynomial", "relu", dim=2, num_atoms=3)
    theta = torch.randn(1, 3, model.params_per_atom, dtype=torch.float64)
    gauged = softmax_reference_gauge(model, theta)
    x = torch.rand(1, 20, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(model.predict(gauged, model.features(x)), model.predict(theta, model.features(x)))
    assert gauged[0, -1, : model.gate_size].abs().max() == 0
    assert gauged[0, 0, : model.gate_size].abs().max() > 0


def test_ground_truth_sparse_regime_and_separation():
    model = MixtureOfExperts("sigmoid", "quadratic_polynomial", "relu", dim=4, num_atoms=5)
    theta = sample_ground_truth(model, seed=3, gate_variance=0.25, expert_variance=0.25, zero_gate_atoms=(3, 4))
    assert theta[3:, : model.gate_size].abs().max() == 0 and theta[:3, : model.gate_size].abs().min() > 0
    again = sample_ground_truth(model, seed=3, gate_variance=0.25, expert_variance=0.25, zero_gate_atoms=(3, 4))
    torch.testing.assert_close(theta, again)  # drawn once from its seed


def test_ground_truth_experts_are_active_on_the_requested_share_of_inputs():
    model = MixtureOfExperts("sigmoid", "quadratic_polynomial", "relu", dim=8, num_atoms=8)
    draw = dict(seed=0, gate_variance=1 / 8, expert_variance=1 / 8)
    x = torch.rand(20000, 8, dtype=torch.float64) * 2 - 1

    def active(theta):
        blocks = model.blocks(theta)
        return ((x @ blocks["alpha"].T + blocks["beta"].T) > 0).double().mean(0)

    assert active(sample_ground_truth(model, **draw)).min() < 0.3  # this seed's first draw has a silent expert
    assert active(sample_ground_truth(model, **draw, min_active_fraction=0.3)).min() > 0.28
    with pytest.raises(RuntimeError, match="min_active_fraction=0.99"):
        sample_ground_truth(model, **draw, min_active_fraction=0.99, max_tries=5)


def test_unknown_family_names_fail_naming_the_field():
    with pytest.raises(ValueError, match="expert = 'tanh' is not allowed: choose one of linear, relu"):
        MixtureOfExperts("sigmoid", "quadratic_polynomial", "tanh", dim=2, num_atoms=2)
    with pytest.raises(ValueError, match="gate = 'sparsemax'"):
        MixtureOfExperts("sparsemax", "quadratic_polynomial", "relu", dim=2, num_atoms=2)


def test_linear_score_and_normalised_scaled_expert():
    model = MixtureOfExperts("softmax", "linear", "normalised_tanh", dim=3, num_atoms=2)
    assert model.block_sizes == {"b": 3, "c": 1, "alpha": 3, "beta": 1, "scale": 1}
    omega, beta = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 1, dtype=torch.float64)
    a, b, scale = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 1, dtype=torch.float64), torch.rand(2, 1)
    theta = model.pack({"b": omega, "c": beta, "alpha": a, "beta": b, "scale": scale.double()})[None]
    x = torch.rand(1, 5, 3, dtype=torch.float64) * 2 - 1
    gates = torch.softmax(x[0] @ omega.T + beta.T, dim=-1)  # SM Eq. (2)
    experts = scale.double().T * torch.tanh((x[0] / x[0].norm(dim=-1, keepdim=True)) @ a.T + b.T)
    torch.testing.assert_close(model.predict(theta, model.features(x))[0], (gates * experts).sum(-1))
    assert model.blocks(theta)["eta"].shape == (1, 2, 5)  # (alpha, beta, scale)


def test_normalised_expert_truth_draws_scales_and_keeps_other_draws():
    plain = MixtureOfExperts("softmax", "linear", "relu", dim=2, num_atoms=3)
    scaled = MixtureOfExperts("softmax", "linear", "normalised_tanh", dim=2, num_atoms=3)
    kwargs = dict(seed=1, gate_variance=1.0, expert_variance=0.5, min_separation=0.0)
    theta_plain = sample_ground_truth(plain, **kwargs)
    theta_scaled = sample_ground_truth(scaled, **kwargs, variances={"c": 0.25})
    scales = scaled.blocks(theta_scaled)["scale"].abs()
    assert ((scales >= 0.5) & (scales <= 1.5)).all()
    torch.testing.assert_close(
        theta_scaled[:, scaled.block_slices["alpha"]], theta_plain[:, plain.block_slices["alpha"]]
    )
