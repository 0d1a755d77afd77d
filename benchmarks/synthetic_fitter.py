"""The least-squares fitter on a fixed set of sweep points: solver against solver, batched against a loop, CPU
against GPU, in one run.

    python -m benchmarks.synthetic_fitter [papers=[...]] [points=[...]] [n=null] [replicates=8] [max_iter=null]
                                          [loop=true] [gpu=auto]
    python -m cProfile -s tottime -m benchmarks.synthetic_fitter points=[0] solvers=[marquardt] loop=false

For every point of ``POINTS`` (one to two per paper, at n = 12,915, the middle of the papers' grids) it fits the
same ``replicates`` samples from the same starts with each solver of ``solvers`` (``marquardt``, the fitter of the
committed records, and ``geodesic``, the default) under the point's own config (its ``max_iter`` unless
``max_iter`` is set, e.g. 200 to see what reaching the estimator costs), and reports per solver the wall time, how
many fits met the stopping rule, accepted steps, Gauss-Newton matrices formed (in units of one all-row matrix,
the n P^2 product that is a fit's cost) and the final training loss; and per point how many replicates the
default solver ended lower than the first one. With ``loop=true`` the first point is also fitted one replicate
at a time with the default solver (the same optimiser and stopping rule). When a GPU is visible (``gpu=auto``) or
``gpu=true``, every point is fitted again on it with the default solver. Writes
``<out_dir>/synthetic_fitter.json`` and prints a table; times are ratios within this one run. ``points`` picks
points by their index in ``POINTS`` and ``n`` replaces their sample size (e.g. to profile one fit at n = 59,948).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from common.config import ConfigError, cli_config, load_config
from common.runs import atomic_write_json, environment_record
from common.synthetic.experiment import fit_replicates
from common.synthetic.fitting import SOLVERS

# (paper, config stem, curve index, fitted atoms N, sample size n): a dense and an over-specified sigmoid-attention
# fit, the quadratic-gating local setting, the linear-router and hierarchical softmax families, vanilla LoRA
# (RepLoRA) and multi-head LoRA (HyRA)
POINTS = [
    ("sigmoid_attention", "fig1a", 1, 8, 12915),
    ("sigmoid_attention", "fig1a", 1, 9, 12915),
    ("quadratic_gating", "fig1_polynomial_local", 0, 4, 12915),
    ("softmax_moe_rates", "softmax", 1, 4, 12915),
    ("softmax_moe_rates", "hierarchical", 0, 3, 12915),
    ("replora", "lora", 0, 3, 12915),
    ("hyra", "multihead", 0, 3, 12915),
]
PAPERS = tuple(dict.fromkeys(point[0] for point in POINTS))


@dataclass
class BenchConfig:
    papers: list[str] = field(default_factory=lambda: list(PAPERS))
    points: list[int] | None = None  # indices into POINTS (None: every point of ``papers``)
    n: int | None = None  # None: each point's sample size
    solvers: list[str] = field(default_factory=lambda: ["marquardt", "geodesic"])  # the last is "the default"
    replicates: int = 8
    max_iter: int | None = None  # None: each point's config
    loop: bool = True
    gpu: str = "auto"  # auto: when CUDA is visible; true; false
    out_dir: str = "results/benchmarks"

    def validate(self) -> None:
        unknown = [p for p in self.papers if p not in PAPERS]
        if not self.papers or unknown:
            raise ConfigError.invalid("papers", self.papers, f"a non-empty subset of {', '.join(PAPERS)}")
        if not self.solvers or any(s not in SOLVERS for s in self.solvers):
            raise ConfigError.invalid("solvers", self.solvers, f"a non-empty list of {', '.join(SOLVERS)}")
        if self.points is not None and (not self.points or any(not 0 <= i < len(POINTS) for i in self.points)):
            raise ConfigError.invalid("points", self.points, f"indices into POINTS, 0 ... {len(POINTS) - 1}")
        if self.n is not None and self.n <= 0:
            raise ConfigError.invalid("n", self.n, "a positive sample size, or null")
        if self.replicates <= 0:
            raise ConfigError.invalid("replicates", self.replicates, "a positive integer")
        if self.max_iter is not None and self.max_iter <= 0:
            raise ConfigError.invalid("max_iter", self.max_iter, "a positive number of steps, or null")
        if self.gpu not in ("auto", "true", "false"):
            raise ConfigError.invalid("gpu", self.gpu, "auto, true or false")
        if self.gpu == "true" and not torch.cuda.is_available():
            raise ConfigError.invalid("gpu", self.gpu, "auto or false: no CUDA device is visible here")


def point_problem(paper: str, stem: str, curve: int, num_atoms: int):
    synthetic = importlib.import_module(f"{paper}.synthetic")
    cfg = load_config(synthetic.Config, Path(paper) / "configs" / f"{stem}.yaml")
    return cfg, synthetic.fit_problem(cfg, cfg.curves[curve], num_atoms)


def measure(problem, n: int, seed: int, replicates, fit, device: str = "cpu") -> tuple[dict, object]:
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result, _ = fit_replicates(problem, n, seed, replicates, fit, device)
    seconds = time.perf_counter() - start
    rows = fit.gram_rows if fit.gram_rows is not None and fit.gram_rows < n else n
    matrices = result.matrices.double()
    return {
        "seconds": seconds,
        "converged": int(result.converged.sum()),
        "mean_steps": float(result.iterations.double().mean()),
        "mean_matrices": float((matrices[:, 0] + matrices[:, 1] * rows / n).mean()),
        "mean_loss": float(result.loss.mean()),
    }, result


def main(bench: BenchConfig) -> dict:
    use_gpu = bench.gpu == "true" or (bench.gpu == "auto" and torch.cuda.is_available())
    default = bench.solvers[-1]
    rows = []
    for i, (paper, stem, curve, num_atoms, n) in enumerate(POINTS):
        if paper not in bench.papers or (bench.points is not None and i not in bench.points):
            continue
        n = bench.n or n
        cfg, problem = point_problem(paper, stem, curve, num_atoms)
        budget = {} if bench.max_iter is None else {"max_iter": bench.max_iter}
        replicates = range(bench.replicates)
        row = {"paper": paper, "config": stem, "curve": cfg.curves[curve].label, "num_atoms": num_atoms, "n": n}
        results = {}
        for solver in bench.solvers:
            fit = replace(cfg.fit, solver=solver, **budget)
            row[solver], results[solver] = measure(problem, n, cfg.seed, replicates, fit)
        row["max_iter"] = replace(cfg.fit, **budget).max_iter
        row["default_lower"] = int((results[default].loss < results[bench.solvers[0]].loss).sum())
        if bench.loop and not any("loop_seconds" in r for r in rows):
            fit = replace(cfg.fit, solver=default, **budget)
            start = time.perf_counter()
            for r in replicates:
                fit_replicates(problem, n, cfg.seed, [r], fit)
            row["loop_seconds"] = time.perf_counter() - start
            row["batched_speedup"] = row["loop_seconds"] / row[default]["seconds"]
        if use_gpu:
            fit = replace(cfg.fit, solver=default, **budget)
            row["cuda"], on_gpu = measure(problem, n, cfg.seed, replicates, fit, "cuda")
            row["cuda_speedup"] = row[default]["seconds"] / row["cuda"]["seconds"]
            both = on_gpu.converged & results[default].converged
            row["cuda_max_relative_loss_difference"] = float(
                ((on_gpu.loss - results[default].loss) / results[default].loss)[both].abs().max()
                if both.any()
                else float("nan")
            )
        rows.append(row)
        print_row(row, bench.solvers, use_gpu)
    record = {
        "bench": asdict(bench),
        "rows": rows,
        "total_seconds": {s: sum(r[s]["seconds"] for r in rows) for s in bench.solvers},
        "total_matrices": {s: sum(r[s]["mean_matrices"] for r in rows) for s in bench.solvers},
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if use_gpu else "cpu",
        "environment": environment_record(),
    }
    first = bench.solvers[0]
    print(
        f"all points: {default} {record['total_seconds'][default]:.1f}s and {record['total_matrices'][default]:.0f} "
        f"matrices per fit, {first} {record['total_seconds'][first]:.1f}s and {record['total_matrices'][first]:.0f}"
    )
    path = Path(bench.out_dir) / "synthetic_fitter.json"
    atomic_write_json(path, record)
    print(f"wrote {path}")
    return record


def print_row(row: dict, solvers: list[str], gpu: bool) -> None:
    parts = [f"{row['paper']}/{row['config']} {row['curve']} N={row['num_atoms']} n={row['n']}:"]
    for solver in solvers:
        r = row[solver]
        parts.append(
            f"{solver} {r['seconds']:.1f}s conv {r['converged']} steps {r['mean_steps']:.1f} "
            f"matrices {r['mean_matrices']:.1f} loss {r['mean_loss']:.7f};"
        )
    parts.append(f"{solvers[-1]} lower on {row['default_lower']}")
    if "loop_seconds" in row:
        parts.append(f"; loop {row['loop_seconds']:.1f}s ({row['batched_speedup']:.2f}x batched)")
    if gpu:
        parts.append(f"; cuda {row['cuda']['seconds']:.1f}s ({row['cuda_speedup']:.1f}x)")
    print(" ".join(parts), flush=True)


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
