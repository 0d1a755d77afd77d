"""The house figure style, log-log convergence-rate plots, and figure/table files written next to each other.

A figure script reads saved results, builds `RateCurve`s, and writes

    use_house_style()
    fig, ax = plt.subplots()
    plot_rate_curves(ax, curves)
    save_figure(fig, "results/figures/fig1a")          # fig1a.pdf + fig1a.png
    write_table(frame, "results/tables/fig1a_slopes")  # fig1a_slopes.csv + fig1a_slopes.md
"""

from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from common.runs import atomic_open, atomic_write_text

FIGURE_FORMATS = ("pdf", "png")
PNG_DPI = 200
# Lower error-bar ends are clipped to this fraction of the mean: mean - k*SD can be negative on a log axis.
ERRORBAR_FLOOR = 0.01

HOUSE_STYLE = {
    "figure.figsize": (4.8, 3.6),
    "figure.dpi": 100,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "legend.frameon": False,
    "savefig.bbox": "tight",
    # TrueType fonts in pdf/ps: text stays editable and journals accept the files.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}


def use_house_style() -> None:
    """Set matplotlib's rcParams to the house style shared by every paper's figures."""
    mpl.rcParams.update(HOUSE_STYLE)


@dataclass
class RateCurve:
    """Per-replicate losses over sample sizes and the fitted line log(mean) = intercept + slope * log(n)."""

    label: str
    sample_sizes: np.ndarray  # (K,)
    values: np.ndarray  # (K, R) one loss per sample size and replicate
    slope: float
    intercept: float
    color: str | None = None  # None: the curve's index in the plot's colour cycle
    marker: str = "o"
    filled: bool = True  # open markers set off a second kind of curve (e.g. another fit of the same model)

    def __post_init__(self) -> None:
        self.sample_sizes = np.asarray(self.sample_sizes, dtype=float)
        self.values = np.asarray(self.values, dtype=float)
        if self.sample_sizes.ndim != 1 or self.values.ndim != 2 or len(self.values) != len(self.sample_sizes):
            raise ValueError(
                f"RateCurve '{self.label}': sample_sizes must have shape (K,) and values (K, R); "
                f"got {self.sample_sizes.shape} and {self.values.shape}"
            )


def plot_rate_curves(ax: Axes, curves: list[RateCurve], error_sd: float = 3.0, ylabel: str = "Voronoi loss") -> None:
    """Log-log plot of mean loss vs n with +-error_sd SD error bars and each fitted line dash-dotted."""
    for index, curve in enumerate(curves):
        color = curve.color or f"C{index}"
        mean = curve.values.mean(axis=1)  # (K,)
        replicates = curve.values.shape[1]
        sd = curve.values.std(axis=1, ddof=1) if replicates > 1 else np.zeros_like(mean)  # (K,)
        lower = np.maximum(mean - error_sd * sd, ERRORBAR_FLOOR * mean)
        ax.errorbar(
            curve.sample_sizes,
            mean,
            yerr=np.stack([mean - lower, error_sd * sd]),  # (2, K)
            fmt=curve.marker,
            color=color,
            markerfacecolor=color if curve.filled else "white",
            capsize=2.5,
            elinewidth=1.0,
            label=f"{curve.label}: $n^{{{curve.slope:.2f}}}$",
        )
        fitted = np.exp(curve.intercept + curve.slope * np.log(curve.sample_sizes))
        ax.plot(curve.sample_sizes, fitted, linestyle="-." if curve.filled else ":", color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_sample_sizes(ax, np.concatenate([curve.sample_sizes for curve in curves]))
    ax.set_xlabel("sample size $n$")
    ax.set_ylabel(ylabel)
    ax.legend()


def compact_count(n: float) -> str:
    """1000 -> '1k', 21544 -> '22k', 100000 -> '100k', 2e6 -> '2M', 500 -> '500'."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.2g}{suffix}" if n < 10 * scale else f"{n / scale:.0f}{suffix}"
    return f"{n:.0f}"


def label_sample_sizes(ax: Axes, sample_sizes: np.ndarray) -> None:
    """x tick labels that never overlap: powers of ten only; on a grid spanning less than two of them, the grid's
    own sizes in compact form (1k, 2k, 4k) on every other one when there are many."""
    ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    low, high = float(np.min(sample_sizes)), float(np.max(sample_sizes))
    if np.floor(np.log10(high)) - np.ceil(np.log10(low)) >= 1:
        return
    sizes = np.unique(sample_sizes)
    sizes = sizes[:: max(1, int(np.ceil(len(sizes) / 6)))]
    ax.set_xticks(sizes, [compact_count(n) for n in sizes])


def save_figure(fig: Figure, path_stem: str | Path) -> list[Path]:
    """Write `fig` to path_stem.pdf and path_stem.png (dpi 200) atomically; returns the two paths."""
    paths = [Path(f"{path_stem}.{fmt}") for fmt in FIGURE_FORMATS]
    for path, fmt in zip(paths, FIGURE_FORMATS, strict=True):
        with atomic_open(path, "wb") as file:
            fig.savefig(file, format=fmt, dpi=PNG_DPI)
    return paths


def _markdown_cell(value: object, float_format: str) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else float_format % value
    return str(value).replace("|", "\\|")


def markdown_table(df: pd.DataFrame, float_format: str = "%.3f") -> str:
    """`df` as a markdown pipe table (columns only, no index); numeric columns are right-aligned."""
    header = [str(column).replace("|", "\\|") for column in df.columns]
    align = ["---:" if pd.api.types.is_numeric_dtype(df[column]) else "---" for column in df.columns]
    rows = [[_markdown_cell(value, float_format) for value in row] for row in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, align, *rows]) + "\n"


def write_table(df: pd.DataFrame, path_stem: str | Path, float_format: str = "%.3f") -> list[Path]:
    """Write `df` to path_stem.csv and path_stem.md (markdown) atomically; returns the two paths."""
    csv_path, md_path = Path(f"{path_stem}.csv"), Path(f"{path_stem}.md")
    atomic_write_text(csv_path, df.to_csv(index=False, float_format=float_format))
    atomic_write_text(md_path, markdown_table(df, float_format))
    return [csv_path, md_path]
