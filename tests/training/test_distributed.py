"""Data-parallel training on the CPU (gloo): K = 2 processes started by torchrun train like one process with the same
global batch, a killed K = 2 run resumes to the uninterrupted numbers, and bad process counts are refused."""

import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import runs
from common.config import ConfigError, load_config
from common.training import distributed
from common.training.monitor import TENSORBOARD_DIR
from quadratic_gating import pretrain, timeseries
from tests.fixtures import TINY_VIT, write_vtab
from tests.quadratic_gating.test_pretrain import write_inputs

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
# micro-batches of 2 on every process: the same micro-batches (and MoE load-balancing terms) for K = 1 and K = 2
PRETRAIN = ["tokenizer=bytes", "block_size=32", "layers=1", "dim=16", "heads=2", "dense_ffn=32", "expert_ffn=16",
            "experts=4", "rank=4", "steps=8", "val_windows=8", "eval_batch_size=4", "checkpoint_every=3",
            "optimization.batch_size=8", "optimization.micro_batch_size=2", "optimization.warmup_steps=2",
            "optimization.learning_rate=0.01", "min_lr=0.001", "seeds=[0]", "variants=[moe_quadratic]",
            "device=cpu", "progress=false"]  # fmt: skip
VISION = ["benchmark=vtab", "tasks=[cifar]", "methods=[replora]", "pretrained=false",
          f"model_kwargs={TINY_VIT}".replace("'", ""), "image_size=32", "optimization.epochs=2",
          "optimization.batch_size=4", "optimization.warmup_steps=1", "validation_split=none", "device=cpu",
          "progress=false", "tracker=none"]  # fmt: skip


def launch(module, args, processes, env=None):
    """``python -m module`` in one process, or under torchrun in ``processes``; the completed process."""
    command = [sys.executable, "-m", module] if processes == 1 else [
        TORCHRUN, "--standalone", f"--nproc_per_node={processes}", "-m", module]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)


def run_of(results_dir, name):
    (path,) = glob.glob(str(results_dir / name / "*"))
    return runs.read_run(path), Path(path)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    shards_dir, _ = write_inputs(tmp_path_factory.mktemp("pretrain"))
    return [f"shards_dir={shards_dir}"]


def test_two_processes_pretrain_like_one_with_the_same_global_batch(tmp_path, shards):
    for k in (1, 2):
        done = launch("quadratic_gating.pretrain", [*PRETRAIN, *shards, f"results_dir={tmp_path / f'k{k}'}"], k)
        assert done.returncode == 0, done.stderr[-3000:]
    one, one_dir = run_of(tmp_path / "k1", "pretrain")
    two, two_dir = run_of(tmp_path / "k2", "pretrain")
    assert one_dir.name == two_dir.name  # the same point: the process count is not part of the record
    np.testing.assert_allclose(two["arrays"]["losses"], one["arrays"]["losses"], rtol=1e-6)
    assert two["results"]["val_loss"] == pytest.approx(one["results"]["val_loss"], rel=1e-6)
    assert two["results"]["processes"] == 2 and "processes" not in one["results"]
    # rank 0 alone writes: one log line per logged step, one TensorBoard event file
    logged = [line for line in (two_dir / runs.LOG_FILE).read_text().splitlines() if '"step"' in line]
    assert len(logged) == len((one_dir / runs.LOG_FILE).read_text().splitlines())
    assert len(list((two_dir / TENSORBOARD_DIR).glob("events.*"))) == 1


def test_two_processes_fine_tune_a_vit_like_one(tmp_path):
    root = write_vtab(tmp_path / "vtab", tasks=("cifar",))  # 12 training images: 3 steps of 4 per epoch
    for k in (1, 2):
        args = [*VISION, f"data_root={root}", f"results_dir={tmp_path / f'k{k}'}"]
        done = launch("replora.vision", args, k)
        assert done.returncode == 0, done.stderr[-3000:]
    one, _ = run_of(tmp_path / "k1", "vision")
    two, _ = run_of(tmp_path / "k2", "vision")
    np.testing.assert_allclose(two["arrays"]["losses"], one["arrays"]["losses"], rtol=1e-5)
    np.testing.assert_array_equal(two["arrays"]["predictions"], one["arrays"]["predictions"])


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_numbers(tmp_path, shards):
    args = [*PRETRAIN, *shards, "tracker=none"]
    done = launch("quadratic_gating.pretrain", [*args, f"results_dir={tmp_path / 'whole'}"], 2)
    assert done.returncode == 0, done.stderr[-3000:]
    crashed = launch("tests.ddp_crash", ["quadratic_gating.pretrain", *args, f"results_dir={tmp_path / 'b'}"], 2,
                     env={"MOE_LENS_TEST_CRASH_AT": "5"})  # fmt: skip
    assert crashed.returncode != 0
    (run_dir,) = glob.glob(str(tmp_path / "b" / "pretrain" / "*"))
    assert not runs.is_done(run_dir) and (Path(run_dir) / runs.CHECKPOINT_FILE).is_file()  # step 3's
    resumed = launch("quadratic_gating.pretrain", [*args, f"results_dir={tmp_path / 'b'}"], 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole, _ = run_of(tmp_path / "whole", "pretrain")
    again, again_dir = run_of(tmp_path / "b", "pretrain")
    np.testing.assert_array_equal(again["arrays"]["losses"], whole["arrays"]["losses"])
    assert again["results"]["val_loss"] == whole["results"]["val_loss"]
    logged = [line.split(",")[0] for line in (again_dir / runs.LOG_FILE).read_text().splitlines()]
    assert len(logged) == len(set(logged))  # steps 4 and 5, redone, are logged once


def test_process_counts_that_cannot_share_the_batch_are_refused_before_training(tmp_path, shards, monkeypatch):
    cfg = load_config(pretrain.Config, None, [*PRETRAIN, *shards, f"results_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"'optimization.batch_size' = 8 is not allowed: a multiple of the 3"):
        pretrain.Pretrain.check_processes(cfg, 3)
    with pytest.raises(ConfigError, match=r"'optimization.micro_batch_size' = 2 .* per-process batch 1"):
        pretrain.Pretrain.check_processes(cfg, 8)
    with pytest.raises(ConfigError, match="fewer than the 4 processes"):
        distributed.check_batches(num_examples=10, batch_size=8, micro_batch_size=0, ranks=4)
    with pytest.raises(ConfigError, match="quadratic_gating.timeseries runs in one process, not 2"):
        timeseries.TimeSeries.check_processes(None, 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    with pytest.raises(ConfigError, match="4 processes per machine need as many GPUs, but 2 are visible"):
        distributed.check_devices(distributed.torch.device("cuda"), 4)
    # under torchrun: the launch fails with the message, and nothing is written
    done = launch("quadratic_gating.pretrain", [*PRETRAIN, *shards, f"results_dir={tmp_path / 'r'}"], 3)
    assert done.returncode != 0 and "a multiple of the 3 processes" in done.stderr
    assert not (tmp_path / "r").exists()


def test_each_process_takes_its_contiguous_part_of_every_step():
    batch = list(range(7))
    parts = [distributed.shard(batch, 3, r) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]] and sum(parts, []) == batch


def test_the_launcher_runs_one_job_of_two_processes_equal_to_one_process(tmp_path, shards, monkeypatch, capsys):
    from slurm import submit

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = ["quadratic_gating.pretrain", *PRETRAIN, *shards, "tracker=none", "--cluster", "local"]
    assert submit.main([*args, f"results_dir={tmp_path / 'one'}"]) == 0
    assert submit.main([*args, f"results_dir={tmp_path / 'two'}", "--processes", "2"]) == 0, capsys.readouterr()
    one, _ = run_of(tmp_path / "one", "pretrain")
    two, _ = run_of(tmp_path / "two", "pretrain")
    assert two["results"]["processes"] == 2
    np.testing.assert_allclose(two["arrays"]["losses"], one["arrays"]["losses"], rtol=1e-6)
    assert two["results"]["val_loss"] == pytest.approx(one["results"]["val_loss"], rel=1e-6)


def test_a_job_of_k_processes_asks_slurm_for_k_tasks_and_k_gpus(tmp_path, shards, monkeypatch, capsys):
    from slurm import submit

    profiles = tmp_path / "clusters"
    profiles.mkdir()
    (profiles / "gpus.yaml").write_text("partition: gpu\ngpus_per_node: 1\nmax_gpus_per_node: 4\n")
    monkeypatch.setattr(submit, "PROFILES_DIR", profiles)
    monkeypatch.setattr(submit, "slurm_partitions", lambda: None)
    args = ["quadratic_gating.pretrain", *PRETRAIN, *shards, f"results_dir={tmp_path / 'r'}", "--cluster", "gpus"]
    assert submit.main([*args, "--processes", "4", "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --ntasks-per-node=4" in script and "#SBATCH --gpus-per-node=4" in script
    assert submit.main([*args, "--processes", "8", "--dry-run"]) == 2  # more GPUs than the profile allows
    assert "asks for 8 GPU(s) per job; profile 'gpus' allows at most 4" in capsys.readouterr().err
    assert submit.main([*args, "--processes", "3", "--dry-run"]) == 2
    assert "'optimization.batch_size' = 8 is not allowed: a multiple of the 3 processes" in capsys.readouterr().err
    assert submit.main(["quadratic_gating.timeseries", "csv_path=x.csv", "--cluster", "gpus", "--processes", "2"]) == 2
    assert "runs in one process, not 2" in capsys.readouterr().err


@pytest.mark.gpu
def test_two_gpus_pretrain_like_one_gpu_with_nccl(tmp_path, shards):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    args = [*PRETRAIN, *shards, "device=cuda", "dtype=float32", "tracker=none"]
    for k in (1, 2):
        done = launch("quadratic_gating.pretrain", [*args, f"results_dir={tmp_path / f'k{k}'}"], k)
        assert done.returncode == 0, done.stderr[-3000:]
    one, _ = run_of(tmp_path / "k1", "pretrain")
    two, _ = run_of(tmp_path / "k2", "pretrain")
    assert two["environment"]["device"].startswith("cuda") and two["results"]["processes"] == 2
    np.testing.assert_allclose(two["arrays"]["losses"], one["arrays"]["losses"], rtol=1e-4)


def _stop_on_one_rank(rank, init_file, run_dir):
    """Rank 1 receives the stop signal before step 3 ends; submitit's handler exits on rank 0 and returns on
    rank 1, as in a SLURM job of two tasks."""
    import torch.distributed as dist

    from common.training.checkpoint import Checkpointer, preemption_signal

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2"})
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)

    def submitit_handler(signum, frame):
        if rank == 0:
            raise SystemExit(3)  # requeues the job and exits

    with Checkpointer(run_dir, every_steps=100) as checkpointer:
        checkpointer._previous_handlers[preemption_signal()] = submitit_handler
        for step in range(1, 6):
            (Path(run_dir) / f"rank{rank}_step{step}").touch()
            if rank == 1 and step == 3:
                checkpointer.stop_signal = preemption_signal()
            checkpointer.step_done(step, lambda step=step: {"step": step, "rank": rank})


def test_a_stop_signal_on_one_process_stops_all_after_the_same_step_with_one_checkpoint(tmp_path):
    import multiprocessing

    import torch

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_stop_on_one_rank, args=(r, tmp_path / "init", tmp_path)) for r in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [3, 0]
    state = torch.load(tmp_path / runs.CHECKPOINT_FILE, weights_only=False)
    assert state["step"] == 3 and state["rank"] == 0  # rank 0 wrote it, after step 3
    assert sorted(p.name for p in tmp_path.glob("rank*")) == [f"rank{r}_step{s}" for r in (0, 1) for s in (1, 2, 3)]
