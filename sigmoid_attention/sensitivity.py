"""What the sigmoid-attention paper's printed slopes measure: the papers' protocol under other starts and budgets.

    python -m sigmoid_attention.sensitivity [variant=paper|smoke] [run=false] [readings=[paper_full_batch]]
        [init_scales=[...]] [epochs=[...]] [learning_rates=[...]] [sample_sizes=[...]] [replicates=R]

For every distinct drawn curve of Figs. 1a, 1b, 2a, 2b (N = N*) and each reading of "epoch", the slope of the
drawn loss when the start's perturbation (0.05, 0.1, 0.2 of each block's RMS), the epochs (10, 100, 1000) or
the learning rate (0.01, 0.1, 1) change one at a time from QG App. F.1's recipe (``common.synthetic.sensitivity``).
Writes ``<results_dir>/figures/<variant>/sensitivity{.csv,.md,_wide.md}``.
"""

from __future__ import annotations

from common.config import cli_config
from common.synthetic.sensitivity import SensitivityConfig, write_sensitivity
from sigmoid_attention.figures import PANELS, panel_config


def main(sens: SensitivityConfig) -> None:
    write_sensitivity([panel_config(p, sens.variant, sens.results_dir) for p in PANELS], sens)


if __name__ == "__main__":
    main(cli_config(SensitivityConfig, description=__doc__))
