"""Least-squares fitting batched over replicates: one Levenberg-Marquardt run per replicate, as one program.

The theorems are about the least-squares estimator itself, so a fit must reach it (spec Sec. 2.5). The
problems here are badly conditioned (Fisher information condition numbers 1e5-1e7 for the sigmoid paper's
models) and, with ReLU experts, only piecewise smooth, so first-order methods stall far from the estimator.
Levenberg-Marquardt uses the Gauss-Newton matrix H = (2/n) J^T J and stops on the Gauss-Newton decrement
g^T H^-1 g, which is (twice) the squared distance to the estimator in the Fisher metric: a fit is converged
when that distance is a ``decrement_tol`` fraction of the training loss divided by n, far below the
statistical error nu * P / n. Each replicate keeps its own damping and stopping state; running replicates
one at a time gives the same iterates as the batched run (up to floating-point reduction order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# (theta (k, P), idx (k,)) -> (loss (k,), gradient (k, P), Gauss-Newton matrix (k, P, P))
NormalEquations = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
# (theta (k, P), idx (k,)) -> loss (k,)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class FitConfig:
    """Stopping rule and damping of the batched Levenberg-Marquardt fit."""

    max_iter: int = 100
    decrement_tol: float = 1e-3  # stop when g^T H^-1 g < decrement_tol * loss / n
    initial_damping: float = 1e-4  # lambda of (H + lambda diag(H)) delta = -g
    max_damping: float = 1e8


@dataclass
class FitResult:
    theta: torch.Tensor  # (R, ...) fitted parameters
    loss: torch.Tensor  # (R,) final training loss
    grad_norm: torch.Tensor  # (R,) sup-norm of the final gradient over the fitted parameters
    decrement: torch.Tensor  # (R,) final Gauss-Newton decrement g^T H^-1 g
    iterations: torch.Tensor  # (R,) accepted steps
    converged: torch.Tensor  # (R,) bool: the decrement criterion was met


def _solve(H, g, damping, free):
    """Damped Gauss-Newton steps (k, P); fixed parameters get a zero step."""
    diag = torch.diagonal(H, dim1=-2, dim2=-1)
    scale = diag.clamp_min(1e-12 * diag.amax(-1, keepdim=True).clamp_min(1e-300))
    fixed = ~free
    A = H * (free[:, :, None] & free[:, None, :]) + torch.diag_embed(damping[:, None] * scale + fixed)
    L, info = torch.linalg.cholesky_ex(A)
    step = -torch.cholesky_solve((g * free)[..., None], L)[..., 0]
    return step, info == 0


def fit_least_squares(
    normal_equations: NormalEquations,
    loss_fn: Loss,
    theta0: torch.Tensor,
    n: int,
    free: torch.Tensor | None = None,
    cfg: FitConfig | None = None,
) -> FitResult:
    """Minimise a per-replicate least-squares loss from theta0 (R, ...), independently per replicate.

    free: bool mask broadcastable to theta0 of the fitted entries (the others keep their initial value).
    n: the sample size, which sets the stopping scale loss / n.
    """
    cfg = cfg or FitConfig()
    shape, R = theta0.shape, theta0.shape[0]
    free = (torch.ones_like(theta0, dtype=torch.bool) if free is None else free.expand(shape)).reshape(R, -1)
    x = theta0.detach().reshape(R, -1).clone()
    everyone = torch.arange(R)
    loss, grad, H = normal_equations(x, everyone)
    damping = torch.full((R,), cfg.initial_damping, dtype=x.dtype)
    iterations = torch.zeros(R, dtype=torch.long)
    decrement = torch.full((R,), float("inf"), dtype=x.dtype)
    active = torch.ones(R, dtype=torch.bool)
    for _ in range(cfg.max_iter):
        newton, ok = _solve(H, grad, torch.zeros_like(damping), free)
        decrement = torch.where(ok, -(newton * grad * free).sum(-1), decrement)
        active &= ~(ok & (decrement < cfg.decrement_tol * loss / n)) & (damping < cfg.max_damping)
        if not active.any():
            break
        idx = active.nonzero().squeeze(-1)
        step, ok = _solve(H[idx], grad[idx], damping[idx], free[idx])
        trial = x[idx] + step
        trial_loss = torch.where(ok, loss_fn(trial, idx), torch.full_like(damping[idx], float("inf")))
        better = trial_loss < loss[idx]
        accepted = idx[better]
        damping[idx] = torch.where(better, (damping[idx] / 3).clamp_min(1e-12), damping[idx] * 4)
        if len(accepted):
            x[accepted] = trial[better]
            loss[accepted], grad[accepted], H[accepted] = normal_equations(x[accepted], accepted)
            iterations[accepted] += 1
    return FitResult(
        theta=x.reshape(shape),
        loss=loss,
        grad_norm=(grad * free).abs().amax(-1),
        decrement=decrement,
        iterations=iterations,
        converged=decrement < cfg.decrement_tol * loss / n,
    )
