"""Entry points on fixtures, then the papers' table scripts: our cells beside the printed ones, unrun cells marked."""

import pandas as pd
import pytest

from common.config import load_config
from common.finetune import commonsense, text, vision
from hyra import tables as hyra_tables
from replora import tables as replora_tables
from tests.fixtures import (
    TINY_VIT,
    write_commonsense,
    write_fgvc,
    write_text_csvs,
    write_tiny_bert,
    write_tiny_llama,
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Finished runs of every entry point: FGVC CUB (lora, replora, hyra), commonsense on a tiny "7b" LLaMA
    (lora, replora, hyra), text classification (lora, hyra; two seeds, two fractions)."""
    root = tmp_path_factory.mktemp("tables")
    results_dir = root / "results"
    vision.Finetune.main(
        load_config(
            vision.Config,
            None,
            [
                f"results_dir={results_dir}", "benchmark=fgvc", f"data_root={write_fgvc(root / 'fgvc')}",
                "tasks=[cub]", "methods=[lora,replora,hyra]", "pretrained=false",
                f"model_kwargs={TINY_VIT}".replace("'", ""), "image_size=32", "num_workers=0",
                "optimization.epochs=1", "optimization.batch_size=8", "optimization.warmup_steps=1",
            ],
        )
    )  # fmt: skip
    commonsense.Finetune.main(
        load_config(
            commonsense.Config,
            None,
            [
                f"results_dir={results_dir}", f"model={write_tiny_llama(root / 'tiny-llama-7b')}",
                f"data_root={write_commonsense(root / 'commonsense', per_task=1)}", "methods=[lora,replora,hyra]",
                "adaptation.targets=[q,v]", "adaptation.rank=4", "optimization.epochs=1",
                "optimization.batch_size=8", "optimization.warmup_steps=1", "cutoff_len=48", "validation_size=2",
            ],
        )
    )  # fmt: skip
    train, test = write_text_csvs(root / "text")
    text.TextClassification.main(
        load_config(
            text.Config,
            None,
            [
                f"results_dir={root / 'text_results'}", f"model_dir={write_tiny_bert(root / 'bert')}",
                f"train_csv={train}", f"test_csv={test}", "methods=[lora,hyra]", "fractions=[0.5,1.0]",
                "seeds=[0,1]", "optimization.epochs=1", "optimization.batch_size=8", "optimization.warmup_steps=1",
                "validation_per_class=2", "learning_rates=[0.001,0.01]", "weight_decays=[0.0001]",
                "grid_at.fraction=1.0", "grid_at.seeds=[0]",
            ],
        )
    )  # fmt: skip
    return root


def long_table(out, name) -> pd.DataFrame:
    return pd.read_csv(out / f"{name}_long.csv", keep_default_na=False).set_index(["method", "dataset"])


def test_replora_tables_put_our_runs_beside_the_paper(results):
    out = results / "replora_tables"
    replora_tables.main(replora_tables.TablesConfig(str(results / "results"), str(results / "text_results"), str(out)))
    fgvc = long_table(out, "table02_fgvc")
    assert fgvc.loc[("RepLoRA", "CUB-200-2011"), "paper"] == 89.1
    assert 0 <= float(fgvc.loc[("RepLoRA", "CUB-200-2011"), "ours"]) <= 100
    assert fgvc.loc[("RepLoRA", "NABirds"), "ours"] == "not run"
    assert fgvc.loc[("RepLoRA", "AVG"), "ours"] == "not run"  # an average needs every dataset
    assert fgvc.loc[("Adapter", "CUB-200-2011"), "ours"] == "not run"  # the bottleneck adapter: not in this sweep
    assert fgvc.loc[("Prefix", "CUB-200-2011"), "ours"] == "n/i"
    assert fgvc.loc[("FFT", "CUB-200-2011"), "ours"] == "not run"
    assert float(fgvc.loc[("RepLoRA", "CUB-200-2011"), "ours_trainable_pct"]) > 0
    llama7b = long_table(out, "table01_commonsense_7b")
    assert all(llama7b.loc[("LoRA", task), "ours"] != "not run" for task in ("BoolQ", "OBQA", "AVG"))
    assert (long_table(out, "table01_commonsense_13b")["ours"].isin(["not run", "n/i"])).all()  # no 13B run
    wide = pd.read_csv(out / "table01_commonsense_7b.csv", keep_default_na=False)
    assert list(wide["method"][:2]) == ["LoRA (paper)", "LoRA (ours)"]
    efficiency = pd.read_csv(out / "table10_sample_efficiency_fgvc.csv", keep_default_na=False)
    assert set(efficiency["fraction"]) == {0.01, 0.1, 0.3, 0.5, 1.0}
    cub = efficiency[(efficiency["dataset"] == "CUB-200-2011") & (efficiency["method"] == "LoRA")]
    assert (cub["ours"] != "not run").sum() == 1  # we ran f = 100 % only
    assert (out / "table10_sample_efficiency_fgvc.png").stat().st_size > 0
    minilm = pd.read_csv(out / "text_classification_minilm.csv")
    assert list(minilm["method"]) == ["LoRA", "HyRA"] and set(minilm["seeds"]) == {2}
    assert {"f = 50%", "f = 100%"} <= set(minilm.columns)
    assert minilm["f = 50%"].str.fullmatch(r"\d+\.\d ± \d+\.\d \(lr 0\.0?01\)").all()  # the grid point of each cell
    cells = pd.read_csv(out / "text_classification_minilm_long.csv")
    assert (cells["selected_on"] == "validation").all() and cells["final_loss"].gt(0).all()
    assert cells.groupby("method")["learning_rate"].nunique().eq(1).all()  # one point per method (grid_at)
    difference = pd.read_csv(out / "text_classification_minilm_minus_lora.csv")
    assert list(difference["method"]) == ["HyRA"]
    from common.finetune import report

    grid = report.grid_table(report.collect(results / "text_results", "text_classification"), ["lora", "hyra"])
    assert len(grid) == 2 * (2 + 1)  # per method: f = 100 % on the grid of 2, f = 50 % at the selected point
    assert grid.groupby(["method", "fraction"])["selected"].apply(lambda s: (s == "yes").sum()).eq(1).all()
    assert (out / "text_classification_minilm.pdf").stat().st_size > 0


def test_hyra_tables_put_our_runs_beside_the_paper(results):
    out = results / "hyra_tables"
    hyra_tables.main(hyra_tables.TablesConfig(str(results / "results"), str(results / "text_results"), str(out)))
    fgvc = long_table(out, "table02_fgvc")
    assert float(fgvc.loc[("HyRA", "CUB-200-2011"), "ours"]) >= 0
    assert fgvc.loc[("DoRA", "CUB-200-2011"), "ours"] == "not run"
    assert long_table(out, "table03_commonsense_7b").loc[("HyRA", "AVG"), "ours"] != "not run"
    assert (long_table(out, "table05_ablation_q_v_up_down_13b")["ours"] == "not run").all()
    assert (out / "figure2_sample_efficiency_commonsense.png").stat().st_size > 0


def test_vtab_group_averages_need_every_task_of_a_group(tmp_path):
    from common.data.vision import VTAB_GROUPS
    from common.finetune import report

    natural = [task for task, group in VTAB_GROUPS.items() if group == "natural"]
    runs = pd.DataFrame(
        [
            {"method": "hyra", "dataset": task, "fraction": 1.0, "seed": 0, "learning_rate": lr, "weight_decay": 0.0,
             "accuracy": 50.0 + i + (10 if lr == 0.01 else 0), "trainable_pct": 0.5, "trainable_params": 10}
            for i, task in enumerate(natural) for lr in (0.001, 0.01)
        ] + [{"method": "hyra", "dataset": "eurosat", "fraction": 1.0, "seed": 0, "learning_rate": 0.01,
              "weight_decay": 0.0, "accuracy": 90.0, "trainable_pct": 0.5, "trainable_params": 10}]
    )  # fmt: skip
    table = report.vtab_group_averages(
        runs, hyra_tables.PAPER / "table01_vtab1k_group_averages.csv", {"HyRA": "hyra", "Adapter": None}
    )
    cells = table.set_index(["method", "group"])["ours"]
    assert cells[("HyRA", "Natural")] == f"{60.0 + 3:.2f}"  # best LR per task, mean of the 7 natural tasks
    assert cells[("HyRA", "Specialized")] == "not run" and cells[("HyRA", "ALL")] == "not run"
    assert cells[("Adapter", "Natural")] == "n/i"
    assert table.set_index(["method", "group"])["paper"][("HyRA", "Natural")] != ""
