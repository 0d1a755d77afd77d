"""Wall time of every paper's ``paper`` synthetic grids on this machine, grid by grid.

    python -m benchmarks.synthetic_grids [papers=[...]] [run=false] [results_root=DIR] [out_dir=results/benchmarks]

A paper's grids: the distinct points of all its ``paper`` panels per fit (``least_squares``, the estimator; the
papers' protocol, ``paper_full_batch`` and ``paper_minibatch``; a point shared by two panels counts once) and,
where the paper has one, its minimax family (``minimax``). For each grid: how many points, how many are
computed, and the fitting time they recorded; with ``run=true`` it computes the missing points and times that
(start from an empty ``results_root`` to time whole grids). The goal of issue 3 (all least-squares grids
together <= 60 min) is checked on the ``least_squares`` grids. ``results_root``: read and write
``<results_root>/<paper>`` instead of each config's ``results_dir``. Writes ``<out_dir>/synthetic_grids.json``
and prints a table.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from common.config import ConfigError, cli_config
from common.experiment import PAPERS, registered_in
from common.manifest import load_figures, load_manifest
from common.runs import atomic_write_json, environment_record, is_done, read_run
from common.synthetic import figures
from common.synthetic.sweep import fit_label, fits

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


def results_dir(paper: str, results_root: str | None) -> str | None:
    return None if results_root is None else str(Path(results_root) / paper)


def grids(paper: str, results_root: str | None) -> dict[str, list[tuple]]:
    """Grid name -> its distinct (experiment, config, point) triples."""
    table, entries = load_figures(paper), load_manifest(paper)
    out: dict[str, dict] = {}
    for name in table.panels:
        experiment = registered_in(entries[name].module)
        cfg = figures.panel_config(paper, name, "paper", results_dir(paper, results_root))
        labels = [fit_label(fit) for fit in fits(cfg)]
        for point in experiment.sweep(cfg):
            out.setdefault(labels[point.fit], {})[experiment.point_dir(cfg, point)] = (experiment, cfg, point)
    if table.minimax is not None:
        experiment = registered_in(entries[table.minimax].module)
        family = figures.panel_config(paper, table.minimax, "paper", results_dir(paper, results_root))
        out["minimax"] = {experiment.point_dir(family, p): (experiment, family, p) for p in experiment.sweep(family)}
    return {name: list(points.values()) for name, points in out.items()}


def grid_status(points: list[tuple]) -> dict:
    """How many points a grid has, how many are done, and their recorded fitting seconds."""
    paths = [module.point_dir(cfg, point) for module, cfg, point in points]
    done = [path for path in paths if is_done(path)]
    seconds = sum(read_run(path)["results"]["fit_seconds"] for path in done)
    return {"points": len(paths), "done": len(done), "recorded_fit_seconds": seconds}


def main(bench: BenchConfig) -> dict:
    rows = {}
    for paper in bench.papers:
        paper_grids = grids(paper, bench.results_root)
        row = {"fits": {}}
        for name, points in paper_grids.items():
            timing = {}
            if bench.run:
                start = time.perf_counter()
                for module, cfg, point in points:
                    module.run_point(cfg, point)
                timing["wall_seconds"] = time.perf_counter() - start
            status = timing | grid_status(points)
            if name == "minimax":
                row["minimax"] = status
            else:
                row["fits"][name] = status
        rows[paper] = row
    estimator = [row["fits"]["least_squares"] for row in rows.values()]
    total = sum(r.get("wall_seconds", r["recorded_fit_seconds"]) for r in estimator)
    record = {
        "bench": asdict(bench),
        "papers": rows,
        "least_squares_total_seconds": total,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": bool(total <= GOAL_SECONDS and all(r["done"] == r["points"] for r in estimator)),
        "torch_threads": torch.get_num_threads(),
        "environment": environment_record(),
    }
    print("| paper | grid | points | done | recorded fitting (s) | wall (s) |\n|---|---|---:|---:|---:|---:|")
    for paper, row in rows.items():
        for name, status in [*row["fits"].items(), *([("minimax", row["minimax"])] if "minimax" in row else [])]:
            wall = f"{status['wall_seconds']:.0f}" if "wall_seconds" in status else ""
            print(
                f"| {paper} | {name} | {status['points']} | {status['done']} "
                f"| {status['recorded_fit_seconds']:.0f} | {wall} |"
            )
    print(f"least-squares grids: {total:.0f}s against the goal of {GOAL_SECONDS:.0f}s: "
          f"{'met' if record['goal_met'] else 'not met'}")  # fmt: skip
    path = Path(bench.out_dir) / "synthetic_grids.json"
    atomic_write_json(path, record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
