"""Every paper's synthetic `smoke` configs, as shipped, run end to end through their figure script."""

import importlib
from pathlib import Path

import pandas as pd
import pytest

from common.config import load_config
from common.experiment import PAPERS


@pytest.mark.parametrize("paper", PAPERS)
def test_smoke_configs_run_and_draw(paper, tmp_path):
    synthetic = importlib.import_module(f"{paper}.synthetic")
    figures = importlib.import_module(f"{paper}.figures")
    configs = [Path(figures.CONFIG_DIR) / f"{panel}_smoke.yaml" for panel in figures.PANELS]  # one per panel
    drawn = 0
    for path in configs:
        cfg = load_config(synthetic.Config, path, [f"results_dir={tmp_path}"])
        synthetic.Synthetic.main(cfg)
        drawn += len(cfg.curves) * (1 + len(cfg.other_fits))  # one line per curve and fit
    if hasattr(figures, "minimax"):  # the minimax envelope of the paper's slow-rate theorem
        minimax = figures.minimax
        minimax.Minimax.main(
            load_config(minimax.Config, Path(figures.CONFIG_DIR) / "minimax_smoke.yaml", [f"results_dir={tmp_path}"])
        )
    figures.main(figures.FiguresConfig(variant="smoke", results_dir=str(tmp_path)))
    out = tmp_path / "figures" / "smoke"
    for panel in figures.PANELS:
        assert (out / f"{panel}.pdf").stat().st_size > 0 and (out / f"{panel}.png").stat().st_size > 0
    slopes = pd.read_csv(out / "slopes.csv")
    assert int(slopes.drawn.sum()) == drawn
    assert slopes.slope.notna().all()
    assert set(slopes.fit) <= {"least_squares", "paper_full_batch", "paper_minibatch"}
    if hasattr(figures, "minimax"):
        envelope = pd.read_csv(out / "minimax_slopes.csv").query("split == 'sup'")
        assert len(envelope) > 0 and envelope.slope.notna().all() and (out / "minimax.png").stat().st_size > 0
