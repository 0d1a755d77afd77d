"""The launcher against a real SLURM: the one-node cluster of slurm/local_cluster.sh (CI starts it).

    slurm/local_cluster.sh start && eval "$(slurm/local_cluster.sh env)" && pytest -m slurm tests/test_slurm_cluster.py

Each test submits real job arrays through `python -m slurm.submit` and checks what the run directories hold
afterwards: a smoke sweep equal to a local run, a requeued and a timed-out training job that lose and
duplicate nothing, and a failing array element that is reported while the others finish.
"""

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import runs
from common.config import load_config
from common.synthetic import figures
from sigmoid_attention import synthetic
from slurm import jobs, status, submit
from tests import toy_experiment, toy_training

pytestmark = pytest.mark.slurm

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINING = "tests.toy_training"


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    """Jobs unpickle tests.* modules in a fresh interpreter: the repository root must be on their path."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.chdir(REPO_ROOT)


def _point_dirs(results_dir):
    return sorted(path.name for path in Path(results_dir, "points").iterdir())


def _steps(path):
    records = [json.loads(line) for line in (path / runs.LOG_FILE).read_text().splitlines()]
    return [r["step"] for r in records if "loss" in r], [r for r in records if r.get("event") == "start"]


def _assert_training_like_reference(cfg, point, reference_root):
    """The run of `point` is finished, logged every step once, and equals an uninterrupted run bit for bit."""
    path = toy_training.Training.point_dir(cfg, point)
    reference = toy_training.Training.run_point(
        toy_training.Config(**{**cfg.__dict__, "results_dir": str(reference_root)}), point
    )
    steps, starts = _steps(path)
    assert steps == list(range(1, cfg.steps + 1))
    run, ref = runs.read_run(path), runs.read_run(reference)
    assert {k: v for k, v in run["results"].items() if k != "seconds"} == {
        k: v for k, v in ref["results"].items() if k != "seconds"
    }
    for name in ref["arrays"]:
        np.testing.assert_array_equal(run["arrays"][name], ref["arrays"][name])
    assert not (path / runs.CHECKPOINT_FILE).exists()
    return starts


def _restarts(job_id):
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return int(shown.split("Restarts=")[1].split()[0])


def test_a_papers_smoke_sweep_as_a_job_array_equals_a_local_run(tmp_path, capsys):
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    args = ["--paper", "sigmoid_attention", "--experiments", "fig1a", "--variant", "smoke", "--cluster", "localhost"]
    only_estimator = "other_fits=[]"  # the least-squares fits only: 16 jobs
    assert submit.main([*args, "--wait", f"results_dir={on_slurm}", only_estimator]) == 0
    assert "submitted 16 jobs as array" in capsys.readouterr().out

    synthetic.Synthetic.main(
        load_config(
            synthetic.Config, "sigmoid_attention/configs/fig1a_smoke.yaml", [f"results_dir={local}", only_estimator]
        )
    )
    assert _point_dirs(on_slurm) == _point_dirs(local) and len(_point_dirs(local)) == 16
    for name in _point_dirs(local):
        a, b = runs.read_run(on_slurm / "points" / name), runs.read_run(local / "points" / name)
        assert a["environment"]["slurm_job_id"] is not None and b["environment"]["slurm_job_id"] is None
        assert a["arrays"].keys() == b["arrays"].keys()
        for key in a["arrays"]:
            np.testing.assert_array_equal(a["arrays"][key], b["arrays"][key])

    assert status.main(["--paper", "sigmoid_attention", "--results-root", str(on_slurm)]) == 0
    assert "16 points: 16 done" in capsys.readouterr().out
    original = figures.panel_config
    figures.panel_config = lambda paper, panel, variant, results_dir=None: load_config(
        synthetic.Config, "sigmoid_attention/configs/fig1a_smoke.yaml", [f"results_dir={results_dir}", only_estimator]
    )
    try:
        for results_dir in (on_slurm, local):
            figures.main(
                figures.FiguresConfig(
                    paper="sigmoid_attention",
                    variant="smoke",
                    panels=["fig1a"],
                    results_dir=str(results_dir),
                    minimax=False,
                )
            )
    finally:
        figures.panel_config = original
    slopes = [pd.read_csv(root / "figures" / "smoke" / "slopes.csv") for root in (on_slurm, local)]
    pd.testing.assert_frame_equal(*slopes)


def test_a_requeued_training_job_resumes_and_every_result_is_there_once(tmp_path):
    overrides = [f"results_dir={tmp_path / 'runs'}", "seeds=[0,1]", "steps=60", "step_seconds=0.2"]
    assert submit.main([TRAINING, "--cluster", "localhost", *overrides]) == 0
    (record,) = jobs.read_submissions(tmp_path)
    job_of = {point: job_id for job_id, point in record.jobs.items()}
    cfg = load_config(toy_training.Config, None, overrides)
    requeued = job_of[repr(toy_training.Point(0))]
    path = toy_training.Training.point_dir(cfg, toy_training.Point(0))

    deadline = time.time() + 180
    while not (path / runs.LOG_FILE).is_file() or len(_steps(path)[0]) < 22:
        assert time.time() < deadline, "the job did not get going"
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", requeued], check=True)
    submit.wait_for_slurm(list(record.jobs))

    assert all(toy_training.Training.is_done(cfg, point) for point in toy_training.Training.sweep(cfg))
    starts = _assert_training_like_reference(cfg, toy_training.Point(0), tmp_path / "reference")
    # SLURM sent SIGTERM when it requeued the job: the run saved the step it had reached and resumed from it.
    assert [start["step"] for start in starts] == [0, starts[1]["step"]] and starts[1]["step"] >= 22
    assert starts[0]["slurm_job_id"] == starts[1]["slurm_job_id"] and _restarts(requeued) == 1
    log = jobs.job_paths(record.log_dir, requeued).stderr.read_text()
    assert "DUE TO JOB REQUEUE" in log and "received SIGTERM: checkpointing after the current step" in log
    assert len(_assert_training_like_reference(cfg, toy_training.Point(1), tmp_path / "reference")) == 1


def test_the_stop_signal_checkpoints_and_submitit_requeues_the_job_which_resumes(tmp_path):
    # SLURM sends USR2 (submitit's stop signal) `signal_delay_s` before a job's time limit, or on preemption. Here the
    # test sends it itself (scancel --signal=USR2) once the job is under way: with SLURM's own timer and one-minute
    # limits, this local SLURM signalled requeued jobs again within seconds of their restart, often before Python had
    # installed any handler, which made a timer-driven test fail at random. No periodic checkpoint (every 1000
    # steps), so a resume past step 0 can only come from the checkpoint written on the signal.
    overrides = [f"results_dir={tmp_path / 'runs'}", "steps=60", "step_seconds=0.3", "checkpoint_every=1000"]
    assert submit.main([TRAINING, "--cluster", "localhost", *overrides]) == 0
    (record,) = jobs.read_submissions(tmp_path)
    (job_id,) = record.jobs
    cfg = load_config(toy_training.Config, None, overrides)
    path = toy_training.Training.point_dir(cfg, toy_training.Point(0))
    deadline = time.time() + 180
    while not (path / runs.LOG_FILE).is_file() or len(_steps(path)[0]) < 15:
        assert time.time() < deadline, "the job did not get going"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    submit.wait_for_slurm([job_id])

    starts = _assert_training_like_reference(cfg, toy_training.Point(0), tmp_path / "reference")
    assert [start["step"] for start in starts] == [0, starts[1]["step"]] and starts[1]["step"] >= 15
    assert _restarts(job_id) == 1
    log = jobs.job_paths(record.log_dir, job_id).stderr.read_text()
    assert "received SIGUSR2: checkpointing after the current step" in log and "Caught signal SIGUSR2" in log


def test_a_failing_array_element_is_reported_and_the_others_finish(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for value in (1.0, 3.0):
        (inputs / f"{value}.txt").write_text("0.5")
    overrides = [f"results_dir={tmp_path / 'runs'}", "values=[1,2,3]", f"inputs_dir={inputs}"]
    assert submit.main([toy_experiment.__name__, "--cluster", "localhost", "--wait", *overrides]) == 1
    err = capsys.readouterr().err
    assert "FAILED Point(value=2.0)" in err and f"input file {inputs / '2.0.txt'} of point" in err

    cfg = load_config(toy_experiment.Config, None, overrides)
    done = {point.value: toy_experiment.Squares.is_done(cfg, point) for point in toy_experiment.Squares.sweep(cfg)}
    assert done == {1.0: True, 2.0: False, 3.0: True}
    assert runs.read_run(toy_experiment.Squares.point_dir(cfg, toy_experiment.Point(3.0)))["results"]["square"] == 9.5

    assert status.main(["--results-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "3 points: 2 done, 1 failed" in out
    assert "FAILED Point(value=2.0)" in out and "FileNotFoundError: input file" in out
    assert "| FileNotFoundError" in out  # the tail of the job's log


def test_a_two_task_job_trains_as_two_data_parallel_processes_equal_to_one(tmp_path):
    """One SLURM job of two tasks: torch.distributed's rendezvous from the job's environment, gloo on the CPU."""
    from tests.quadratic_gating.test_pretrain import write_inputs
    from tests.training.test_distributed import PRETRAIN

    shards, _ = write_inputs(tmp_path)
    args = ["quadratic_gating.pretrain", *PRETRAIN, f"shards_dir={shards}", "tracker=none", "threads=1"]
    assert submit.main([*args, f"results_dir={tmp_path / 'slurm'}", "--cluster", "localhost", "--processes", "2",
                        "--wait"]) == 0  # fmt: skip
    (record,) = jobs.read_submissions(tmp_path / "slurm")
    assert len(record.jobs) == 1  # one job of two tasks
    assert submit.main([*args, f"results_dir={tmp_path / 'here'}", "--cluster", "debug"]) == 0
    (two,) = (tmp_path / "slurm" / "pretrain").iterdir()
    (one,) = (tmp_path / "here" / "pretrain").iterdir()
    two, one = runs.read_run(two), runs.read_run(one)
    assert two["results"]["processes"] == 2 and two["environment"]["slurm_job_id"] is not None
    np.testing.assert_allclose(two["arrays"]["losses"], one["arrays"]["losses"], rtol=1e-6)
    assert two["results"]["val_loss"] == pytest.approx(one["results"]["val_loss"], rel=1e-6)
