"""Figures 1a, 1b, 2a, 2b of the sigmoid-attention paper and their slopes table, from saved sweep points.

    python -m sigmoid_attention.figures [variant=paper|smoke] [panels=[fig1a,...]] [minimax=true|false]
        [results_dir=...] [out_dir=...]

Reads the points written by ``python -m sigmoid_attention.synthetic`` (it never fits anything), draws each
panel (mean Voronoi loss vs n on log-log axes, +-3 SD error bars, fitted dash-dotted lines; SG Sec. 5) as
pdf + png (filled markers: the least-squares estimator; open: the papers' gradient-descent protocol, full-batch
and mini-batch epochs), and writes ``slopes.csv`` / ``slopes.md``: one row per curve, fitted-atom setting, fit
(``least_squares``, ``paper_full_batch``, ``paper_minibatch``) and loss, with the bootstrap 95% CI, the paper's
printed slope, the slope of the median (robust to single diverging fits), the slope over n >= 1e4 only
(``slope_upper``), the fraction of fits that met the stopping rule, and how far the fits at the largest n are
from the estimator (``optimisation_error_last_n``, in units of its
statistical error). With ``minimax=true`` (default) also the minimax envelope of SG Thm 2
(``minimax.{pdf,png}``, ``minimax_slopes.{csv,md}``, from ``python -m sigmoid_attention.minimax``);
``panels=[demo]`` draws the panel of ``make demo``. Missing points are listed and the command fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from common.config import cli_config
from common.synthetic import report
from common.synthetic.minimax import write_minimax_report
from sigmoid_attention import minimax
from sigmoid_attention.synthetic import Config

CONFIG_DIR = Path(__file__).parent / "configs"
PANELS = ("fig1a", "fig1b", "fig2a", "fig2b")
ERROR_SD = 3.0  # SG Sec. 5: error bars of three standard deviations


@dataclass
class FiguresConfig(report.FiguresConfig):
    PANELS: ClassVar[tuple[str, ...]] = PANELS
    OPTIONAL_PANELS: ClassVar[tuple[str, ...]] = ("demo",)  # make demo: configs/demo.yaml
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
