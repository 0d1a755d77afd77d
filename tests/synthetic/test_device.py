"""The synthetic engine's device: a run setting that never changes a record's hash, checked before any work, and
(on a GPU machine) records equal to the CPU's to a stated tolerance."""

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from common.runs import read_run
from common.synthetic.sweep import point_dir, point_record, run_point, sweep
from sigmoid_attention import synthetic

SMOKE = "sigmoid_attention/configs/fig1a_smoke.yaml"
# Where two devices both converge, their fits are the same estimator up to the stopping rule: metrics computed from
# them agree to this relative tolerance (float64 on both; only reduction orders differ).
RECORD_RTOL = 1e-6


def smoke(results_dir, *overrides):
    return load_config(synthetic.Config, SMOKE, [f"results_dir={results_dir}", *overrides])


def test_device_is_a_run_setting_outside_the_record(tmp_path):
    cpu, auto = smoke(tmp_path, "device=cpu"), smoke(tmp_path)
    point = sweep(cpu)[0]
    assert "device" not in point_record(cpu, point)
    assert point_dir(cpu, point) == point_dir(auto, point)


def test_a_device_that_is_not_there_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="'device' = 'tpu' is not allowed.*auto, cpu or cuda"):
        smoke(tmp_path, "device=tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'device' = 'cuda' is not allowed.*no CUDA device"):
            smoke(tmp_path, "device=cuda")
    assert not (tmp_path / "points").exists()


def test_the_record_says_where_it_was_fitted(tmp_path):
    cfg = smoke(tmp_path, "device=cpu", "sample_sizes=[300,600]", "replicates=2", "num_atoms=[4]")
    path = run_point(cfg, sweep(cfg)[0])
    assert read_run(path)["results"]["device"] == "cpu"


@pytest.mark.gpu
def test_a_smoke_grid_on_the_gpu_equals_the_cpu_records(tmp_path):
    cpu = smoke(tmp_path / "cpu", "device=cpu", "other_fits=[]")
    gpu = smoke(tmp_path / "gpu", "device=cuda", "other_fits=[]")
    for point in sweep(cpu):
        a = read_run(run_point(cpu, point))
        b = read_run(run_point(gpu, point))
        assert b["results"]["device"].startswith("cuda")
        both = a["arrays"]["converged"] & b["arrays"]["converged"]
        assert both.sum() >= 0.75 * len(both), (point, a["arrays"]["converged"], b["arrays"]["converged"])
        curve = cpu.curves[point.curve]
        for name in ("train_loss", "regression_error", curve.loss):
            np.testing.assert_allclose(b["arrays"][name][both], a["arrays"][name][both], rtol=RECORD_RTOL)
