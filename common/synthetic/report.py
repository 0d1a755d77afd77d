"""Rate panels and slopes tables from saved sweep points: the shared body of every paper's synthetic figures.

It only reads points written by ``common.synthetic.sweep`` and never fits. For each curve, fitted-atom
setting, fit (the least-squares estimator, the papers' gradient-descent protocol) and metric (the curve's
drawn loss and the regression error) it fits the slope of log(mean) on log n with a bootstrap 95% CI, and
draws the first setting of each panel's curves on log-log axes with error bars and fitted dash-dotted lines:
one colour per curve, one marker per fit. Missing points are listed and the command fails instead of drawing less.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from common.plotting import RateCurve, plot_rate_curves, save_figure, use_house_style, write_table
from common.runs import is_done, read_run
from common.synthetic.rates import fit_rate
from common.synthetic.sweep import Point, SweepConfig, fit_label, fit_problem, fits, point_dir, setting_label
from common.synthetic.truth import fitted_mask

UPPER_N = 10_000  # slope_upper: the slope over n >= UPPER_N, where more fits are in their local regime
FIT_MARKERS = {"least_squares": "o", "paper_full_batch": "s", "paper_minibatch": "^"}


@dataclass
class Collected:
    values: np.ndarray | None  # (K, R) the metric over the sample sizes; None if a point is missing
    missing: list[Point]
    converged: float = float("nan")  # fraction of fits that met the stopping rule
    optimisation_error: float = float("nan")  # at the largest n: median distance to the estimator / its error


def collect(cfg: SweepConfig, curve: int, num_atoms: int, metric: str, fit: int = 0) -> Collected:
    """A metric of one curve and setting over the sample sizes, with how well its fits converged.

    ``optimisation_error`` is sqrt(g^T H^-1 g / (P loss / n)): the distance of a fit to the least-squares
    estimator in the Fisher metric, in units of the estimator's own statistical error.
    """
    points = [Point(curve, num_atoms, n, fit) for n in cfg.sample_sizes]
    missing = [p for p in points if not is_done(point_dir(cfg, p))]
    if missing:
        return Collected(None, missing)
    runs = [read_run(point_dir(cfg, p))["arrays"] for p in points]
    problem = fit_problem(cfg, cfg.curves[curve], num_atoms, fits(cfg)[fit])
    parameters = int(fitted_mask(problem.fitted, num_atoms, problem.fixed_gate_atom).sum())
    last = runs[-1]
    ratio = last["decrement"] / (parameters * last["train_loss"] / cfg.sample_sizes[-1])
    return Collected(
        np.stack([run[metric] for run in runs]),
        [],
        float(np.mean([run["converged"].mean() for run in runs])),
        float(np.sqrt(np.median(ratio))),
    )


def panel_rows(panel: str, cfg: SweepConfig) -> tuple[list[dict], list[RateCurve], list[tuple[str, str, Point]]]:
    """Slopes-table rows of one panel, its drawn curves, and its missing points (panel, curve label, point)."""
    rows, drawn, missing = [], [], []
    for c, curve in enumerate(cfg.curves):
        expected = curve.expected or [np.nan, np.nan]
        for f, fit in enumerate(fits(cfg)):
            for num_atoms in cfg.num_atoms:
                rows_missing = panel_setting_rows(panel, cfg, c, f, num_atoms, expected, rows, drawn)
                missing += [(panel, f"{curve.label} ({fit_label(fit)})", p) for p in rows_missing]
    return rows, drawn, missing


def panel_setting_rows(
    panel: str, cfg: SweepConfig, c: int, f: int, num_atoms: int, expected, rows: list, drawn: list
) -> list[Point]:
    """Append the rows (and drawn curve) of one curve, fit and setting; return its missing points."""
    curve, fit = cfg.curves[c], fit_label(fits(cfg)[f])
    sizes = np.asarray(cfg.sample_sizes)
    upper = sizes >= UPPER_N
    for metric in (curve.loss, *curve.tabulate, "regression_error"):
        collected = collect(cfg, c, num_atoms, metric, f)
        if collected.missing:
            return collected.missing
        values = collected.values
        rate = fit_rate(sizes, values)
        slope_upper = fit_rate(sizes[upper], values[upper]).slope if upper.sum() >= 2 else np.nan
        is_drawn = num_atoms == cfg.num_atoms[0] and metric == curve.loss
        rows.append(
            {
                "figure": panel,
                "curve": curve.label,
                "setting": setting_label(cfg, num_atoms),
                "fit": fit,
                "loss": metric,
                "slope": rate.slope,
                "ci_low": rate.ci_low,
                "ci_high": rate.ci_high,
                "expected_low": expected[0] if is_drawn else np.nan,
                "expected_high": expected[1] if is_drawn else np.nan,
                "paper_slope": curve.paper_slope if is_drawn and curve.paper_slope is not None else np.nan,
                "median_slope": rate.median_slope,
                "slope_upper": slope_upper,
                "drawn": is_drawn,
                "converged": collected.converged,
                "optimisation_error_last_n": collected.optimisation_error,
            }
        )
        if is_drawn:
            label = curve.label if len(fits(cfg)) == 1 else f"{curve.label}, {fit.replace('_', ' ')}"
            style = {"color": f"C{c}", "marker": FIT_MARKERS[fit], "filled": fit == "least_squares"}
            drawn.append(RateCurve(label, sizes, values, rate.slope, rate.intercept, **style))
    return []


def draw_panel(panel: str, cfg: SweepConfig, curves: list[RateCurve], error_sd: float, out_dir: Path) -> None:
    several_fits = len(fits(cfg)) > 1
    fig, ax = plt.subplots(figsize=(5.4, 4.4) if several_fits else (4.2, 3.4))
    plot_rate_curves(ax, curves, error_sd=error_sd)
    if several_fits:  # filled: the estimator; open: the papers' protocol
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    setting = setting_label(cfg, cfg.num_atoms[0]).replace("=", " = ").replace("+", " + ")
    ax.set_title(f"{panel}: {cfg.title} ({setting})", fontsize="small")
    for path in save_figure(fig, out_dir / panel):
        print(f"wrote {path}")
    plt.close(fig)


def output_dir(cfg: SweepConfig, fig_cfg) -> Path:
    """Where a paper's figures and tables go (``fig_cfg``: a ``common.synthetic.figures.FiguresConfig``):
    ``out_dir``, else <results_dir of its panels>/figures/<variant>."""
    return Path(fig_cfg.out_dir or Path(cfg.results_dir) / "figures" / fig_cfg.variant)


def write_report(
    panels: Sequence[tuple[str, SweepConfig]], error_sd: float, fig_cfg, missing_elsewhere=()
) -> pd.DataFrame:
    """Draw every complete panel and write ``slopes.csv`` / ``slopes.md``; exit 1 if points are missing (here or
    in ``missing_elsewhere``: (panel, curve label, point) of the paper's other figures)."""
    out_dir = output_dir(panels[0][1], fig_cfg)
    use_house_style()
    rows, missing = [], list(missing_elsewhere)
    for panel, cfg in panels:
        panel_table, drawn, panel_missing = panel_rows(panel, cfg)
        rows += panel_table
        missing += panel_missing
        if len(drawn) == len(cfg.curves) * len(fits(cfg)):
            draw_panel(panel, cfg, drawn, error_sd, out_dir)
    table = pd.DataFrame(rows)
    if rows:
        for path in write_table(table, out_dir / "slopes"):
            print(f"wrote {path}")
    if missing:
        print(f"{len(missing)} sweep points are missing; run the experiments first:", file=sys.stderr)
        for panel, label, point in missing:
            print(f"  {panel} {label}: N={point.num_atoms} n={point.n}", file=sys.stderr)
        sys.exit(1)
    return table
