"""The synthetic engine's run settings: the device (never part of a record's hash, checked before any work, and on a
GPU machine giving records equal to the CPU's to a stated tolerance) and the points fitted as one program."""

import numpy as np
import pytest
import torch

from common.config import ConfigError, load_config
from common.runs import read_run
from common.synthetic.sweep import batches, point_dir, point_record, run_point, sweep
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


def test_points_fitted_as_one_program_equal_their_own_fits(tmp_path):
    """A minimax family's truths share their fitted family: stacked into one program (as on a GPU), each point's
    record equals the one it gets alone, and only points of one family and one sample size are stacked."""
    from sigmoid_attention import minimax

    path = "sigmoid_attention/configs/minimax_smoke.yaml"
    overrides = ["sample_sizes=[300,600]", "replicates=2", "device=cpu"]
    alone = load_config(minimax.Config, path, [f"results_dir={tmp_path}/alone", "batch_points=1", *overrides])
    stacked = load_config(minimax.Config, path, [f"results_dir={tmp_path}/stacked", "batch_points=8", *overrides])
    family = stacked.expanded()
    groups = batches(family, sweep(family))
    # two curves (linear, ReLU experts: different fitted families) x two sizes, three splits each
    assert sorted(len(g) for g in groups) == [3, 3, 3, 3]
    assert all(len({(p.curve // 3, p.n) for p in g}) == 1 for g in groups)
    minimax.Minimax.main(alone)
    minimax.Minimax.main(stacked)
    for point in minimax.Minimax.sweep(alone):
        a = read_run(minimax.Minimax.point_dir(alone, point))
        b = read_run(minimax.Minimax.point_dir(stacked, point))
        assert b["results"]["points_in_program"] == 3 and a["results"]["points_in_program"] == 1
        for name, value in a["arrays"].items():
            np.testing.assert_allclose(b["arrays"][name], value, rtol=1e-9, atol=1e-12, err_msg=name)


def test_fit_problems_refuses_problems_of_two_families(tmp_path):
    from common.synthetic.experiment import fit_problems
    from common.synthetic.fitting import FitConfig
    from common.synthetic.sweep import fit_problem

    cfg = smoke(tmp_path)
    problems = [fit_problem(cfg, curve, 4) for curve in cfg.curves]  # softmax and sigmoid gates
    with pytest.raises(ValueError, match="must share their fitted family"):
        fit_problems(problems, 300, 0, range(2), FitConfig())
