"""Tests of slurm.submit on a toy experiment: debug and local runs, skipping, dry runs, profiles, errors."""

import os
import pickle
import stat
from pathlib import Path

import pytest

from common import manifest as papers
from common.config import ConfigError, load_config
from slurm import jobs, status, submit
from tests import toy_experiment

TOY = "tests.toy_experiment"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _fake_command(bin_dir: Path, name: str) -> None:
    """An executable `name` in bin_dir, so that submitit believes it is on a SLURM cluster."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


REAL_SLURM_PARTITIONS = submit.slurm_partitions


@pytest.fixture(autouse=True)
def no_slurm_controller(monkeypatch):
    """These tests do not talk to SLURM, even where a cluster answers (CI runs one): no partition check."""
    monkeypatch.setattr(submit, "slurm_partitions", lambda: None)


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """An empty profiles folder in place of slurm/clusters/."""
    folder = tmp_path / "clusters"
    folder.mkdir()
    monkeypatch.setattr(submit, "PROFILES_DIR", folder)
    return folder


def _done_values(results_dir):
    cfg = toy_experiment.Config(results_dir=str(results_dir))
    return [point.value for point in toy_experiment.Squares.sweep(cfg) if toy_experiment.Squares.is_done(cfg, point)]


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
    assert all(toy_experiment.Squares.is_done(cfg, point) for point in toy_experiment.Squares.sweep(cfg))
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
    toy_experiment.Squares.run_point(cfg, toy_experiment.Point(1.0))
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
        ("json", "registers none: a launchable module registers one Experiment subclass"),
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


def test_slurm_dry_run_prints_the_sbatch_script(tmp_path, profiles, capsys):
    (profiles / "mycluster.yaml").write_text("partition: a100\nmem_gb: 64\nqos: high\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "cluster: mycluster" in out and "nothing submitted" in out
    for line in ["#SBATCH --partition=a100", "#SBATCH --mem=64GB", "#SBATCH --qos=high", "#SBATCH --array=0-2%3"]:
        assert line in out
    assert "submitit.core._submit" in out and not (tmp_path / "slurm_logs").exists()


def test_slurm_executor_gets_the_profile_parameters(tmp_path, profiles, monkeypatch):
    _fake_command(tmp_path / "bin", "srun")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    (profiles / "mycluster.yaml").write_text(
        "partition: gpu\ngpus_per_node: 2\ncpus_per_task: 4\nmem_gb: 16\ntimeout_min: 30\naccount: lab\n"
        "array_parallelism: 5\nsignal_delay_s: 120\nsetup: [module load cuda]\nmax_timeouts: 7\n"
    )
    launch = submit.Launch(
        "toy", toy_experiment.Squares, toy_experiment.Config(results_dir=str(tmp_path)), None, [], None
    )
    executor = submit.build_executor("mycluster", launch, submit.load_profile("mycluster"))
    parameters = executor.parameters
    assert parameters["partition"] == "gpu" and parameters["account"] == "lab"
    assert parameters["gpus_per_node"] == 2 and parameters["cpus_per_task"] == 4
    assert parameters["mem"] == "16GB" and parameters["time"] == 30 and parameters["signal_delay_s"] == 120
    assert parameters["array_parallelism"] == 5 and parameters["setup"] == ["module load cuda"]
    assert executor.max_num_timeout == 7
    sbatch = executor._make_submission_file_text("python -m x", "uid")
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --signal=USR2@120",
        "module load cuda",
    ]:
        assert line in sbatch


def test_more_points_than_an_array_may_hold_go_into_several_arrays(tmp_path, profiles, monkeypatch):
    (profiles / "small.yaml").write_text("partition: gpu\nmax_array_size: 2\n")
    submitted = []

    class FakeJob:
        def __init__(self, job_id):
            self.job_id = job_id

    class FakeExecutor:
        def map_array(self, fn, cfgs, points):
            first = 100 * (len(submitted) + 1)
            submitted.append(list(points))
            return [FakeJob(f"{first}_{i}") for i in range(len(points))]

    monkeypatch.setattr(submit, "build_executor", lambda *args: FakeExecutor())
    cfg = toy_experiment.Config(results_dir=str(tmp_path))
    launch = submit.Launch(
        "toy", toy_experiment.Squares, cfg, None, [], None, pending=toy_experiment.Squares.sweep(cfg)
    )
    records = submit.submit_arrays(launch, "small", submit.load_profile("small"), {})
    assert [len(points) for points in submitted] == [2, 1] and [r.array_id for r in records] == ["100", "200"]
    assert sorted(p.name for p in (tmp_path / "slurm_logs" / "submissions").iterdir()) == [
        "100-toy.json",
        "200-toy.json",
    ]


def test_the_shipped_profiles_are_valid():
    example, localhost = submit.load_profile("example"), submit.load_profile("localhost")
    assert example.partition == "gpu" and example.gpus_per_node == 1 and example.gpu_limit >= 1
    assert localhost.partition == "local" and localhost.gpu_limit == 0


# --- a whole paper: python -m slurm.submit --paper ---


@pytest.mark.parametrize("paper", papers.PAPERS)
def test_every_paper_manifest_names_each_config_once_and_both_variants_exist(paper):
    experiments = papers.load_manifest(paper)
    shipped = {path.name for path in papers.config_dir(paper).glob("*.yaml")}
    configs = {experiment.config for experiment in experiments.values()}
    assert configs == shipped - {papers.MANIFEST_FILE} - {name for name in shipped if name.endswith("_smoke.yaml")}
    for experiment in experiments.values():
        module = submit.import_experiment(experiment.module)
        for variant in papers.VARIANTS:
            path = papers.config_path(paper, experiment, variant)
            try:
                load_config(module.Config, path, [])  # every key known, every value allowed
            except ConfigError as error:  # keys and values held; a data file some configs check is not here
                if "does not exist" not in str(error):
                    raise


def test_paper_dry_run_lists_every_experiment_with_its_resources(tmp_path, capsys):
    args = ["--paper", "sigmoid_attention", "--variant", "smoke", "--cluster", "localhost", "--dry-run"]
    assert submit.main([*args, f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    for name in ("fig1a", "fig1b", "fig2a", "fig2b"):
        assert f"experiment: sigmoid_attention.{name} " in out and f"configs/{name}_smoke.yaml" in out
    # Figure 2b draws fits of Figures 1a and 1b (8 points per fit, 3 fits): their jobs compute them, fig2b submits none.
    assert "48 in the sweep, 0 finished, 48 pending, 48 of them computed by an experiment above" in out
    assert "--job-name=sigmoid_attention.fig1b" in out and "--job-name=sigmoid_attention.fig2b" not in out
    # fig1a, fig1b, fig2a (120 min), the minimax family (60 min) and the demo (30 min), 2 CPUs each
    assert out.count("#SBATCH --cpus-per-task=2") == 5 and out.count("#SBATCH --time=120") == 3
    assert "--job-name=sigmoid_attention.minimax" in out and "--job-name=sigmoid_attention.demo" in out
    assert "#SBATCH --partition=local" in out and "--gpus-per-node" not in out
    assert not (tmp_path / "slurm_logs").exists()


def test_paper_dry_run_on_gpus_takes_the_manifests_gpu_resources(tmp_path, profiles, capsys):
    (profiles / "gpus.yaml").write_text("partition: a100\nmax_gpus_per_node: 8\n")
    args = ["--paper", "sigmoid_attention", "--experiments", "fig1a,minimax", "--variant", "smoke", "--gpu"]
    assert submit.main([*args, "--cluster", "gpus", "--dry-run", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.count("#SBATCH --gpus-per-node=1") == 2 and out.count("#SBATCH --cpus-per-task=4") == 2
    assert "#SBATCH --time=120" in out and "#SBATCH --time=60" in out  # each experiment's own limit
    assert submit.main(["sigmoid_attention.synthetic", "--gpu", "--dry-run", "--cluster", "gpus"]) == 2
    assert "--gpu go with --paper" in capsys.readouterr().err


def test_paper_dry_run_of_chosen_experiments(tmp_path, capsys):
    args = ["--paper", "quadratic_gating", "--experiments", "fig1_monomial,fig1_polynomial_local", "--dry-run"]
    assert submit.main([*args, "--cluster", "localhost", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "experiment: quadratic_gating.fig1_monomial " in out and "quadratic_gating.fig1_polynomial_local " in out
    assert "quadratic_gating.fig1_polynomial " not in out and out.count("experiment: ") == 2


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    """A paper 'sigmoid_attention' whose configs folder is a temporary one holding `experiments.yaml`."""
    folder = tmp_path / "configs"
    folder.mkdir()
    monkeypatch.setattr(papers, "config_dir", lambda paper: folder)
    (folder / "toy.yaml").write_text("values: [1, 2]\n")

    def write(text):
        (folder / papers.MANIFEST_FILE).write_text(text)

    return write


@pytest.mark.parametrize(
    "args, named",
    [
        (["--paper", "nosuch"], "unknown paper 'nosuch'; available: hyra, quadratic_gating, replora"),
        (["--paper", "hyra", "--experiments", "multihead,nosuch"], "no experiment 'nosuch'; available: multihead"),
        (["--paper", "hyra", "--cluster", "nosuch"], "unknown cluster 'nosuch'"),
        (["--paper", "hyra", "--variant", "big"], "--variant = 'big' is not allowed: one of paper, smoke"),
        (["--paper", "hyra", "fit.nosuch=1"], "experiment 'hyra.multihead': unknown config key 'fit.nosuch'"),
        (["--paper", "hyra", TOY], "drop MODULE and --config"),
        ([TOY, "--experiments", "a"], "--experiments, --variant and --gpu go with --paper"),
        ([], "name an experiment MODULE or a paper with --paper"),
    ],
)
def test_bad_paper_submissions_fail_before_submitting(args, named, tmp_path, capsys):
    assert submit.main([*args, "--dry-run"]) == 2
    assert named in capsys.readouterr().err


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


TOY_MANIFEST = (
    "experiments:\n  toy:\n    module: tests.toy_experiment\n    config: {config}\n    resources: {resources}\n"
)


@pytest.mark.parametrize(
    "config, resources, cluster, named",
    [
        ("missing.yaml", "{}", "debug", "missing.yaml of paper 'hyra' (paper variant) does not exist"),
        ("toy.yaml", "{gpus: 1}", "debug", "unknown config key 'experiments.toy.resources.gpus'"),
        ("toy.yaml", "{mem_gb: 0}", "debug", "config field 'mem_gb' = 0 is not allowed"),
        (
            "toy.yaml",
            "{gpus_per_node: 1}",
            "localhost",
            "asks for 1 GPU(s) per job; profile 'localhost' allows at most 0",
        ),
    ],
)
def test_bad_manifests_and_requests_fail_before_submitting(manifest, config, resources, cluster, named, capsys):
    manifest(TOY_MANIFEST.format(config=config, resources=resources))
    assert submit.main(["--paper", "hyra", "--cluster", cluster, "--dry-run"]) == 2
    assert named in capsys.readouterr().err


def test_more_gpus_than_this_machine_has_is_refused_locally(manifest, capsys):
    manifest(TOY_MANIFEST.format(config="toy.yaml", resources="{gpus_per_node: 64}"))
    assert submit.main(["--paper", "hyra", "--cluster", "local", "--dry-run"]) == 2
    assert "asks for 64 GPU(s) per job; this machine has" in capsys.readouterr().err


def test_an_unknown_partition_is_refused(tmp_path, profiles, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text("#!/bin/sh\nprintf 'cpu\\ngpu\\ncpu\\n'\n")
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(submit, "slurm_partitions", REAL_SLURM_PARTITIONS)  # asks the fake sinfo
    (profiles / "mycluster.yaml").write_text("partition: a100\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run", f"results_dir={tmp_path}"]) == 2
    assert "partition 'a100' of profile 'mycluster' does not exist on this cluster; its partitions: cpu, gpu" in (
        capsys.readouterr().err
    )
    (profiles / "mycluster.yaml").write_text("partition: gpu\ncpu_partition: cpu\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run", f"results_dir={tmp_path}"]) == 0


def test_cpu_jobs_go_to_the_cpu_partition(profiles):
    (profiles / "mycluster.yaml").write_text("partition: gpu\ncpu_partition: cpu\nmax_gpus_per_node: 8\n")
    profile = submit.load_profile("mycluster")
    assert profile.sbatch_parameters(papers.Resources(gpus_per_node=0), "x")["partition"] == "cpu"
    gpu_job = profile.sbatch_parameters(papers.Resources(gpus_per_node=4), "x")
    assert gpu_job["partition"] == "gpu" and gpu_job["gpus_per_node"] == 4


def test_profile_limit_below_its_default_is_refused(profiles, capsys):
    (profiles / "mycluster.yaml").write_text("partition: gpu\ngpus_per_node: 2\nmax_gpus_per_node: 1\n")
    assert submit.main([TOY, "--cluster", "mycluster", "--dry-run"]) == 2
    assert "'max_gpus_per_node' = 1 is not allowed" in capsys.readouterr().err


# --- python -m slurm.status, from records and submitit's files (no SLURM here: squeue off PATH) ---


def test_status_reports_done_failed_and_unsubmitted_points(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    results = tmp_path / "results"
    cfg = toy_experiment.Config(results_dir=str(results), values=[1.0, 2.0, 3.0])
    toy_experiment.Squares.run_point(cfg, toy_experiment.Point(1.0))
    log_dir = results / "slurm_logs"
    record = jobs.Submission(
        experiment=TOY,
        module=TOY,
        config_file=None,
        overrides=[f"results_dir={results}", "values=[1,2,3]"],
        cluster="mycluster",
        log_dir=str(log_dir),
        cwd=str(tmp_path),
        jobs={"7_0": repr(toy_experiment.Point(1.0)), "7_1": repr(toy_experiment.Point(2.0))},
    )
    record.write()
    paths = jobs.job_paths(log_dir, "7_1")
    paths.folder.mkdir(parents=True)
    paths.result_pickle.write_bytes(pickle.dumps(("error", "Traceback ...\nFileNotFoundError: input file x.txt")))
    paths.stderr.write_text("".join(f"line {i}\n" for i in range(30)))

    assert status.main(["--results-root", str(tmp_path), "--lines", "3"]) == 1
    out = capsys.readouterr().out
    assert "3 points: 1 done, 1 failed, 1 not submitted" in out
    assert "FAILED Point(value=2.0) (job 7_1): FileNotFoundError: input file x.txt" in out
    assert "| line 27\n      | line 28\n      | line 29" in out and "line 26" not in out


def test_status_lists_a_papers_unsubmitted_experiments(tmp_path, capsys):
    assert status.main(["--paper", "hyra", "--results-root", str(tmp_path)]) == 0
    assert "hyra.multihead: no submission recorded under" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, named", [(["--paper", "nosuch"], "unknown paper 'nosuch'"), (["--results-root", "/nonexistent"], "not a")]
)
def test_status_bad_input(args, named, capsys):
    assert status.main(args) == 2
    assert named in capsys.readouterr().err
