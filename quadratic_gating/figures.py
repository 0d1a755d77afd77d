"""Figure 1 of the quadratic-gating paper (polynomial and monomial gate panels) and its slopes table.

    python -m quadratic_gating.figures [variant=paper|smoke] [panels=[...]] [results_dir=...] [out_dir=...]

Reads the points written by ``python -m quadratic_gating.synthetic`` (it never fits), draws each panel (mean
Voronoi loss vs n, log-log, +-2 SD error bars and fitted dash-dotted lines as QG App. F.1) as pdf + png, and
writes ``slopes.csv`` / ``slopes.md`` with each curve's slope, bootstrap 95% CI and the band the theory
predicts (``expected_low`` / ``expected_high``; the paper prints no slopes). Missing points are listed and the
command fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, cli_config, load_config
from common.synthetic.report import write_report
from quadratic_gating.synthetic import Config

CONFIG_DIR = Path(__file__).parent / "configs"
PANELS = ("fig1_polynomial", "fig1_monomial")
VARIANTS = ("paper", "smoke")
ERROR_SD = 2.0  # QG App. F.1: error bars of two standard deviations


@dataclass
class FiguresConfig:
    variant: str = "paper"  # which configs' points to draw: paper | smoke
    panels: list[str] = field(default_factory=lambda: list(PANELS))
    results_dir: str | None = None  # None: the panel configs' own results_dir
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


def main(fig_cfg: FiguresConfig) -> None:
    panels = [(panel, panel_config(panel, fig_cfg.variant, fig_cfg.results_dir)) for panel in fig_cfg.panels]
    out_dir = Path(fig_cfg.out_dir or Path(panels[0][1].results_dir) / "figures" / fig_cfg.variant)
    write_report(panels, ERROR_SD, out_dir)


if __name__ == "__main__":
    main(cli_config(FiguresConfig, description=__doc__))
