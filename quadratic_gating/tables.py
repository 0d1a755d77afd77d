"""The quadratic-gating paper's real-experiment tables from saved runs, beside the printed numbers.

    python -m quadratic_gating.tables [results_dir=results/quadratic_gating] [out_dir=results/quadratic_gating/tables]

Reads the runs of `quadratic_gating.timeseries`, `.vision`, `.imagenet`, `.wikitext`, `.language` and `.pretrain` under
`results_dir` (their default `results_dir`) and writes, as csv + markdown:

- `table02_timeseries`: test MSE and MAE (mean ± std over seeds) per model (PatchTST, Transformer), dataset and
  value activation, beside the printed MSE of Table 2 (`identity` is the paper's Linear row) and the relative
  difference;
- `figure2_vision` (+ pdf/png): top-1 accuracy per model (ViT / CaiT and dataset, or the ImageNet timm model) and
  value activation (mean ± std), one bar each;
- `figure2_wikitext` (+ pdf/png): test perplexity per attention (softmax, Performer) and value activation;
- `table03_language`: validation loss per model (dense, MoE linear, MoE quadratic) beside Table 3's FineWeb-Edu
  numbers (another corpus and scale: only the order of the three is comparable);
- `table03_gpt2_moe`: GPT2 dense / MoE pre-training runs (validation loss, HellaSwag) beside Table 3;
- `table05_param_counts`: our GPT2 dense / MoE counts at the paper's configuration beside Table 5.

A table with no runs says so; nothing is trained here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from common import runs
from common.config import cli_config
from common.plotting import save_figure, use_house_style, write_table

PAPER = Path(__file__).parent / "paper_results"
PAPER_ACTIVATION = {"identity": "Linear", "gelu": "GELU", "relu": "ReLU", "sigmoid": "Sigmoid", "silu": "SiLU",
                    "tanh": "Tanh"}  # fmt: skip
PAPER_ARCHITECTURE = {"patchtst": "PatchTST", "transformer": "Transformer"}
PAPER_MODEL = {"dense": "Dense", "moe_linear": "MoE (linear)", "moe_quadratic": "MoE (quadratic)"}


@dataclass
class TablesConfig:
    results_dir: str = "results/quadratic_gating"
    out_dir: str = "results/quadratic_gating/tables"


def collect(folder: Path) -> pd.DataFrame:
    """One row per finished run under `folder`: its config record (nested settings as `model.dim`, ...) and results."""
    rows = []
    for path in sorted(folder.glob("*")):
        if runs.is_done(path):
            run = runs.read_run(path)
            record = pd.json_normalize(run["config"]).iloc[0].to_dict()
            rows.append({"experiment": folder.name, **record, **run["results"]})
    return pd.DataFrame(rows)


def image_model(row: pd.Series) -> str:
    """The label of an image run's model: ViT or CaiT and the dataset (`vision`), or the timm name with its width
    when the config sets one (`imagenet`)."""
    if row["experiment"] == "vision":
        return f"{'CaiT' if row['model.class_layers'] > 0 else 'ViT'} ({row['dataset']})"
    width = row.get("model_kwargs.embed_dim")
    return f"{row['model']}{'' if pd.isna(width) else f' width {int(width)}'} (imagenet)"


def mean_std(values: pd.Series, digits: int) -> str:
    return (
        f"{values.mean():.{digits}f} ± {values.std():.{digits}f}" if len(values) > 1 else f"{values.mean():.{digits}f}"
    )


def timeseries_table(ours: pd.DataFrame) -> pd.DataFrame:
    paper = pd.read_csv(PAPER / "table02_timeseries_mse_activations.csv", dtype={"value": str})
    rows = []
    order = ours["activation"].map(list(PAPER_ACTIVATION).index)
    ours = ours.assign(order=order).sort_values(["architecture", "dataset", "order"])
    for (architecture, dataset, horizon, activation), group in ours.groupby(
        ["architecture", "dataset", "horizon", "activation"], sort=False
    ):
        model = PAPER_ARCHITECTURE[architecture]
        printed = paper[
            (paper["model"] == model) & (paper["dataset"] == dataset)
            & (paper["activation"] == PAPER_ACTIVATION[activation])
        ]["value"]  # fmt: skip
        paper_mse = printed.iloc[0] if len(printed) else ""
        rows.append({
            "model": model, "dataset": dataset, "horizon": horizon, "activation": activation, "seeds": len(group),
            "test MSE": mean_std(group["test_mse"], 4), "test MAE": mean_std(group["test_mae"], 4),
            "paper MSE": paper_mse,
            "difference (%)": round(100 * (group["test_mse"].mean() / float(paper_mse) - 1), 1) if paper_mse else "",
        })  # fmt: skip
    return pd.DataFrame(rows)


def activation_bars(table: pd.DataFrame, group: str, metric: str, ylabel: str, title: str, path: Path) -> None:
    """One bar per value activation (mean, std error bar), one colour per `group` value."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    groups = list(table.groupby(group, sort=False))
    width = 0.8 / len(groups)
    activations = list(dict.fromkeys(table["activation"]))
    for i, (name, rows) in enumerate(groups):
        x = [activations.index(a) + (i - (len(groups) - 1) / 2) * width for a in rows["activation"]]
        ax.bar(x, rows[metric], width, yerr=rows["std"].fillna(0), capsize=3, color=f"C{i}", label=name)
    ax.set_xticks(range(len(activations)), activations)
    low, high = (table[metric] - table["std"].fillna(0)).min(), (table[metric] + table["std"].fillna(0)).max()
    ax.set_ylim(low - 0.1 * (high - low) - 1e-9, high + 0.1 * (high - low) + 1e-9)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)


def vision_table(ours: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Figure 2a/b: top-1 accuracy per model (and dataset) and value activation."""
    order = ours["activation"].map(list(PAPER_ACTIVATION).index)
    ours = ours.assign(model=ours.apply(image_model, axis=1), order=order).sort_values(["model", "order"])
    table = ours.groupby(["model", "activation"], sort=False)["accuracy"].agg(["mean", "std", "count"]).reset_index()
    table = table.rename(columns={"mean": "accuracy", "count": "seeds"})
    activation_bars(table, "model", "accuracy", "top-1 accuracy (%)", "Active attention: value activation",
                    out / "figure2_vision")  # fmt: skip
    return table


def wikitext_table(ours: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Figure 2c: test perplexity per attention (softmax, Performer) and value activation."""
    ours = ours.assign(order=ours["activation"].map(list(PAPER_ACTIVATION).index)).sort_values(["normaliser", "order"])
    grouped = ours.groupby(["normaliser", "activation"], sort=False)
    table = grouped["test_ppl"].agg(["mean", "std", "count"]).reset_index()
    table = table.rename(columns={"mean": "test perplexity", "count": "seeds"})
    table["validation perplexity"] = grouped["val_ppl"].mean().to_numpy()
    activation_bars(table, "normaliser", "test perplexity", "test perplexity", "WikiText-103: value activation",
                    out / "figure2_wikitext")  # fmt: skip
    return table


def language_table(ours: pd.DataFrame) -> pd.DataFrame:
    paper = pd.read_csv(PAPER / "table03_gpt2_moe_hellaswag.csv", dtype=str)
    paper = paper[paper["metric"] == "val_loss"]
    rows = []
    ours = ours.assign(order=ours["variant"].map(list(PAPER_MODEL).index)).sort_values(["order", "seed"])
    for variant, group in ours.groupby("variant", sort=False):
        printed = paper[paper["model"] == PAPER_MODEL[variant]]["value"]
        rows.append(
            {
                "model": variant,
                "seeds": len(group),
                "validation loss (ours, nats/char)": mean_std(group["val_loss"], 4),
                "active params": int(group["active_params"].iloc[0]),
                "total params": int(group["total_params"].iloc[0]),
                "paper validation loss (FineWeb-Edu, GPT2 124M)": printed.iloc[0],
            }
        )
    return pd.DataFrame(rows)


def pretrain_table(ours: pd.DataFrame) -> pd.DataFrame:
    """Table 3 proper: our GPT2 dense / MoE runs (validation loss, HellaSwag) beside the printed ones."""
    paper = pd.read_csv(PAPER / "table03_gpt2_moe_hellaswag.csv", dtype=str).set_index(["model", "metric"])["value"]
    rows = []
    ours = ours.assign(order=ours["variant"].map(list(PAPER_MODEL).index)).sort_values(["order", "seed"])
    for variant, group in ours.groupby("variant", sort=False):
        hellaswag = group["hellaswag"].dropna()
        rows.append({
            "model": variant, "seeds": len(group), "tokens (B)": round(group["tokens"].iloc[0] / 1e9, 3),
            "validation loss": mean_std(group["val_loss"], 4),
            "paper validation loss": paper[(PAPER_MODEL[variant], "val_loss")],
            "HellaSwag (%)": mean_std(hellaswag, 2) if len(hellaswag) else "not run",
            "paper HellaSwag (%)": paper[(PAPER_MODEL[variant], "acc_pct")],
            "active params": int(group["active_params"].iloc[0]), "total params": int(group["total_params"].iloc[0]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def param_counts_table() -> pd.DataFrame:
    import torch
    from transformers import GPT2Config

    from quadratic_gating.models import gpt2_moe, parameter_counts

    paper = pd.read_csv(PAPER / "hparams_table05_param_counts.csv")
    rows = []
    for name, router in (("GPT2-dense", None), ("GPT2-MoE (Linear)", "linear"), ("GPT2-MoE (Quadratic)", "quadratic")):
        printed = paper[paper["model"] == name].set_index("quantity")["value"]
        row = {"model": name, "paper active (M)": printed["active_params"], "paper total (M)": printed["total_params"]}
        for every, label in ((1, "all 12 blocks"), (4, "every 4th block")):
            if router is None and every > 1:
                continue
            with torch.device("meta"):
                counts = parameter_counts(gpt2_moe(GPT2Config(n_inner=3072), router, moe_every=every))
            row[f"ours, MoE in {label}: active / total (M)"] = (
                f"{counts['active'] / 1e6:.2f} / {counts['total'] / 1e6:.2f}"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def main(cfg: TablesConfig) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.results_dir)
    for name, folders, build in (
        ("table02_timeseries", ["timeseries"], timeseries_table),
        ("figure2_vision", ["vision", "imagenet"], lambda df: vision_table(df, out)),
        ("figure2_wikitext", ["wikitext"], lambda df: wikitext_table(df, out)),
        ("table03_language", ["language"], language_table),
        ("table03_gpt2_moe", ["pretrain"], pretrain_table),
    ):
        ours = pd.concat([collect(root / folder) for folder in folders], ignore_index=True)
        if ours.empty:
            print(f"{name}: no finished runs under {root} ({', '.join(folders)})")
            continue
        write_table(build(ours), out / name)
        print(f"{name}: {len(ours)} runs")
    write_table(param_counts_table(), out / "table05_param_counts")
    print(f"tables in {out}")


if __name__ == "__main__":
    main(cli_config(TablesConfig, description=__doc__))
