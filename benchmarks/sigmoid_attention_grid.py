"""Benchmark of the sigmoid-attention sweep: batched vs per-replicate fitting, and the paper grid's wall time.

    python -m benchmarks.sigmoid_attention_grid [panel=fig2b] [n=10000] [replicates=20] [full_grid=false]

Measures, in one run and on the same data, the wall time of fitting all replicates of one sweep point as one
batched program against a Python loop over replicates with the same optimizer and stopping rule, and (with
``full_grid=true``) the wall time of every point of the four ``paper`` configs. Writes
``results/benchmarks/sigmoid_attention_grid.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common.config import ConfigError, cli_config, load_config
from common.runs import atomic_write_json, environment_record
from common.synthetic.experiment import fit_replicates
from sigmoid_attention import synthetic
from sigmoid_attention.figures import CONFIG_DIR, PANELS


@dataclass
class BenchConfig:
    panel: str = "fig2b"
    curve: int = 0
    n: int = 10_000
    replicates: int = 20
    full_grid: bool = False
    results_dir: str = "results/benchmarks"

    def validate(self) -> None:
        if self.panel not in PANELS:
            raise ConfigError.invalid("panel", self.panel, f"one of {', '.join(PANELS)}")
        if self.n <= 0 or self.replicates <= 0:
            raise ConfigError.invalid("n/replicates", (self.n, self.replicates), "positive integers")


def main(bench: BenchConfig) -> dict:
    cfg = load_config(synthetic.Config, CONFIG_DIR / f"{bench.panel}.yaml")
    problem = synthetic.fit_problem(cfg, cfg.curves[bench.curve], cfg.num_atoms[0])
    start = time.perf_counter()
    batched, _ = fit_replicates(problem, bench.n, cfg.seed, range(bench.replicates), cfg.fit)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    for r in range(bench.replicates):
        fit_replicates(problem, bench.n, cfg.seed, [r], cfg.fit)
    loop_s = time.perf_counter() - start
    record = {
        "bench": asdict(bench),
        "batched_seconds": batched_s,
        "loop_seconds": loop_s,
        "speedup": loop_s / batched_s,
        "converged": int(batched.converged.sum()),
        "environment": environment_record(seed=cfg.seed),
    }
    if bench.full_grid:
        start = time.perf_counter()
        for panel in PANELS:
            synthetic.main(load_config(synthetic.Config, CONFIG_DIR / f"{panel}.yaml"))
        record["paper_grid_seconds"] = time.perf_counter() - start
    path = Path(bench.results_dir) / "sigmoid_attention_grid.json"
    atomic_write_json(path, record)
    print(
        f"batched {batched_s:.1f}s, loop {loop_s:.1f}s, speed-up {loop_s / batched_s:.2f}x "
        f"({bench.replicates} replicates, n={bench.n}); wrote {path}"
    )
    return record


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
