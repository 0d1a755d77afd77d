"""Batched least-squares fitting and rate fitting."""

import platform

import numpy as np
import pytest
import torch

from common.synthetic import FitConfig, MixtureOfExperts, fit_rate, sample_ground_truth
from common.synthetic.experiment import FitProblem, fit_replicates, keep_freed_memory, least_squares
from common.synthetic.truth import make_generator, sample_data


def sample(prob, n, seed, replicates):
    streams = [make_generator(seed, "data", n, r) for r in range(replicates)]
    return sample_data(prob.truth, prob.theta_true, n, 0.01, streams)


def problem(gate="softmax", expert="linear"):
    model = MixtureOfExperts(gate, "quadratic_polynomial", expert, dim=2, num_atoms=2)
    theta = sample_ground_truth(model, seed=0, gate_variance=1.0, expert_variance=1.0)
    return FitProblem(model, theta, num_atoms=2, over_specified_atom=0, noise_variance=0.01, init_scale=0.1)


def test_fit_reaches_the_least_squares_estimator_and_recovers_the_truth():
    prob = problem()
    errors = []
    for n in (2000, 50000):
        result, theta0 = fit_replicates(prob, n, seed=0, replicates=range(3), fit=FitConfig(max_iter=300))
        if n == 50000:
            assert result.converged.all()
        streams = [make_generator(0, "data", n, r) for r in range(3)]
        x, y = sample_data(prob.truth, prob.theta_true, n, 0.01, streams)
        _, loss_fn = least_squares(prob.fitted, x, y)
        at_truth = loss_fn(prob.theta_true.expand(3, -1, -1).reshape(3, -1), torch.arange(3))
        assert (result.loss <= at_truth).all()  # the estimator fits the sample better than the truth
        errors.append((result.theta - prob.theta_true).abs().amax(dim=(1, 2)).median().item())
    assert errors[1] < 0.25 and errors[1] < errors[0] / 3, errors  # error ~ n^-1/2: 25x the data, ~5x smaller


@pytest.mark.parametrize("solver", ["geodesic", "marquardt"])
def test_batched_fit_equals_per_replicate_fits(solver):
    prob = problem("sigmoid", "gelu")
    fit = FitConfig(max_iter=30, solver=solver)
    batched, _ = fit_replicates(prob, 800, seed=1, replicates=range(3), fit=fit)
    for r in range(3):
        single, _ = fit_replicates(prob, 800, seed=1, replicates=[r], fit=fit)
        torch.testing.assert_close(single.theta[0], batched.theta[r], rtol=1e-7, atol=1e-9)
        assert single.iterations[0] == batched.iterations[r]


# the test problems of this module: each fit's stationary point is locally unique at these sizes
@pytest.mark.parametrize(
    ("gate", "expert", "n", "tol"),
    [("sigmoid", "gelu", 20000, 1e-3), ("softmax", "relu", 20000, 1e-2), ("softmax", "gelu", 20000, 1e-2),
     ("softmax", "linear", 50000, 1e-2)],
)  # fmt: skip
def test_geodesic_and_marquardt_solvers_reach_the_same_estimator(gate, expert, n, tol):
    """Both stop where the Gauss-Newton decrement g^T H^-1 g, the squared Fisher distance to the estimator of the
    local quadratic model, is below the rule's tolerance: so the two fits are within sqrt(d1) + sqrt(d2) of each
    other in that metric, and their losses within (d1 + d2) / 2 of each other: with a factor 2 of slack,
    because the Gauss-Newton matrix is not the loss's Hessian (the residuals' own curvature). Where a problem
    has several stationary points near the start (over-specified fits; smaller samples), the two solvers can
    stop at different ones: e.g. sigmoid gating with GELU experts at n = 5000, replicate 1, where the Marquardt
    fit ends 1.8e-6 lower."""
    prob = problem(gate, expert)
    fits = {
        solver: fit_replicates(prob, n, 5, range(3), FitConfig(solver=solver, max_iter=200, decrement_tol=tol))[0]
        for solver in ("geodesic", "marquardt")
    }
    geodesic, marquardt = fits["geodesic"], fits["marquardt"]
    assert geodesic.converged.all() and marquardt.converged.all()
    normal_equations, _ = least_squares(prob.fitted, *sample(prob, n, seed=5, replicates=3))
    _, _, gram = normal_equations(marquardt.theta.reshape(3, -1), torch.arange(3))
    difference = (geodesic.theta - marquardt.theta).reshape(3, -1, 1)
    distance = (difference.transpose(1, 2) @ gram @ difference)[:, 0, 0]
    bound = (geodesic.decrement.sqrt() + marquardt.decrement.sqrt()) ** 2
    assert (distance <= 2 * bound).all(), (distance, bound)
    assert ((geodesic.loss - marquardt.loss).abs() <= geodesic.decrement + marquardt.decrement).all()


def test_geodesic_solver_without_curvature_takes_the_marquardt_steps():
    """With r''_v = 0 the acceleration vanishes and every decision is Marquardt's: the same iterates, bit for bit."""
    prob = problem("sigmoid", "gelu")
    x, y = sample(prob, 600, seed=3, replicates=2)
    start = (prob.theta_true + 0.1).expand(2, -1, -1).clone()
    normal_equations, loss_fn = least_squares(prob.fitted, x, y)

    def no_curvature(theta, idx, v):
        return torch.zeros_like(theta)

    from common.synthetic.fitting import fit_least_squares

    runs = [
        fit_least_squares(normal_equations, loss_fn, start, 600, cfg=FitConfig(solver=s, max_iter=20), curvature=c)
        for s, c in (("geodesic", no_curvature), ("marquardt", None))
    ]
    assert torch.equal(runs[0].theta, runs[1].theta) and torch.equal(runs[0].iterations, runs[1].iterations)
    with pytest.raises(ValueError, match="geodesic needs the residuals' curvature"):
        fit_least_squares(normal_equations, loss_fn, start, 600, cfg=FitConfig(solver="geodesic"))


@pytest.mark.parametrize("expert", ["gelu", "relu"])
def test_curvature_is_the_second_directional_derivative_of_the_residuals(expert):
    prob = problem("sigmoid", expert)
    x, y = sample(prob, 400, seed=6, replicates=2)
    theta = (prob.theta_true + 0.1).expand(2, -1, -1).reshape(2, -1).clone()
    v = 0.01 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    normal_equations, _ = least_squares(prob.fitted, x, y, budget=900)  # several row blocks
    got = normal_equations.curvature(theta, torch.arange(2), v)
    features = prob.fitted.features(x)

    def f(t):
        return prob.fitted.predict(t.view(2, prob.fitted.num_atoms, -1), features)

    def along(t):
        return torch.func.jvp(f, (t,), (v,))[1]

    second = torch.func.jvp(along, (theta,), (v,))[1]  # d^2 f(theta + s v) / ds^2 at s = 0, exactly
    _, pullback = torch.func.vjp(f, theta)
    expected = 2 * pullback(second)[0] / 400
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-12)


def test_normal_equations_are_the_gauss_newton_system_of_the_training_loss():
    prob = problem("sigmoid", "relu")
    streams = [make_generator(2, "data", 300, r) for r in range(2)]
    x, y = sample_data(prob.truth, prob.theta_true, 300, 0.01, streams)
    theta = (prob.theta_true + 0.05).expand(2, -1, -1).reshape(2, -1).clone()
    # a budget of 700 entries forces several row blocks of the 2 x 300 x 24 Jacobian
    normal_equations, loss_fn = least_squares(prob.fitted, x, y, budget=700)
    loss, grad, gram = normal_equations(theta, torch.arange(2))
    for r in range(2):
        f, jac = prob.fitted.jacobian(theta[r].view(1, 2, -1), prob.fitted.features(x[r][None]))
        jac = jac[0].reshape(300, -1)
        torch.testing.assert_close(gram[r], 2 * jac.T @ jac / 300)
        torch.testing.assert_close(grad[r], 2 * jac.T @ (f[0] - y[r]) / 300)
    torch.testing.assert_close(loss, loss_fn(theta, torch.arange(2)))


def test_gauss_newton_matrix_from_a_row_subsample():
    prob = problem("softmax", "relu")
    n, m = 300, 120
    streams = [make_generator(3, "data", n, r) for r in range(2)]
    x, y = sample_data(prob.truth, prob.theta_true, n, 0.01, streams)
    theta = (prob.theta_true + 0.05).expand(2, -1, -1).reshape(2, -1).clone()
    idx = torch.arange(2)
    exact = least_squares(prob.fitted, x, y, budget=700)[0](theta, idx)
    normal_equations, _ = least_squares(prob.fitted, x, y, gram_rows=m, budget=700)
    loss, grad, gram = normal_equations(theta, idx)
    torch.testing.assert_close(loss, exact[0])  # loss and gradient still use every row
    torch.testing.assert_close(grad, exact[1])
    for r in range(2):
        _, jac = prob.fitted.jacobian(theta[r].view(1, 2, -1), prob.fitted.features(x[r, :m][None]))
        jac = jac[0].reshape(m, -1)
        torch.testing.assert_close(gram[r], 2 * jac.T @ jac / m)
    assert not torch.allclose(gram, exact[2])
    for a, b in zip(normal_equations(theta, idx, exact=True), exact, strict=True):
        torch.testing.assert_close(a, b)


def test_subsampled_gauss_newton_matrix_reaches_the_same_estimator():
    prob = problem("sigmoid", "gelu")
    n = 20000
    full, _ = fit_replicates(prob, n, seed=4, replicates=range(3), fit=FitConfig(decrement_tol=1e-3))
    sub, _ = fit_replicates(prob, n, seed=4, replicates=range(3), fit=FitConfig(decrement_tol=1e-3, gram_rows=500))
    assert full.converged.all() and sub.converged.all()
    # converged is judged with the full-sample matrix
    parameters = prob.fitted.num_atoms * prob.fitted.params_per_atom
    normal_equations, _ = least_squares(prob.fitted, *sample(prob, n, seed=4, replicates=3))
    _, grad, gram = normal_equations(sub.theta.reshape(3, -1), torch.arange(3))
    decrement = (grad[:, None, :] @ torch.linalg.solve(gram, grad[..., None]))[:, 0, 0]
    torch.testing.assert_close(decrement, sub.decrement, rtol=1e-4, atol=0)
    assert (decrement < 1e-3 * parameters * sub.loss / n).all()
    # both are the estimator up to a small fraction of its distance from the truth
    distance = (sub.theta - full.theta).norm(dim=(1, 2))
    assert (distance < 0.1 * (full.theta - prob.theta_true).norm(dim=(1, 2))).all(), distance


def test_stopping_rule_is_relative_to_the_statistical_error():
    prob = problem()
    n = 20000
    loose, _ = fit_replicates(prob, n, seed=0, replicates=range(2), fit=FitConfig(decrement_tol=1e-1))
    tight, _ = fit_replicates(prob, n, seed=0, replicates=range(2), fit=FitConfig(decrement_tol=1e-4, max_iter=300))
    parameters = prob.fitted.num_atoms * prob.fitted.params_per_atom - prob.fitted.gate_size  # reference gate
    for result, tol in ((loose, 1e-1), (tight, 1e-4)):
        assert result.converged.all()
        assert (result.decrement < tol * parameters * result.loss / n).all()
    assert (tight.iterations >= loose.iterations).all() and (tight.loss <= loose.loss).all()
    # the loose fit is within sqrt(0.1) of the statistical error of the estimator: far closer than the truth
    distance = (loose.theta - tight.theta).norm(dim=(1, 2))
    assert (distance < 0.5 * (tight.theta - prob.theta_true).norm(dim=(1, 2))).all(), distance


def test_fit_rate_recovers_a_power_law_and_its_ci():
    n = np.array([1e3, 1e4, 1e5])
    rng = np.random.default_rng(0)
    values = 2.0 * n[:, None] ** -0.5 * rng.uniform(0.9, 1.1, size=(3, 50))
    rate = fit_rate(n, values)
    assert rate.slope == pytest.approx(-0.5, abs=0.01)
    assert rate.ci_low < rate.slope < rate.ci_high and rate.ci_high - rate.ci_low < 0.05
    exact = fit_rate(n, np.repeat(3.0 * n[:, None] ** -0.25, 4, axis=1))
    assert exact.slope == pytest.approx(-0.25) and exact.intercept == pytest.approx(np.log(3.0))
    with pytest.raises(ValueError, match="values must be"):
        fit_rate(n, values[:2])


class _PredictOnly:
    """A model that only has features and predict: its Jacobian comes from automatic differentiation."""

    def __init__(self, model, outputs=1):
        self.model, self.outputs = model, outputs
        self.num_atoms, self.params_per_atom = model.num_atoms, model.params_per_atom

    def features(self, x):
        return self.model.features(x)

    def predict(self, theta, features):
        f = self.model.predict(theta, features)
        return f if self.outputs == 1 else torch.stack([f * (k + 1) for k in range(self.outputs)], dim=-1)


@pytest.mark.parametrize("gram_rows", [None, 50])
def test_autograd_normal_equations_match_the_analytic_ones(gram_rows):
    prob = problem("softmax", "normalised_tanh")
    x, y = sample(prob, 200, seed=1, replicates=2)
    theta = (prob.theta_true + 0.1).expand(2, -1, -1).reshape(2, -1)
    analytic, _ = least_squares(prob.fitted, x, y, gram_rows)
    generic, generic_loss = least_squares(_PredictOnly(prob.fitted), x, y, gram_rows, budget=2**9)
    for a, b in zip(analytic(theta, torch.arange(2)), generic(theta, torch.arange(2)), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(generic_loss(theta, torch.arange(2)), analytic(theta, torch.arange(2))[0])


def test_vector_outputs_average_the_loss_over_outputs():
    prob = problem()
    x, y = sample(prob, 100, seed=2, replicates=1)
    theta = (prob.theta_true + 0.05).reshape(1, -1)
    two = _PredictOnly(prob.fitted, outputs=2)
    y2 = torch.stack([y, 2 * y], dim=-1)  # outputs f and 2 f: residuals r and 2 r
    loss, grad, gram = least_squares(two, x, y2)[0](theta, torch.arange(1))
    loss1, grad1, gram1 = least_squares(prob.fitted, x, y)[0](theta, torch.arange(1))
    torch.testing.assert_close(loss, loss1 * (1 + 4) / 2)
    torch.testing.assert_close(grad, grad1 * (1 + 4) / 2)
    torch.testing.assert_close(gram, gram1 * (1 + 4) / 2)


@pytest.mark.parametrize("solver", ["geodesic", "marquardt"])
def test_bounded_fit_stays_in_the_box_and_converges_on_its_face(solver):
    # a quadratic whose minimiser (3, -3, 0.5) lies partly outside [-1, 1]^3: the bounded fit stops on the face,
    # at the projection (1, -1, 0.5), and counts as converged there (projected Newton decrement)
    target = torch.tensor([[3.0, -3.0, 0.5]], dtype=torch.float64)

    def normal_equations(theta, idx):
        residual = theta - target
        return residual.pow(2).sum(-1), 2 * residual, 2 * torch.eye(3, dtype=torch.float64).expand(len(idx), 3, 3)

    def loss_fn(theta, idx):
        return (theta - target).pow(2).sum(-1)

    def curvature(theta, idx, v):  # linear residuals: no curvature
        return torch.zeros_like(theta)

    from common.synthetic.fitting import fit_least_squares

    start = torch.zeros(1, 3, dtype=torch.float64)
    fit = fit_least_squares(
        normal_equations, loss_fn, start, n=10**6, cfg=FitConfig(bound=1.0, solver=solver), curvature=curvature
    )
    torch.testing.assert_close(fit.theta, torch.tensor([[1.0, -1.0, 0.5]], dtype=torch.float64), atol=1e-4, rtol=0)
    assert fit.converged.all() and fit.grad_norm.item() < 1e-3  # the gradient into the face does not count
    assert fit.theta.abs().max() <= 1.0
    free = fit_least_squares(
        normal_equations, loss_fn, start, n=10**6, cfg=FitConfig(solver=solver), curvature=curvature
    )
    torch.testing.assert_close(free.theta, target, atol=1e-4, rtol=0)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_fitter_keeps_freed_blocks_with_glibc():
    """The allocator setting that saves the fits their page faults is accepted (mallopt returns 1)."""
    assert keep_freed_memory()


def test_an_unknown_solver_is_refused_naming_the_fit():
    from common.config import ConfigError, load_config
    from sigmoid_attention import synthetic

    with pytest.raises(ConfigError, match="'fit.solver' = 'newton' is not allowed: one of geodesic, marquardt"):
        load_config(synthetic.Config, "sigmoid_attention/configs/fig1a_smoke.yaml", ["fit.solver=newton"])
