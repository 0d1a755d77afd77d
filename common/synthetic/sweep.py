"""A rate experiment as a sweep of points, shared by every paper's synthetic entry point.

An experiment (one figure panel) is a ``SweepConfig``: a list of curves (gate, expert, regime, loss drawn),
the fitted atom counts N, the sample sizes n and the fits (``fit``, the least-squares estimator by default,
and ``other_fits``, e.g. the papers' gradient-descent protocol). A sweep point is (curve, N, n, fit): R
replicate fits batched into one program, their Voronoi losses and the regression error ||f_G-hat - f_G*|| on
a fresh test sample. Each point is written to ``results_dir/points/<hash of its record>`` and skipped when done, so
a killed sweep resumes where it stopped and a point shared by two panels is computed once.

A paper's ``synthetic`` module subclasses ``SweepConfig`` with its defaults and restrictions and exposes
``sweep``, ``is_done``, ``run_point`` and ``main`` from here (the contract ``slurm.submit`` relies on).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError
from common.experiment import Experiment
from common.runs import is_done as run_is_done
from common.runs import read_run, run_dir, write_run
from common.synthetic.experiment import FitProblem, evaluate, fit_problems, fit_sample, same_model
from common.synthetic.fitting import FIT_METHODS, SOLVERS, FitConfig, FitResult
from common.synthetic.models import EXPERTS, GATES, SCORES, MixtureOfExperts
from common.synthetic.truth import initialise_near_truth, make_generator, sample_ground_truth, sample_inputs
from common.synthetic.voronoi import VoronoiLoss, losses_for
from common.training.monitor import Progress
from common.training.sweeps import check_device, device_of

# Which true atoms have zero gating parameters (A*, b*, c*) = 0 as drawn:
REGIMES = {
    "dense": "all gating parameters random",
    "sparse": "the last two atoms have zero gating parameters (SG App. E sparse regime)",
    "zero_reference": "the last atom has zero gating parameters (QG App. F.1: the softmax reference atom)",
}
BLOCKS = ("A", "b", "c", "alpha", "beta")  # blocks of a truth whose variance a config may set
PAPER_SAMPLE_SIZES = [int(v) for v in np.unique(np.round(np.logspace(3, 5, 10)))]  # spec Sec. 2.5


@dataclass
class CurveConfig:
    """One curve of a panel: the gate and experts of the true and fitted model, and the loss drawn."""

    label: str = "sigmoid"
    gate: str = "sigmoid"  # softmax | sigmoid
    expert: str = "relu"  # linear | relu | gelu | polynomial
    regime: str = "dense"  # which true atoms have zero gating parameters: a key of REGIMES
    loss: str = "sigmoid_l3"  # Voronoi loss drawn in the figure (a loss of common.synthetic.LOSSES for the model)
    paper_slope: float | None = None  # slope printed in the paper, for the slopes table
    expected: list[float] | None = None  # [low, high]: the slope band the theory predicts (spec Sec. 1)
    tabulate: list[str] = field(default_factory=list)  # further losses of the model for the slopes table


@dataclass
class SweepConfig:
    figure: str = "panel"
    title: str = ""
    curves: list[CurveConfig] = field(default_factory=lambda: [CurveConfig()])
    num_atoms: list[int] = field(default_factory=lambda: [8, 9])  # fitted N per setting; the first is drawn
    num_true: int = 8  # N*
    dim: int = 8  # d
    score: str = "quadratic_polynomial"
    noise_variance: float = 0.01  # nu
    gate_variance: float | None = None  # variance of true (A, b, c) entries; None = 1/d
    expert_variance: float | None = None  # variance of true (alpha, beta) entries; None = 1/d
    block_variances: dict[str, float] | None = None  # per-block variances of the truth, e.g. {c: 0.25}
    min_separation: float | None = None  # min distance between true atoms in the cell metric; None = 0.5
    temperature: float | None = None  # tau* of tempered scores (SM Sec. 3); None = 1
    sample_sizes: list[int] = field(default_factory=lambda: list(PAPER_SAMPLE_SIZES))
    replicates: int = 20
    seed: int = 0  # data, noise and initialisation streams
    truth_seed: int = 0  # the ground truth, drawn once
    min_active_fraction: float = 0.3  # redraw the truth until every expert is active on this share of inputs
    init_scale: float = 0.1  # initial perturbation: init_scale x RMS of each true block (spec Sec. 2.5)
    test_size: int = 100_000  # fresh inputs for the regression error
    best_approximation_size: int = 200_000  # noiseless inputs of the population fit G-bar (dense sigmoid, N > N*)
    fit: FitConfig = field(default_factory=FitConfig)  # the fit of every point: by default the estimator
    # further fits of every point, drawn beside ``fit``: e.g. the papers' protocol {method: paper} (full batch)
    # and {method: paper, batch_size: 64} (mini-batches). Labels (fit_label) must differ.
    other_fits: list[FitConfig] = field(default_factory=list)
    results_dir: str = "results/synthetic"
    # where the fits run, in float64 (a run setting: not part of a point's record): auto is the first GPU when
    # one is visible, else the CPU. Samples and starts are drawn on the CPU either way.
    device: str = "auto"
    # points fitted as one program where they share a sample size, a fit and a fitted family (a minimax family's
    # truths): null is 1 on a CPU, where stacking gains nothing, and 8 on a GPU, to keep it busy (a run setting)
    batch_points: int | None = None
    progress: bool = True  # one line per fitted point and a points / replicates count (a run setting)
    progress_seconds: float = 30.0  # in a file: a count line at least this often while points finish

    def validate(self) -> None:
        check_device(self.device)
        if not self.progress_seconds > 0:
            raise ConfigError.invalid("progress_seconds", self.progress_seconds, "a positive number of seconds")
        if self.batch_points is not None and self.batch_points < 1:
            raise ConfigError.invalid("batch_points", self.batch_points, "a positive number of points, or null")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError.invalid("device", self.device, "auto or cpu: no CUDA device is visible here")
        if self.dim < 1:
            raise ConfigError.invalid("dim", self.dim, "a positive integer")
        if self.num_true < 2:
            raise ConfigError.invalid("num_true", self.num_true, "an integer >= 2 (N*)")
        self.check_family()
        if not self.curves:
            raise ConfigError.invalid("curves", self.curves, "a non-empty list of curves")
        for i, curve in enumerate(self.curves):
            self.check_curve(i, curve)
            losses = self.curve_losses(curve)
            if curve.loss not in losses:
                raise ConfigError.invalid(
                    f"curves[{i}].loss", curve.loss, f"a Voronoi loss of {self.describe(curve)}: {', '.join(losses)}"
                )
            unknown = [name for name in curve.tabulate if name not in losses]
            if unknown:
                raise ConfigError.invalid(f"curves[{i}].tabulate", unknown, f"losses among {', '.join(losses)}")
            if curve.expected is not None and (len(curve.expected) != 2 or curve.expected[0] > curve.expected[1]):
                raise ConfigError.invalid(f"curves[{i}].expected", curve.expected, "[low, high] with low <= high")
        if not self.num_atoms or any(n < self.num_true for n in self.num_atoms):
            raise ConfigError.invalid(
                "num_atoms",
                self.num_atoms,
                f"a non-empty list of fitted atom counts N >= num_true (N* = {self.num_true})",
            )
        if any(n > self.num_true + 2 for n in self.num_atoms):
            raise ConfigError.invalid(
                "num_atoms",
                self.num_atoms,
                f"N <= N* + 2 = {self.num_true + 2} (QG rbar(m) is known only for m <= 3)",
            )
        if len(self.sample_sizes) < 2 or any(n <= 0 for n in self.sample_sizes):
            raise ConfigError.invalid("sample_sizes", self.sample_sizes, "at least two positive sample sizes")
        for name in ("replicates", "test_size", "best_approximation_size"):
            if getattr(self, name) <= 0:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if not 0 <= self.min_active_fraction < 1:
            raise ConfigError.invalid("min_active_fraction", self.min_active_fraction, "a number in [0, 1)")
        for name in ("noise_variance", "init_scale", "gate_variance", "expert_variance"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError.invalid(name, value, "a positive number")
        for block, value in (self.block_variances or {}).items():
            if block not in BLOCKS or value <= 0:
                raise ConfigError.invalid(
                    f"block_variances.{block}", value, f"a positive variance of a block among {', '.join(BLOCKS)}"
                )
        if self.temperature is not None and self.temperature <= 0:
            raise ConfigError.invalid("temperature", self.temperature, "a positive temperature tau*")
        if self.min_separation is not None and self.min_separation < 0:
            raise ConfigError.invalid("min_separation", self.min_separation, "a non-negative distance")
        for name, fit in [("fit", self.fit), *((f"other_fits[{i}]", f) for i, f in enumerate(self.other_fits))]:
            check_fit(name, fit)
        labels = [fit_label(fit) for fit in fits(self)]
        if len(set(labels)) != len(labels):
            raise ConfigError.invalid("other_fits", labels, "fits with different labels (method and batching)")
        bounded = [fit for fit in fits(self) if fit.bound is not None]
        if bounded:  # the truth must lie inside the tightest box (checked on the drawn truths)
            tightest = min(bounded, key=lambda fit: fit.bound)
            for curve in self.curves:
                fit_problem(self, curve, self.num_atoms[0], tightest)

    # --- the model family; a paper whose models are not MixtureOfExperts overrides these ----------------
    def check_family(self) -> None:
        if self.score not in SCORES:
            raise ConfigError.invalid("score", self.score, f"one of {', '.join(SCORES)}")

    def check_curve(self, i: int, curve: CurveConfig) -> None:
        for name, allowed in (("gate", GATES), ("expert", EXPERTS), ("regime", tuple(REGIMES))):
            if getattr(curve, name) not in allowed:
                raise ConfigError.invalid(f"curves[{i}].{name}", getattr(curve, name), f"one of {', '.join(allowed)}")

    def describe(self, curve: CurveConfig) -> str:
        return f"{curve.gate} gating with the {self.score} score"

    def curve_losses(self, curve: CurveConfig) -> dict[str, VoronoiLoss]:
        """The named Voronoi losses defined for a curve's model (all are computed and stored)."""
        return losses_for(curve.gate, self.score)

    def true_model(self, curve: CurveConfig):
        return MixtureOfExperts(curve.gate, self.score, curve.expert, self.dim, self.num_true)

    def draw_truth(self, curve: CurveConfig, model) -> torch.Tensor:
        """The true parameters (N*, P), drawn once from truth_seed."""
        variance = 1.0 / self.dim
        return sample_ground_truth(
            model,
            seed=self.truth_seed,
            gate_variance=self.gate_variance or variance,
            expert_variance=self.expert_variance or variance,
            zero_gate_atoms=zero_gate_atoms(self, curve),
            variances=self.block_variances,
            temperature=self.temperature or 1.0,
            min_separation=0.5 if self.min_separation is None else self.min_separation,
            min_active_fraction=self.min_active_fraction,
        )

    def model_record(self, curve: CurveConfig) -> dict:
        """Settings of the family beyond SweepConfig's own that determine the truth or the fit (hashed)."""
        return {}

    def start_centre(self, curve: CurveConfig, model, theta: torch.Tensor) -> tuple[torch.Tensor, int] | None:
        """Where the near-truth start is drawn around, if not the truth: (atoms (M, P), the atom the extra fitted
        atoms copy). None: the truth, extras at atom 1 (or the first zero-gate atom in the sparse regime)."""
        return None


def check_fit(name: str, fit: FitConfig) -> None:
    """A fit's settings, with the dotted config name of the fit in the error."""
    if fit.method not in FIT_METHODS:
        raise ConfigError.invalid(f"{name}.method", fit.method, f"one of {', '.join(FIT_METHODS)}")
    if fit.solver not in SOLVERS:
        raise ConfigError.invalid(f"{name}.solver", fit.solver, f"one of {', '.join(SOLVERS)}")
    if fit.max_iter <= 0 or fit.decrement_tol <= 0:
        raise ConfigError.invalid(name, asdict(fit), "positive max_iter and decrement_tol")
    if fit.bound is not None and fit.bound <= 0:
        raise ConfigError.invalid(f"{name}.bound", fit.bound, "a positive bound on |parameter|, or null (none)")
    if fit.gram_rows is not None and fit.gram_rows <= 0:
        raise ConfigError.invalid(f"{name}.gram_rows", fit.gram_rows, "a positive number of rows, or null (all)")
    if fit.epochs <= 0:
        raise ConfigError.invalid(f"{name}.epochs", fit.epochs, "a positive number of epochs")
    if fit.learning_rate <= 0:
        raise ConfigError.invalid(f"{name}.learning_rate", fit.learning_rate, "a positive learning rate")
    if fit.batch_size is not None and fit.batch_size <= 0:
        raise ConfigError.invalid(f"{name}.batch_size", fit.batch_size, "a positive batch size, or null (full batch)")


def fits(cfg: SweepConfig) -> list[FitConfig]:
    """The fits of every point: ``fit`` (index 0), then ``other_fits``."""
    return [cfg.fit, *cfg.other_fits]


def fit_label(fit: FitConfig) -> str:
    """least_squares, paper_full_batch or paper_minibatch: the ``fit`` column of the slopes tables."""
    if fit.method == "least_squares":
        return "least_squares"
    return "paper_full_batch" if fit.batch_size is None else "paper_minibatch"


@dataclass(frozen=True)
class Point:
    """One sweep point: a curve fitted with N atoms at sample size n by one of the config's fits."""

    curve: int  # index into cfg.curves
    num_atoms: int
    n: int
    fit: int = 0  # index into fits(cfg): 0 is cfg.fit


def sweep(cfg: SweepConfig) -> list[Point]:
    """The distinct points of a config: curves that differ only in the loss drawn share their fits."""
    points = {}
    for f in range(len(fits(cfg))):
        for c in range(len(cfg.curves)):
            for N in cfg.num_atoms:
                for n in cfg.sample_sizes:
                    point = Point(c, N, n, f)
                    points.setdefault(point_dir(cfg, point), point)
    return list(points.values())


def setting_label(cfg: SweepConfig, num_atoms: int) -> str:
    return f"N=N*+{num_atoms - cfg.num_true}" if num_atoms > cfg.num_true else "N=N*"


def zero_gate_atoms(cfg: SweepConfig, curve: CurveConfig) -> tuple[int, ...]:
    """True atoms drawn with (A*, b*, c*) = 0: the last two (sparse) or the last one (zero_reference)."""
    count = {"dense": 0, "sparse": 2, "zero_reference": 1}[curve.regime]
    return tuple(range(cfg.num_true - count, cfg.num_true))


def fit_problem(cfg: SweepConfig, curve: CurveConfig, num_atoms: int, fit: FitConfig | None = None) -> FitProblem:
    """Ground truth of a curve (drawn once from truth_seed) and its N-atom fit (``fit``: default cfg.fit).

    Extra fitted atoms start at atom 1, or in the sparse regime at the first zero-gate atom (spec Sec. 4.6).
    """
    model = cfg.true_model(curve)
    theta = cfg.draw_truth(curve, model)
    largest = float(theta[~model.unused_mask].abs().max())
    bound = (fit or cfg.fit).bound
    if bound is not None and largest >= bound:
        allowed = f"a bound above the largest true parameter, {largest:.3g} (curve {curve.label!r})"
        raise ConfigError.invalid("fit.bound", bound, allowed)
    over = zero_gate_atoms(cfg, curve)[0] if curve.regime == "sparse" else 0
    start = cfg.start_centre(curve, model, theta)
    if start is None:
        return FitProblem(model, theta, num_atoms, over, cfg.noise_variance, cfg.init_scale)
    centre, over = start
    return FitProblem(model, theta, num_atoms, over, cfg.noise_variance, cfg.init_scale, theta_start=centre)


def needs_best_approximation(cfg: SweepConfig, curve: CurveConfig, num_atoms: int) -> bool:
    """Dense sigmoid fits with N > N* converge to G-bar, the best N-atom approximation (SG Thm 3)."""
    return curve.gate == "sigmoid" and curve.regime == "dense" and num_atoms > cfg.num_true


def family_record(cfg: SweepConfig, curve: CurveConfig, num_atoms: int, fit: FitConfig | None = None) -> dict:
    """Everything that determines the truth, the fitted family and the fit (default cfg.fit; part of every hashed
    record)."""
    keys = (
        "num_true",
        "dim",
        "score",
        "noise_variance",
        "gate_variance",
        "expert_variance",
        "truth_seed",
        "min_active_fraction",
        "init_scale",
    )
    optional = (
        "block_variances",
        "min_separation",
        "temperature",
    )  # recorded only when set, so older records keep their hash
    return {
        "gate": curve.gate,
        "expert": curve.expert,
        "regime": curve.regime,
        "num_atoms": num_atoms,
        **{k: getattr(cfg, k) for k in keys},
        **{k: getattr(cfg, k) for k in optional if getattr(cfg, k) is not None},
        **cfg.model_record(curve),
        "fit": (fit or cfg.fit).record(),
    }


def point_record(cfg: SweepConfig, point: Point) -> dict:
    """The resolved configuration of a sweep point; its hash names the point's run directory."""
    curve = cfg.curves[point.curve]
    record = {
        **family_record(cfg, curve, point.num_atoms, fits(cfg)[point.fit]),
        "n": point.n,
        "replicates": cfg.replicates,
        "seed": cfg.seed,
        "test_size": cfg.test_size,
    }
    if needs_best_approximation(cfg, curve, point.num_atoms):
        record["best_approximation_size"] = cfg.best_approximation_size
    return record


def point_dir(cfg: SweepConfig, point: Point) -> Path:
    return run_dir(cfg.results_dir, "points", point_record(cfg, point))


def is_done(cfg: SweepConfig, point: Point) -> bool:
    return run_is_done(point_dir(cfg, point))


def best_approximation(cfg: SweepConfig, curve: CurveConfig, num_atoms: int) -> torch.Tensor:
    """G-bar (N, P): least squares on ``best_approximation_size`` noiseless inputs (spec Sec. 4.4), cached.

    A population quantity: it is fitted by Levenberg-Marquardt with cfg.fit's settings whatever the points' fits.
    """
    fit = replace(cfg.fit, method="least_squares")
    record = {**family_record(cfg, curve, num_atoms, fit), "size": cfg.best_approximation_size}
    path = run_dir(cfg.results_dir, "best_approximation", record)
    if run_is_done(path):
        return torch.from_numpy(read_run(path)["arrays"]["theta"])
    problem = fit_problem(cfg, curve, num_atoms)
    x = sample_inputs(cfg.best_approximation_size, cfg.dim, make_generator(cfg.truth_seed, "gbar"))[None]
    y = problem.truth.predict(problem.theta_true[None], problem.truth.features(x))
    theta0, free = initialise_near_truth(
        problem.fitted,
        problem.theta_true,
        num_atoms=num_atoms,
        over_specified_atom=problem.over_specified_atom,
        scale=cfg.init_scale,
        generators=[make_generator(cfg.truth_seed, "gbar-init")],
    )
    device = device_of(cfg.device)
    fit = fit_sample(problem.fitted, x.to(device), y.to(device), theta0.to(device), free.to(device), fit)
    theta = fit.theta[0].cpu()
    write_run(
        path,
        record,
        {
            "population_mse": float(fit.loss[0]),
            "converged": bool(fit.converged[0]),
            "grad_norm": float(fit.grad_norm[0]),
        },
        {"theta": theta.numpy()},
    )
    return theta


def run_point(cfg: SweepConfig, point: Point) -> Path:
    """Fit all replicates of one sweep point and write its record (skipped if already written)."""
    return run_points(cfg, [point])[0]


def run_points(cfg: SweepConfig, points: list[Point]) -> list[Path]:
    """Fit the pending points of ``points`` as one program and write each one's record as ``run_point`` would.

    The points must share their sample size, fit and fitted family (``batches`` groups them); their replicates are
    stacked, which keeps a GPU busy, and each record equals the one its point alone would give. ``fit_seconds``
    is the program's time divided among its points (``points_in_program`` says among how many).
    """
    paths = [point_dir(cfg, point) for point in points]
    pending = [point for point, path in zip(points, paths, strict=True) if not run_is_done(path)]
    if not pending:
        return paths
    if len({(p.n, p.fit) for p in pending}) > 1:
        raise ValueError("run_points: the points must share their sample size and fit")
    fit_cfg = fits(cfg)[pending[0].fit]
    problems = [fit_problem(cfg, cfg.curves[p.curve], p.num_atoms, fit_cfg) for p in pending]
    gbars = [
        best_approximation(cfg, cfg.curves[p.curve], p.num_atoms)
        if needs_best_approximation(cfg, cfg.curves[p.curve], p.num_atoms)
        else None
        for p in pending
    ]
    device = device_of(cfg.device)
    start = time.perf_counter()
    fitted = fit_problems(problems, pending[0].n, cfg.seed, range(cfg.replicates), fit_cfg, device)
    seconds = (time.perf_counter() - start) / len(pending)
    for point, problem, gbar, (fit, theta0) in zip(pending, problems, gbars, fitted, strict=True):
        write_point(cfg, point, problem, gbar, fit, theta0, seconds, device, len(pending))
    return paths


def batches(cfg: SweepConfig, points: list[Point]) -> list[list[Point]]:
    """``points`` in groups of at most ``cfg.batch_points`` (None: 1 on a CPU, where stacking gains nothing, 8 on
    a GPU) that share their sample size, fit and fitted family, in the order of their first point."""
    size = cfg.batch_points or (8 if device_of(cfg.device).type == "cuda" else 1)
    if size == 1:
        return [[point] for point in points]
    groups: list[tuple[object, list[Point]]] = []
    for point in points:
        model = fit_problem(cfg, cfg.curves[point.curve], point.num_atoms).fitted
        for (n, fit, other), members in groups:
            if (n, fit) == (point.n, point.fit) and len(members) < size and same_model(model, other):
                members.append(point)
                break
        else:
            groups.append(((point.n, point.fit, model), [point]))
    return [members for _, members in groups]


def write_point(
    cfg: SweepConfig,
    point: Point,
    problem: FitProblem,
    gbar: torch.Tensor | None,
    fit: FitResult,
    theta0: torch.Tensor,
    seconds: float,
    device: torch.device,
    in_program: int = 1,
) -> Path:
    """Evaluate one point's fits (Voronoi losses, regression errors) and write its record."""
    path = point_dir(cfg, point)
    curve, fit_cfg = cfg.curves[point.curve], fits(cfg)[point.fit]
    test_x = sample_inputs(cfg.test_size, cfg.dim, make_generator(cfg.seed, "test"))
    losses = cfg.curve_losses(curve)
    metrics = evaluate(problem, fit.theta, losses, test_x, gbar)
    arrays = {
        **metrics,
        "theta": fit.theta.numpy(),
        # the start depends on (seed, n, replicate) only: stored once, with the least-squares fit of the point
        **({"theta_init": theta0.numpy()} if fit_cfg.method == "least_squares" else {}),
        "train_loss": fit.loss.numpy(),
        "grad_norm": fit.grad_norm.numpy(),
        "decrement": fit.decrement.numpy(),
        "iterations": fit.iterations.numpy(),
        "converged": fit.converged.numpy(),
        "gauss_newton_matrices": fit.matrices.numpy(),  # (R, 2): from all n rows, from the gram_rows subsample
        "train_mse_minus_noise": fit.loss.numpy() - cfg.noise_variance,
    }
    # a loss undefined for some replicates (nan: too many atoms in one cell) is averaged over the others
    summary = {name: float(np.nanmean(v)) if not np.isnan(v).all() else float("nan") for name, v in metrics.items()
               if v.ndim == 1}  # fmt: skip
    undefined = {name: int(np.isnan(v).sum()) for name, v in metrics.items() if v.ndim == 1 and np.isnan(v).any()}
    results = {
        "point": asdict(point),
        "curve": asdict(curve),
        "fit": fit_label(fit_cfg),
        "mean": summary,
        "fit_seconds": seconds,
        "device": str(device),
        "points_in_program": in_program,
        "converged": int(fit.converged.sum()),
        "replicates": cfg.replicates,
        "max_grad_norm": float(fit.grad_norm.max()),
        "mean_train_mse_minus_noise": float(fit.loss.mean() - cfg.noise_variance),
        **({"undefined_replicates": undefined} if undefined else {}),
    }
    write_run(path, point_record(cfg, point), results, arrays, seed=cfg.seed)
    print(
        f"[{cfg.figure}] {curve.label} N={point.num_atoms} n={point.n} {fit_label(fit_cfg)}: {curve.loss}="
        f"{summary[curve.loss]:.4g} regression_error={summary['regression_error']:.3g} "
        f"converged {int(fit.converged.sum())}/{cfg.replicates} ({seconds:.1f}s)",
        flush=True,
    )
    return path


def main(cfg: SweepConfig) -> None:
    """Compute every point of the sweep that is not written yet."""
    points = sweep(cfg)
    pending = [p for p in points if not is_done(cfg, p)]
    print(f"[{cfg.figure}] {len(points) - len(pending)} of {len(points)} points already done", flush=True)
    progress = Progress(
        len(points), f"[{cfg.figure}] fitted", initial=len(points) - len(pending), unit="point",
        enabled=cfg.progress, every=1, seconds=cfg.progress_seconds,
    )  # fmt: skip
    for group in batches(cfg, pending):
        run_points(cfg, group)
        progress.update(len(group), replicates=(progress.n + len(group) - progress.initial) * cfg.replicates)
    progress.close()


class Synthetic(Experiment):
    """A paper's synthetic sweep as an experiment: each paper registers a subclass with its ``Config`` (e.g.
    ``sigmoid_attention.synthetic``). Its sweep, record and run directories are this module's; its ``main`` fits
    the points that share a program together (``batches``), so it is this module's ``main``, not the base class's.
    A family whose config stands for a larger sweep (a minimax family's truths) overrides ``expanded``."""

    Config = SweepConfig
    Point = Point
    run_name = "points"

    @classmethod
    def expanded(cls, cfg: SweepConfig) -> SweepConfig:
        """The sweep config the points belong to."""
        return cfg

    @classmethod
    def sweep(cls, cfg: SweepConfig) -> list[Point]:
        return sweep(cls.expanded(cfg))

    @classmethod
    def record(cls, cfg: SweepConfig, point: Point) -> dict:
        return point_record(cls.expanded(cfg), point)

    @classmethod
    def run_point(cls, cfg: SweepConfig, point: Point) -> Path:
        return run_point(cls.expanded(cfg), point)

    @classmethod
    def main(cls, cfg: SweepConfig) -> None:
        main(cls.expanded(cfg))
