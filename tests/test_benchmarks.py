"""The synthetic-grid benchmark counts each paper's distinct paper-grid points and reads their recorded times."""

import json

import pytest

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


def test_moe_and_attention_benchmark_reports_ratios_to_the_baselines(tmp_path):
    from benchmarks import moe_attention

    record = moe_attention.main(moe_attention.BenchConfig(tokens=64, sequence=16, steps=1, repeats=1, size="tiny",
                                                          out_dir=str(tmp_path)))  # fmt: skip
    assert record["results"]["moe"]["time_ratio_to_linear"]["linear"] == 1.0
    assert set(record["results"]["attention"]["tokens_per_second"]) == {"identity", "gelu"}
    assert (tmp_path / "moe_attention.json").is_file()
