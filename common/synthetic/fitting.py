"""Least-squares fitting batched over replicates: one Levenberg-Marquardt run per replicate, as one program.

The theorems are about the least-squares estimator itself, so a fit must reach it (spec Sec. 2.5). The
problems here are badly conditioned (Fisher information condition numbers 1e5-1e7 for the sigmoid paper's
models) and, with ReLU experts, only piecewise smooth, so first-order methods stall far from the estimator.
Levenberg-Marquardt uses the Gauss-Newton matrix H = (2/n) J^T J and stops on the Gauss-Newton decrement
g^T H^-1 g, which is (twice) the squared distance to the estimator in the Fisher metric. The estimator's own
statistical error has squared Fisher length about nu * P / n (P fitted parameters, nu the noise variance,
estimated by the training loss), so a fit is converged when g^T H^-1 g < decrement_tol * P * loss / n: the
remaining optimisation error is then a sqrt(decrement_tol) fraction of the statistical error, in every
direction on average, however badly conditioned the problem is. Each replicate keeps its own damping and
stopping state; running replicates one at a time gives the same iterates as the batched run (up to
floating-point reduction order).

The papers' own protocol (QG App. F.1: start near the truth, "gradient descent for 10 epochs, learning rate
0.1"; SG gives none) is ``fit_gradient_descent``: it stops where its budget ends, not at the estimator, and
reports the same decrement, so a record says how far such a fit is from the least-squares estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

# (theta (k, P), idx (k,)) -> (loss (k,), gradient (k, P), Gauss-Newton matrix (k, P, P))
NormalEquations = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
# (theta (k, P), idx (k,)) -> loss (k,)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (theta (k, P), idx (k,), v (k, P)) -> the gradient-scaled second derivative of the residuals along v, 2 J^T r''_v / n
Curvature = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# (theta (k, P), idx (k,), rows (k, B) or None for all n rows) -> (mean squared error (k,), its gradient (k, P))
BatchGradient = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]

FIT_METHODS = {
    "least_squares": "Levenberg-Marquardt to the least-squares estimator (the theorems' estimator)",
    "paper": "the papers' protocol, QG App. F.1: gradient descent for a fixed number of epochs from the start",
}
SOLVERS = {
    "geodesic": "Levenberg-Marquardt with geodesic acceleration (Transtrum and Sethna 2012): each step may add the "
    "second-order correction along the residuals' curvature, so steps follow curved valleys",
    "marquardt": "Levenberg-Marquardt steps (the default: on this repository's CPU no slower to the estimator)",
}
ACCELERATION_RATIO = 0.75  # geodesic: no accelerated trial where the correction exceeds this share of the step
LEAST_SQUARES_FIELDS = (  # the fields a least-squares fit's record holds (its run hash): the paper fields are not
    "max_iter",
    "decrement_tol",
    "initial_damping",
    "max_damping",
    "gram_rows",
    "exact_switch",
    "decrement_damping",
    "bound",
)


@dataclass
class FitConfig:
    """How a sweep point is fitted: the least-squares estimator, or the papers' gradient-descent protocol.

    ``least_squares`` is a batched Levenberg-Marquardt run per replicate with the stopping rule of this module's
    docstring. ``paper`` is plain gradient descent on the mean squared error (QG App. F.1), with both readings of
    its "epoch": one full-batch step (``batch_size`` None) or a pass over shuffled mini-batches.
    """

    method: str = "least_squares"  # a key of FIT_METHODS
    solver: str = "marquardt"  # least squares: a key of SOLVERS (geodesic is recorded in the run hash)
    max_iter: int = 100  # least squares: trial steps, accepted or not
    decrement_tol: float = 1e-2  # stop when g^T H^-1 g < decrement_tol * P * loss / n
    initial_damping: float = 1e-4  # lambda of (H + lambda diag(H)) delta = -g
    max_damping: float = 1e8
    gram_rows: int | None = None  # Gauss-Newton matrix from at most this many rows (None: all n rows) ...
    exact_switch: float = 1.0  # ... until the damped decrement is below exact_switch * P * loss / n
    decrement_damping: float = 1e-9  # the Newton decrement uses H + this * diag(H): exact flat directions
    # (sigmoid gates with a constant score, spec Sec. 4.3) make H singular, and g has no component along them
    bound: float | None = None  # fitted parameters stay in [-bound, bound]: the compact parameter space of the
    # theorems. Without it an over-specified atom can run off to infinity (a saturated expert, a huge mass) and
    # fit the noise; None: unbounded
    # --- method "paper" (QG App. F.1) ---
    epochs: int = 10
    learning_rate: float = 0.1
    batch_size: int | None = None  # None: full batch, one step per epoch; else shuffled mini-batches of this size

    def record(self) -> dict:
        """The fields that determine a fit of this method (part of a sweep point's hashed record).

        A least-squares record by the Marquardt solver is the one written before the paper protocol and the solver
        choice existed (its run hashes are kept).
        """
        if self.method == "least_squares":
            record = {k: getattr(self, k) for k in LEAST_SQUARES_FIELDS if k != "bound" or self.bound is not None}
            return record | ({"solver": self.solver} if self.solver != "marquardt" else {})
        record = {k: getattr(self, k) for k in ("method", "epochs", "learning_rate", "batch_size", "decrement_tol")}
        return record | ({"bound": self.bound} if self.bound is not None else {})


@dataclass
class FitResult:
    theta: torch.Tensor  # (R, ...) fitted parameters
    loss: torch.Tensor  # (R,) final training loss
    grad_norm: torch.Tensor  # (R,) sup-norm of the final gradient over the fitted parameters
    decrement: torch.Tensor  # (R,) final Gauss-Newton decrement g^T H^-1 g
    iterations: torch.Tensor  # (R,) accepted steps
    converged: torch.Tensor  # (R,) bool: the decrement criterion was met
    # (R, 2) Gauss-Newton matrices formed: from all n rows, from the gram_rows subsample (the cost of a fit)
    matrices: torch.Tensor


def _damping_scale(H: torch.Tensor) -> torch.Tensor:
    """diag(H) (k, P), floored relative to its largest entry: the metric of the damping term."""
    diag = torch.diagonal(H, dim1=-2, dim2=-1)
    return diag.clamp_min(1e-12 * diag.amax(-1, keepdim=True).clamp_min(1e-300))


def _solve(H, g, damping, free):
    """Damped Gauss-Newton steps (k, P) solving (H + damping diag(H)) step = -g; fixed parameters do not move."""
    scale = _damping_scale(H)
    fixed = ~free
    A = H.masked_fill(fixed[:, :, None] | fixed[:, None, :], 0.0)
    A.diagonal(dim1=-2, dim2=-1).add_(damping[:, None] * scale + fixed)
    L, info = torch.linalg.cholesky_ex(A)
    step = -torch.cholesky_solve((g * free)[..., None], L)[..., 0]
    return step, info == 0


def _project(theta: torch.Tensor, free: torch.Tensor, bound: float | None) -> torch.Tensor:
    """theta with its free entries clamped to [-bound, bound] (unchanged without a bound)."""
    return theta if bound is None else torch.where(free, theta.clamp(-bound, bound), theta)


def _acceleration(H, step, curvature, damping, movable):
    """The geodesic correction a / 2 (k, P) of the step v and whether it is admissible (k,): solved, and small,
    2 |a| / |v| <= ACCELERATION_RATIO in the damping metric (Transtrum and Sethna's rule)."""
    acceleration, solved = _solve(H, curvature, damping, movable)
    metric = _damping_scale(H)
    ratio = 2 * ((acceleration.square() * metric).sum(-1) / (step.square() * metric).sum(-1).clamp_min(1e-300)).sqrt()
    return 0.5 * acceleration, solved & (ratio <= ACCELERATION_RATIO)


def _movable(x: torch.Tensor, grad: torch.Tensor, free: torch.Tensor, bound: float | None) -> torch.Tensor:
    """The free entries (k, P) that may move: at the bound, those whose descent direction points outside are held
    (the active set of the box; the decrement is then the projected one, zero at a constrained optimum)."""
    if bound is None:
        return free
    return free & ~((x.abs() >= bound) & (grad * x.sign() < 0))


def _newton_decrement(H, g, movable, damping: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gauss-Newton decrement g^T H^-1 g (k,) over the movable entries, with ``damping`` x diag(H) added for the
    exact flat directions, and whether its system was solved (where not, the decrement is inf)."""
    newton, solved = _solve(H, g, torch.full((len(g),), damping, dtype=g.dtype, device=g.device), movable)
    return torch.where(solved, -(newton * g).sum(-1), torch.full_like(g[:, 0], float("inf"))), solved


def fit_least_squares(
    normal_equations: NormalEquations,
    loss_fn: Loss,
    theta0: torch.Tensor,
    n: int,
    free: torch.Tensor | None = None,
    cfg: FitConfig | None = None,
    exact_normal_equations: NormalEquations | None = None,
    curvature: Curvature | None = None,
) -> FitResult:
    """Minimise a per-replicate least-squares loss from theta0 (R, ...), independently per replicate.

    free: bool mask broadcastable to theta0 of the fitted entries (the others keep their initial value).
    n: the sample size, which sets the stopping scale P * loss / n.
    exact_normal_equations: where ``normal_equations`` approximate the Gauss-Newton matrix (a row subsample),
    the exact ones. A replicate switches to them when the approximate decrement meets the stopping rule, and
    at the end; ``converged`` and the final decrement always refer to the exact matrix.
    curvature: the residuals' second directional derivative, which ``cfg.solver`` geodesic needs.

    Solver ``geodesic`` (Transtrum and Sethna, "Improvements to the Levenberg-Marquardt algorithm for nonlinear
    least-squares minimization", 2012): with v the damped step, (H + lambda D) a = -2 J^T r''_v / n is the
    acceleration along the curvature of the residuals, and the trial point is x + v + a / 2; a step whose
    correction is large (2 |a| / |v| > ACCELERATION_RATIO in the damping metric D) fails, as does one that does
    not lower the loss. Plain steps overshoot along the curved valleys of these ill-conditioned problems, so the
    damping climbs and the fit crawls; the corrected step goes further per Gauss-Newton matrix, at the price of
    three forward passes and one reverse pass per trial (no n P^2 product). The damping schedule and the
    stopping rule are the Marquardt solver's: both stop at a stationary point meeting the same decrement
    criterion; where the problem has several near the start (over-specified fits), they may stop at different
    ones.
    """
    cfg = cfg or FitConfig()
    if cfg.solver == "geodesic" and curvature is None:
        raise ValueError("solver geodesic needs the residuals' curvature (fit_sample passes it)")
    shape, R = theta0.shape, theta0.shape[0]
    free = (torch.ones_like(theta0, dtype=torch.bool) if free is None else free.expand(shape)).reshape(R, -1)
    x = theta0.detach().reshape(R, -1).clone()
    device = x.device
    everyone = torch.arange(R, device=device)
    scale = free.sum(-1) / n  # P / n: the statistical error's squared Fisher length per unit of noise
    # Replicates switch to the exact normal equations once the approximate ones say they have converged.
    exact = torch.full((R,), exact_normal_equations is None, device=device)
    matrices = torch.zeros(R, 2, dtype=torch.long, device=device)

    def system(idx: torch.Tensor):
        matrices[idx, exact[idx].logical_not().long()] += 1
        if exact[idx].all():
            return (exact_normal_equations or normal_equations)(x[idx], idx)
        if not exact[idx].any():
            return normal_equations(x[idx], idx)
        mask = exact[idx]
        parts = exact_normal_equations(x[idx[mask]], idx[mask]), normal_equations(x[idx[~mask]], idx[~mask])
        out = [torch.empty(len(idx), *t.shape[1:], dtype=t.dtype, device=device) for t in parts[0]]
        for o, a, b in zip(out, *parts, strict=True):
            o[mask], o[~mask] = a, b
        return out

    def unconstrained(idx: torch.Tensor) -> torch.Tensor:
        return _movable(x[idx], grad[idx], free[idx], cfg.bound)

    loss, grad, H = system(everyone)
    damping = torch.full((R,), cfg.initial_damping, dtype=x.dtype, device=device)
    iterations = torch.zeros(R, dtype=torch.long, device=device)
    decrement = torch.full((R,), float("inf"), dtype=x.dtype, device=device)
    active = torch.ones(R, dtype=torch.bool, device=device)
    converged = torch.zeros(R, dtype=torch.bool, device=device)
    for _ in range(cfg.max_iter):
        stalled = active & (damping >= cfg.max_damping) & ~exact  # no approximate step helps: go exact
        if stalled.any():
            exact[stalled], damping[stalled] = True, cfg.initial_damping
            loss[stalled], grad[stalled], H[stalled] = system(stalled.nonzero().squeeze(-1))
        active &= damping < cfg.max_damping
        idx = active.nonzero().squeeze(-1)
        if len(idx) == 0:
            break
        tol = cfg.decrement_tol * scale[idx] * loss[idx]
        step, ok = _solve(H[idx], grad[idx], damping[idx], unconstrained(idx))
        # The damped decrement is at most the Newton decrement g^T H^-1 g: where it is small, check the latter.
        damped = -(step * grad[idx]).sum(-1)
        # Within exact_switch x the statistical error, an approximate matrix converges slowly: go exact.
        switch = ok & ~exact[idx] & (damped < cfg.exact_switch * tol / cfg.decrement_tol)
        if switch.any():
            exact[idx[switch]], damping[idx[switch]] = True, cfg.initial_damping
            loss[idx[switch]], grad[idx[switch]], H[idx[switch]] = system(idx[switch])
            idx, step, ok, damped, tol = idx[~switch], step[~switch], ok[~switch], damped[~switch], tol[~switch]
        check = ok & exact[idx] & (damped < tol)  # converged is only ever judged with the exact matrix
        if check.any():
            value, solved = _newton_decrement(
                H[idx[check]], grad[idx[check]], unconstrained(idx[check]), cfg.decrement_damping
            )
            decrement[idx[check]] = torch.where(solved, value, decrement[idx[check]])
            done = torch.zeros_like(check)
            done[check] = solved & (decrement[idx[check]] < tol[check])
            active[idx[done]] = False
            converged[idx[done]] = True
            idx, step, ok = idx[~done], step[~done], ok[~done]
        if len(idx) == 0:
            continue
        trial = x[idx] + step
        if cfg.solver == "geodesic":
            correction, admissible = _acceleration(
                H[idx], step, curvature(x[idx], idx, step), damping[idx], unconstrained(idx)
            )
            trial, ok = trial + correction, ok & admissible
        trial = _project(trial, free[idx], cfg.bound)
        trial_loss = torch.where(ok, loss_fn(trial, idx), torch.full_like(damping[idx], float("inf")))
        better = trial_loss < loss[idx]
        accepted = idx[better]
        damping[idx] = torch.where(better, (damping[idx] / 3).clamp_min(1e-12), damping[idx] * 4)
        if len(accepted):
            x[accepted] = trial[better]
            loss[accepted], grad[accepted], H[accepted] = system(accepted)
            iterations[accepted] += 1
    # Newton decrements, with the exact Gauss-Newton matrix, at the final iterate of the fits stopped by the
    # iteration or damping limit.
    if not exact.all():
        idx = (~exact).nonzero().squeeze(-1)
        exact[idx] = True
        loss[idx], grad[idx], H[idx] = system(idx)
    if not converged.all():
        idx = (~converged).nonzero().squeeze(-1)
        value, solved = _newton_decrement(H[idx], grad[idx], unconstrained(idx), cfg.decrement_damping)
        decrement[idx] = torch.where(solved, value, decrement[idx])
        converged[idx] = solved & (decrement[idx] < cfg.decrement_tol * scale[idx] * loss[idx])
    return FitResult(
        theta=x.reshape(shape),
        loss=loss,
        grad_norm=(grad * unconstrained(everyone)).abs().amax(-1),
        decrement=decrement,
        iterations=iterations,
        converged=converged,
        matrices=matrices,
    )


def fit_gradient_descent(
    gradient: BatchGradient,
    theta0: torch.Tensor,
    n: int,
    free: torch.Tensor | None = None,
    cfg: FitConfig | None = None,
    shuffles: Sequence[torch.Generator] | None = None,
    normal_equations: NormalEquations | None = None,
    outputs: int = 1,
) -> FitResult:
    """The papers' protocol: plain gradient descent on each replicate's mean squared error from theta0 (R, ...).

    QG App. F.1 runs "gradient descent for 10 epochs" at "learning rate 0.1" and does not say what an epoch is.
    ``cfg.batch_size`` None reads it as one full-batch step: theta <- theta - lr * grad MSE(theta). Otherwise an
    epoch is a pass over the n rows in a fresh random order, drawn per replicate from ``shuffles[r]``
    (``torch.randperm(n)``), cut into consecutive mini-batches of ``batch_size`` rows (the last one shorter),
    with one step on each batch's mean squared error. Fixed entries (``free`` False) never move; with
    ``cfg.bound`` every step is projected onto the box. ``gradient(theta, idx, rows)`` gives the loss and
    gradient of replicates idx on their rows (R', B), or on all rows for rows None.

    The final training loss and gradient use all n rows; with ``normal_equations`` (exact, all rows) the result
    also holds the Gauss-Newton decrement of the final iterate and whether it meets the least-squares stopping
    rule (scale P * loss / (n * outputs), as for ``fit_least_squares``), so a record says how far the protocol
    stopped from the estimator. ``iterations`` counts the steps.
    """
    cfg = cfg or FitConfig(method="paper")
    shape, R = theta0.shape, theta0.shape[0]
    free = (torch.ones_like(theta0, dtype=torch.bool) if free is None else free.expand(shape)).reshape(R, -1)
    x = theta0.detach().reshape(R, -1).clone()
    everyone = torch.arange(R, device=x.device)
    batch = cfg.batch_size
    if batch is not None and (shuffles is None or len(shuffles) != R):
        raise ValueError(f"mini-batch gradient descent needs one shuffle generator per replicate ({R})")
    steps = 0
    for _ in range(cfg.epochs):
        if batch is None:
            orders = [None]
        else:
            order = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(x.device)  # (R, n)
            orders = order.split(batch, dim=1)
        for rows in orders:
            _, grad = gradient(x, everyone, rows)
            x = x - cfg.learning_rate * grad * free
            if cfg.bound is not None:
                x = torch.where(free, x.clamp(-cfg.bound, cfg.bound), x)
            steps += 1
    if normal_equations is not None:
        loss, grad, H = normal_equations(x, everyone)
        held = _movable(x, grad, free, cfg.bound)
        decrement, solved = _newton_decrement(H, grad, held, cfg.decrement_damping)
        converged = solved & (decrement < cfg.decrement_tol * free.sum(-1) / (n * outputs) * loss)
    else:
        loss, grad = gradient(x, everyone, None)
        held, decrement = free, torch.full((R,), float("nan"), dtype=x.dtype, device=x.device)
        converged = torch.zeros(R, dtype=torch.bool, device=x.device)
    return FitResult(
        theta=x.reshape(shape),
        loss=loss,
        grad_norm=(grad * held).abs().amax(-1),
        decrement=decrement,
        iterations=torch.full((R,), steps, dtype=torch.long, device=x.device),
        matrices=torch.tensor([[int(normal_equations is not None), 0]], device=x.device).expand(R, 2),
        converged=converged,
    )
