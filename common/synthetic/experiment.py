"""One sweep point of a scalar-output rate experiment: R replicate fits at one sample size n.

Given a true mixing measure, for every replicate r: draw (X, Y) at size n, initialise the N-atom fit near the
truth (spec Sec. 2.5), fit least squares to convergence, and measure Voronoi losses and the regression error
||f_G-hat - f_G*|| on a fresh test sample. Replicates are one batched tensor program; their random streams
depend only on (seed, n, r), so any subset of replicates reproduces the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from common.synthetic.fitting import FitConfig, FitResult, fit_least_squares
from common.synthetic.models import MixtureOfExperts
from common.synthetic.truth import initialise_near_truth, make_generator, sample_data
from common.synthetic.voronoi import VoronoiLoss


@dataclass(frozen=True)
class FitProblem:
    """A least-squares problem of the sweep: a true model and the fitted family with ``num_atoms`` atoms."""

    truth: MixtureOfExperts
    theta_true: torch.Tensor  # (N*, P)
    num_atoms: int  # N >= N*
    over_specified_atom: int  # true atom that the extra fitted atoms start at
    noise_variance: float
    init_scale: float

    @property
    def fitted(self) -> MixtureOfExperts:
        return self.truth.with_atoms(self.num_atoms)

    @property
    def fixed_gate_atom(self) -> int | None:
        """Softmax fits hold the reference atom's gating parameters at zero (spec Sec. 2.3-1, option (a))."""
        return self.truth.num_atoms - 1 if self.truth.gate == "softmax" else None


def least_squares(model: MixtureOfExperts, x: torch.Tensor, y: torch.Tensor, chunk: int = 16384):
    """The training loss mean_i (f(x_i) - y_i)^2 of each replicate and its normal equations, for the fitter.

    x (R, n, d), y (R, n). Works one replicate and ``chunk`` rows at a time so that memory stays at
    chunk x P whatever n is; the Gauss-Newton matrix is accumulated with one matrix product per chunk.
    """
    n = x.shape[1]
    shape = (model.num_atoms, model.params_per_atom)

    def loss_fn(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        out = []
        for flat, r in zip(theta, idx.tolist(), strict=True):
            total = 0.0
            for rows in torch.split(torch.arange(n), chunk):
                f = model.predict(flat.view(1, *shape), model.features(x[r, rows][None]))[0]
                total += (f - y[r, rows]).pow(2).sum()
            out.append(total / n)
        return torch.stack(out)

    def normal_equations(theta: torch.Tensor, idx: torch.Tensor):
        losses, grads, hessians = [], [], []
        for flat, r in zip(theta, idx.tolist(), strict=True):
            loss, grad, gram = 0.0, torch.zeros_like(flat), flat.new_zeros(flat.numel(), flat.numel())
            for rows in torch.split(torch.arange(n), chunk):
                f, jac = model.jacobian(flat.view(1, *shape), model.features(x[r, rows][None]))
                jac = jac[0].reshape(len(rows), -1)  # (c, P)
                residual = f[0] - y[r, rows]
                loss = loss + residual.pow(2).sum()
                grad += jac.T @ residual
                gram += jac.T @ jac
            losses.append(loss / n)
            grads.append(2 * grad / n)
            hessians.append(2 * gram / n)
        return torch.stack(losses), torch.stack(grads), torch.stack(hessians)

    return normal_equations, loss_fn


def fit_replicates(
    problem: FitProblem, n: int, seed: int, replicates: Sequence[int], fit: FitConfig
) -> tuple[FitResult, torch.Tensor]:
    """Fit the replicates at sample size n; returns the fit and the initial parameters (R, N, P)."""
    data_streams = [make_generator(seed, "data", n, r) for r in replicates]
    init_streams = [make_generator(seed, "init", n, r) for r in replicates]
    x, y = sample_data(problem.truth, problem.theta_true, n, problem.noise_variance, data_streams)
    theta0, free = initialise_near_truth(
        problem.fitted,
        problem.theta_true,
        num_atoms=problem.num_atoms,
        over_specified_atom=problem.over_specified_atom,
        scale=problem.init_scale,
        generators=init_streams,
        fixed_gate_atom=problem.fixed_gate_atom,
    )
    normal_equations, loss_fn = least_squares(problem.fitted, x, y)
    result = fit_least_squares(normal_equations, loss_fn, theta0, n, free, fit)
    return result, theta0


def regression_error(
    model: MixtureOfExperts,
    theta: torch.Tensor,
    reference_model: MixtureOfExperts,
    theta_reference: torch.Tensor,
    x: torch.Tensor,
) -> torch.Tensor:
    """Empirical L2(mu) distance ||f_theta - f_reference|| (R,) on test inputs x (n, d)."""
    R = theta.shape[0]
    xs = x.expand(R, -1, -1)
    f = model.predict(theta, model.features(xs))
    f_ref = reference_model.predict(theta_reference.expand(R, -1, -1), reference_model.features(xs))
    return (f - f_ref).pow(2).mean(-1).sqrt()


def evaluate(
    problem: FitProblem,
    theta: torch.Tensor,
    losses: Mapping[str, VoronoiLoss],
    test_x: torch.Tensor,
    best_approximation: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Voronoi losses and regression errors (each (R,)) of fitted parameters theta (R, N, P).

    Losses with ``reference == "best_approximation"`` compare with ``best_approximation`` (G-bar, spec Sec. 4.4);
    where it is None (N = N*), G-bar is G* itself.
    """
    fitted = problem.fitted
    out = {"regression_error": regression_error(fitted, theta, problem.truth, problem.theta_true, test_x)}
    blocks = fitted.blocks(theta)
    for name, loss in losses.items():
        if loss.reference == "best_approximation" and best_approximation is not None:
            reference = fitted.blocks(best_approximation)
        else:
            reference = problem.truth.blocks(problem.theta_true)
        terms = loss.terms(blocks, reference)
        out[name] = terms["total"]
        out[f"{name}_cell_sizes"] = terms["cell_sizes"]
    if best_approximation is not None:
        out["regression_error_to_best_approximation"] = regression_error(
            fitted, theta, fitted, best_approximation, test_x
        )
    return {k: v.detach().cpu().numpy() for k, v in out.items()}
