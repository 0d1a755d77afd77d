"""Two-level mixtures (SM Sec. 4, HyRA Sec. 3): forward pass, analytic Jacobian, gauges and parameter layout."""

import pytest
import torch

from common.synthetic import losses_for
from common.synthetic.grouped import GroupedMixture
from common.synthetic.lora import LoRAMoE, frozen_matrices
from common.synthetic.models import MixtureOfExperts
from common.synthetic.truth import fitted_mask, initialise_near_truth, make_generator


def hierarchical(atoms=3, expert="normalised_tanh", dim=3):
    inner = MixtureOfExperts("softmax", "linear", expert, dim, atoms)
    return GroupedMixture((inner, inner), outer="softmax")


def multihead(variant="vanilla", atoms=3, dim=3):
    heads = tuple(LoRAMoE(variant, dim, atoms, 1, frozen_matrices(dim, 0, False, h)) for h in range(2))
    return GroupedMixture(heads, outer="constant", tied=("V",) if variant != "vanilla" else ())


FAMILIES = {
    "hierarchical tanh": hierarchical,
    "hierarchical linear": lambda: hierarchical(expert="linear"),
    "multihead vanilla": multihead,
    "multihead shared sigmoid": lambda: multihead("shared_sigmoid"),
}


def inputs(model, R=2, n=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(R, model.num_atoms, model.params_per_atom, generator=generator, dtype=torch.float64)
    x = torch.rand(R, n, model.dim, generator=generator, dtype=torch.float64) * 2 - 1
    return theta, model.features(x), x


@pytest.mark.parametrize("family", FAMILIES)
def test_analytic_jacobian_matches_autograd(family):
    model = FAMILIES[family]()
    theta, features, _ = inputs(model)
    f, jac = model.jacobian(theta, features)

    def one(t, *fs):
        return model.predict(t[None], tuple(v[None] for v in fs))[0]

    expected = torch.func.vmap(torch.func.jacfwd(one))(theta, *features)
    torch.testing.assert_close(f, model.predict(theta, features))
    torch.testing.assert_close(jac, expected)


def test_hierarchical_predict_is_sm_eq_20():
    model = hierarchical(atoms=2)
    theta, features, x = inputs(model)
    blocks = model.blocks(theta)
    f = model.predict(theta, features)
    for r in range(2):
        for i in range(x.shape[1]):
            group_scores = torch.stack(
                [blocks["outer_b"][r, 2 * g] @ x[r, i] + blocks["outer_c"][r, 2 * g, 0] for g in range(2)]
            )
            total = 0.0
            for g in range(2):
                atoms = range(2 * g, 2 * g + 2)
                inner = torch.stack([blocks["b"][r, k] @ x[r, i] + blocks["c"][r, k, 0] for k in atoms])
                experts = torch.stack(
                    [
                        blocks["scale"][r, k, 0]
                        * torch.tanh(blocks["alpha"][r, k] @ x[r, i] / x[r, i].norm() + blocks["beta"][r, k, 0])
                        for k in atoms
                    ]
                )
                total = total + torch.softmax(group_scores, 0)[g] * (torch.softmax(inner, 0) * experts).sum()
            torch.testing.assert_close(f[r, i], total)


def test_group_copies_and_tied_copies_never_enter_f():
    model = multihead("shared_sigmoid")
    theta, features, _ = inputs(model)
    f = model.predict(theta, features)
    moved = theta + 5.0 * model.unused_mask  # pi on non-first atoms, V of head 1, the group index
    torch.testing.assert_close(model.predict(moved, features), f)
    shared_v = theta.clone()
    shared_v[:, 0, model.block_slices["V"]] += 1.0  # A_1 of head 0 is A_1 of every head
    blocks = model.blocks(shared_v)
    torch.testing.assert_close(blocks["V"][:, 0], blocks["V"][:, 3])
    assert not torch.allclose(blocks["Z"][:, 3], model.blocks(theta)["Z"][:, 3])


def test_gauges_sources_and_fitted_mask_of_an_over_specified_fit():
    truth = hierarchical(atoms=2)  # k2* = 2: expert 2 of each group is the reference
    fitted = truth.with_atoms(3)
    assert fitted.reference_index == 1 and fitted.num_atoms == 6
    assert fitted.initial_sources(num_true=4, over_specified_atom=0) == [0, 1, 0, 2, 3, 2]
    free = fitted_mask(truth, 3)
    s = fitted.block_slices
    gate = slice(0, s["c"].stop)  # (kappa, nu)
    assert not free[[1, 4], gate].any() and free[[0, 2, 3, 5], gate].all()  # both inner references fixed
    assert free[0, s["outer_b"]].all() and not free[3, s["outer_b"]].any()  # last group's (omega, beta) fixed
    assert not free[[1, 2, 4, 5], s["outer_b"].start].any()  # copies of the group gate are not fitted
    assert not free[:, s["group"]].any()


def test_initialisation_splits_the_copied_mass_inside_each_group():
    truth = hierarchical(atoms=2)
    theta_true = truth.assemble(
        [torch.randn(2, truth.inner.params_per_atom, dtype=torch.float64) for _ in range(2)],
        {"outer_b": torch.randn(2, 3, dtype=torch.float64), "outer_c": torch.zeros(2, 1, dtype=torch.float64)},
    )
    theta_true[[1, 3], : truth.gate_size] = 0.0  # the references
    start, free = initialise_near_truth(
        truth.with_atoms(3), theta_true, num_atoms=3, over_specified_atom=0, scale=0.0, generators=[make_generator(0)]
    )
    c = truth.block_slices["c"].start
    for g in range(2):
        expected = theta_true[2 * g, c].exp() / 2
        torch.testing.assert_close(
            start[0, [3 * g, 3 * g + 2], c].exp(), torch.stack([expected, expected]), rtol=0.05, atol=0
        )  # noise floor 0.01
    torch.testing.assert_close(
        truth.blocks(theta_true)["group"][:, 0], torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    )


def test_losses_of_the_two_level_families_vanish_at_the_truth():
    for model, names in (
        (hierarchical(atoms=2), {"hierarchical_l5", "hierarchical_l6_r1", "hierarchical_l6_r2", "hierarchical_outer"}),
        (multihead("shared_sigmoid", atoms=2), {"multihead_d2", "multihead_d3", "multihead_pi"}),
    ):
        losses = losses_for("softmax", model.score)
        assert set(losses) == names
        theta = inputs(model, R=1)[0][0]
        theta[:, model.block_slices["group"]] = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)[:, None]
        blocks = model.blocks(theta)
        for loss in losses.values():
            assert loss(model.blocks(theta[None]), blocks).item() == pytest.approx(0.0, abs=1e-12)
    assert set(losses_for("softmax", "multihead_lora_vanilla")) == {
        "multihead_lora_vanilla_d1_r1",
        "multihead_lora_vanilla_d1_r2",
        "multihead_lora_vanilla_product_d1_r1",
        "multihead_lora_vanilla_product_d1_r2",
        "multihead_pi",
    }


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: GroupedMixture((hierarchical().inner,) * 2, outer="gumbel"), "outer = 'gumbel' is not allowed"),
        (lambda: GroupedMixture((hierarchical().inner,)), "num_groups = 1 is not allowed: at least 2 groups"),
        (
            lambda: GroupedMixture((hierarchical(atoms=2).inner, hierarchical(atoms=3).inner)),
            "every group needs the same flat family and number of atoms",
        ),
        (lambda: GroupedMixture((hierarchical().inner,) * 2, tied=("A",)), "tied = ['A'] is not allowed"),
    ],
)
def test_bad_groups_fail_naming_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        build()
