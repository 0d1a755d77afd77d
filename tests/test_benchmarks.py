"""The synthetic-grid benchmark counts each paper's distinct paper-grid points and reads their recorded times."""

import json

import pytest
import torch

from benchmarks import synthetic_grids
from common.config import ConfigError


def test_counts_distinct_points_and_reports_the_goal_unmet_while_points_are_missing(tmp_path):
    bench = synthetic_grids.BenchConfig(
        papers=["sigmoid_attention", "hyra"], results_root=str(tmp_path / "empty"), out_dir=str(tmp_path)
    )
    record = synthetic_grids.main(bench)
    # sigmoid attention: 160 panel points per fit, 120 distinct (fig2b repeats fig1's dense sigmoid curves), for the
    # estimator and both readings of the paper protocol; the minimax family: 2 curves x 5 splits x 7 sizes
    fits = record["papers"]["sigmoid_attention"]["fits"]
    assert fits["least_squares"] == {"points": 120, "done": 0, "recorded_fit_seconds": 0}
    assert fits["paper_full_batch"]["points"] == fits["paper_minibatch"]["points"] == 120
    assert record["papers"]["sigmoid_attention"]["minimax"]["points"] == 70
    assert record["papers"]["hyra"]["fits"]["least_squares"]["points"] == 2 * 10  # two curves, one N, ten sizes
    assert "minimax" not in record["papers"]["hyra"]
    assert record["goal_met"] is False
    assert json.loads((tmp_path / "synthetic_grids.json").read_text())["least_squares_total_seconds"] == 0


def test_unknown_paper_fails_before_any_work():
    with pytest.raises(ConfigError, match="'papers' = \\['bert'\\] is not allowed"):
        synthetic_grids.BenchConfig(papers=["bert"]).validate()


def test_adapter_benchmark_times_every_method_on_a_llama_shaped_model(tmp_path):
    from benchmarks import adapters

    bench = adapters.BenchConfig(backbones=["llama"], batch=2, steps=1, repeats=1, size="tiny", memory=False,
                                 out_dir=str(tmp_path))  # fmt: skip
    adapters.main(bench)
    written = json.loads((tmp_path / "adapters.json").read_text())["results"]["llama"]
    assert set(written["step_ratio_to_lora"]) == set(adapters.METHODS) and written["step_ratio_to_lora"]["lora"] == 1.0
    assert all(seconds > 0 for seconds in written["step_seconds"].values())


def test_adapter_cost_counts_flops_at_the_papers_shape_and_feeds_hyra_table_6(tmp_path):
    from benchmarks import adapter_cost
    from common.config import ConfigError
    from hyra import tables

    cost = adapter_cost.CostConfig(steps=1, repeats=1, tiny=True, memory=False, out_dir=str(tmp_path))
    record = adapter_cost.main(cost)
    for name in ("vit", "llama"):
        row = record["results"][name]
        assert row["flops_ratio_to_lora"]["lora"] == 1.0 and row["step_ratio_to_lora"]["lora"] == 1.0
        assert row["gflops"]["full"] > row["gflops"]["lora"]  # weight gradients of every layer
        assert row["gflops"]["hyra"] >= row["gflops"]["lora"] and row["gflops"]["dora"] >= row["gflops"]["lora"]
    # HyRA's hypernetwork products by hand (tiny LLaMA: 2 layers, 4 heads of 16, r = 32, d_e = 64, d_hid = 40): per
    # layer LN(B_i) W_{B,1}^T (4 x 64 x 40) and per target hidden W_{t,B,2}^T (4 x 40 x 16 r), 2 FLOPs per
    # multiply-add, forward plus two backward products each; the x A^T B^T products are LoRA's
    hypernetwork = 2 * 3 * 2 * (4 * 64 * 40 + 2 * 4 * 40 * 16 * 32)
    assert (
        adapter_cost.step_flops("llama", "hyra", True) - adapter_cost.step_flops("llama", "lora", True) == hypernetwork
    )
    table = tables.cost_table(tables.PAPER / "table06_cost_flops_runtime.csv", record)
    hyra_7b = table[(table["model"] == "LLaMA-7B") & (table["method"] == "HyRA")].iloc[0]
    assert hyra_7b["paper GFLOPs / LoRA"] == 41.32 / 6.63
    assert hyra_7b["ours FLOPs / LoRA"] == record["results"]["llama"]["flops_ratio_to_lora"]["hyra"]
    with pytest.raises(ConfigError, match="'methods'"):
        adapter_cost.CostConfig(methods=["hyra"]).validate()


def test_moe_and_attention_benchmark_reports_ratios_to_the_baselines(tmp_path):
    from benchmarks import moe_attention

    record = moe_attention.main(moe_attention.BenchConfig(tokens=64, sequence=16, steps=1, repeats=1, size="tiny",
                                                          out_dir=str(tmp_path)))  # fmt: skip
    assert record["results"]["moe"]["time_ratio_to_linear"]["linear"] == 1.0
    assert set(record["results"]["attention"]["tokens_per_second"]) == {"identity", "gelu"}
    assert (tmp_path / "moe_attention.json").is_file()


def test_a_childs_peak_memory_is_its_own_not_its_parents():
    import subprocess
    import sys

    held = bytearray(600 * 2**20)  # the parent's peak is now above 600 MiB
    code = "from benchmarks.memory import peak_resident_bytes; print(peak_resident_bytes())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 300 * 2**20 and len(held)


def test_fitter_benchmark_compares_solvers_on_the_same_samples_and_counts_their_matrices(tmp_path):
    from benchmarks import synthetic_fitter

    bench = synthetic_fitter.BenchConfig(papers=["softmax_moe_rates"], replicates=2, gpu="false", out_dir=str(tmp_path))
    record = synthetic_fitter.main(bench)
    rows = json.loads((tmp_path / "synthetic_fitter.json").read_text())["rows"]
    assert [(r["config"], r["num_atoms"]) for r in rows] == [("softmax", 4), ("hierarchical", 3)]
    for row in rows:
        for solver in ("marquardt", "geodesic"):
            assert row[solver]["seconds"] > 0 and 1 <= row[solver]["mean_matrices"] and row[solver]["mean_steps"] > 0
        assert 0 <= row["default_lower"] <= 2 and "cuda" not in row
    assert rows[0]["loop_seconds"] > 0 and "loop_seconds" not in rows[1]  # the loop runs on the first point only
    assert record["total_matrices"]["marquardt"] == sum(r["marquardt"]["mean_matrices"] for r in rows)


def test_fitter_benchmark_refuses_bad_input_before_any_work():
    from benchmarks import synthetic_fitter

    with pytest.raises(ConfigError, match="'solvers' = \\['newton'\\] is not allowed"):
        synthetic_fitter.BenchConfig(solvers=["newton"]).validate()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'gpu' = 'true' is not allowed.*no CUDA device"):
            synthetic_fitter.BenchConfig(gpu="true").validate()
