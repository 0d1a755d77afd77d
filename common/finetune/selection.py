"""The grid search of the fine-tuning experiments, selected on validation data only.

The papers tune the learning rate x weight decay per method (RepLoRA App. D, HyRA App. C.1):

    PAPER_LEARNING_RATES = 1e-3, 5e-3, 1e-2, 5e-2, 1e-1;   PAPER_WEIGHT_DECAYS = 1e-4, 5e-4, 1e-3, 1e-2, 1e-1

A run evaluates on a validation split carved from the training data and on the test split; `select` picks each
group's grid point from the validation score alone, and the tables report the test accuracy of that point only.
Where the grid is too costly to search at every (fraction, seed), `GridAt` searches it at one fraction and some
seeds and carries each method's selected point to the rest (a staged sweep: its second stage is known once the
first is done).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from common.config import ConfigError

PAPER_LEARNING_RATES = [1e-3, 5e-3, 1e-2, 5e-2, 1e-1]
PAPER_WEIGHT_DECAYS = [1e-4, 5e-4, 1e-3, 1e-2, 1e-1]
GRID = ["learning_rate", "weight_decay"]
VALIDATION, TEST = "validation", "test (no validation split)"


@dataclass
class GridAt:
    """Where the grid is searched: ``fraction`` 0 means at every (fraction, seed) of the sweep; otherwise only at
    this fraction and these seeds, every other point then running at its method's selected grid point."""

    fraction: float = 0.0
    seeds: list[int] = field(default_factory=lambda: [0])

    def validate(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ConfigError.invalid("grid_at.fraction", self.fraction, "0 (every point) or a fraction in (0, 1]")
        if self.fraction and not self.seeds:
            raise ConfigError.invalid("grid_at.seeds", self.seeds, "at least one seed")


@dataclass(frozen=True)
class GridPoint:
    """One fine-tuning run: a method at one learning rate and weight decay of the grid, from one seed (the sweep
    point of the entry points whose sweep is just that: video, vision-language)."""

    method: str
    seed: int
    learning_rate: float
    weight_decay: float


def grid_points(cfg: Any) -> list[GridPoint]:
    """Every method x seed x learning rate x weight decay of ``cfg``, the methods of one grid point together."""
    return [
        GridPoint(method, seed, lr, wd)
        for lr in cfg.learning_rates
        for wd in cfg.weight_decays
        for seed in cfg.seeds
        for method in cfg.methods
    ]


def check_grid(learning_rates: list[float], weight_decays: list[float], seeds: list[int] | None = None) -> None:
    if seeds is not None and not seeds:
        raise ConfigError.invalid("seeds", seeds, "at least one seed")
    if not learning_rates or any(not lr > 0 for lr in learning_rates):
        raise ConfigError.invalid("learning_rates", learning_rates, "one or more learning rates > 0")
    if not weight_decays or any(wd < 0 for wd in weight_decays):
        raise ConfigError.invalid("weight_decays", weight_decays, "one or more weight decays >= 0")


def select(runs: pd.DataFrame, keys: list[str], score: str = "val_accuracy") -> pd.DataFrame:
    """Per ``keys`` group of ``runs`` (columns: keys, learning_rate, weight_decay, seed, score): the grid point with
    the best mean ``score`` over the seeds that every grid point of the group ran, ties to the smallest learning
    rate, then weight decay. Only the ``score`` column is read to choose. Columns: keys, learning_rate,
    weight_decay, score (the selected point's mean) and grid_points (how many were compared)."""
    rows = []
    for group_key, group in runs.groupby(keys, dropna=False, sort=True):
        key = dict(zip(keys, group_key if isinstance(group_key, tuple) else (group_key,), strict=True))
        seeds = group.groupby(GRID)["seed"].apply(set)
        common = set.intersection(*seeds)
        scored = group[group["seed"].isin(common)] if common else group
        means = scored.groupby(GRID)[score].mean().sort_index()
        if means.isna().all():
            raise ConfigError(f"no {score} to select on for {key}")
        learning_rate, weight_decay = means.idxmax()
        rows.append(
            {
                **key,
                "learning_rate": learning_rate,
                "weight_decay": weight_decay,
                score: means.max(),
                "grid_points": len(means),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, *GRID, score, "grid_points"])
