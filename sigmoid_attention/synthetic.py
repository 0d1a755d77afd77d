"""Synthetic rate experiments of the sigmoid-attention paper (Yan et al.): Figures 1a, 1b, 2a, 2b.

Each panel is a config (``sigmoid_attention/configs/<panel>[_smoke].yaml``) of this one entry point:

    python -m sigmoid_attention.synthetic --config sigmoid_attention/configs/fig1a.yaml [key=value ...]

A sweep point is (curve, number of fitted atoms N, sample size n): R replicate least-squares fits of a
quadratic-gating MoE (SG Eq. (5), App. E) batched into one program, their Voronoi losses and the regression
error ||f_G-hat - f_G*||. Points are stored under ``results_dir/points/<config hash>`` and skipped when done;
``python -m sigmoid_attention.figures`` draws the panels from them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config import ConfigError, cli_config
from common.runs import is_done as run_is_done
from common.runs import read_run, run_dir, write_run
from common.synthetic import (
    EXPERTS,
    GATES,
    LOSSES,
    FitConfig,
    MixtureOfExperts,
    make_generator,
    sample_ground_truth,
)
from common.synthetic.experiment import FitProblem, evaluate, fit_replicates, fit_sample
from common.synthetic.truth import initialise_near_truth, sample_inputs

REGIMES = ("dense", "sparse")
PAPER_SAMPLE_SIZES = [int(v) for v in np.unique(np.round(np.logspace(3, 5, 10)))]


@dataclass
class CurveConfig:
    """One curve of a panel: the gate and experts of the true and fitted model, and the loss drawn."""

    label: str = "sigmoid"
    gate: str = "sigmoid"  # softmax | sigmoid
    expert: str = "relu"  # linear | relu | gelu | polynomial
    regime: str = "dense"  # dense: all gating parameters random; sparse: the last two atoms have (A, b, c) = 0
    loss: str = "sigmoid_l3"  # Voronoi loss drawn in the figure (any of common.synthetic.LOSSES for this gate)
    paper_slope: float | None = None  # slope printed in the paper, for the slopes table


@dataclass
class Config:
    figure: str = "fig1a"
    title: str = ""
    curves: list[CurveConfig] = field(default_factory=lambda: [CurveConfig()])
    num_atoms: list[int] = field(default_factory=lambda: [8, 9])  # fitted N per setting; the first is drawn
    num_true: int = 8  # N*
    dim: int = 8  # d
    score: str = "quadratic_polynomial"
    noise_variance: float = 0.01  # nu of SG App. E
    gate_variance: float | None = None  # variance of true (A, b, c) entries; None = 1/d (SG App. E)
    expert_variance: float | None = None  # variance of true (alpha, beta) entries; None = 1/d
    sample_sizes: list[int] = field(default_factory=lambda: list(PAPER_SAMPLE_SIZES))
    replicates: int = 20
    seed: int = 0  # data, noise and initialisation streams
    truth_seed: int = 0  # the ground truth, drawn once
    min_active_fraction: float = 0.3  # redraw the truth until every expert is active on this share of inputs
    init_scale: float = 0.1  # initial perturbation: init_scale x RMS of each true block (spec Sec. 2.5)
    test_size: int = 100_000  # fresh inputs for the regression error
    best_approximation_size: int = 200_000  # noiseless inputs of the population fit G-bar (dense, N > N*)
    fit: FitConfig = field(default_factory=FitConfig)
    results_dir: str = "results/sigmoid_attention"

    def validate(self) -> None:
        if self.dim < 1:
            raise ConfigError.invalid("dim", self.dim, "a positive integer")
        if self.num_true < 2:
            raise ConfigError.invalid("num_true", self.num_true, "an integer >= 2 (N*)")
        if self.score != "quadratic_polynomial":
            raise ConfigError.invalid(
                "score", self.score, "quadratic_polynomial (SG App. E; the partial score's L4/L5 are not implemented)"
            )
        if not self.curves:
            raise ConfigError.invalid("curves", self.curves, "a non-empty list of curves")
        for i, curve in enumerate(self.curves):
            for name, allowed in (("gate", GATES), ("expert", EXPERTS), ("regime", REGIMES)):
                if getattr(curve, name) not in allowed:
                    raise ConfigError.invalid(
                        f"curves[{i}].{name}", getattr(curve, name), f"one of {', '.join(allowed)}"
                    )
            losses = gate_losses(curve.gate)
            if curve.loss not in losses:
                raise ConfigError.invalid(
                    f"curves[{i}].loss",
                    curve.loss,
                    f"a Voronoi loss of {curve.gate} gating: {', '.join(losses)}",
                )
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
        if self.fit.max_iter <= 0 or self.fit.decrement_tol <= 0:
            raise ConfigError.invalid("fit", asdict(self.fit), "positive max_iter and decrement_tol")
        if self.fit.gram_rows is not None and self.fit.gram_rows <= 0:
            raise ConfigError.invalid("fit.gram_rows", self.fit.gram_rows, "a positive number of rows, or null (all)")


@dataclass(frozen=True)
class Point:
    """One sweep point: a curve fitted with N atoms at sample size n."""

    curve: int  # index into cfg.curves
    num_atoms: int
    n: int


def gate_losses(gate: str) -> list[str]:
    return [name for name in LOSSES if name.startswith(gate) and (name != "softmax_l3")]


def sweep(cfg: Config) -> list[Point]:
    return [Point(c, N, n) for c in range(len(cfg.curves)) for N in cfg.num_atoms for n in cfg.sample_sizes]


def true_model(cfg: Config, curve: CurveConfig) -> MixtureOfExperts:
    return MixtureOfExperts(curve.gate, cfg.score, curve.expert, cfg.dim, cfg.num_true)


def zero_gate_atoms(cfg: Config, curve: CurveConfig) -> tuple[int, ...]:
    """Sparse regime (SG App. E): (A*, b*, c*) = 0 for the last two atoms (atoms 7 and 8 when N* = 8)."""
    return (cfg.num_true - 2, cfg.num_true - 1) if curve.regime == "sparse" else ()


def fit_problem(cfg: Config, curve: CurveConfig, num_atoms: int) -> FitProblem:
    """Ground truth of a curve (drawn once from truth_seed) and its N-atom fit.

    Extra fitted atoms start at atom 1 (dense) or at the first zero-gate atom (sparse), spec Sec. 4.6.
    """
    model = true_model(cfg, curve)
    variance = 1.0 / cfg.dim
    theta = sample_ground_truth(
        model,
        seed=cfg.truth_seed,
        gate_variance=cfg.gate_variance or variance,
        expert_variance=cfg.expert_variance or variance,
        zero_gate_atoms=zero_gate_atoms(cfg, curve),
        min_active_fraction=cfg.min_active_fraction,
    )
    over = zero_gate_atoms(cfg, curve)[0] if curve.regime == "sparse" else 0
    return FitProblem(model, theta, num_atoms, over, cfg.noise_variance, cfg.init_scale)


def needs_best_approximation(cfg: Config, curve: CurveConfig, num_atoms: int) -> bool:
    """Dense sigmoid fits with N > N* converge to G-bar, the best N-atom approximation (SG Thm 3)."""
    return curve.gate == "sigmoid" and curve.regime == "dense" and num_atoms > cfg.num_true


def _model_record(cfg: Config, curve: CurveConfig, num_atoms: int) -> dict:
    """Everything that determines the truth and the fitted family (part of every hashed record)."""
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
    return {
        "gate": curve.gate,
        "expert": curve.expert,
        "regime": curve.regime,
        "num_atoms": num_atoms,
        **{k: getattr(cfg, k) for k in keys},
        "fit": asdict(cfg.fit),
    }


def point_record(cfg: Config, point: Point) -> dict:
    """The resolved configuration of a sweep point; its hash names the point's run directory."""
    curve = cfg.curves[point.curve]
    record = {
        **_model_record(cfg, curve, point.num_atoms),
        "n": point.n,
        "replicates": cfg.replicates,
        "seed": cfg.seed,
        "test_size": cfg.test_size,
    }
    if needs_best_approximation(cfg, curve, point.num_atoms):
        record["best_approximation_size"] = cfg.best_approximation_size
    return record


def point_dir(cfg: Config, point: Point) -> Path:
    return run_dir(cfg.results_dir, "points", point_record(cfg, point))


def is_done(cfg: Config, point: Point) -> bool:
    return run_is_done(point_dir(cfg, point))


def best_approximation(cfg: Config, curve: CurveConfig, num_atoms: int) -> torch.Tensor:
    """G-bar (N, P): least squares on ``best_approximation_size`` noiseless inputs (spec Sec. 4.4), cached."""
    record = {**_model_record(cfg, curve, num_atoms), "size": cfg.best_approximation_size}
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
    fit = fit_sample(problem.fitted, x, y, theta0, free, cfg.fit)
    theta = fit.theta[0]
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


def run_point(cfg: Config, point: Point) -> Path:
    """Fit all replicates of one sweep point and write its record (skipped if already written)."""
    path = point_dir(cfg, point)
    if run_is_done(path):
        return path
    curve = cfg.curves[point.curve]
    problem = fit_problem(cfg, curve, point.num_atoms)
    gbar = (
        best_approximation(cfg, curve, point.num_atoms)
        if needs_best_approximation(cfg, curve, point.num_atoms)
        else None
    )
    start = time.perf_counter()
    fit, theta0 = fit_replicates(problem, point.n, cfg.seed, range(cfg.replicates), cfg.fit)
    seconds = time.perf_counter() - start
    test_x = sample_inputs(cfg.test_size, cfg.dim, make_generator(cfg.seed, "test"))
    metrics = evaluate(problem, fit.theta, {name: LOSSES[name] for name in gate_losses(curve.gate)}, test_x, gbar)
    arrays = {
        **metrics,
        "theta": fit.theta.numpy(),
        "theta_init": theta0.numpy(),
        "train_loss": fit.loss.numpy(),
        "grad_norm": fit.grad_norm.numpy(),
        "decrement": fit.decrement.numpy(),
        "iterations": fit.iterations.numpy(),
        "converged": fit.converged.numpy(),
        "train_mse_minus_noise": fit.loss.numpy() - cfg.noise_variance,
    }
    summary = {name: float(np.mean(v)) for name, v in metrics.items() if v.ndim == 1}
    results = {
        "point": asdict(point),
        "curve": asdict(curve),
        "mean": summary,
        "fit_seconds": seconds,
        "converged": int(fit.converged.sum()),
        "replicates": cfg.replicates,
        "max_grad_norm": float(fit.grad_norm.max()),
        "mean_train_mse_minus_noise": float(fit.loss.mean() - cfg.noise_variance),
    }
    write_run(path, point_record(cfg, point), results, arrays, seed=cfg.seed)
    print(
        f"[{cfg.figure}] {curve.label} N={point.num_atoms} n={point.n}: {curve.loss}="
        f"{summary[curve.loss]:.4g} regression_error={summary['regression_error']:.3g} "
        f"converged {int(fit.converged.sum())}/{cfg.replicates} ({seconds:.1f}s)",
        flush=True,
    )
    return path


def main(cfg: Config) -> None:
    points = sweep(cfg)
    pending = [p for p in points if not is_done(cfg, p)]
    print(f"[{cfg.figure}] {len(points) - len(pending)} of {len(points)} points already done", flush=True)
    for point in pending:
        run_point(cfg, point)


if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
