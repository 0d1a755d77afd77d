"""Training curves from run logs: mean and spread over seeds, the selected grid point, bad input named."""

import pandas as pd
import pytest

from common import runs
from common.config import ConfigError, load_config
from common.curves import CurvesConfig, main


def write(root, name, record, losses, results=None, x="step"):
    path = root / name
    runs.write_run(path, record, results or {"val_accuracy": 0.0})
    for i, loss in enumerate(losses, start=1):
        runs.append_log(path, {x: 10 * i, "loss": loss, "lr": 0.1})
    return path


def test_lines_are_means_over_seeds_with_their_spread(tmp_path):
    for seed, shift in ((0, 0.0), (1, 0.2)):
        write(tmp_path, f"a{seed}", {"method": "lora", "seed": seed}, [1.0 + shift, 0.5 + shift])
        write(tmp_path, f"b{seed}", {"method": "replora", "seed": seed}, [2.0, 1.0])
    table = main(CurvesConfig(runs=[str(tmp_path / "*")], out=str(tmp_path / "fig" / "curves")))
    lora = table[table.label == "method=lora"]
    assert list(lora.x) == [10, 20] and list(lora["mean"]) == pytest.approx([1.1, 0.6])
    assert list(lora["std"]) == pytest.approx([0.1414, 0.1414], rel=1e-3) and set(lora.runs) == {2}
    assert set(table.metric) == {"loss"}  # the learning rate is not a curve
    assert (tmp_path / "fig" / "curves.png").stat().st_size > 0 and (tmp_path / "fig" / "curves.pdf").exists()
    assert pd.read_csv(tmp_path / "fig" / "curves.csv").shape[0] == 4


def test_best_keeps_the_grid_point_a_search_selects_and_where_filters(tmp_path):
    for lr, accuracy in ((0.1, 70.0), (0.01, 80.0)):
        for seed in (0, 1):
            record = {"method": "lora", "learning_rate": lr, "seed": seed, "fraction": 1.0}
            write(tmp_path, f"lr{lr}s{seed}", record, [lr, lr / 2], {"val_accuracy": accuracy + seed})
    write(tmp_path, "small", {"method": "lora", "learning_rate": 0.5, "seed": 0, "fraction": 0.1}, [9.0, 9.0])
    cfg = CurvesConfig(runs=[str(tmp_path / "*")], out=str(tmp_path / "c"), label=["method"], best="val_accuracy",
                       where={"fraction": 1.0})  # fmt: skip
    table = main(cfg)
    assert list(table["mean"]) == pytest.approx([0.01, 0.005]) and set(table.runs) == {2}
    cfg.best = "-val_accuracy"
    assert list(main(cfg)["mean"]) == pytest.approx([0.1, 0.05])


def test_epoch_logs_draw_every_metric_against_the_epoch(tmp_path):
    path = write(tmp_path, "ts", {"activation": "gelu", "seed": 0}, [], x="epoch")
    for epoch in (1, 2, 3):
        runs.append_log(path, {"epoch": epoch, "train_mse": 1.0 / epoch, "val_mse": 2.0 / epoch})
    table = main(CurvesConfig(runs=[str(path)], out=str(tmp_path / "ts_curves")))
    assert set(table.metric) == {"train_mse", "val_mse"} and set(table.x_name) == {"epoch"}
    assert table[table.metric == "val_mse"]["mean"].tolist() == pytest.approx([2.0, 1.0, 2 / 3])


def test_bad_input_is_named(tmp_path):
    write(tmp_path, "a", {"method": "lora", "seed": 0}, [1.0])
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(ConfigError, match="'runs' = .*nowhere"):
        main(CurvesConfig(runs=[str(tmp_path / "nowhere*")], out=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="not_a_run has no log.jsonl"):
        main(CurvesConfig(runs=[str(tmp_path / "not_a_run")], out=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="'where' = 'rank'"):
        main(CurvesConfig(runs=[str(tmp_path / "a")], out=str(tmp_path / "x"), where={"rank": 8}))
    with pytest.raises(ConfigError, match="'best' = 'accuracy'"):
        main(CurvesConfig(runs=[str(tmp_path / "a")], out=str(tmp_path / "x"), best="accuracy"))
    with pytest.raises(ConfigError, match="'metrics'"):
        main(CurvesConfig(runs=[str(tmp_path / "a")], out=str(tmp_path / "x"), metrics=["val_loss"]))
    with pytest.raises(ConfigError, match="'out'"):
        load_config(CurvesConfig, None, [f"runs=[{tmp_path / 'a'}]"])
    assert not (tmp_path / "x.png").exists()
