"""Tests of slurm.submit on a toy experiment: debug and local runs, skipping, dry runs, profiles, errors."""

import os
import stat
from pathlib import Path

import pytest

from slurm import submit
from tests import toy_experiment

TOY = "tests.toy_experiment"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _fake_command(bin_dir: Path, name: str) -> None:
    """An executable `name` in bin_dir, so that submitit believes it is on a SLURM cluster."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """An empty profiles folder in place of slurm/clusters/."""
    folder = tmp_path / "clusters"
    folder.mkdir()
    monkeypatch.setattr(submit, "PROFILES_DIR", folder)
    return folder


def _done_values(results_dir):
    cfg = toy_experiment.Config(results_dir=str(results_dir))
    return [point.value for point in toy_experiment.sweep(cfg) if toy_experiment.is_done(cfg, point)]


def test_debug_runs_every_point_then_skips_them(tmp_path, capsys):
    args = [TOY, "--cluster", "debug", f"results_dir={tmp_path}"]
    assert submit.main(args) == 0
    assert _done_values(tmp_path) == [1.0, 2.0, 3.0]
    assert "3 of 3 jobs succeeded" in capsys.readouterr().out

    assert submit.main(args) == 0
    out = capsys.readouterr().out
    assert "3 finished, 0 pending" in out and "succeeded" not in out


def test_local_runs_points_in_subprocesses(tmp_path, monkeypatch, capsys):
    # The jobs unpickle tests.toy_experiment in a fresh interpreter: it must be importable there.
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    args = [TOY, "--cluster", "local", "--parallel", "2", f"results_dir={tmp_path}", "values=[4,5]"]
    assert submit.main(args) == 0
    cfg = toy_experiment.Config(results_dir=str(tmp_path), values=[4.0, 5.0])
    assert all(toy_experiment.is_done(cfg, point) for point in toy_experiment.sweep(cfg))
    assert (tmp_path / "slurm_logs").is_dir()
    assert "2 of 2 jobs succeeded" in capsys.readouterr().out


def test_a_failing_job_is_reported_and_the_others_finish(tmp_path, capsys):
    assert submit.main([TOY, "--cluster", "debug", f"results_dir={tmp_path}", "fail_on=2"]) == 1
    assert _done_values(tmp_path) == [1.0, 3.0]
    captured = capsys.readouterr()
    assert "FAILED Point(value=2.0)" in captured.err and "toy failure on purpose" in captured.err
    assert "2 of 3 jobs succeeded" in captured.out


def test_dry_run_lists_pending_points_and_submits_nothing(tmp_path, capsys):
    cfg = toy_experiment.Config(results_dir=str(tmp_path))
    toy_experiment.run_point(cfg, toy_experiment.Point(1.0))
    assert submit.main([TOY, "--dry-run", "--cluster", "local", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "3 in the sweep, 1 finished, 2 pending" in out
    assert "pending Point(value=2.0)" in out and "pending Point(value=3.0)" in out
    assert "pending Point(value=1.0)" not in out
    assert _done_values(tmp_path) == [1.0] and not (tmp_path / "slurm_logs").exists()


@pytest.mark.parametrize(
    "override, named",
    [("values=[-1]", "'values' = [-1.0] is not allowed"), ("values=[x]", "expected list[float]")],
)
def test_a_bad_config_fails_before_submitting(tmp_path, capsys, override, named):
    assert submit.main([TOY, "--cluster", "debug", f"results_dir={tmp_path}", override]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "slurm_logs").exists()


@pytest.mark.parametrize(
    "module, named",
    [
        ("tests.no_such_module", "cannot be imported"),
        ("json", "lacks Config, sweep, is_done, run_point, main"),
    ],
)
def test_a_module_without_the_contract_is_refused(module, named, capsys):
    assert submit.main([module, "--cluster", "debug"]) == 2
    assert named in capsys.readouterr().err


def test_unknown_cluster_lists_the_available_ones(profiles, capsys):
    (profiles / "mycluster.yaml").write_text("partition: gpu\n")
    assert submit.main([TOY, "--cluster", "nosuch"]) == 2
    assert "unknown cluster 'nosuch'; available: local, debug, mycluster" in capsys.readouterr().err


def test_unknown_profile_key_names_the_key_and_the_allowed_keys(profiles, capsys):
    (profiles / "mycluster.yaml").write_text("partition: gpu\ngpus: 2\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "'gpus'" in err and "mycluster.yaml" in err
    assert "partition, gpus_per_node, cpus_per_task, mem_gb, timeout_min" in err


def test_profile_without_partition_is_refused(profiles, capsys):
    (profiles / "mycluster.yaml").write_text("gpus_per_node: 2\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run"]) == 2
    assert "'partition'" in capsys.readouterr().err


def test_the_shipped_example_profile_is_valid():
    profile = submit.load_profile("example")
    assert profile.partition == "gpu" and profile.gpus_per_node == 1 and profile.timeout_min == 60


def test_slurm_dry_run_prints_the_profile_resources(tmp_path, profiles, capsys):
    (profiles / "mycluster.yaml").write_text("partition: a100\nmem_gb: 64\nqos: high\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "cluster: mycluster" in out and "'slurm_partition': 'a100'" in out and "'mem_gb': 64" in out
    assert "'slurm_qos': 'high'" in out and "nothing submitted" in out


def test_slurm_executor_gets_the_profile_parameters(tmp_path, profiles, monkeypatch):
    _fake_command(tmp_path / "bin", "srun")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    (profiles / "mycluster.yaml").write_text(
        "partition: gpu\ngpus_per_node: 2\ncpus_per_task: 4\nmem_gb: 16\ntimeout_min: 30\naccount: lab\n"
        "array_parallelism: 5\nsetup: [module load cuda]\n"
    )
    executor = submit.build_executor("mycluster", submit.load_profile("mycluster"), tmp_path / "logs", "toy")
    assert executor.cluster == "slurm"
    parameters = executor._executor.parameters
    assert parameters["partition"] == "gpu" and parameters["account"] == "lab"
    assert parameters["gpus_per_node"] == 2 and parameters["cpus_per_task"] == 4
    assert parameters["mem"] == "16GB" and parameters["time"] == 30
    assert parameters["array_parallelism"] == 5 and parameters["setup"] == ["module load cuda"]
    sbatch = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --account=lab",
        "module load cuda",
    ]:
        assert line in sbatch


def test_default_cluster(tmp_path, profiles, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert submit.default_cluster() == "local"
    _fake_command(bin_dir, "sbatch")
    with pytest.raises(submit.SubmitError, match="--cluster"):
        submit.default_cluster()
    (profiles / "default.yaml").write_text("partition: gpu\n")
    assert submit.default_cluster() == "default"
