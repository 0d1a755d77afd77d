"""What the sigmoid-attention paper's printed slopes measure: the papers' protocol under other starts and budgets.

    python -m sigmoid_attention.sensitivity [variant=paper|smoke] [run=false] [readings=[paper_full_batch]]
        [init_scales=[...]] [epochs=[...]] [learning_rates=[...]] [sample_sizes=[...]] [replicates=R]

(``make figures`` runs it with ``run=false`` on the committed records.)

For every distinct drawn curve of Figs. 1a, 1b, 2a, 2b (N = N*) and each reading of "epoch", the slope of the
drawn loss when the start's perturbation (0.05, 0.1, 0.2 of each block's RMS), the epochs (10, 100, 1000) or
the learning rate (0.01, 0.1, 1) change one at a time from QG App. F.1's recipe (``common.synthetic.sensitivity``).
Writes ``<results_dir>/figures/<variant>/sensitivity{.csv,.md,_wide.md}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import cli_config
from common.synthetic.figures import panel_configs
from common.synthetic.sensitivity import SensitivityConfig, write_sensitivity


@dataclass
class Config(SensitivityConfig):
    # A full step costs about 12 microseconds per row at 20 replicates on one CPU core, so 1000 epochs over the
    # paper's sizes would take about an hour per curve and reading: the table fits n = 1e3 ... 1e4 with 10
    # replicates, and its recipe row is refitted on the same grid, so each row compares with it.
    sample_sizes: list[int] = field(default_factory=lambda: [1000, 2154, 4642, 10000])
    replicates: int | None = 10


def main(sens: Config) -> None:
    write_sensitivity([cfg for _, cfg in panel_configs("sigmoid_attention", sens.variant, sens.results_dir)], sens)


if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
