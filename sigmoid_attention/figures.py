"""Figures 1a, 1b, 2a, 2b of the sigmoid-attention paper and their slopes table, from saved sweep points.

    python -m sigmoid_attention.figures [variant=paper|smoke] [panels=[fig1a,...]] [results_dir=...] [out_dir=...]

Reads the points written by ``python -m sigmoid_attention.synthetic`` (it never fits anything), draws each
panel (mean Voronoi loss vs n on log-log axes, +-3 SD error bars, fitted dash-dotted lines; SG Sec. 5) as
pdf + png, and writes ``slopes.csv`` / ``slopes.md``: one row per curve, fitted-atom setting and loss, with
the bootstrap 95% CI, the paper's printed slope, the slope of the median (robust to single diverging
fits), the slope over n >= 1e4 only (``slope_upper``), the fraction of fits that met the stopping rule, and
how far the fits at the largest n are from the estimator (``optimisation_error_last_n``, in units of its
statistical error). Missing points are listed and the command fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError, cli_config, load_config
from common.synthetic.report import write_report
from sigmoid_attention.synthetic import Config

CONFIG_DIR = Path(__file__).parent / "configs"
PANELS = ("fig1a", "fig1b", "fig2a", "fig2b")
VARIANTS = ("paper", "smoke")
ERROR_SD = 3.0  # SG Sec. 5: error bars of three standard deviations


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
