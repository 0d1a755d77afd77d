"""Training curves of several runs on one figure, read from their ``log.jsonl`` (it never trains).

    python -m common.curves runs=[records/quadratic_gating/timeseries/*] out=results/quadratic_gating/curves/etth1
        [label=[activation]] [where={fraction: 1.0}] [best=val_accuracy] [metrics=[loss]] [smooth=1]

``runs``: run directories or glob patterns. Each logged metric (``loss``; the time series' ``train_mse`` and
``val_mse``; not the learning rate) gets one panel against the log's step (or epoch), and each label one line: the
mean over the runs that share it (seeds, by default: the label is every record field that differs between the runs
except ``seed``), with a band of +-1 standard deviation where there are several. ``where`` keeps the runs whose record
has the given values (dotted keys for nested fields); ``best`` draws, for each label, only the setting of the other
differing fields with the highest mean of that result (``best=-val_loss``: the lowest), as a grid search selects it.
``smooth``: a running mean over that many logged points. Writes ``<out>.{pdf,png}`` and ``<out>.csv`` (label, metric,
x, mean, std, runs).
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from common.config import ConfigError, cli_config, flatten
from common.plotting import save_figure, use_house_style
from common.runs import LOG_FILE, read_run

X_KEYS = ("step", "epoch")  # the first a log's entries have is the x axis
NOT_CURVES = ("lr",)


@dataclass
class CurvesConfig:
    runs: list[str] = field(default_factory=list)  # run directories or glob patterns
    out: str = ""  # the figure's path without suffix
    label: list[str] | None = None  # record fields that name a line; None: those that differ, except seed
    where: dict[str, Any] = field(default_factory=dict)  # keep runs whose record has these values
    best: str | None = None  # per label, the setting with the best mean of this result ("-name": the lowest)
    metrics: list[str] | None = None  # None: every logged metric
    smooth: int = 1  # running mean over this many logged points
    title: str | None = None

    def validate(self) -> None:
        if not self.runs:
            raise ConfigError.invalid("runs", self.runs, "run directories or glob patterns")
        if not self.out:
            raise ConfigError.invalid("out", self.out, "the figure's path without suffix")
        if self.smooth < 1:
            raise ConfigError.invalid("smooth", self.smooth, "a positive number of logged points")


@dataclass
class Run:
    path: Path
    record: dict[str, Any]  # flattened: dotted keys
    results: dict[str, Any]
    log: pd.DataFrame


def read_runs(patterns: list[str]) -> list[Run]:
    """The finished runs the patterns name, in sorted order; an error names a pattern that matches none."""
    paths: list[Path] = []
    for pattern in patterns:
        matched = sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
        matched = [p for p in matched if p.is_dir()]
        if not matched:
            raise ConfigError.invalid("runs", pattern, "run directories or patterns that match some")
        paths += matched
    runs = []
    for path in dict.fromkeys(paths):
        if not (path / LOG_FILE).is_file():
            raise ConfigError(f"run {path} has no {LOG_FILE}: not a training run, or not started")
        entries = [json.loads(line) for line in (path / LOG_FILE).read_text().splitlines() if line.strip()]
        run = read_run(path)
        record = {k: json.dumps(v) if isinstance(v, list) else v for k, v in flatten(run["config"]).items()}
        runs.append(Run(path, record, run.get("results") or {}, pd.DataFrame(entries)))
    return runs


def varying(runs: list[Run]) -> list[str]:
    """The record fields whose values differ between the runs, in record order."""
    keys = list(dict.fromkeys(k for run in runs for k in run.record))
    return [k for k in keys if len({json.dumps(run.record.get(k), sort_keys=True) for run in runs}) > 1]


def select(runs: list[Run], cfg: CurvesConfig) -> tuple[list[Run], list[str]]:
    """The runs ``where`` keeps and ``best`` selects, and the label fields."""
    for key, value in cfg.where.items():
        if not any(key in run.record for run in runs):
            raise ConfigError.invalid("where", key, f"a record field: {', '.join(runs[0].record)}")
        runs = [run for run in runs if run.record.get(key) == value]
    if not runs:
        raise ConfigError.invalid("where", cfg.where, "values that some run has")
    differ = varying(runs)
    label = cfg.label if cfg.label is not None else [k for k in differ if k != "seed"]
    unknown = [k for k in label if not any(k in run.record for run in runs)]
    if unknown:
        raise ConfigError.invalid("label", unknown, f"record fields: {', '.join(runs[0].record)}")
    if cfg.best:
        name, sign = cfg.best.lstrip("-"), -1.0 if cfg.best.startswith("-") else 1.0
        if any(name not in run.results for run in runs):
            raise ConfigError.invalid("best", cfg.best, f"a result of every run: {', '.join(runs[0].results)}")
        setting_keys = [k for k in differ if k not in label and k != "seed"]
        kept = []
        for _, group in _groups(runs, label).items():
            settings = _groups(group, setting_keys)
            chosen = max(settings.values(), key=lambda g: sign * np.mean([float(r.results[name]) for r in g]))
            kept += chosen
        runs = kept
    return runs, label


def _groups(runs: list[Run], keys: list[str]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(" ".join(f"{k.split('.')[-1]}={run.record.get(k)}" for k in keys), []).append(run)
    return groups


def curve_table(runs: list[Run], label: list[str], metrics: list[str] | None, smooth: int) -> pd.DataFrame:
    """Long table of the mean curves: label, metric, x, mean, std, runs."""
    rows = []
    for name, group in _groups(runs, label).items():
        for metric in metrics or _metrics(group):
            series = []
            for run in group:
                if metric not in run.log:
                    continue
                x_key = next(k for k in X_KEYS if k in run.log)
                frame = run.log.dropna(subset=[metric])
                values = frame[metric].rolling(smooth, min_periods=1).mean()
                series.append(pd.Series(values.to_numpy(), index=frame[x_key].to_numpy(), name=x_key))
            if not series:
                continue
            joined = pd.concat(series, axis=1)
            for x, values in joined.iterrows():
                values = values.dropna()
                std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
                rows.append({"label": name or "all runs", "metric": metric, "x_name": series[0].name, "x": x,
                             "mean": float(values.mean()), "std": std, "runs": len(values)})  # fmt: skip
    if not rows:
        raise ConfigError.invalid("metrics", metrics, "metrics the runs log")
    return pd.DataFrame(rows)


def _metrics(runs: list[Run]) -> list[str]:
    names = dict.fromkeys(c for run in runs for c in run.log.columns)
    return [n for n in names if n not in X_KEYS and n not in NOT_CURVES and pd.api.types.is_numeric_dtype(
        pd.concat([run.log[n] for run in runs if n in run.log]))]  # fmt: skip


def draw(table: pd.DataFrame, out: str | Path, title: str | None = None) -> list[Path]:
    use_house_style()
    metrics = list(dict.fromkeys(table.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for label, frame in table[table.metric == metric].groupby("label", sort=False):
            (line,) = ax.plot(frame.x, frame["mean"], label=label)
            if frame["std"].notna().any():
                ax.fill_between(frame.x, frame["mean"] - frame["std"], frame["mean"] + frame["std"],
                                color=line.get_color(), alpha=0.2, linewidth=0)  # fmt: skip
        ax.set_xlabel(frame.x_name.iloc[0])
        ax.set_ylabel(metric)
    axes[0][0].legend(fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    paths = save_figure(fig, out)
    plt.close(fig)
    return paths


def main(cfg: CurvesConfig) -> pd.DataFrame:
    runs, label = select(read_runs(cfg.runs), cfg)
    table = curve_table(runs, label, cfg.metrics, cfg.smooth)
    for path in draw(table, cfg.out, cfg.title):
        print(f"wrote {path}")
    csv = Path(f"{cfg.out}.csv")
    table.to_csv(csv, index=False)
    print(f"wrote {csv} ({len(runs)} runs, {table.label.nunique()} lines)")
    return table


if __name__ == "__main__":
    main(cli_config(CurvesConfig, description=__doc__))
