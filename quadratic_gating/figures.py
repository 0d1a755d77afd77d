"""Figure 1 of the quadratic-gating paper (polynomial and monomial gate panels) and its slopes table.

    python -m quadratic_gating.figures [variant=paper|smoke] [panels=[...]] [minimax=true|false] [results_dir=...]
        [out_dir=...]

Reads the points written by ``python -m quadratic_gating.synthetic`` (it never fits), draws each panel (mean
Voronoi loss vs n, log-log, +-2 SD error bars and fitted dash-dotted lines as QG App. F.1) as pdf + png (App.
F.1's panels: the least-squares estimator, filled, beside the paper's gradient-descent protocol, open), and
writes ``slopes.csv`` / ``slopes.md`` with each curve's and fit's slope, bootstrap 95% CI and the band the
theory predicts (``expected_low`` / ``expected_high``; the paper prints no slopes). With ``minimax=true``
(default) also the minimax envelope of Thm C.1 (``minimax.{pdf,png}``, ``minimax_slopes.{csv,md}``, from
``python -m quadratic_gating.minimax``). Missing points are listed and the command fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from common.config import cli_config
from common.synthetic import report
from common.synthetic.minimax import write_minimax_report
from quadratic_gating import minimax
from quadratic_gating.synthetic import Config

CONFIG_DIR = Path(__file__).parent / "configs"
PANELS = ("fig1_polynomial", "fig1_monomial", "fig1_polynomial_local", "fig1_monomial_local")
ERROR_SD = 2.0  # QG App. F.1: error bars of two standard deviations


@dataclass
class FiguresConfig(report.FiguresConfig):
    PANELS: ClassVar[tuple[str, ...]] = PANELS
    minimax: bool = True  # also the minimax envelope (configs/minimax[_smoke].yaml)


def panel_config(panel: str, variant: str, results_dir: str | None = None) -> Config:
    return report.load_panel(Config, CONFIG_DIR, panel, variant, results_dir)


def main(fig_cfg: FiguresConfig) -> None:
    panels = [(panel, panel_config(panel, fig_cfg.variant, fig_cfg.results_dir)) for panel in fig_cfg.selected()]
    missing = []
    if fig_cfg.minimax:
        family = report.load_panel(minimax.Config, CONFIG_DIR, "minimax", fig_cfg.variant, fig_cfg.results_dir)
        missing = write_minimax_report(family, report.output_dir(panels[0][1], fig_cfg))
    report.write_report(panels, ERROR_SD, fig_cfg, missing)


if __name__ == "__main__":
    main(cli_config(FiguresConfig, description=__doc__))
