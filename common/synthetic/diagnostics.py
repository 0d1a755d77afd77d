"""Diagnostics that explain measured slopes: is the estimator local, are there flat directions, which atoms decay?

Three tables per distinct drawn curve of a paper's panels (spec Sec. 2.4, 2.6), written by ``write_diagnostics``
to ``<results_dir>/diagnostics/<variant>/{fisher,init_scale,cells}.{csv,md}``:

- ``fisher``: the Fisher information I = E[J^T J] of the exactly specified model (N = N*) at the truth,
  on fresh inputs. Asymptotically the least-squares estimator has covariance nu I^-1 / n, so
  sqrt(nu / n * sum of I^-1's diagonal over an atom's parameters) is its predicted per-atom error. Where that
  is not small at n = 1e3, the estimator is not yet in its local (parametric) regime and the slope over
  [1e3, 1e5] mixes two regimes. ``n_local`` is the n at which the worst atom's predicted error reaches
  ``local_error``. Zero eigenvalues are exact flat directions of the fit (the model is not identifiable
  along them); they are counted and left out of the prediction.
- ``init_scale``: the drawn loss at one sample size, refitted from initial perturbations of several scales.
  Along flat directions the fit stays where it starts, so the loss grows with the scale; for an identified
  model the least-squares estimator does not depend on where the fit starts.
- ``cells``: the drawn loss of the computed sweep points split by true atom (each atom's mass term plus the
  terms of the fitted atoms in its Voronoi cell), with its mean at the smallest and largest n and its slope.
  It shows which atoms carry the loss and which decay slowly. It only reads stored points and never fits.

    python -m common.synthetic.diagnostics paper=<paper> [variant=paper|smoke] [tables=[fisher,init_scale,cells]]
        [init_scales=[0.05,0.1,0.2]] [n=10000] [results_dir=...]

diagnoses every drawn curve of the paper's panels (the ``figures:`` table of its manifest).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.config import ConfigError, cli_config
from common.experiment import PAPERS, VARIANTS
from common.plotting import write_table
from common.runs import is_done as run_is_done
from common.runs import read_run
from common.synthetic import figures
from common.synthetic.experiment import least_squares
from common.synthetic.sweep import (
    CurveConfig,
    Point,
    SweepConfig,
    best_approximation,
    family_record,
    fit_problem,
    needs_best_approximation,
    point_dir,
    run_point,
    zero_gate_atoms,
)
from common.synthetic.truth import fitted_mask, make_generator, sample_inputs
from common.synthetic.voronoi import LOSSES

TABLES = ("fisher", "init_scale", "cells")


@dataclass
class DiagnosticsConfig:
    paper: str = ""  # whose panels: a paper whose manifest has a figures table
    variant: str = "paper"  # the panel configs whose curves are diagnosed: paper | smoke
    tables: list[str] = field(default_factory=lambda: list(TABLES))
    fisher_size: int = 100_000  # inputs of the Monte Carlo Fisher information
    local_error: float = 0.1  # predicted per-atom error that counts as "local"
    init_scales: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])
    n: int = 10_000  # sample size of the init-scale refits
    replicates: int = 5
    results_dir: str | None = None  # None: the panel configs' results_dir

    def validate(self) -> None:
        if self.paper not in PAPERS:
            raise ConfigError.invalid("paper", self.paper, f"one of {', '.join(PAPERS)}")
        if self.variant not in VARIANTS:
            raise ConfigError.invalid("variant", self.variant, f"one of {', '.join(VARIANTS)}")
        if not self.tables or any(t not in TABLES for t in self.tables):
            raise ConfigError.invalid("tables", self.tables, f"a non-empty subset of {', '.join(TABLES)}")
        if len(self.init_scales) < 2 or any(s <= 0 for s in self.init_scales):
            raise ConfigError.invalid("init_scales", self.init_scales, "at least two positive scales")
        for name in ("fisher_size", "n", "replicates"):
            if getattr(self, name) <= 0:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if self.local_error <= 0:
            raise ConfigError.invalid("local_error", self.local_error, "a positive number")


def model_key(cfg: SweepConfig, curve: CurveConfig, num_atoms: int) -> str:
    """Equal for two curves exactly when their truths and fitted families are the same."""
    return json.dumps(family_record(cfg, curve, num_atoms), sort_keys=True, default=str)


def distinct_curves(panels: Sequence[SweepConfig]) -> list[tuple[SweepConfig, int, int]]:
    """(panel config, curve index, drawn N) of every distinct drawn model over the panels (the first panel
    that draws it)."""
    seen, out = set(), []
    for cfg in panels:
        for c, curve in enumerate(cfg.curves):
            key = model_key(cfg, curve, cfg.num_atoms[0])
            if key not in seen:
                seen.add(key)
                out.append((cfg, c, cfg.num_atoms[0]))
    return out


def fisher_information(cfg: SweepConfig, curve: CurveConfig, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo E[J^T J] (P, P) of the N = N* model at the truth (J of one input, all its outputs), and the
    mask (N*, P) of its fitted entries."""
    problem = fit_problem(cfg, curve, cfg.num_true)
    model = problem.fitted
    x = sample_inputs(size, cfg.dim, make_generator(cfg.seed, "fisher"))[None]
    theta = problem.theta_true[None]
    y = model.predict(theta, model.features(x))  # (1, n[, q])
    normal_equations, _ = least_squares(model, x, y)
    _, _, gram = normal_equations(theta.reshape(1, -1), torch.arange(1))  # gram = 2 J^T J / (n q)
    free = fitted_mask(model, cfg.num_true, problem.fixed_gate_atom).flatten()
    return gram[0][free][:, free] / 2 * y[0, 0].numel(), free.view(cfg.num_true, -1)


def fisher_row(cfg: SweepConfig, curve: CurveConfig, diag_cfg: DiagnosticsConfig) -> dict:
    info, free = fisher_information(cfg, curve, diag_cfg.fisher_size)
    eigenvalues, vectors = torch.linalg.eigh(info)
    flat = eigenvalues < 1e-10 * eigenvalues[-1]
    kept = vectors[:, ~flat]
    inverse_diagonal = (kept.pow(2) / eigenvalues[~flat]).sum(-1)  # diagonal of the pseudo-inverse
    per_atom = torch.zeros(free.shape, dtype=info.dtype)
    per_atom[free] = inverse_diagonal
    per_atom = per_atom.sum(-1)  # (N*,) sum of the asymptotic variances nu^-1 n Var over an atom's parameters
    worst = float(per_atom.max())
    return {
        "figure": cfg.figure,
        "curve": curve_name(cfg, curve),
        "parameters": int(free.sum()),
        "condition": float(eigenvalues[-1] / eigenvalues[~flat][0]),
        "flat_directions": int(flat.sum()),
        "worst_atom_error_n1e3": math.sqrt(cfg.noise_variance / 1e3 * worst),
        "worst_atom_error_n1e5": math.sqrt(cfg.noise_variance / 1e5 * worst),
        "median_atom_error_n1e5": math.sqrt(cfg.noise_variance / 1e5 * float(per_atom.median())),
        "n_local": cfg.noise_variance * worst / diag_cfg.local_error**2,
    }


def init_scale_rows(cfg: SweepConfig, c: int, num_atoms: int, diag_cfg: DiagnosticsConfig) -> list[dict]:
    """The drawn loss at n from each initial scale: a sweep point per scale, stored and reused like any other."""
    curve = cfg.curves[c]
    rows = []
    for scale in diag_cfg.init_scales:
        scaled = replace(cfg, init_scale=scale, replicates=diag_cfg.replicates)
        point = Point(c, num_atoms, diag_cfg.n)
        run_point(scaled, point)
        arrays = read_run(point_dir(scaled, point))["arrays"]
        rows.append(
            {
                "figure": cfg.figure,
                "curve": curve_name(cfg, curve),
                "N": num_atoms,
                "loss": curve.loss,
                "init_scale": scale,
                "n": diag_cfg.n,
                "mean_loss": float(np.mean(arrays[curve.loss])),
                "mean_regression_error": float(np.mean(arrays["regression_error"])),
                "converged": float(np.mean(arrays["converged"])),
            }
        )
    base = rows[0]["mean_loss"]
    for row in rows:
        row["loss_ratio_to_smallest_scale"] = row["mean_loss"] / base
    return rows


def slope_of_mean(sample_sizes: list[int], values: np.ndarray) -> float:
    """OLS slope of log(mean over replicates) on log n; NaN where a mean is 0 (e.g. an always empty cell)."""
    mean = values.mean(-1)
    if (mean <= 0).any():
        return float("nan")
    return float(np.polyfit(np.log(sample_sizes), np.log(mean), 1)[0])


def cell_rows(cfg: SweepConfig, c: int, num_atoms: int) -> list[dict]:
    """The drawn loss split by true atom over the stored sweep points of one curve (none if any is missing)."""
    curve = cfg.curves[c]
    points = [Point(c, num_atoms, n) for n in cfg.sample_sizes]
    if not all(run_is_done(point_dir(cfg, p)) for p in points):
        return []
    problem = fit_problem(cfg, curve, num_atoms)
    loss = LOSSES[curve.loss]
    if loss.reference == "best_approximation" and needs_best_approximation(cfg, curve, num_atoms):
        reference = problem.fitted.blocks(best_approximation(cfg, curve, num_atoms))
    else:
        reference = problem.truth.blocks(problem.theta_true)
    per_cell, sizes = [], []
    for point in points:
        theta = torch.from_numpy(read_run(point_dir(cfg, point))["arrays"]["theta"])
        terms = loss.terms(problem.fitted.blocks(theta), reference)
        per_cell.append(terms["per_cell"].numpy())  # (R, N*)
        sizes.append(terms["cell_sizes"].double().mean(0).numpy())
    per_cell = np.stack(per_cell)  # (K, R, atoms)
    total_last = per_cell[-1].sum(-1).mean()
    zero_gate = set(zero_gate_atoms(cfg, curve))
    rows = []
    for j in range(per_cell.shape[-1]):
        rows.append(
            {
                "figure": cfg.figure,
                "curve": curve_name(cfg, curve),
                "N": num_atoms,
                "loss": curve.loss,
                "atom": j + 1,
                "constant_gate": j in zero_gate,
                "mean_cell_size_last_n": float(sizes[-1][j]),
                "first_n": float(per_cell[0, :, j].mean()),
                "last_n": float(per_cell[-1, :, j].mean()),
                "share_last_n": float(per_cell[-1, :, j].mean() / total_last),
                "slope": slope_of_mean(cfg.sample_sizes, per_cell[:, :, j]),
            }
        )
    return rows


def curve_name(cfg: SweepConfig, curve: CurveConfig) -> str:
    score = "" if cfg.score == "quadratic_polynomial" else f" {cfg.score.removeprefix('quadratic_')}"
    score = " linear-score" if cfg.score == "linear" else score
    return f"{curve.gate}{score} {curve.expert} {curve.regime}"


def write_diagnostics(panels: Sequence[SweepConfig], diag_cfg: DiagnosticsConfig) -> dict[str, pd.DataFrame]:
    """Compute the requested tables for the distinct drawn curves of ``panels`` and write them."""
    curves = distinct_curves(panels)
    out_dir = Path(diag_cfg.results_dir or curves[0][0].results_dir) / "diagnostics" / diag_cfg.variant
    tables = {}
    if "fisher" in diag_cfg.tables:
        # The Fisher information is that of the N = N* model, so curves drawn at both N share one row.
        models = {model_key(cfg, cfg.curves[c], cfg.num_true): (cfg, c) for cfg, c, _ in curves}
        tables["fisher"] = [fisher_row(cfg, cfg.curves[c], diag_cfg) for cfg, c in models.values()]
    if "init_scale" in diag_cfg.tables:
        tables["init_scale"] = [row for cfg, c, N in curves for row in init_scale_rows(cfg, c, N, diag_cfg)]
    if "cells" in diag_cfg.tables:
        # every fitted-atom setting of each curve (not only the drawn one): cells show where N > N* puts its atoms
        settings = {model_key(cfg, cfg.curves[c], N): (cfg, c, N) for cfg, c, _ in curves for N in cfg.num_atoms}
        tables["cells"] = [row for cfg, c, N in settings.values() for row in cell_rows(cfg, c, N)]
    frames = {name: pd.DataFrame(rows) for name, rows in tables.items()}
    for name, frame in frames.items():
        for path in write_table(frame, out_dir / name, float_format="%.4g"):
            print(f"wrote {path}")
    return frames


def main(diag_cfg: DiagnosticsConfig) -> dict[str, pd.DataFrame]:
    """The tables for every panel of ``diag_cfg.paper`` (its manifest's panel table)."""
    panels = [cfg for _, cfg in figures.panel_configs(diag_cfg.paper, diag_cfg.variant, diag_cfg.results_dir)]
    return write_diagnostics(panels, diag_cfg)


if __name__ == "__main__":
    main(cli_config(DiagnosticsConfig, description=__doc__))
