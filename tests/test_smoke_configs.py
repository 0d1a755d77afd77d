"""Every paper's synthetic `smoke` configs, as shipped, run end to end through their figure script."""

import pandas as pd
import pytest

from common.experiment import PAPERS, registered_in
from common.manifest import load_figures, load_manifest
from common.synthetic import figures


@pytest.mark.parametrize("paper", PAPERS)
def test_smoke_configs_run_and_draw(paper, tmp_path):
    table, entries = load_figures(paper), load_manifest(paper)
    drawn = 0
    for name in [*table.panels, *([table.minimax] if table.minimax else [])]:  # one config per panel, the envelope
        cfg = figures.panel_config(paper, name, "smoke", str(tmp_path))
        registered_in(entries[name].module).main(cfg)
        if name in table.panels:
            drawn += len(cfg.curves) * (1 + len(cfg.other_fits))  # one line per curve and fit
    figures.main(figures.FiguresConfig(paper=paper, variant="smoke", results_dir=str(tmp_path)))
    out = tmp_path / "figures" / "smoke"
    for panel in table.panels:
        assert (out / f"{panel}.pdf").stat().st_size > 0 and (out / f"{panel}.png").stat().st_size > 0
    slopes = pd.read_csv(out / "slopes.csv")
    assert int(slopes.drawn.sum()) == drawn
    assert slopes.slope.notna().all()
    assert set(slopes.fit) <= {"least_squares", "paper_full_batch", "paper_minibatch"}
    if table.minimax:  # the minimax envelope of the paper's slow-rate theorem
        envelope = pd.read_csv(out / "minimax_slopes.csv").query("split == 'sup'")
        assert len(envelope) > 0 and envelope.slope.notna().all() and (out / "minimax.png").stat().st_size > 0
