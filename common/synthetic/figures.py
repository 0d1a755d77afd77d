"""A paper's synthetic figures and slopes tables, from saved sweep points; it never fits anything.

    python -m common.synthetic.figures paper=<paper> [variant=paper|smoke] [panels=[...]] [minimax=true|false]
        [results_dir=...] [out_dir=...]

The paper's panel table is the ``figures:`` section of its manifest (``<paper>/configs/experiments.yaml``,
``common.manifest.Figures``): each panel is an experiment of the manifest whose config (``<panel>[_smoke].yaml``)
names the points to read, written by ``python -m <paper>.synthetic``. Each panel is drawn (mean Voronoi loss vs n
on log-log axes, +-``error_sd`` SD error bars, fitted dash-dotted lines; filled markers: the least-squares
estimator, open: the papers' gradient-descent protocol, full-batch and mini-batch epochs) as pdf + png, and
``slopes.csv`` / ``slopes.md`` get one row per curve, fitted-atom setting, fit and loss: the slope with its
bootstrap 95% CI, the band the theory predicts (``expected_low`` / ``expected_high``), the paper's printed slope
where it prints one, the slope of the median (robust to single diverging fits), the slope over n >= 1e4 only
(``slope_upper``), the fraction of fits that met the stopping rule, and how far the fits at the largest n are from
the estimator (``optimisation_error_last_n``, in units of its statistical error). Where the paper has a minimax
envelope (sigmoid attention, quadratic gating) and ``minimax=true`` (default): ``minimax.{pdf,png}`` and
``minimax_slopes.{csv,md}`` from ``python -m <paper>.minimax``. Optional panels (the sigmoid paper's ``demo``)
are drawn only when named in ``panels``. Missing points are listed and the command fails.

Figures go to ``out_dir``, else ``<results_dir of the panels>/figures/<variant>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common import manifest
from common.config import ConfigError, cli_config, load_config
from common.experiment import PAPERS, VARIANTS, registered_in
from common.synthetic import report
from common.synthetic.minimax import write_minimax_report


@dataclass
class FiguresConfig:
    paper: str = ""  # whose panels: a paper whose manifest has a figures table
    variant: str = "paper"  # which configs' points to draw: paper | smoke
    panels: list[str] = field(default_factory=list)  # empty: every panel of the paper's table
    minimax: bool = True  # also the minimax envelope, where the paper has one
    results_dir: str | None = None  # None: the panel configs' own results_dir
    out_dir: str | None = None  # None: <results_dir>/figures/<variant>

    def validate(self) -> None:
        if self.paper not in PAPERS:
            raise ConfigError.invalid("paper", self.paper, f"one of {', '.join(PAPERS)}")
        if self.variant not in VARIANTS:
            raise ConfigError.invalid("variant", self.variant, f"one of {', '.join(VARIANTS)}")
        table = manifest.load_figures(self.paper)
        allowed = (*table.panels, *table.optional)
        if any(p not in allowed for p in self.panels):
            raise ConfigError.invalid("panels", self.panels, f"a subset of {', '.join(allowed)}")

    def selected(self) -> list[str]:
        return list(self.panels or manifest.load_figures(self.paper).panels)


def panel_config(paper: str, name: str, variant: str, results_dir: str | None = None) -> Any:
    """The config of experiment ``name`` of ``paper``'s manifest (a panel, or the minimax envelope) for
    ``variant``, loaded with its entry point's config class, optionally with another results_dir."""
    entry = manifest.load_manifest(paper)[name]
    overrides = [f"results_dir={results_dir}"] if results_dir else []
    return load_config(registered_in(entry.module).Config, manifest.config_path(paper, entry, variant), overrides)


def panel_configs(paper: str, variant: str, results_dir: str | None = None, panels=None) -> list[tuple[str, Any]]:
    """(panel, config) of ``panels`` (default: the paper's table), in order."""
    names = panels or manifest.load_figures(paper).panels
    return [(name, panel_config(paper, name, variant, results_dir)) for name in names]


def main(fig_cfg: FiguresConfig):
    """Draw the panels and write the slopes tables; exit 1 when points are missing."""
    table = manifest.load_figures(fig_cfg.paper)
    panels = panel_configs(fig_cfg.paper, fig_cfg.variant, fig_cfg.results_dir, fig_cfg.selected())
    missing = []
    if fig_cfg.minimax and table.minimax is not None:
        family = panel_config(fig_cfg.paper, table.minimax, fig_cfg.variant, fig_cfg.results_dir)
        missing = write_minimax_report(family, report.output_dir(panels[0][1], fig_cfg))
    return report.write_report(panels, table.error_sd, fig_cfg, missing)


if __name__ == "__main__":
    main(cli_config(FiguresConfig, description=__doc__))
