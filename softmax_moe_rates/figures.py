"""The softmax-gating rates paper's synthetic panels, one per row of its Table 1, and their slopes table.

    python -m softmax_moe_rates.figures [variant=paper|smoke] [panels=[...]] [results_dir=...] [out_dir=...]

Reads the points written by ``python -m softmax_moe_rates.synthetic`` (it never fits), draws each panel (mean
Voronoi loss vs n, log-log, +-2 SD error bars and fitted dash-dotted lines) as pdf + png, and
writes ``slopes.csv`` / ``slopes.md`` with each curve's slope, bootstrap 95% CI and the band the theory
predicts (``expected_low`` / ``expected_high``; the paper prints no slopes). Missing points are listed and the
command fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from common.config import cli_config
from common.synthetic import report
from softmax_moe_rates.synthetic import Config

CONFIG_DIR = Path(__file__).parent / "configs"
PANELS = ("softmax", "temperature_linear", "temperature_router", "hierarchical")
ERROR_SD = 2.0  # the paper has no figures: +-2 SD as the quadratic-gating paper


@dataclass
class FiguresConfig(report.FiguresConfig):
    PANELS: ClassVar[tuple[str, ...]] = PANELS


def panel_config(panel: str, variant: str, results_dir: str | None = None) -> Config:
    return report.load_panel(Config, CONFIG_DIR, panel, variant, results_dir)


def main(fig_cfg: FiguresConfig) -> None:
    panels = [(panel, panel_config(panel, fig_cfg.variant, fig_cfg.results_dir)) for panel in fig_cfg.selected()]
    report.write_report(panels, ERROR_SD, fig_cfg)


if __name__ == "__main__":
    main(cli_config(FiguresConfig, description=__doc__))
