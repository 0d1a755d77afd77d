"""One sweep point of a scalar-output rate experiment: R replicate fits at one sample size n.

Given a true mixing measure, for every replicate r: draw (X, Y) at size n, initialise the N-atom fit near the
truth (spec Sec. 2.5), fit least squares to convergence, and measure Voronoi losses and the regression error
||f_G-hat - f_G*|| on a fresh test sample. Replicates are one batched tensor program; their random streams
depend only on (seed, n, r), so any subset of replicates reproduces the same numbers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from functools import cache, partial

import numpy as np
import torch
from scipy.linalg import blas

from common.synthetic.fitting import BatchGradient, FitConfig, FitResult, fit_gradient_descent, fit_least_squares
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
    # (M, P): the atoms the near-truth start is drawn around, with the extra fitted atoms copying
    # over_specified_atom; None: the truth. A family of truths that the data cannot tell apart must share it
    # (common.synthetic.minimax), or the start would tell the fit which truth made the data.
    theta_start: torch.Tensor | None = None

    @property
    def fitted(self) -> MixtureOfExperts:
        return self.truth.with_atoms(self.num_atoms)

    @property
    def fixed_gate_atom(self) -> int | None:
        """Softmax fits hold the reference atom's gating parameters at zero (spec Sec. 2.3-1, option (a))."""
        return self.truth.num_atoms - 1 if self.truth.gate == "softmax" else None


@cache
def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed blocks for reuse instead of returning them to the system.

    A fit allocates its Jacobian blocks (hundreds of MB) afresh at every evaluation. By default glibc maps
    blocks this large directly and unmaps them on free, so every evaluation page-faults them in again: 40% of
    a LoRA fit's time here. Serving them from the heap (M_MMAP_MAX = 0) and not trimming the heap
    (M_TRIM_THRESHOLD) reuses the pages; the peak memory is unchanged. Once per process; on other C libraries a
    no-op. Returns whether the allocator took the settings.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def _symmetric_rank_update(gram: torch.Tensor, jac: torch.Tensor) -> None:
    """gram[r] += jac[r]^T jac[r] in place, at least the lower triangle (on a CPU, BLAS syrk: half the flops of a
    matrix product).

    gram (k, P, P) and jac (k, c, P) are C-contiguous float64; their transposes are the column-major arrays
    that BLAS works on, so the lower triangle of gram[r] is the upper triangle BLAS writes. On a GPU, one batched
    matrix product (torch has no batched syrk there).
    """
    if gram.device.type != "cpu":
        gram.baddbmm_(jac.transpose(-1, -2), jac)
        return
    for g, j in zip(gram.numpy(), jac.numpy(), strict=True):
        blas.dsyrk(1.0, j.T, beta=1.0, c=g.T, trans=0, overwrite_c=True)


def _replicates(idx: torch.Tensor, R: int) -> torch.Tensor | slice:
    """The index of replicates idx among R: a slice when it names all of them in order, so that indexing gives views
    of the features instead of gathered copies."""
    return slice(None) if len(idx) == R and bool((idx == torch.arange(R, device=idx.device)).all()) else idx


def least_squares(model, x: torch.Tensor, y: torch.Tensor, gram_rows: int | None = None, budget: int = 2**23):
    """The training loss of each replicate and its normal equations, for the fitter.

    x (R, n, d); y (R, n) or, for vector outputs, (R, n, q). The loss is mean_i ||f(x_i) - y_i||^2 / q.
    Returns ``normal_equations(theta, idx, exact=False)`` -> (loss, gradient, Gauss-Newton matrix), with
    ``normal_equations.curvature(theta, idx, v)`` -> 2 J^T r''_v / (n q) (the geodesic solver's right-hand side),
    and ``loss_fn(theta, idx)``. Loss and gradient use all n rows. The Gauss-Newton matrix 2 J^T J / (m q) uses the
    first m = min(gram_rows, n) rows (all rows if gram_rows is None or exact=True): the rows are i.i.d., so
    this is an unbiased estimate of the full matrix at m / n of the cost of the n P^2 product that dominates
    the fit. It only preconditions the steps; the estimator is still the stationary point of the full
    training loss. Features are computed once; replicates are evaluated together, ``budget`` Jacobian entries
    (replicates x rows x outputs x parameters) at a time, so memory stays bounded.

    Models with analytic ``sensitivities`` (``MixtureOfExperts``) build the Jacobian from them and the
    gradient without it. Any other model needs ``features`` and ``predict``; its Jacobian comes from its
    ``jacobian`` method where it has one (``LoRAMoE``), else from forward-mode automatic differentiation, and
    the gradient of the rows beyond the Gauss-Newton ones from one reverse pass.
    """
    keep_freed_memory()
    R, n = y.shape[:2]
    q = y[0, 0].numel()  # outputs per row
    shape = (model.num_atoms, model.params_per_atom)
    P = shape[0] * shape[1]
    features = model.features(x)
    width = sum(f[0, 0].numel() for f in features)
    analytic = hasattr(model, "sensitivities")

    def row_blocks(k: int, entries_per_row: int, start: int, stop: int):
        rows = max(1, budget // (k * entries_per_row))
        return [slice(begin, min(begin + rows, stop)) for begin in range(start, stop, rows)]

    def block(idx: torch.Tensor, rows: slice):
        which = _replicates(idx, R)
        return tuple(f[which, rows] for f in features), y[which, rows]

    def loss_fn(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        k = len(idx)
        total = theta.new_zeros(k)
        for rows in row_blocks(k, width * q, 0, n):
            block_features, target = block(idx, rows)
            f = model.predict(theta.view(k, *shape), block_features)
            total += (f - target).pow(2).reshape(k, -1).sum(-1)
        return total / (n * q)

    def autograd_jacobian(theta: torch.Tensor, block_features: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """f (k, rows[, q]) and J (k, rows * q, P) of a model without analytic derivatives."""

        def one(t, *fs):
            f = model.predict(t[None], tuple(v[None] for v in fs))[0]
            return f, f

        with warnings.catch_warnings():  # torch's forward-mode AD warns once about its own use of torch.jit.script
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
            jac, f = torch.func.vmap(torch.func.jacfwd(one, has_aux=True))(theta, *block_features)
        return f, jac.reshape(len(theta), -1, P).contiguous()

    def normal_equations(theta: torch.Tensor, idx: torch.Tensor, exact: bool = False):
        k = len(idx)
        m = n if exact or gram_rows is None else min(gram_rows, n)
        loss, grad, gram = theta.new_zeros(k), theta.new_zeros(k, *shape), theta.new_zeros(k, P, P)
        blocks = row_blocks(k, P * q, 0, m) + row_blocks(k, width * q, m, n)
        for rows in blocks:
            block_features, target = block(idx, rows)
            if analytic:
                sens = model.sensitivities(theta.view(k, *shape), block_features)
                residual = sens.f - target
                grad += model.vector_jacobian(block_features, sens, residual)
                jac = model.assemble_jacobian(block_features, sens).reshape(k, -1, P) if rows.start < m else None
            elif rows.start < m:
                if hasattr(model, "jacobian"):
                    f, jac = model.jacobian(theta.view(k, *shape), block_features)
                    jac = jac.reshape(k, -1, P)
                else:
                    f, jac = autograd_jacobian(theta.view(k, *shape), block_features)
                residual = f - target
                grad += (residual.reshape(k, 1, -1) @ jac).reshape(k, *shape)
            else:  # beyond the Gauss-Newton rows only the gradient is needed: one reverse pass, no Jacobian
                f, pullback = torch.func.vjp(lambda t, fs=block_features: model.predict(t, fs), theta.view(k, *shape))
                residual = f - target
                grad += pullback(residual)[0]
            loss += residual.pow(2).reshape(k, -1).sum(-1)
            if rows.start < m:
                _symmetric_rank_update(gram, jac)
        gram = torch.tril(gram) + torch.tril(gram, -1).transpose(-1, -2)
        return loss / (n * q), 2 * grad.reshape(k, P) / (n * q), 2 * gram / (m * q)

    def curvature(theta: torch.Tensor, idx: torch.Tensor, v: torch.Tensor, h: float = 0.1) -> torch.Tensor:
        """2 J^T r''_v / (n q) (k, P): the residuals' second derivative along v (k, P), on all rows.

        r''_v = (f(theta + h v) - 2 f(theta) + f(theta - h v)) / h^2, central differences along the step with
        h = 0.1 as Transtrum and Sethna recommend (exact for residuals quadratic along v; ReLU kinks make any
        smaller h no better), then one vector-Jacobian product: three forward passes and one reverse pass.
        """
        k = len(idx)
        out = theta.new_zeros(k, *shape)
        t, dv = theta.view(k, *shape), v.view(k, *shape)
        for rows in row_blocks(k, width * q * 3, 0, n):
            fs, _ = block(idx, rows)
            if analytic:
                sens = model.sensitivities(t, fs)
                f0 = sens.f
            else:
                f0, pullback = torch.func.vjp(lambda p, fs=fs: model.predict(p, fs), t)
            second = (model.predict(t + h * dv, fs) - 2 * f0 + model.predict(t - h * dv, fs)) / h**2
            out += model.vector_jacobian(fs, sens, second) if analytic else pullback(second)[0]
        return 2 * out.reshape(k, P) / (n * q)

    normal_equations.curvature = curvature
    return normal_equations, loss_fn


def mean_squared_error_gradient(model, x: torch.Tensor, y: torch.Tensor, budget: int = 2**23) -> BatchGradient:
    """The training loss mean_i ||f(x_i) - y_i||^2 / q of each replicate and its gradient, on any rows.

    x (R, n, d); y (R, n) or (R, n, q). Returns ``gradient(theta (k, P), idx (k,), rows)`` -> (loss (k,),
    gradient (k, P)) on the rows (k, B) of each replicate idx, or on all n rows (in blocks of about ``budget``
    entries) for rows None: the step of the papers' gradient-descent protocol. Models with analytic
    ``sensitivities`` give the gradient without a Jacobian; any other model by one reverse pass.
    """
    R, n = y.shape[:2]
    q = y[0, 0].numel()
    shape = (model.num_atoms, model.params_per_atom)
    features = model.features(x)
    entries_per_row = (sum(f[0, 0].numel() for f in features) + 4 * shape[0]) * q
    analytic = hasattr(model, "sensitivities")

    def gradient(theta: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor | None = None):
        k = len(idx)
        if rows is None:
            step = max(1, budget // (k * entries_per_row))
            which = _replicates(idx, R)
            blocks = [
                (tuple(f[which, s : s + step] for f in features), y[which, s : s + step]) for s in range(0, n, step)
            ]
        else:
            pick = (idx[:, None], rows)  # (k, B) rows of each replicate
            blocks = [(tuple(f[pick] for f in features), y[pick])]
        m = n if rows is None else rows.shape[1]
        t = theta.view(k, *shape)
        loss, grad = theta.new_zeros(k), theta.new_zeros(k, *shape)
        for block_features, target in blocks:
            if analytic:
                sens = model.sensitivities(t, block_features)
                residual = sens.f - target
                grad += model.vector_jacobian(block_features, sens, residual)
            else:
                f, pullback = torch.func.vjp(lambda p, fs=block_features: model.predict(p, fs), t)
                residual = f - target
                grad += pullback(residual)[0]
            loss += residual.pow(2).reshape(k, -1).sum(-1)
        return loss / (m * q), 2 * grad.reshape(k, -1) / (m * q)

    return gradient


def fit_sample(
    model: MixtureOfExperts,
    x: torch.Tensor,
    y: torch.Tensor,
    theta0: torch.Tensor,
    free: torch.Tensor,
    fit: FitConfig,
    shuffles: Sequence[torch.Generator] | None = None,
) -> FitResult:
    """Fits of ``model`` to samples x (R, n, d), y (R, n[, q]) from theta0 (R, N, P), by ``fit.method``.

    ``least_squares``: Levenberg-Marquardt to the estimator; ``paper``: the papers' gradient descent, its
    mini-batches shuffled by ``shuffles`` (one generator per replicate), with the decrement of where it stops.
    The stopping scale P * loss / (n q) counts every output of every row: the loss is a mean over both.
    """
    n = y.shape[1]
    if fit.method == "paper":
        exact, _ = least_squares(model, x, y)
        gradient = mean_squared_error_gradient(model, x, y)
        return fit_gradient_descent(gradient, theta0, n, free, fit, shuffles, exact, outputs=y[0, 0].numel())
    normal_equations, loss_fn = least_squares(model, x, y, fit.gram_rows)
    exact = partial(normal_equations, exact=True) if fit.gram_rows is not None and fit.gram_rows < n else None
    return fit_least_squares(
        normal_equations, loss_fn, theta0, y[0].numel(), free, fit, exact, normal_equations.curvature
    )


def same_model(a, b) -> bool:
    """Whether two models are the same function of the same parameters: same class and equal fields (tensors
    equal, nested models compared the same way)."""
    if type(a) is not type(b):
        return False
    if is_dataclass(a):
        return all(same_model(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same_model(u, v) for u, v in zip(a, b, strict=True))
    return a == b


def draw_replicates(problem: FitProblem, n: int, seed: int, replicates: Sequence[int]) -> tuple:
    """Samples x (R, n, d), y, starts (R, N, P), free masks and mini-batch generators of the replicates at size n.

    Each replicate's data, start and (paper protocol) mini-batch order come from streams of (seed, n, r), on the
    CPU: the same draws whatever device fits them and whichever other points share their program.
    """
    data_streams = [make_generator(seed, "data", n, r) for r in replicates]
    init_streams = [make_generator(seed, "init", n, r) for r in replicates]
    shuffles = [make_generator(seed, "batches", n, r) for r in replicates]
    x, y = sample_data(problem.truth, problem.theta_true, n, problem.noise_variance, data_streams)
    theta0, free = initialise_near_truth(
        problem.fitted,
        problem.theta_true if problem.theta_start is None else problem.theta_start,
        num_atoms=problem.num_atoms,
        over_specified_atom=problem.over_specified_atom,
        scale=problem.init_scale,
        generators=init_streams,
        fixed_gate_atom=problem.fixed_gate_atom,
    )
    return x, y, theta0, free, shuffles


def fit_replicates(
    problem: FitProblem,
    n: int,
    seed: int,
    replicates: Sequence[int],
    fit: FitConfig,
    device: torch.device | str | None = None,
) -> tuple[FitResult, torch.Tensor]:
    """Fit the replicates at sample size n; returns the fit and the initial parameters (R, N, P), on the CPU.

    The replicates' draws are ``draw_replicates``'s. ``device``: where the fit runs (None: the CPU), in float64.
    """
    return fit_problems([problem], n, seed, replicates, fit, device)[0]


def fit_problems(
    problems: Sequence[FitProblem],
    n: int,
    seed: int,
    replicates: Sequence[int],
    fit: FitConfig,
    device: torch.device | str | None = None,
) -> list[tuple[FitResult, torch.Tensor]]:
    """``fit_replicates`` of several problems with one fitted family (e.g. a minimax family's truths) as one
    program: their replicates are stacked, so that a GPU works on all of them at once. Each problem's result
    equals its own ``fit_replicates`` (every replicate's fit is independent of the others). Results on the CPU.
    """
    fitted = problems[0].fitted
    if not all(same_model(p.fitted, fitted) for p in problems):
        raise ValueError("fit_problems: the problems must share their fitted family (fit them one at a time)")
    draws = [draw_replicates(problem, n, seed, replicates) for problem in problems]
    if len(draws) == 1:  # one point: its draws as they are (no copy of the sample)
        x, y, theta0, free, shuffles = draws[0]
    else:
        x, y, theta0 = (torch.cat([draw[i] for draw in draws]) for i in range(3))
        free = torch.cat([draw[3].expand_as(draw[2]) for draw in draws])  # each problem's mask, on its replicates
        shuffles = [g for draw in draws for g in draw[4]]
    if device is not None and torch.device(device) != x.device:
        x, y, start, free = (t.to(device) for t in (x, y, theta0, free))
    else:
        start = theta0
    result = fit_sample(fitted, x, y, start, free, fit, shuffles)
    R = len(replicates)
    return [
        (
            FitResult(**{f.name: getattr(result, f.name)[i * R : (i + 1) * R].cpu() for f in fields(result)}),
            theta0[i * R : (i + 1) * R],
        )
        for i in range(len(problems))
    ]


def regression_error(
    model: MixtureOfExperts,
    theta: torch.Tensor,
    reference_model: MixtureOfExperts,
    theta_reference: torch.Tensor,
    x: torch.Tensor,
) -> torch.Tensor:
    """Empirical L2(mu) distance sqrt(E ||f_theta - f_reference||^2) (R,) on test inputs x (n, d)."""
    R, n = theta.shape[0], x.shape[0]
    xs = x.expand(R, -1, -1)
    f = model.predict(theta, model.features(xs))
    f_ref = reference_model.predict(theta_reference.expand(R, -1, -1), reference_model.features(xs))
    return (f - f_ref).pow(2).reshape(R, n, -1).sum(-1).mean(-1).sqrt()


def _loss_or_undefined(loss: VoronoiLoss, blocks: dict, reference: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A loss's totals (R,) and cell sizes (R, N*), nan for the replicates it is not defined on (``evaluate``)."""
    try:
        terms = loss.terms(blocks, reference)
        return terms["total"], terms["cell_sizes"]
    except ValueError:
        pass
    totals, sizes = [], []
    for r in range(next(iter(blocks.values())).shape[0]):
        try:
            terms = loss.terms({k: v[r : r + 1] for k, v in blocks.items()}, reference)
            totals.append(terms["total"]), sizes.append(terms["cell_sizes"])
        except ValueError:
            totals.append(torch.full((1,), float("nan"), dtype=torch.float64))
            sizes.append(None)
    width = next(t.shape[1] for t in sizes if t is not None) if any(t is not None for t in sizes) else 1
    sizes = [torch.full((1, width), float("nan"), dtype=torch.float64) if t is None else t.double() for t in sizes]
    return torch.cat(totals), torch.cat(sizes)


def evaluate(
    problem: FitProblem,
    theta: torch.Tensor,
    losses: Mapping[str, VoronoiLoss],
    test_x: torch.Tensor,
    best_approximation: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Voronoi losses and regression errors (each (R,)) of fitted parameters theta (R, N, P).

    Losses with ``reference == "best_approximation"`` compare with ``best_approximation`` (G-bar, spec Sec. 4.4);
    where it is None (N = N*), G-bar is G* itself. A loss is nan for a replicate whose fit puts more atoms in one
    cell than the loss has exponents for (QG's rbar(m), m >= 4: a fit far from the truth), and that replicate only.
    """
    fitted = problem.fitted
    out = {"regression_error": regression_error(fitted, theta, problem.truth, problem.theta_true, test_x)}
    blocks = fitted.blocks(theta)
    for name, loss in losses.items():
        if loss.reference == "best_approximation" and best_approximation is not None:
            reference = fitted.blocks(best_approximation)
        else:
            reference = problem.truth.blocks(problem.theta_true)
        out[name], out[f"{name}_cell_sizes"] = _loss_or_undefined(loss, blocks, reference)
    if best_approximation is not None:
        out["regression_error_to_best_approximation"] = regression_error(
            fitted, theta, fitted, best_approximation, test_x
        )
    return {k: v.detach().cpu().numpy() for k, v in out.items()}
