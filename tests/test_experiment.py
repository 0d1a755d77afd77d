"""The Experiment contract: the registry, the default sweep and record, and the shared run_point / main."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from common import runs
from common.config import load_config
from common.experiment import REGISTRY, Experiment, register
from slurm import submit
from tests import toy_experiment


@dataclass
class GridConfig:
    results_dir: str = "results"
    device: str = "cpu"
    threads: int = 0
    widths: list[int] = field(default_factory=lambda: [1, 2])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    scale: float = 1.0

    def validate(self) -> None:
        pass


@dataclass(frozen=True)
class GridPoint:
    width: int
    seed: int


@register("tests.grid")
class Grid(Experiment):
    Config = GridConfig
    Point = GridPoint
    axes = ("widths", "seeds")
    run_name = "grid"
    computed: list = []

    @classmethod
    def compute(cls, cfg, point, run_dir, device):
        cls.computed.append(point)
        (run_dir / runs.CHECKPOINT_FILE).write_text("state")  # a training run's checkpoint, dropped when done
        draw = torch.randn(point.width).numpy() * cfg.scale  # seeded by the point's seed
        return {"total": float(draw.sum())}, {"draw": draw}


def test_sweep_is_the_product_of_the_axes_and_the_record_leaves_out_run_settings_and_axes(tmp_path):
    cfg = GridConfig(results_dir=str(tmp_path), device="cpu", threads=3)
    assert Grid.sweep(cfg) == [GridPoint(w, s) for w in (1, 2) for s in (0, 1, 2)]
    assert Grid.record(cfg, GridPoint(2, 1)) == {"width": 2, "seed": 1, "scale": 1.0}
    moved = GridConfig(results_dir=str(tmp_path / "elsewhere"), device="cuda", threads=1, widths=[2], seeds=[1])
    assert Grid.point_dir(moved, GridPoint(2, 1)).name == Grid.point_dir(cfg, GridPoint(2, 1)).name
    assert Grid.point_dir(GridConfig(results_dir=str(tmp_path), scale=2.0), GridPoint(2, 1)) != Grid.point_dir(
        cfg, GridPoint(2, 1)
    )


def test_run_point_seeds_writes_results_last_drops_the_checkpoint_and_main_skips_what_is_done(tmp_path, capsys):
    cfg = GridConfig(results_dir=str(tmp_path))
    Grid.computed.clear()
    Grid.main(cfg)
    assert len(Grid.computed) == 6 and capsys.readouterr().out.count("[") == 6
    path = Grid.point_dir(cfg, GridPoint(2, 1))
    run = runs.read_run(path)
    assert run["results"]["seconds"] >= 0 and not (path / runs.CHECKPOINT_FILE).exists()
    torch.manual_seed(1)
    np.testing.assert_array_equal(run["arrays"]["draw"], torch.randn(2).numpy())  # the point's seed
    Grid.main(cfg)
    assert len(Grid.computed) == 6  # nothing twice


def test_main_says_which_point_runs_with_the_done_and_pending_counts_unless_progress_is_off(tmp_path, capsys):
    cfg = GridConfig(results_dir=str(tmp_path), widths=[1], seeds=[0, 1])
    Grid.run_point(cfg, GridPoint(1, 1))  # computed before: the sweep starts with one done
    Grid.main(cfg)
    err = capsys.readouterr().err
    assert "[1/2] running GridPoint(width=1, seed=0) (1 done, 1 pending)" in err and "\r" not in err
    assert "tests.grid: 2/2 (100%)" in err
    quiet = GridConfig(results_dir=str(tmp_path / "q"), widths=[1], seeds=[0, 1])
    quiet.progress = False  # a config with the run setting (a training config's Monitoring field)
    Grid.main(quiet)
    assert capsys.readouterr().err == ""


def test_register_names_paper_dot_experiment_once():
    assert REGISTRY["tests.grid"] is Grid and Grid.name == "tests.grid"
    assert REGISTRY["toy.squares"] is toy_experiment.Squares
    with pytest.raises(ValueError, match="'grid' is not allowed"):
        register("grid")
    with pytest.raises(ValueError, match="registered twice"):

        @register("tests.grid")
        class Other(Grid):
            pass

    with pytest.raises(TypeError, match="decorates Experiment subclasses"):
        register("tests.function")(lambda: None)


def test_the_launcher_finds_a_registered_experiment_by_its_module(tmp_path, capsys):
    assert submit.import_experiment("tests.toy_experiment") is toy_experiment.Squares
    cfg = load_config(toy_experiment.Config, None, [f"results_dir={tmp_path}", "values=[2.0,3.0]"])
    toy_experiment.Squares.run_point(cfg, toy_experiment.Point(2.0))
    args = [
        "tests.toy_experiment",
        "--cluster",
        "localhost",
        "--dry-run",
        f"results_dir={tmp_path}",
        "values=[2.0,3.0]",
    ]
    assert submit.main(args) == 0
    assert "2 in the sweep, 1 finished, 1 pending" in capsys.readouterr().out
    assert Path(toy_experiment.Squares.point_dir(cfg, toy_experiment.Point(2.0))).parent.name == "toy"


def test_the_papers_are_the_folders_with_a_manifest_and_each_one_is_installed():
    import tomllib

    from common.experiment import PAPERS, REPO_ROOT

    assert PAPERS == ("hyra", "quadratic_gating", "replora", "sigmoid_attention", "softmax_moe_rates")
    include = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert all(paper in include["include"] and f"{paper}.*" in include["include"] for paper in PAPERS)
