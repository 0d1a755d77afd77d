"""What drives the slopes of the papers' protocol: its start, its number of epochs and its learning rate.

The papers fit by gradient descent from a start near the truth for 10 epochs at learning rate 0.1 (QG App. F.1).
For every distinct drawn curve of a paper's panels and each reading of "epoch" (``paper_full_batch``,
``paper_minibatch``), this varies one setting at a time around that recipe (the start's perturbation scale
``init_scales``, ``epochs``, ``learning_rates``), fits every sample size and tabulates the slope of the drawn
loss with its bootstrap CI, the mean loss at the smallest and largest n, and how far the fits at the largest n
stopped from the least-squares estimator (``optimisation_error_last_n``, in units of its statistical error).
A slope that follows the start or the budget measures the optimiser, not the estimator.

Each setting's points are ordinary sweep points (stored by the hash of their record, skipped when done); with
``run=false`` the table is rebuilt from stored points only: settings with missing points are written with their
count of missing points instead of a slope, and the command exits 1. Writes ``<out_dir>/sensitivity.{csv,md}``
(one row per curve, reading and setting) and ``sensitivity_wide.{csv,md}`` (the slopes, one row per curve and
reading).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from common.config import ConfigError
from common.experiment import VARIANTS
from common.plotting import write_table
from common.synthetic.diagnostics import curve_name, distinct_curves
from common.synthetic.rates import fit_rate
from common.synthetic.report import collect
from common.synthetic.sweep import SweepConfig, fit_label, fits, is_done, run_point, sweep

READINGS = ("paper_full_batch", "paper_minibatch")
RECIPE = {"init_scale": 0.1, "epochs": 10, "learning_rate": 0.1}  # QG App. F.1 (the start: spec Sec. 2.5)


@dataclass
class SensitivityConfig:
    variant: str = "paper"  # which panel configs: paper | smoke
    results_dir: str | None = None  # None: the panels' own results_dir
    out_dir: str | None = None  # None: <results_dir>/figures/<variant>
    init_scales: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])
    epochs: list[int] = field(default_factory=lambda: [10, 100, 1000])
    learning_rates: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    readings: list[str] = field(default_factory=lambda: list(READINGS))
    sample_sizes: list[int] = field(default_factory=list)  # empty: the panels' own
    replicates: int | None = None  # None: the panels' own
    run: bool = True  # compute the missing points (false: tabulate stored points only)

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError.invalid("variant", self.variant, f"one of {', '.join(VARIANTS)}")
        if not self.readings or any(r not in READINGS for r in self.readings):
            raise ConfigError.invalid("readings", self.readings, f"a non-empty subset of {', '.join(READINGS)}")
        for name in ("init_scales", "epochs", "learning_rates"):
            if any(v <= 0 for v in getattr(self, name)):
                raise ConfigError.invalid(name, getattr(self, name), "positive values")
        if self.sample_sizes and (len(self.sample_sizes) < 2 or min(self.sample_sizes) <= 0):
            raise ConfigError.invalid("sample_sizes", self.sample_sizes, "at least two positive sizes, or [] (panels')")
        if self.replicates is not None and self.replicates <= 1:
            raise ConfigError.invalid("replicates", self.replicates, "an integer >= 2, or null (the panels')")

    def settings(self) -> list[tuple[str, float]]:
        """The recipe, then one setting at a time away from it."""
        varied = [("init_scale", v) for v in self.init_scales] + [("epochs", v) for v in self.epochs]
        varied += [("learning_rate", v) for v in self.learning_rates]
        return [("recipe", 0.0)] + [(name, v) for name, v in varied if v != RECIPE[name]]


def setting_config(cfg: SweepConfig, c: int, num_atoms: int, reading: str, setting, sens: SensitivityConfig):
    """One curve of a panel fitted by one reading of the paper protocol, with one setting changed."""
    paper = [fit for fit in fits(cfg) if fit_label(fit) == reading]
    if not paper:
        raise ConfigError.invalid("readings", reading, f"a paper fit of panel {cfg.figure!r}: add it to other_fits")
    name, value = setting
    fit = paper[0]
    if name in ("epochs", "learning_rate"):
        fit = replace(fit, **{name: type(getattr(fit, name))(value)})
    return replace(
        cfg,
        curves=[cfg.curves[c]],
        num_atoms=[num_atoms],
        fit=fit,
        other_fits=[],
        init_scale=value if name == "init_scale" else cfg.init_scale,
        sample_sizes=list(sens.sample_sizes or cfg.sample_sizes),
        replicates=sens.replicates or cfg.replicates,
    )


def sensitivity_rows(panels: Sequence[SweepConfig], sens: SensitivityConfig) -> list[dict]:
    rows = []
    for cfg, c, num_atoms in distinct_curves(panels):
        curve = cfg.curves[c]
        for reading in sens.readings:
            for setting in sens.settings():
                changed = setting_config(cfg, c, num_atoms, reading, setting, sens)
                points = sweep(changed)
                if sens.run:
                    for point in points:
                        run_point(changed, point)
                missing = sum(not is_done(changed, p) for p in points)
                row = {
                    "figure": cfg.figure,
                    "curve": curve_name(cfg, curve),
                    "N": num_atoms,
                    "loss": curve.loss,
                    "fit": reading,
                    "varied": setting[0],
                    "value": np.nan if setting[0] == "recipe" else setting[1],
                    "paper_slope": np.nan if curve.paper_slope is None else curve.paper_slope,
                    "missing_points": missing,
                }
                if not missing:
                    collected = collect(changed, 0, num_atoms, curve.loss)
                    rate = fit_rate(changed.sample_sizes, collected.values)
                    row |= {
                        "slope": rate.slope,
                        "ci_low": rate.ci_low,
                        "ci_high": rate.ci_high,
                        "mean_first_n": float(collected.values[0].mean()),
                        "mean_last_n": float(collected.values[-1].mean()),
                        "optimisation_error_last_n": collected.optimisation_error,
                    }
                rows.append(row)
    return rows


def wide_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The slopes, one row per curve and reading, one column per setting (recipe first)."""
    frame = frame.assign(setting=[
        "recipe" if v == "recipe" else f"{v}={x:g}" for v, x in zip(frame["varied"], frame["value"], strict=True)
    ])  # fmt: skip
    wide = frame.pivot_table(index=["curve", "fit"], columns="setting", values="slope", sort=False, dropna=False)
    order = list(dict.fromkeys(frame["setting"]))
    wide = wide.reindex(columns=order).reset_index()
    paper = frame.groupby(["curve", "fit"], sort=False)["paper_slope"].first().reset_index(drop=True)
    wide.insert(2, "paper_slope", paper)
    return wide


def write_sensitivity(panels: Sequence[SweepConfig], sens: SensitivityConfig) -> pd.DataFrame:
    frame = pd.DataFrame(sensitivity_rows(panels, sens))
    out_dir = Path(sens.out_dir or Path(sens.results_dir or panels[0].results_dir) / "figures" / sens.variant)
    for path in write_table(frame, out_dir / "sensitivity", float_format="%.4g"):
        print(f"wrote {path}")
    for path in write_table(wide_table(frame), out_dir / "sensitivity_wide", float_format="%.2f")[1:]:
        print(f"wrote {path}")
    missing = int(frame["missing_points"].sum())
    if missing:
        print(f"{missing} points of the sensitivity settings are missing (rows without a slope)", file=sys.stderr)
        sys.exit(1)
    return frame
