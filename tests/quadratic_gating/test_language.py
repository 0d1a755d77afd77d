"""The character-level dense vs MoE language-model entry point on a short text."""

import pytest

from common import runs
from common.config import ConfigError, load_config
from quadratic_gating import language

TINY = ["block_size=16", "layers=1", "dim=16", "heads=2", "dense_ffn=32", "experts=4", "rank=4", "steps=20",
        "eval_windows=8", "optimization.batch_size=8", "optimization.warmup_steps=2", "optimization.learning_rate=0.01",
        "seeds=[0]"]  # fmt: skip


def config(tmp_path, *overrides):
    text = tmp_path / "input.txt"
    text.write_text("to be or not to be, that is the question. " * 30)
    return load_config(language.Config, None, [f"results_dir={tmp_path / 'r'}", f"text_path={text}", *TINY, *overrides])


def test_dense_and_both_moe_routers_train_with_matched_active_parameters(tmp_path):
    cfg = config(tmp_path)
    language.Language.main(cfg)
    results = {
        p.variant: runs.read_run(language.Language.point_dir(cfg, p))["results"] for p in language.Language.sweep(cfg)
    }
    assert set(results) == {"dense", "moe_linear", "moe_quadratic"}
    for r in results.values():
        assert 0 < r["val_loss"] < 3.5  # below log(vocabulary) = log(14) = 2.64 plus slack: it learned something
    dense, linear = results["dense"], results["moe_linear"]
    # the linear router and one more expert output bias (two experts' b2 against one dense bias)
    assert linear["active_params"] - dense["active_params"] == 16 * 4 + 16
    assert results["moe_quadratic"]["active_params"] > linear["active_params"]
    assert linear["total_params"] > linear["active_params"]


def test_bad_input_names_the_field_or_file(tmp_path):
    with pytest.raises(ConfigError, match="variants"):
        config(tmp_path, "variants=[moe_cosine]")
    with pytest.raises(ConfigError, match="block_size"):
        language.Language.main(config(tmp_path, "block_size=500"))  # longer than the validation text
    with pytest.raises(ConfigError, match="missing.txt"):
        language.Language.main(config(tmp_path, f"text_path={tmp_path / 'missing.txt'}"))


def test_tables_put_our_runs_beside_the_paper(tmp_path):
    from quadratic_gating import tables, timeseries
    from tests.quadratic_gating.test_timeseries import TINY as SERIES
    from tests.quadratic_gating.test_timeseries import write_csv

    cfg = config(tmp_path, "seeds=[0,1]")
    language.Language.main(cfg)
    csv = write_csv(tmp_path / "ETTh1.csv", rows=14400 + 10)
    series = load_config(timeseries.Config, None, [f"results_dir={cfg.results_dir}", f"csv_path={csv}",
                                                   "dataset=ETTh1", "activations=[identity,tanh]", "seeds=[0]",
                                                   *SERIES, "epochs=1"])  # fmt: skip
    timeseries.TimeSeries.main(series)
    out = tmp_path / "tables"
    tables.main(tables.TablesConfig(results_dir=cfg.results_dir, out_dir=str(out)))
    lm = (out / "table03_language.md").read_text()
    assert "moe_quadratic" in lm and "2.9712" in lm and "±" in lm  # the paper's quadratic-router loss, two seeds
    ts = (out / "table02_timeseries.csv").read_text()
    assert "ETTh1" in ts and "PatchTST" in ts and "0.414" in ts and "0.410" in ts  # printed Linear, Tanh MSE
    counts = (out / "table05_param_counts.md").read_text()
    assert "124.44 / 124.44" in counts and "124.46 / 166.97" in counts
    assert not (out / "figure2_vision.csv").exists()  # no vision runs: nothing drawn
