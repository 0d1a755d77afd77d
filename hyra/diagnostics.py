"""Diagnostics that explain the HyRA synthetic slopes: is the estimator local, are there flat directions?

    python -m hyra.diagnostics [variant=paper|smoke] [tables=[fisher,init_scale,cells]]
        [init_scales=[0.05,0.1,0.2]] [n=10000]

The tables of ``common.synthetic.diagnostics`` (Fisher information at the truth, refits from several initial
scales, the drawn loss split by true atom) for every drawn curve of the multi-head LoRA panel, written to
``<results_dir>/diagnostics/<variant>/{fisher,init_scale,cells}.{csv,md}``.
"""

from __future__ import annotations

from common.config import cli_config
from common.synthetic.diagnostics import DiagnosticsConfig, write_diagnostics
from hyra.figures import PANELS, panel_config


def main(diag_cfg: DiagnosticsConfig) -> None:
    write_diagnostics([panel_config(p, diag_cfg.variant, diag_cfg.results_dir) for p in PANELS], diag_cfg)


if __name__ == "__main__":
    main(cli_config(DiagnosticsConfig, description=__doc__))
