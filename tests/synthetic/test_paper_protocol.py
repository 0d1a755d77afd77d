"""The papers' gradient-descent protocol (QG App. F.1) as a fitter: exact iterates on a linear model, in both
readings of "epoch", and batched replicates equal to one-at-a-time runs."""

import numpy as np
import pytest
import torch

from common.synthetic import FitConfig, MixtureOfExperts, sample_ground_truth
from common.synthetic.experiment import FitProblem, fit_replicates, least_squares
from common.synthetic.fitting import fit_gradient_descent
from common.synthetic.truth import make_generator, sample_data


def linear_problem(R=3, n=50, P=4, seed=0):
    """Linear regressions y = X w + noise (one per replicate) and their exact loss / gradient on any rows."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(R, n, P, generator=g, dtype=torch.float64)
    y = X @ torch.randn(P, generator=g, dtype=torch.float64) + 0.1 * torch.randn(R, n, generator=g, dtype=torch.float64)

    def gradient(theta, idx, rows):
        Xs, ys = (X[idx], y[idx]) if rows is None else (X[idx[:, None], rows], y[idx[:, None], rows])
        residual = (Xs @ theta[..., None])[..., 0] - ys  # (k, B)
        m = Xs.shape[1]
        return residual.pow(2).mean(-1), 2 * (Xs.transpose(1, 2) @ residual[..., None])[..., 0] / m

    return X.numpy(), y.numpy(), gradient


def test_full_batch_epochs_are_the_closed_form_gradient_descent_path():
    X, y, gradient = linear_problem()
    R, n, P = X.shape
    theta0 = torch.zeros(R, P, dtype=torch.float64)
    lr, epochs = 0.05, 7
    fit = fit_gradient_descent(gradient, theta0, n, cfg=FitConfig(method="paper", epochs=epochs, learning_rate=lr))
    for r in range(R):
        # w_k = w_hat + (I - lr * 2/n X^T X)^k (w_0 - w_hat), w_hat the least-squares solution
        w_hat = np.linalg.lstsq(X[r], y[r], rcond=None)[0]
        contraction = np.linalg.matrix_power(np.eye(P) - lr * 2 / n * X[r].T @ X[r], epochs)
        np.testing.assert_allclose(fit.theta[r].numpy(), w_hat + contraction @ (0 - w_hat), rtol=1e-10, atol=1e-12)
    assert (fit.iterations == epochs).all()
    np.testing.assert_allclose(fit.loss.numpy(), [np.mean((X[r] @ fit.theta[r].numpy() - y[r]) ** 2) for r in range(R)])


def test_minibatch_epochs_step_through_each_replicates_shuffled_batches():
    X, y, gradient = linear_problem(n=23)
    R, n, P = X.shape
    theta0 = torch.ones(R, P, dtype=torch.float64)
    cfg = FitConfig(method="paper", epochs=3, learning_rate=0.05, batch_size=5)  # batches 5,5,5,5,3
    fit = fit_gradient_descent(gradient, theta0, n, cfg=cfg, shuffles=[make_generator(9, "b", r) for r in range(R)])
    assert (fit.iterations == 3 * 5).all()
    for r in range(R):
        shuffle, w = make_generator(9, "b", r), np.ones(P)
        for _ in range(3):
            order = torch.randperm(n, generator=shuffle).numpy()
            for rows in np.array_split(order, [5, 10, 15, 20]):
                # a step on the batch's mean squared error: w <- (I - 2 lr/B Xb^T Xb) w + 2 lr/B Xb^T yb
                Xb, yb, B = X[r][rows], y[r][rows], len(rows)
                w = (np.eye(P) - 2 * 0.05 / B * Xb.T @ Xb) @ w + 2 * 0.05 / B * Xb.T @ yb
        np.testing.assert_allclose(fit.theta[r].numpy(), w, rtol=1e-10, atol=1e-12)


def test_fixed_entries_stay_and_the_bound_projects():
    X, y, gradient = linear_problem()
    R, n, P = X.shape
    free = torch.tensor([True, False, True, True])
    theta0 = torch.full((R, P), 0.3, dtype=torch.float64)
    fit = fit_gradient_descent(gradient, theta0, n, free, FitConfig(method="paper", epochs=50, bound=0.35))
    assert (fit.theta[:, 1] == 0.3).all()
    assert fit.theta.abs().max() <= 0.35 and (fit.theta.abs() == 0.35).any()


def mixture_problem(expert="relu", num_atoms=3):
    model = MixtureOfExperts("sigmoid", "quadratic_polynomial", expert, dim=2, num_atoms=2)
    theta = sample_ground_truth(model, seed=0, gate_variance=1.0, expert_variance=1.0)
    return FitProblem(model, theta, num_atoms=num_atoms, over_specified_atom=0, noise_variance=0.01, init_scale=0.1)


@pytest.mark.parametrize("batch_size", [None, 64])
def test_batched_replicates_equal_one_at_a_time_runs(batch_size):
    prob = mixture_problem()
    cfg = FitConfig(method="paper", epochs=3, learning_rate=0.1, batch_size=batch_size)
    batched, theta0 = fit_replicates(prob, 500, seed=3, replicates=range(3), fit=cfg)
    assert not torch.equal(batched.theta, theta0)  # it moved
    for r in range(3):
        single, _ = fit_replicates(prob, 500, seed=3, replicates=[r], fit=cfg)
        torch.testing.assert_close(single.theta[0], batched.theta[r], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(single.decrement[0], batched.decrement[r])


def test_paper_fit_reports_its_distance_to_the_estimator():
    """10 epochs stop far from the estimator; Levenberg-Marquardt from the same start reaches it. The decrement
    of the paper fit is the exact Gauss-Newton decrement at its final iterate."""
    prob = mixture_problem("gelu", num_atoms=2)
    paper, theta0 = fit_replicates(prob, 2000, seed=0, replicates=range(2), fit=FitConfig(method="paper"))
    estimator, theta0_ls = fit_replicates(prob, 2000, seed=0, replicates=range(2), fit=FitConfig(max_iter=200))
    torch.testing.assert_close(theta0, theta0_ls)  # one start for both fits
    assert (paper.loss > estimator.loss).all()
    assert estimator.converged.all() and not paper.converged.any()
    assert (paper.decrement > 100 * estimator.decrement).all()

    x, y = sample_data(prob.truth, prob.theta_true, 2000, 0.01, [make_generator(0, "data", 2000, r) for r in range(2)])
    loss, grad, gram = least_squares(prob.fitted, x, y)[0](paper.theta.reshape(2, -1), torch.arange(2))
    torch.testing.assert_close(paper.loss, loss)
    newton = torch.linalg.lstsq(gram, grad[..., None]).solution[..., 0]
    torch.testing.assert_close(paper.decrement, (newton * grad).sum(-1), rtol=1e-5, atol=0)
