"""Wall time of every paper's ``paper`` synthetic grid on this machine (issue 3's goal: all together <= 60 min).

    python -m benchmarks.synthetic_grids [papers=[...]] [run=false] [results_root=DIR] [out_dir=results/benchmarks]

For each paper, the distinct points of all its ``paper`` panels (a point shared by two panels counts once),
how many are computed, and the fitting time they recorded; with ``run=true`` it computes the missing points
and times that, paper by paper (start from an empty ``results_root`` to time a whole grid). ``results_root``:
read and write ``<results_root>/<paper>`` instead of each config's ``results_dir``. Writes
``<out_dir>/synthetic_grids.json`` and prints a table.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from common.config import ConfigError, cli_config
from common.runs import atomic_write_json, environment_record, is_done, read_run

PAPERS = ("sigmoid_attention", "quadratic_gating", "softmax_moe_rates", "replora", "hyra")
GOAL_SECONDS = 3600.0


@dataclass
class BenchConfig:
    papers: list[str] = field(default_factory=lambda: list(PAPERS))
    run: bool = False
    results_root: str | None = None
    out_dir: str = "results/benchmarks"

    def validate(self) -> None:
        unknown = [p for p in self.papers if p not in PAPERS]
        if not self.papers or unknown:
            raise ConfigError.invalid("papers", self.papers, f"a non-empty subset of {', '.join(PAPERS)}")


def paper_panels(paper: str, results_root: str | None) -> list:
    figures = importlib.import_module(f"{paper}.figures")
    results_dir = None if results_root is None else str(Path(results_root) / paper)
    return [figures.panel_config(panel, "paper", results_dir) for panel in figures.PANELS]


def grid_status(paper: str, panels: list) -> dict:
    """Distinct points of a paper's panels, how many are done, and their recorded fitting seconds."""
    synthetic = importlib.import_module(f"{paper}.synthetic")
    paths = {synthetic.point_dir(cfg, point) for cfg in panels for point in synthetic.sweep(cfg)}
    done = [path for path in paths if is_done(path)]
    seconds = sum(read_run(path)["results"]["fit_seconds"] for path in done)
    return {"points": len(paths), "done": len(done), "recorded_fit_seconds": seconds}


def main(bench: BenchConfig) -> dict:
    rows = {}
    for paper in bench.papers:
        panels = paper_panels(paper, bench.results_root)
        row = {}
        if bench.run:
            synthetic = importlib.import_module(f"{paper}.synthetic")
            start = time.perf_counter()
            for cfg in panels:
                synthetic.main(cfg)
            row["wall_seconds"] = time.perf_counter() - start
        rows[paper] = row | grid_status(paper, panels)
    total = sum(row.get("wall_seconds", row["recorded_fit_seconds"]) for row in rows.values())
    record = {
        "bench": asdict(bench),
        "papers": rows,
        "total_seconds": total,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": bool(total <= GOAL_SECONDS and all(r["done"] == r["points"] for r in rows.values())),
        "torch_threads": torch.get_num_threads(),
        "environment": environment_record(),
    }
    print("| paper | points | done | recorded fitting (s) | wall (s) |\n|---|---:|---:|---:|---:|")
    for paper, row in rows.items():
        wall = f"{row['wall_seconds']:.0f}" if "wall_seconds" in row else ""
        print(f"| {paper} | {row['points']} | {row['done']} | {row['recorded_fit_seconds']:.0f} | {wall} |")
    print(f"total {total:.0f}s against the goal of {GOAL_SECONDS:.0f}s: {'met' if record['goal_met'] else 'not met'}")
    path = Path(bench.out_dir) / "synthetic_grids.json"
    atomic_write_json(path, record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
