"""Benchmark of the sigmoid-attention sweep: batched vs per-replicate fitting, and the paper grid's wall time.

    python -m benchmarks.sigmoid_attention_grid [panel=fig2b] [sizes=[1000,10000]] [replicates=20] [full_grid=false]

Measures, in one run and on the same data, the wall time of fitting all replicates of one sweep point as one
batched program against a Python loop over replicates with the same optimizer and stopping rule, at each of
``sizes``; the sum of the fit times recorded by the ``paper`` points already computed; and (with
``full_grid=true``) the wall time of computing every missing point of the four ``paper`` configs.
Writes ``results/benchmarks/sigmoid_attention_grid.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.config import ConfigError, cli_config
from common.manifest import load_figures
from common.runs import atomic_write_json, environment_record, is_done, read_run
from common.synthetic.experiment import fit_replicates
from common.synthetic.figures import panel_config
from sigmoid_attention import synthetic

PANELS = load_figures("sigmoid_attention").panels


@dataclass
class BenchConfig:
    panel: str = "fig2b"
    curve: int = 0
    sizes: list[int] = field(default_factory=lambda: [1000, 10_000])
    replicates: int = 20
    full_grid: bool = False
    results_dir: str = "results/benchmarks"

    def validate(self) -> None:
        if self.panel not in PANELS:
            raise ConfigError.invalid("panel", self.panel, f"one of {', '.join(PANELS)}")
        if not self.sizes or any(n <= 0 for n in self.sizes):
            raise ConfigError.invalid("sizes", self.sizes, "a non-empty list of positive sample sizes")
        if self.replicates <= 0:
            raise ConfigError.invalid("replicates", self.replicates, "a positive integer")


def recorded_fit_seconds() -> tuple[float, int, int]:
    """Sum of the fit times recorded by the paper points computed so far, how many there are, and the total."""
    seconds, done, total = 0.0, 0, 0
    for panel in PANELS:
        cfg = panel_config("sigmoid_attention", panel, "paper")
        for point in synthetic.Synthetic.sweep(cfg):
            total += 1
            path = synthetic.Synthetic.point_dir(cfg, point)
            if is_done(path):
                done += 1
                seconds += read_run(path)["results"]["fit_seconds"]
    return seconds, done, total


def main(bench: BenchConfig) -> dict:
    cfg = panel_config("sigmoid_attention", bench.panel, "paper")
    problem = synthetic.fit_problem(cfg, cfg.curves[bench.curve], cfg.num_atoms[0])
    comparisons = []
    for n in bench.sizes:
        start = time.perf_counter()
        batched, _ = fit_replicates(problem, n, cfg.seed, range(bench.replicates), cfg.fit)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        for r in range(bench.replicates):
            fit_replicates(problem, n, cfg.seed, [r], cfg.fit)
        loop_s = time.perf_counter() - start
        comparisons.append(
            {
                "n": n,
                "batched_seconds": batched_s,
                "loop_seconds": loop_s,
                "speedup": loop_s / batched_s,
                "converged": int(batched.converged.sum()),
                "mean_iterations": float(batched.iterations.double().mean()),
            }
        )
        print(f"n={n}: batched {batched_s:.1f}s, loop {loop_s:.1f}s, speed-up {loop_s / batched_s:.2f}x", flush=True)
    seconds, done, total = recorded_fit_seconds()
    record = {
        "bench": asdict(bench),
        "curve": asdict(cfg.curves[bench.curve]),
        "num_atoms": cfg.num_atoms[0],
        "comparisons": comparisons,
        "recorded_fit_seconds": seconds,
        "recorded_points": done,
        "paper_points": total,
        "environment": environment_record(seed=cfg.seed),
    }
    print(f"paper grid: {done} of {total} points computed, {seconds:.0f}s of recorded fitting")
    if bench.full_grid:
        start = time.perf_counter()
        for panel in PANELS:
            synthetic.Synthetic.main(panel_config("sigmoid_attention", panel, "paper"))
        record["paper_grid_seconds"] = time.perf_counter() - start
    path = Path(bench.results_dir) / "sigmoid_attention_grid.json"
    atomic_write_json(path, record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
