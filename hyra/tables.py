"""HyRA's fine-tuning tables and sample-efficiency figure from saved runs, beside the printed numbers.

    python -m hyra.tables [results_dir=results] [text_results_dir=records/replora] [out_dir=results/hyra/tables]

Reads the runs of `hyra.vision` (`<results_dir>/vision`), `hyra.commonsense` (`<results_dir>/commonsense`) and the
CPU-scale text classification (`<text_results_dir>/text_classification`, by default the records committed under
records/replora, whose sweep includes HyRA) and writes, as csv + markdown: Tables 1 and 4 (VTAB-1K group averages
and per dataset), Table 2 (FGVC), Table 3 (commonsense, LLaMA-7B and 13B), Table 5 (LLaMA-13B with Q, V, up and down
adapted), Table 6 (cost of LoRA, DoRA, HyRA and full fine-tuning, beside `python -m benchmarks.adapter_cost`'s
measurement when `cost_json` exists), Figure 2 (commonsense sample efficiency, ours only: the paper prints no numbers
for it) and the text-classification table and figure. Every cell shows the paper's value and ours; a cell we have
not run says "not run", a baseline this repository does not implement (prefix tuning of a timm ViT) "n/i".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.config import cli_config
from common.data.commonsense import TASKS
from common.data.vision import FGVC_DATASETS, VTAB_TASKS
from common.finetune import report
from common.finetune.report import PaperTable
from common.plotting import write_table

PAPER = Path(__file__).parent / "paper_results"
VTAB, FGVC, COMMONSENSE = list(VTAB_TASKS), list(FGVC_DATASETS), list(TASKS)
VISION_ROWS = {"FFT": "full", "LoRA": "lora", "DoRA": "dora", "VeRA": "vera", "Adapter": "adapter", "Prefix": None}
VISION_ROWS["HyRA"] = "hyra"
LLAMA_ROWS = {"LoRA": "lora", "DoRA": "dora", "Prefix": "prefix", "Adapter": "adapter", "HyRA": "hyra"}

TABLES = {
    "vision": [
        PaperTable("table04_vtab1k_per_dataset", PAPER / "table04_vtab1k_per_dataset.csv", VISION_ROWS, VTAB),
        PaperTable("table02_fgvc", PAPER / "table02_fgvc.csv", VISION_ROWS, FGVC),
    ],
    "commonsense": [
        PaperTable(f"table03_commonsense_{size}", PAPER / "table03_commonsense_llama.csv", LLAMA_ROWS, COMMONSENSE,
                   {"model": f"LLaMA-{size.upper()}"}, model_contains=size, targets="q,v")
        for size in ("7b", "13b")
    ] + [
        PaperTable("table05_ablation_q_v_up_down_13b", PAPER / "table05_ablation_q_v_up_down_llama13b.csv",
                   {"LoRA": "lora", "DoRA": "dora", "HyRA": "hyra"}, COMMONSENSE, model_contains="13b",
                   targets="q,v,up,down"),
    ],
}  # fmt: skip


@dataclass
class TablesConfig:
    results_dir: str = "results"
    text_results_dir: str = "records/replora"
    out_dir: str = "results/hyra/tables"
    cost_json: str = "results/benchmarks/adapter_cost.json"  # written by python -m benchmarks.adapter_cost


COST_METHODS = {"LoRA": "lora", "DoRA": "dora", "HyRA": "hyra", "FFT": "full"}


def cost_table(paper_csv: Path, cost: dict | None) -> pd.DataFrame:
    """Table 6 beside our measurement: per model and method the printed GFLOPs and runtime and their ratios to
    LoRA, and our FLOPs per training step (total, and extra over LoRA), step time and peak memory as ratios to LoRA
    on a LLaMA-7B-shaped model (`benchmarks.adapter_cost`; ViT-B/16 rows: ours only)."""
    paper = pd.read_csv(paper_csv)
    rows = []
    for model in ("LLaMA-7B", "LLaMA-13B", "ViT-B/16"):
        printed = paper[paper["model"] == model]
        value = {
            (m, metric): printed[(printed["method"] == m) & printed["metric"].str.startswith(metric)]["value"]
            for m in COST_METHODS for metric in ("GFLOPs", "Runtimes")
        }  # fmt: skip
        ours = (cost or {}).get("results", {}).get("vit" if model.startswith("ViT") else "llama", {})
        for name, method in COST_METHODS.items():
            gflops, runtime = value[name, "GFLOPs"], value[name, "Runtimes"]
            lora_gflops, lora_runtime = value["LoRA", "GFLOPs"], value["LoRA", "Runtimes"]
            measured = model != "LLaMA-13B" and method in ours.get("gflops", {})
            rows.append(
                {
                    "model": model,
                    "method": name,
                    "paper GFLOPs": gflops.iloc[0] if len(gflops) else None,
                    "paper GFLOPs / LoRA": gflops.iloc[0] / lora_gflops.iloc[0] if len(gflops) else None,
                    "paper runtime / LoRA": runtime.iloc[0] / lora_runtime.iloc[0] if len(runtime) else None,
                    "ours GFLOPs / step": ours["gflops"][method] if measured else None,
                    "ours extra GFLOPs over LoRA": ours["extra_gflops_over_lora"][method] if measured else None,
                    "ours FLOPs / LoRA": ours["flops_ratio_to_lora"][method] if measured else None,
                    "ours step time / LoRA": ours["step_ratio_to_lora"][method] if measured else None,
                    "ours peak memory / LoRA": ours.get("peak_memory_ratio_to_lora", {}).get(method)
                    if measured
                    else None,
                }
            )
    return pd.DataFrame(rows).dropna(axis=0, how="all", subset=[c for c in rows[0] if c not in ("model", "method")])


def main(cfg: TablesConfig) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.write_paper_tables(TABLES, cfg.results_dir, out)
    groups = report.vtab_group_averages(
        report.collect(cfg.results_dir, "vision"), PAPER / "table01_vtab1k_group_averages.csv", VISION_ROWS
    )
    write_table(groups, out / "table01_vtab1k_group_averages")
    commonsense = report.collect(cfg.results_dir, "commonsense")
    if not commonsense.empty:
        curves = report.sample_efficiency(commonsense, ["lora", "hyra"], COMMONSENSE)
        write_table(curves, out / "figure2_sample_efficiency_commonsense")
        report.plot_sample_efficiency(curves, "AVG", out / "figure2_sample_efficiency_commonsense", "HyRA Figure 2")
    report.write_text_classification(cfg.text_results_dir, ["lora", "hyra"], out)
    cost_path = Path(cfg.cost_json)
    cost = json.loads(cost_path.read_text()) if cost_path.is_file() else None
    if cost is None:
        print(f"table 6: no {cost_path} (python -m benchmarks.adapter_cost): the printed values only")
    write_table(cost_table(PAPER / "table06_cost_flops_runtime.csv", cost), out / "table06_cost")
    print(f"tables and figures in {out}")


if __name__ == "__main__":
    main(cli_config(TablesConfig, description=__doc__))
