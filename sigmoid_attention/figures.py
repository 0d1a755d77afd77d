"""Figures 1a, 1b, 2a, 2b of the sigmoid-attention paper and their slopes table, from saved sweep points.

    python -m sigmoid_attention.figures [variant=paper|smoke] [results_dir=...] [out_dir=...]

Reads the points written by ``python -m sigmoid_attention.synthetic`` (it never fits anything), draws each
panel (mean Voronoi loss vs n on log-log axes, +-3 SD error bars, fitted dash-dotted lines; SG Sec. 5) as
pdf + png, and writes ``slopes.csv`` / ``slopes.md``: one row per curve, fitted-atom setting and loss, with
the bootstrap 95% CI, the paper's printed slope, the slope of the median (robust to single diverging
fits), the slope over n >= 1e4 only (``slope_upper``), the
fraction of fits that met the stopping rule, and how far the fits at the largest n are from the estimator
(``optimisation_error_last_n``, in units of its statistical error). Missing points are listed and the command fails.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from common.config import ConfigError, cli_config, load_config
from common.plotting import RateCurve, plot_rate_curves, save_figure, use_house_style, write_table
from common.runs import is_done, read_run
from common.synthetic import fit_rate
from common.synthetic.truth import fitted_mask
from sigmoid_attention.synthetic import Config, Point, fit_problem, point_dir

CONFIG_DIR = Path(__file__).parent / "configs"
PANELS = ("fig1a", "fig1b", "fig2a", "fig2b")
VARIANTS = ("paper", "smoke")
ERROR_SD = 3.0  # SG Sec. 5: error bars of three standard deviations
UPPER_N = 10_000  # slope_upper: the slope over n >= UPPER_N, where more fits are in their local regime


@dataclass
class FiguresConfig:
    variant: str = "paper"  # which configs' points to draw: paper | smoke
    panels: list[str] = field(default_factory=lambda: list(PANELS))
    results_dir: str | None = None  # None: each panel config's own results_dir
    out_dir: str | None = None  # None: <results_dir>/figures/<variant>

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError.invalid("variant", self.variant, f"one of {', '.join(VARIANTS)}")
        unknown = [p for p in self.panels if p not in PANELS]
        if unknown or not self.panels:
            raise ConfigError.invalid("panels", self.panels, f"a non-empty subset of {', '.join(PANELS)}")


def panel_config(panel: str, variant: str, results_dir: str | None = None) -> Config:
    suffix = "_smoke" if variant == "smoke" else ""
    overrides = [f"results_dir={results_dir}"] if results_dir else []
    return load_config(Config, CONFIG_DIR / f"{panel}{suffix}.yaml", overrides)


@dataclass
class Collected:
    values: np.ndarray | None  # (K, R) the metric over the sample sizes; None if a point is missing
    missing: list[Point]
    converged: float = float("nan")  # fraction of fits that met the stopping rule
    optimisation_error: float = float("nan")  # at the largest n: median distance to the estimator / its error


def collect(cfg: Config, curve: int, num_atoms: int, metric: str) -> Collected:
    """A metric of one curve and setting over the sample sizes, with how well its fits converged.

    ``optimisation_error`` is sqrt(g^T H^-1 g / (P loss / n)): the distance of a fit to the least-squares
    estimator in the Fisher metric, in units of the estimator's own statistical error.
    """
    points = [Point(curve, num_atoms, n) for n in cfg.sample_sizes]
    missing = [p for p in points if not is_done(point_dir(cfg, p))]
    if missing:
        return Collected(None, missing)
    runs = [read_run(point_dir(cfg, p))["arrays"] for p in points]
    problem = fit_problem(cfg, cfg.curves[curve], num_atoms)
    parameters = int(fitted_mask(problem.fitted, num_atoms, problem.fixed_gate_atom).sum())
    last = runs[-1]
    ratio = last["decrement"] / (parameters * last["train_loss"] / cfg.sample_sizes[-1])
    return Collected(
        np.stack([run[metric] for run in runs]),
        [],
        float(np.mean([run["converged"].mean() for run in runs])),
        float(np.sqrt(np.median(ratio))),
    )


def main(fig_cfg: FiguresConfig) -> None:
    use_house_style()
    rows, missing_all = [], []
    for panel in fig_cfg.panels:
        cfg = panel_config(panel, fig_cfg.variant, fig_cfg.results_dir)
        out_dir = Path(fig_cfg.out_dir or Path(cfg.results_dir) / "figures" / fig_cfg.variant)
        drawn = []
        for c, curve in enumerate(cfg.curves):
            for num_atoms in cfg.num_atoms:
                setting = f"N=N*+{num_atoms - cfg.num_true}" if num_atoms > cfg.num_true else "N=N*"
                for metric in (curve.loss, "regression_error"):
                    collected = collect(cfg, c, num_atoms, metric)
                    values = collected.values
                    if collected.missing:
                        missing_all += [(panel, curve.label, p) for p in collected.missing]
                        break
                    rate = fit_rate(cfg.sample_sizes, values)
                    upper = np.asarray(cfg.sample_sizes) >= UPPER_N
                    slope_upper = (
                        fit_rate(np.asarray(cfg.sample_sizes)[upper], values[upper]).slope
                        if upper.sum() >= 2
                        else np.nan
                    )
                    is_drawn = num_atoms == cfg.num_atoms[0] and metric == curve.loss
                    rows.append(
                        {
                            "figure": panel,
                            "curve": curve.label,
                            "setting": setting,
                            "loss": metric,
                            "slope": rate.slope,
                            "ci_low": rate.ci_low,
                            "ci_high": rate.ci_high,
                            "paper_slope": curve.paper_slope if is_drawn else np.nan,
                            "median_slope": rate.median_slope,
                            "slope_upper": slope_upper,
                            "drawn": is_drawn,
                            "converged": collected.converged,
                            "optimisation_error_last_n": collected.optimisation_error,
                        }
                    )
                    if is_drawn:
                        drawn.append(
                            RateCurve(curve.label, np.array(cfg.sample_sizes), values, rate.slope, rate.intercept)
                        )
        if len(drawn) == len(cfg.curves):
            fig, ax = plt.subplots(figsize=(4.2, 3.4))
            plot_rate_curves(ax, drawn, error_sd=ERROR_SD)
            setting = "N = N*" if cfg.num_atoms[0] == cfg.num_true else f"N = N* + {cfg.num_atoms[0] - cfg.num_true}"
            ax.set_title(f"{panel}: {cfg.title} ({setting})", fontsize="small")
            for path in save_figure(fig, out_dir / panel):
                print(f"wrote {path}")
            plt.close(fig)
    if rows:
        for path in write_table(pd.DataFrame(rows), out_dir / "slopes"):
            print(f"wrote {path}")
    if missing_all:
        print(f"{len(missing_all)} sweep points are missing; run the experiments first:", file=sys.stderr)
        for panel, label, point in missing_all:
            print(f"  {panel} {label}: N={point.num_atoms} n={point.n}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(cli_config(FiguresConfig, description=__doc__))
