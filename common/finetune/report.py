"""Tables and figures of the fine-tuning experiments: our finished runs beside the papers' printed numbers.

Figure and table scripts only read: `collect` gathers the finished runs of an experiment, `paper_table` puts them
next to one printed table (cell by cell, every cell we have not run marked), `sample_efficiency` draws accuracy
against the training fraction. Our accuracy of a (method, dataset, fraction) is the mean over seeds of the test
accuracy at one learning-rate x weight-decay point of the grid, the point with the best validation accuracy
(`common.finetune.selection`); runs without a validation split (the papers' protocol) are selected on the test
accuracy itself, and the tables say which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from common import runs
from common.adapters.accounting import ppt
from common.data.commonsense import TASKS
from common.finetune.selection import GRID, TEST, VALIDATION, select
from common.plotting import save_figure, use_house_style, write_table

NOT_RUN = "not run"
NOT_IMPLEMENTED = "n/i"  # a baseline of the paper this repository does not implement (prefix tuning of a ViT)

# our dataset keys -> the names the papers' tables print
DATASET_NAMES = {
    "cifar": "CIFAR100", "caltech101": "Caltech101", "dtd": "DTD", "oxford_flowers102": "Flower102",
    "oxford_iiit_pet": "Pets", "svhn": "SVHN", "sun397": "Sun397", "patch_camelyon": "Camelyon",
    "eurosat": "EuroSAT", "resisc45": "Resisc45", "diabetic_retinopathy": "Retinopathy",
    "clevr_count": "Clevr-Count", "clevr_dist": "Clevr-Dist", "dmlab": "DMLab", "kitti": "KITTI",
    "dsprites_loc": "dSpr-Loc", "dsprites_ori": "dSpr-Ori", "smallnorb_azi": "sNORB-Azim", "smallnorb_ele": "sNORB-Ele",
    "cub": "CUB-200-2011", "nabirds": "NABirds", "oxford_flowers": "Oxford Flowers", "stanford_dogs": "Stanford Dogs",
    "stanford_cars": "Stanford Cars", "ssv2": "SSv2", "hmdb51": "HMDB51",
    "vqa": "VQAv2", "gqa": "GQA", "nlvr2": "NLVR2", "caption": "COCO Caption", "tvqa": "TVQA", "how2qa": "How2QA",
    "tvc": "TVC", "yc2c": "YC2C",
    **TASKS,
}  # fmt: skip
# our method keys -> the papers' row names
METHOD_NAMES = {
    "full": "FFT", "lora": "LoRA", "replora": "RepLoRA", "replora_linear": "RepLoRA (Linear)", "hyra": "HyRA",
    "dora": "DoRA", "vera": "VeRA", "prefix": "Prefix", "peft_lora": "LoRA (peft)",
    "lora_matched": "LoRA (RepLoRA's params)", "adapter": "Adapter",
}  # fmt: skip


def collect(results_dir: str | Path, experiment: str) -> pd.DataFrame:
    """One row per finished run of `experiment` under `results_dir`: its point, accuracy, trainable share, time."""
    rows = []
    for path in sorted(Path(results_dir, experiment).glob("*")):
        if not runs.is_done(path):
            continue
        run = runs.read_run(path)
        config, results = run["config"], run["results"]
        base = {
            "run": path.name,
            "method": config["method"],
            "fraction": config.get("fraction", 1.0),  # the video runs train on every example
            "seed": config["seed"],
            "learning_rate": config.get("learning_rate", config.get("optimization", {}).get("learning_rate")),
            "weight_decay": config.get("weight_decay", config.get("optimization", {}).get("weight_decay")),
            "model": config.get("model", ""),
            "targets": ",".join(config.get("adaptation", {}).get("targets", [])),
            "trainable_pct": results.get("trainable_pct"),
            "trainable_params": results.get("trainable_params"),
            "rank": results.get("rank"),
            "final_loss": results.get("final_loss"),
            "val_accuracy": results.get("val_accuracy", np.nan),
            # what the grid is selected on: validation accuracy, or minus the validation loss (commonsense)
            "val_score": results.get("val_accuracy", -results.get("val_loss", np.nan)),
            "seconds": results.get("seconds"),
        }
        accuracy = results["accuracy"]
        if isinstance(accuracy, dict):  # commonsense: one accuracy per task
            rows += [{**base, "dataset": task, "accuracy": value} for task, value in accuracy.items()]
        else:
            rows.append({**base, "dataset": config.get("task", config.get("dataset", "all")), "accuracy": accuracy})
    return pd.DataFrame(rows)


def best_of_grid(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per `keys` group: the learning rate / weight decay that validation accuracy selects (test accuracy where a
    group has no validation accuracy: `selected_on` says which), and at that point the test accuracy's mean,
    standard deviation and number of seeds, the mean final training loss and the trainable parameters."""
    columns = [*keys, *GRID, "accuracy", "std", "seeds", "final_loss", "trainable_pct", "trainable_params",
               "selected_on"]  # fmt: skip
    if df.empty:
        return pd.DataFrame(columns=columns)
    if "final_loss" not in df:
        df = df.assign(final_loss=np.nan)
    at_point = _at_selected_points(df, keys)
    best = (
        at_point.groupby([*keys, *GRID, "selected_on"], dropna=False)
        .agg(
            accuracy=("accuracy", "mean"),
            std=("accuracy", "std"),
            seeds=("seed", "nunique"),
            final_loss=("final_loss", "mean"),
            trainable_pct=("trainable_pct", "mean"),
            trainable_params=("trainable_params", "mean"),
        )
        .reset_index()
    )
    return best[columns].sort_values(keys).reset_index(drop=True)


@dataclass
class PaperTable:
    """One printed table and which of our runs fill it."""

    name: str  # output stem
    paper_csv: Path
    rows: dict[str, str | None]  # the paper's method name -> our method key (None: not implemented here)
    datasets: list[str]  # our dataset keys, in the table's column order
    filters: dict[str, str] = field(default_factory=dict)  # paper CSV column -> value (e.g. model=LLaMA-7B)
    fraction: float = 1.0
    model_contains: str = ""  # our runs' model name must contain this (e.g. "7b")
    targets: str = ""  # our runs' adapter targets must be these (e.g. "q,v,up,down"); empty: any
    metric: str = "acc"  # the paper CSV's metric of the accuracy cells (the video tables: Acc@1, beside PPT)
    ppt: bool = True  # compute our PPT (Sec. 6's formula, with the Video Swin constant): False where it does not apply


def paper_table(ours: pd.DataFrame, table: PaperTable) -> pd.DataFrame:
    """Long table, one row per (method, dataset incl. AVG): the paper's value, ours (or NOT_RUN / NOT_IMPLEMENTED)."""
    paper = pd.read_csv(table.paper_csv, dtype=str)
    for column, value in table.filters.items():
        paper = paper[paper[column] == value]
    printed_ppt = paper[paper["metric"] == "PPT"] if "metric" in paper else paper.iloc[0:0]
    paper = paper[paper["metric"] == table.metric] if "metric" in paper else paper
    if not ours.empty:
        ours = ours[(ours["fraction"] == table.fraction) & ours["model"].str.lower().str.contains(table.model_contains)]
        if table.targets:
            ours = ours[ours["targets"] == table.targets]
    best = best_of_grid(ours, ["method", "dataset"])
    names = [DATASET_NAMES[d] for d in table.datasets]
    out = []
    for paper_method, method in table.rows.items():
        printed = paper[paper["method"] == paper_method]
        mine = best[best["method"] == method] if method else best.iloc[0:0]
        values = {}
        for key, name in zip([*table.datasets, "AVG"], [*names, "AVG"], strict=True):
            cell = printed[printed["dataset"].str.replace(" -", "-") == name]["value"]
            if key == "AVG":
                ran = mine[mine["dataset"].isin(table.datasets)]
                ours_value = ran["accuracy"].mean() if len(ran) == len(table.datasets) else np.nan
                std = np.nan
            else:
                ran = mine[mine["dataset"] == key]
                ours_value = ran["accuracy"].iloc[0] if len(ran) else np.nan
                std = ran["std"].iloc[0] if len(ran) else np.nan
            params = ran["trainable_params"].mean() if len(ran) else np.nan  # the dataset's head included
            values[name] = (cell.iloc[0] if len(cell) else "", ours_value, std, params)
        share = mine["trainable_pct"].mean() if len(mine) else np.nan
        for name, (printed_value, value, std, params) in values.items():
            if method is None:
                ours_text = NOT_IMPLEMENTED
            elif np.isnan(value):
                ours_text = NOT_RUN
            else:
                ours_text = f"{value:.1f}" + (f" ± {std:.1f}" if not np.isnan(std) else "")
            row = {
                "method": paper_method,
                "ours_method": method or "",
                "dataset": name,
                "paper": printed_value,
                "ours": ours_text,
                "ours_trainable_pct": share,
                "ours_ppt": np.nan if not table.ppt or np.isnan(value) or np.isnan(params) else ppt(value, params),
            }
            if len(printed_ppt):  # the tables that print PPT: it beside ours
                cell = printed_ppt[(printed_ppt["method"] == paper_method) & (printed_ppt["dataset"] == name)]
                row["paper_ppt"] = cell["value"].iloc[0] if len(cell) else ""
            if "params_pct" in printed:  # the tables that print the trainable share (%)
                shares = printed[printed["dataset"] == name]["params_pct"]
                row["paper_params_pct"] = shares.iloc[0] if len(shares) else ""
            if "params_M" in printed:  # the tables that print parameters in millions: them beside ours
                printed_params = printed[printed["dataset"] == name]["params_M"]
                row["paper_params_m"] = printed_params.iloc[0] if len(printed_params) else ""
                row["ours_params_m"] = np.nan if np.isnan(params) else params / 1e6
            out.append(row)
    return pd.DataFrame(out)


def wide(long: pd.DataFrame) -> pd.DataFrame:
    """Two rows per method (paper, ours), one column per dataset: the markdown view of `paper_table`."""
    rows = []
    for method, group in long.groupby("method", sort=False):
        for source in ("paper", "ours"):
            row = {"method": f"{method} ({source})"}
            row.update(dict(zip(group["dataset"], group[source].fillna(""), strict=True)))
            if source == "ours":
                share = group["ours_trainable_pct"].iloc[0]
                row["params %"] = "" if np.isnan(share) else f"{share:.2f}"
            rows.append(row)
    return pd.DataFrame(rows)


def write_paper_table(ours: pd.DataFrame, table: PaperTable, out_dir: str | Path) -> pd.DataFrame:
    long = paper_table(ours, table)
    write_table(long, Path(out_dir) / f"{table.name}_long")
    write_table(wide(long), Path(out_dir) / table.name)
    return long


def sample_efficiency(ours: pd.DataFrame, methods: list[str], datasets: list[str]) -> pd.DataFrame:
    """Mean ± std over seeds of accuracy per (method, dataset, fraction), best grid point each; averaged over
    `datasets` as dataset "AVG" where every one of them ran."""
    best = best_of_grid(
        ours[ours["method"].isin(methods) & ours["dataset"].isin(datasets)], ["method", "dataset", "fraction"]
    )
    rows = [best]
    for (method, fraction), group in best.groupby(["method", "fraction"]):
        if set(group["dataset"]) == set(datasets) and len(datasets) > 1:
            average = {"method": method, "dataset": "AVG", "fraction": fraction}
            average |= {"accuracy": group["accuracy"].mean(), "seeds": group["seeds"].min()}
            rows.append(pd.DataFrame([average]))
    return pd.concat(rows, ignore_index=True)


def plot_sample_efficiency(table: pd.DataFrame, dataset: str, path_stem: str | Path, title: str) -> list[Path]:
    """Accuracy (mean ± std over seeds) against the training fraction, one line per method in the order of
    METHOD_NAMES, each with its own marker and dash so that curves that coincide stay visible."""
    use_house_style()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    rows = table[table["dataset"] == dataset]
    styles = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--")]
    methods = [m for m in METHOD_NAMES if m in set(rows["method"])]
    for (marker, dash), method in zip(styles * 2, methods, strict=False):
        group = rows[rows["method"] == method].sort_values("fraction")
        ax.errorbar(
            100 * group["fraction"], group["accuracy"], yerr=group["std"].fillna(0), marker=marker, linestyle=dash,
            capsize=3, label=METHOD_NAMES[method],
        )  # fmt: skip
    fractions = sorted(rows["fraction"].unique())
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("training fraction f (%)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.legend()
    paths = save_figure(fig, path_stem)
    plt.close(fig)
    return paths


def sample_efficiency_beside_paper(
    ours: pd.DataFrame, paper_csv: Path, methods: list[str], datasets: list[str]
) -> pd.DataFrame:
    """Long table of (method, dataset incl. AVG, fraction): the printed accuracy and ours (mean ± std over seeds)."""
    paper = pd.read_csv(paper_csv, dtype=str)
    dataset_keys = {name: key for key, name in DATASET_NAMES.items()} | {"AVG": "AVG"}
    mine = sample_efficiency(ours, methods, datasets) if not ours.empty else pd.DataFrame()
    rows = []
    for method in methods:
        for fraction in sorted(paper["fraction"].astype(float).unique()):
            for dataset in [*datasets, "AVG"]:
                printed = paper[
                    (paper["method"] == METHOD_NAMES[method])
                    & (paper["fraction"].astype(float) == fraction)
                    & (paper["dataset"].map(lambda d: dataset_keys.get(d.replace(" -", "-"))) == dataset)
                ]["value"]
                cell = (
                    mine[(mine["method"] == method) & (mine["dataset"] == dataset) & (mine["fraction"] == fraction)]
                    if len(mine)
                    else mine
                )
                rows.append(
                    {
                        "method": METHOD_NAMES[method],
                        "dataset": DATASET_NAMES.get(dataset, dataset),
                        "fraction": fraction,
                        "paper": printed.iloc[0] if len(printed) else "",
                        "ours": NOT_RUN if cell.empty else f"{cell['accuracy'].iloc[0]:.1f}",
                        "ours_accuracy": np.nan if cell.empty else cell["accuracy"].iloc[0],
                    }
                )
    return pd.DataFrame(rows)


def write_sample_efficiency(
    ours: pd.DataFrame, paper_csv: Path, methods: list[str], datasets: list[str], path_stem: Path, title: str
) -> pd.DataFrame:
    """The sample-efficiency table beside the paper's and its figure: the average over `datasets` per fraction,
    the paper's printed lines dashed, ours solid where every dataset ran."""
    long = sample_efficiency_beside_paper(ours, paper_csv, methods, datasets)
    write_table(long.drop(columns="ours_accuracy"), path_stem)
    use_house_style()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    average = long[long["dataset"] == "AVG"]
    for i, (method, group) in enumerate(average.groupby("method", sort=False)):
        colour = f"C{i}"
        printed = group[group["paper"] != ""]
        ax.plot(100 * printed["fraction"], printed["paper"].astype(float), "--", color=colour, marker="s",
                label=f"{method} (paper)")  # fmt: skip
        ran = group.dropna(subset=["ours_accuracy"])
        if len(ran):
            ax.plot(
                100 * ran["fraction"], ran["ours_accuracy"], "-", color=colour, marker="o", label=f"{method} (ours)"
            )
    ax.set_xscale("log")
    ax.set_xlabel("training fraction f (%)")
    ax.set_ylabel("mean top-1 accuracy (%)")
    ax.set_title(title if len(average.dropna(subset=["ours_accuracy"])) else f"{title} (ours: not run)")
    ax.legend(fontsize=7)
    save_figure(fig, path_stem)
    plt.close(fig)
    return long


def _at_selected_points(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The runs of `df` at their `keys` group's selected grid point, one row per seed, with `selected_on`: the point
    with the best validation score, or the best test accuracy where a group has no validation score."""
    if "val_score" not in df:
        df = df.assign(val_score=df["val_accuracy"] if "val_accuracy" in df else np.nan)
    has_validation = df.groupby(keys, dropna=False)["val_score"].transform(lambda v: v.notna().all())
    chosen = pd.concat(
        [
            select(df[has_validation], keys, "val_score").assign(selected_on=VALIDATION),
            select(df[~has_validation], keys, "accuracy").drop(columns="accuracy").assign(selected_on=TEST),
        ]
    )
    return df.merge(chosen[[*keys, *GRID, "selected_on"]], on=[*keys, *GRID])


def text_classification_table(ours: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per method (in the order of `methods`) and training fraction: the test accuracy (mean ± std over seeds) at
    the selected grid point, the point itself, the mean final training loss; one row per (method, fraction)."""
    best = best_of_grid(ours, ["method", "fraction"])
    rows = []
    for method in methods:
        group = best[best["method"] == method]
        runs_of = ours[ours["method"] == method]
        for _, cell in group.sort_values("fraction").iterrows():
            seconds = runs_of[runs_of["fraction"] == cell["fraction"]]["seconds"].sum()
            rows.append(
                {
                    "method": METHOD_NAMES.get(method, method),
                    "fraction": cell["fraction"],
                    "accuracy": cell["accuracy"],
                    "std": cell["std"],
                    "seeds": int(cell["seeds"]),
                    "learning_rate": cell["learning_rate"],
                    "weight_decay": cell["weight_decay"],
                    "selected_on": cell["selected_on"],
                    "final_loss": cell["final_loss"],
                    "adapter + head params": int(cell["trainable_params"]),
                    "CPU minutes (all grid points)": seconds / 60,
                }
            )
    return pd.DataFrame(rows)


def text_classification_wide(long: pd.DataFrame, value: str) -> pd.DataFrame:
    """One row per method, one column per fraction: accuracy cells "mean ± std (lr, wd)" or loss cells."""
    rows = []
    several_wd = long["weight_decay"].nunique() > 1
    for method, group in long.groupby("method", sort=False):
        row = {"method": method}
        for _, cell in group.iterrows():
            if value == "accuracy":
                point = f"lr {cell['learning_rate']:g}" + (f", wd {cell['weight_decay']:g}" if several_wd else "")
                spread = "" if np.isnan(cell["std"]) else f" ± {cell['std']:.1f}"
                text = f"{cell['accuracy']:.1f}{spread} ({point})"
            else:
                text = f"{cell['final_loss']:.3f}"
            row[f"f = {100 * cell['fraction']:g}%"] = text
        row["seeds"] = int(group["seeds"].min())
        row["adapter + head params"] = int(group["adapter + head params"].iloc[0])
        if value == "accuracy":
            row["CPU minutes"] = f"{group['CPU minutes (all grid points)'].sum():.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(ours: pd.DataFrame, methods: list[str], reference: str = "lora") -> pd.DataFrame:
    """Per method and fraction: the test accuracy minus `reference`'s, seed by seed (the runs of one seed train on
    the same rows in the same order), each at its selected grid point: mean and 95 % t-interval over seeds."""
    at = (
        _at_selected_points(ours, ["method", "fraction"])
        .set_index(["method", "fraction", "seed"])["accuracy"]
        .sort_index()
    )
    rows = []
    for method in methods:
        if method == reference:
            continue
        for fraction in sorted(ours["fraction"].unique()):
            try:
                diff = (at.loc[method, fraction] - at.loc[reference, fraction]).dropna()
            except KeyError:
                continue
            n = len(diff)
            half = stats.t.ppf(0.975, n - 1) * diff.std() / np.sqrt(n) if n > 1 else np.nan
            rows.append(
                {
                    "method": METHOD_NAMES.get(method, method),
                    "fraction": fraction,
                    "difference": diff.mean(),
                    "low": diff.mean() - half,
                    "high": diff.mean() + half,
                    "seeds": n,
                }
            )
    return pd.DataFrame(rows)


def vtab_group_averages(ours: pd.DataFrame, paper_csv: Path, rows: dict[str, str | None]) -> pd.DataFrame:
    """The VTAB-1K group averages (Natural, Specialized, Structured, and the mean of the three, as HyRA Table 1
    prints) beside the paper's: ours only where every task of the group ran."""
    from common.data.vision import VTAB_GROUPS

    paper = pd.read_csv(paper_csv, dtype=str)
    best = best_of_grid(ours[ours["fraction"] == 1.0], ["method", "dataset"]) if not ours.empty else pd.DataFrame()
    out = []
    for paper_method, method in rows.items():
        mine = best[best["method"] == method] if method and len(best) else pd.DataFrame(columns=["dataset"])
        means = {}
        for group in ("natural", "specialized", "structured"):
            tasks = [task for task, g in VTAB_GROUPS.items() if g == group]
            ran = mine[mine["dataset"].isin(tasks)]
            means[group.capitalize()] = ran["accuracy"].mean() if len(ran) == len(tasks) else np.nan
        means["ALL"] = np.mean(list(means.values()))  # NaN unless every group ran
        for group, value in means.items():
            printed = paper[(paper["method"] == paper_method) & (paper["group"] == group)]["value"]
            ours_text = NOT_IMPLEMENTED if method is None else NOT_RUN if np.isnan(value) else f"{value:.2f}"
            out.append({"method": paper_method, "group": group, "paper": printed.iloc[0] if len(printed) else "",
                        "ours": ours_text})  # fmt: skip
    return pd.DataFrame(out)


def write_paper_tables(tables: dict[str, list[PaperTable]], results_dir: str | Path, out_dir: Path) -> None:
    """Every table of `tables` ({experiment: tables its runs fill}), printing how many of its cells we ran."""
    for experiment, experiment_tables in tables.items():
        ours = collect(results_dir, experiment)
        for table in experiment_tables:
            long = write_paper_table(ours, table, out_dir)
            ran = (~long["ours"].isin([NOT_RUN, NOT_IMPLEMENTED])).sum()
            print(f"{table.name}: {ran} of {len(long)} cells run")


def write_text_classification(text_results_dir: str | Path, methods: list[str], out_dir: Path) -> None:
    """The CPU-scale text classification of `methods`: accuracy and training-loss tables (selected grid point per
    cell), the differences to LoRA with 95 % intervals, and the figure."""
    ours = collect(text_results_dir, "text_classification")
    if not ours.empty:
        ours = ours[ours["method"].isin(methods)]
    if ours.empty:
        print(f"text classification: no finished runs under {text_results_dir}/text_classification")
        return
    long = text_classification_table(ours, methods)
    write_table(long, out_dir / "text_classification_minilm_long")
    write_table(text_classification_wide(long, "accuracy"), out_dir / "text_classification_minilm")
    write_table(text_classification_wide(long, "final_loss"), out_dir / "text_classification_minilm_train_loss")
    for reference in ("lora", "lora_matched"):
        if reference not in methods or reference not in set(ours["method"]):
            continue
        diff = paired_differences(ours, methods, reference)
        cells = [f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in zip(diff["difference"], diff["low"], diff["high"],
                                                                         strict=True)]  # fmt: skip
        wide_diff = diff.assign(cell=cells).pivot(index="method", columns="fraction", values="cell")
        wide_diff = wide_diff.loc[diff["method"].unique()]
        wide_diff.columns = [f"f = {100 * f:g}%" for f in wide_diff.columns]
        write_table(wide_diff.reset_index(), out_dir / f"text_classification_minilm_minus_{reference}")
    curves = sample_efficiency(ours, methods, ["all"])
    plot_sample_efficiency(curves, "all", out_dir / "text_classification_minilm", "MiniLM, WordNet supersenses")


def grid_table(ours: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Every grid point of `methods` per fraction: validation and test accuracy and final training loss (means over
    the seeds it ran), and which point the validation accuracy selects."""
    ours = ours[ours["method"].isin(methods)]
    best = best_of_grid(ours, ["method", "fraction"])
    chosen = set(zip(best["method"], best["fraction"], best["learning_rate"], best["weight_decay"], strict=True))
    rows = []
    for (method, fraction, lr, wd), group in ours.groupby(["method", "fraction", *GRID], sort=False):
        rows.append(
            {
                "method": METHOD_NAMES.get(method, method), "fraction": fraction, "learning_rate": lr,
                "weight_decay": wd, "seeds": group["seed"].nunique(), "val_accuracy": group["val_accuracy"].mean(),
                "accuracy": group["accuracy"].mean(), "final_loss": group["final_loss"].mean(),
                "selected": "yes" if (method, fraction, lr, wd) in chosen else "",
            }
        )  # fmt: skip
    order = {m: i for i, m in enumerate(METHOD_NAMES.get(m, m) for m in methods)}
    return pd.DataFrame(rows).sort_values(["method", "fraction", *GRID], key=lambda c: c.map(order) if c.name ==
                                          "method" else c).reset_index(drop=True)  # fmt: skip


def write_text_grid(
    text_results_dir: str | Path, methods: list[str], path_stem: Path, fractions: list[float] | None = None
) -> None:
    """`grid_table` of the text-classification runs of `methods` (at `fractions`; None: all), if any ran."""
    ours = collect(text_results_dir, "text_classification")
    if fractions is not None and not ours.empty:
        ours = ours[ours["fraction"].isin(fractions)]
    if ours.empty or not ours["method"].isin(methods).any():
        print(f"text classification: no runs of {methods} under {text_results_dir}/text_classification")
        return
    write_table(grid_table(ours, methods), path_stem, float_format="%.4g")
