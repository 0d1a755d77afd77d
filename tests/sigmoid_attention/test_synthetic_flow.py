"""The sigmoid-attention experiments end to end: config errors, smoke sweep -> figures, kill -9 and resume."""

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from common.config import ConfigError, load_config
from common.manifest import load_figures
from common.runs import read_run
from common.synthetic import diagnostics, figures, report
from sigmoid_attention import synthetic

PANELS = load_figures("sigmoid_attention").panels

CONFIGS = Path(synthetic.__file__).parent / "configs"
ROOT = Path(synthetic.__file__).parents[1]
# Smaller still than the smoke configs: the tests check the flow, not the rates.
TINY = [
    "sample_sizes=[200,400,800]",
    "replicates=2",
    "dim=2",
    "num_true=3",
    "test_size=2000",
    "best_approximation_size=4000",
    "fit.max_iter=20",
]


def tiny_config(panel, results_dir, extra=()):
    num_atoms = "num_atoms=[4,3]" if panel.startswith("fig1") else "num_atoms=[3,4]"
    return load_config(
        synthetic.Config,
        CONFIGS / f"{panel}_smoke.yaml",
        [*TINY, num_atoms, f"results_dir={results_dir}", *extra],
    )


@pytest.mark.parametrize(
    "override,message",
    [
        ("num_expertz=3", "num_expertz"),
        ("replicates=many", "replicates"),
        (
            "curves=[{gate: softmax, expert: quadratic}]",
            "config field 'curves[0].expert' = 'quadratic' is not allowed: one of linear, relu, gelu, polynomial",
        ),
        (
            "curves=[{gate: tanh}]",
            "config field 'curves[0].gate' = 'tanh' is not allowed: one of softmax, sigmoid",
        ),
        (
            "num_atoms=[3]",
            "config field 'num_atoms' = [3] is not allowed: a non-empty list of fitted atom counts "
            "N >= num_true (N* = 4)",
        ),
        (
            "sample_sizes=[500,0]",
            "config field 'sample_sizes' = [500, 0] is not allowed: at least two positive",
        ),
        ("curves=[{gate: sigmoid, loss: softmax_l1}]", "curves[0].loss"),
        ("score=quadratic_monomial", "config field 'score' = 'quadratic_monomial' is not allowed"),
        ("min_active_fraction=1.5", "config field 'min_active_fraction' = 1.5 is not allowed: a number in [0, 1)"),
        ("fit.gram_rows=0", "config field 'fit.gram_rows' = 0 is not allowed: a positive number of rows"),
    ],
)
def test_bad_config_fails_naming_field_value_and_allowed(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / "fig1a_smoke.yaml", [override])


def test_bad_config_fails_before_any_work(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sigmoid_attention.synthetic",
            "--config",
            str(CONFIGS / "fig1a_smoke.yaml"),
            "num_atoms=[2]",
            f"results_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2 and "num_atoms" in result.stderr
    assert not any(tmp_path.iterdir())


def test_all_smoke_panels_run_and_draw(tmp_path):
    for panel in PANELS:
        synthetic.Synthetic.main(tiny_config(panel, tmp_path))
    # the figures read the same configs: point them at the tiny sweep through the panel loader
    original = figures.panel_config
    figures.panel_config = lambda paper, panel, variant, results_dir=None: tiny_config(panel, tmp_path)
    try:
        figures.main(
            figures.FiguresConfig(
                paper="sigmoid_attention", variant="smoke", out_dir=str(tmp_path / "figs"), minimax=False
            )
        )
    finally:
        figures.panel_config = original
    for panel in PANELS:
        assert (tmp_path / "figs" / f"{panel}.pdf").stat().st_size > 0
        assert (tmp_path / "figs" / f"{panel}.png").stat().st_size > 0
    slopes = pd.read_csv(tmp_path / "figs" / "slopes.csv")
    assert {"figure", "curve", "slope", "ci_low", "ci_high", "paper_slope"} <= set(slopes.columns)
    drawn = slopes[slopes.drawn]
    # two curves per panel, each fitted by the estimator and both readings of the paper protocol, with the paper's slope
    assert len(drawn) == 8 * 3 and drawn.paper_slope.notna().all()
    assert sorted(drawn.fit.unique()) == ["least_squares", "paper_full_batch", "paper_minibatch"]
    assert (slopes.ci_low <= slopes.ci_high).all()

    # the per-atom split of the drawn losses reads the same points and adds up to the stored loss
    original = figures.panel_config
    figures.panel_config = lambda paper, panel, variant, results_dir=None: tiny_config(panel, tmp_path)
    try:
        diagnostics.main(diagnostics.DiagnosticsConfig(paper="sigmoid_attention", variant="smoke", tables=["cells"]))
    finally:
        figures.panel_config = original
    cells = pd.read_csv(tmp_path / "diagnostics" / "smoke" / "cells.csv")
    # both settings N = 3, 4 of the six curves; sigmoid dense at N = 4: the 4 atoms of G-bar, else the N* = 3 atoms
    assert len(cells) == 2 * (3 + 4) + 4 * (3 + 3)
    assert set(cells.curve) == {
        f"{g} {e} {r}" for g, e, r in [(g, e, "dense") for g in ("softmax", "sigmoid") for e in ("relu", "linear")]
    } | {"sigmoid relu sparse", "sigmoid linear sparse"}
    for (curve, _), group in cells.groupby(["curve", "N"]):
        assert group.share_last_n.sum() == pytest.approx(1, abs=1e-3), curve
    cfg = tiny_config("fig2a", tmp_path)
    stored = read_run(synthetic.Synthetic.point_dir(cfg, synthetic.Point(0, 3, 800)))["arrays"]["sigmoid_l1"].mean()
    relu = cells[(cells.curve == "sigmoid relu sparse") & (cells.N == 3)]
    assert relu.last_n.sum() == pytest.approx(stored, rel=2e-3)
    assert relu.constant_gate.sum() == 2  # the sparse regime's two zero-gate atoms


def test_figures_report_missing_points(tmp_path, capsys):
    with pytest.raises(SystemExit):
        figures.main(
            figures.FiguresConfig(
                paper="sigmoid_attention", variant="smoke", panels=["fig2b"], results_dir=str(tmp_path), minimax=False
            )
        )
    assert "sweep points are missing" in capsys.readouterr().err


def test_killed_sweep_resumes_only_missing_points_with_identical_results(tmp_path):
    args = [
        sys.executable,
        "-m",
        "sigmoid_attention.synthetic",
        "--config",
        str(CONFIGS / "fig2b_smoke.yaml"),
        *TINY,
        "num_atoms=[3]",
    ]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen(
        [*args, f"results_dir={killed}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while len(list(killed.glob("points/*/results.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(killed.glob("points/*/results.json")))
    assert 2 <= done_before < 18, "kill the sweep half-way"  # 2 curves x 3 sizes x 3 fits
    resumed = subprocess.run([*args, f"results_dir={killed}"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert f"{done_before} of 18 points already done" in resumed.stdout
    assert resumed.stdout.count(" n=") == 18 - done_before  # only the missing points were computed
    subprocess.run([*args, f"results_dir={clean}"], cwd=ROOT, capture_output=True, check=True)

    def sweep_values(path):
        overrides = [*TINY, "num_atoms=[3]", f"results_dir={path}"]
        cfg = load_config(synthetic.Config, CONFIGS / "fig2b_smoke.yaml", overrides)
        return [report.collect(cfg, c, 3, "sigmoid_l3", f).values for c in range(2) for f in range(3)]

    for resumed_values, clean_values in zip(sweep_values(killed), sweep_values(clean), strict=True):
        assert (resumed_values == clean_values).all()


def test_launcher_dry_run_lists_pending_points(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "slurm.submit",
            "sigmoid_attention.synthetic",
            "--config",
            str(CONFIGS / "fig1a_smoke.yaml"),
            f"results_dir={tmp_path}",
            "--cluster",
            "debug",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "48" in result.stdout and not any(tmp_path.glob("points/*"))  # 16 points x 3 fits


def test_the_sweep_counts_fitted_points_and_replicates_in_plain_lines(tmp_path, capsys):
    cfg = tiny_config("fig1a", tmp_path)
    synthetic.Synthetic.main(cfg)
    err = capsys.readouterr().err
    total = len(synthetic.Synthetic.sweep(cfg))
    lines = [line for line in err.splitlines() if line.startswith("[fig1a] fitted:")]
    assert len(lines) == total and "\r" not in err  # every point is a program of its own on the CPU
    assert lines[-1].startswith(f"[fig1a] fitted: {total}/{total} (100%)")
    assert f"replicates={total * cfg.replicates}" in lines[-1]
    synthetic.Synthetic.main(replace(cfg, results_dir=str(tmp_path / "quiet"), progress=False))
    assert capsys.readouterr().err == ""
