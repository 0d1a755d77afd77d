"""The sensitivity of the paper protocol's slopes: one setting at a time, stored as ordinary sweep points."""

import re

import pandas as pd
import pytest

from common.config import ConfigError, load_config
from common.synthetic import figures, report
from common.synthetic.sensitivity import SensitivityConfig, setting_config
from sigmoid_attention import sensitivity, synthetic
from tests.sigmoid_attention.test_synthetic_flow import CONFIGS, tiny_config


def test_one_setting_at_a_time_and_the_recipe_is_the_panels_own_paper_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(
        sensitivity,
        "panel_configs",
        lambda paper, variant, results_dir=None: [("fig2a", tiny_config("fig2a", tmp_path))],
    )
    sens = SensitivityConfig(variant="smoke", init_scales=[0.1, 0.3], epochs=[10, 20], learning_rates=[0.1])
    assert sens.settings() == [("recipe", 0.0), ("init_scale", 0.3), ("epochs", 20.0)]
    sensitivity.main(sens)
    table = pd.read_csv(tmp_path / "figures" / "smoke" / "sensitivity.csv")
    assert len(table) == 2 * 2 * 3  # two curves (ReLU, linear at N = N*), two readings, three settings
    assert (table.missing_points == 0).all() and table.slope.notna().all()
    # the recipe rows are the panel's own paper-protocol points
    cfg = tiny_config("fig2a", tmp_path)
    own = report.collect(cfg, 0, 3, "sigmoid_l1", 2).values.mean(1)  # ReLU, paper minibatch
    recipe = table.query("varied == 'recipe' and fit == 'paper_minibatch'").iloc[0]
    assert recipe.mean_first_n == pytest.approx(own[0], rel=1e-3) and recipe.mean_last_n == pytest.approx(
        own[-1], rel=1e-3
    )
    # twice the epochs move the minibatch fits further; a three times larger start moves the full-batch loss up
    minibatch = table[(table.fit == "paper_minibatch") & (table.curve == "sigmoid relu sparse")]
    assert minibatch.query("varied == 'epochs'").mean_last_n.item() != recipe.mean_last_n
    full = table[(table.fit == "paper_full_batch") & (table.curve == "sigmoid relu sparse")].set_index("varied")
    assert full.loc["init_scale", "mean_last_n"] > 2 * full.loc["recipe", "mean_last_n"]
    wide = (tmp_path / "figures" / "smoke" / "sensitivity_wide.md").read_text()
    assert "init_scale=0.3" in wide and "epochs=20" in wide
    # rebuilt from the stored points alone
    sensitivity.main(
        SensitivityConfig(variant="smoke", init_scales=[0.1, 0.3], epochs=[10, 20], learning_rates=[0.1], run=False)
    )
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "figures" / "smoke" / "sensitivity.csv"), table)


def test_a_reading_the_panel_does_not_fit_fails_naming_it(tmp_path):
    cfg = tiny_config("fig2a", tmp_path, ["other_fits=[{method: paper}]"])
    with pytest.raises(ConfigError, match="'readings' = 'paper_minibatch'"):
        setting_config(cfg, 0, 3, "paper_minibatch", ("recipe", 0.0), SensitivityConfig())


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "other_fits=[{method: adam}]",
            "config field 'other_fits[0].method' = 'adam' is not allowed: one of least_squares, paper",
        ),
        ("other_fits=[{method: paper, epochs: 0}]", "config field 'other_fits[0].epochs' = 0 is not allowed"),
        ("other_fits=[{method: paper, batch_size: -1}]", "config field 'other_fits[0].batch_size' = -1 is not allowed"),
        ("fit.learning_rate=0", "config field 'fit.learning_rate' = 0.0 is not allowed"),
        ("other_fits=[{method: paper}, {method: paper, epochs: 5}]", "fits with different labels"),
    ],
)
def test_bad_fits_fail_naming_the_field(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(synthetic.Config, CONFIGS / "fig1a_smoke.yaml", [override])


def test_bad_sensitivity_config():
    with pytest.raises(ConfigError, match="'readings' = \\['adam'\\]"):
        SensitivityConfig(readings=["adam"]).validate()
    assert figures.FiguresConfig(paper="sigmoid_attention", panels=["demo"]).selected() == ["demo"]
