"""The fair-comparison protocol: grid points chosen on validation data only, staged grids, variants and
parameter-matched LoRA."""

import re

import numpy as np
import pandas as pd
import pytest

from common.adapters import adapter_parameter_count, apply_adapters, count_trainable
from common.config import ConfigError
from common.data.sampling import validation_mask
from common.finetune import report
from common.finetune.methods import Adaptation, adapt
from common.finetune.selection import GridAt, select
from tests.adapters.test_adapters import base_model


def grid_runs(val: dict, test: dict, seeds=(0, 1, 2)) -> pd.DataFrame:
    """Runs of one method on a 2 x 2 grid; val/test: {(lr, wd): accuracy}, the same for every seed (+ seed / 10)."""
    return pd.DataFrame(
        [
            {"method": "m", "fraction": 0.1, "seed": s, "learning_rate": lr, "weight_decay": wd,
             "val_accuracy": val[lr, wd] + s / 10, "accuracy": test[lr, wd] + s / 10,
             "final_loss": 0.5, "trainable_pct": 1.0, "trainable_params": 10}
            for (lr, wd) in val for s in seeds
        ]
    )  # fmt: skip


VAL = {(1e-3, 1e-4): 70.0, (1e-3, 1e-2): 80.0, (1e-2, 1e-4): 75.0, (1e-2, 1e-2): 60.0}
TEST = {(1e-3, 1e-4): 90.0, (1e-3, 1e-2): 71.0, (1e-2, 1e-4): 72.0, (1e-2, 1e-2): 95.0}  # best test elsewhere


def test_the_best_validation_point_is_selected_and_the_test_split_is_never_read():
    runs = grid_runs(VAL, TEST)
    chosen = select(runs, ["method"]).iloc[0]
    assert (chosen["learning_rate"], chosen["weight_decay"]) == (1e-3, 1e-2)
    assert chosen["val_accuracy"] == pytest.approx(80.1) and chosen["grid_points"] == 4
    # without the test column at all, the same choice
    assert select(runs.drop(columns="accuracy"), ["method"]).equals(select(runs, ["method"]))
    shuffled = runs.assign(accuracy=np.random.default_rng(0).permutation(runs["accuracy"].to_numpy()))
    assert select(shuffled, ["method"]).equals(select(runs, ["method"]))
    # the report then gives the test accuracy of that point, over its seeds
    best = report.best_of_grid(runs, ["method", "fraction"]).iloc[0]
    assert best["accuracy"] == pytest.approx(71.1) and best["seeds"] == 3 and best["selected_on"] == "validation"
    # runs without validation accuracy are selected on test, and say so
    paper = report.best_of_grid(runs.drop(columns="val_accuracy"), ["method", "fraction"]).iloc[0]
    assert paper["accuracy"] == pytest.approx(95.1) and paper["selected_on"].startswith("test")


def test_selection_compares_grid_points_on_the_seeds_they_all_ran():
    runs = grid_runs(VAL, TEST, seeds=(0,))
    selected_point = runs[(runs["learning_rate"] == 1e-3) & (runs["weight_decay"] == 1e-2)]
    extra = pd.concat([selected_point.assign(seed=s, val_accuracy=0.0) for s in (1, 2)])  # poor later seeds
    chosen = select(pd.concat([runs, extra]), ["method"]).iloc[0]
    assert (chosen["learning_rate"], chosen["weight_decay"]) == (1e-3, 1e-2)  # seed 0 decides, as in the grid stage


def test_ties_go_to_the_smallest_learning_rate_then_weight_decay():
    flat = {k: 50.0 for k in VAL}
    chosen = select(grid_runs(flat, TEST), ["method"]).iloc[0]
    assert (chosen["learning_rate"], chosen["weight_decay"]) == (1e-3, 1e-4)


def test_the_validation_split_is_per_class_fixed_and_checked():
    labels = np.repeat([0, 1, 2], 10)
    mask = validation_mask(labels, 3)
    assert mask.sum() == 9 and all(mask[labels == c].sum() == 3 for c in range(3))
    assert np.array_equal(mask, validation_mask(labels, 3))  # the same rows for every run
    assert validation_mask(labels, 0).sum() == 0
    with pytest.raises(ConfigError, match="'validation_per_class'"):
        validation_mask(labels, 10)
    with pytest.raises(ConfigError, match="'grid_at.fraction'"):
        GridAt(fraction=1.5).validate()


def test_variants_inherit_their_methods_options_and_bad_ones_fail_naming_the_field():
    adaptation = Adaptation(
        options={"hyra": {"hidden_dim": 16}},
        variants={"hyra_paper_text": {"method": "hyra", "init": "paper_text", "a_activation": "sigmoid"}},
    )
    adaptation.validate()
    assert adaptation.resolve("hyra_paper_text") == (
        "hyra", {"hidden_dim": 16, "init": "paper_text", "a_activation": "sigmoid"}
    )  # fmt: skip
    bad = [
        ({"options": {"hyra": {"init": "literal"}}}, "init"),
        ({"options": {"replora": {"activation": "swish"}}}, "activation"),
        ({"options": {"replora": {"hiden_dim": 3}}}, "adaptation.options/variants.replora"),
        ({"variants": {"x": {"method": "lorra"}}}, "adaptation.variants.x"),
        (
            {"variants": {"x": {"method": "lora", "match_params_of": "nothing"}}},
            "adaptation.variants.x.match_params_of",
        ),
    ]
    for kwargs, field in bad:
        with pytest.raises(ConfigError, match=f"'{re.escape(field)}"):
            Adaptation(**kwargs).validate()


def test_lora_matched_has_the_smallest_rank_that_reaches_repLoRAs_parameters():
    model = base_model("llama")
    replora = adapter_parameter_count(model, "replora", ("q", "v"), 4, hidden_dim=8)
    assert replora == count_trainable(apply_adapters(base_model("llama"), "replora", rank=4, hidden_dim=8))[0]
    matched = adapt(model, "lora_matched", Adaptation(rank=4, alpha=8, options={"replora": {"hidden_dim": 8}}))
    rank = matched.adapter_config.rank
    per_rank = 2 * 2 * (32 + 32)  # 2 layers x (q, v) x (in + out)
    assert rank * per_rank >= replora > (rank - 1) * per_rank
    assert matched.adapter_config.alpha == pytest.approx(8 * rank / 4)  # alpha / r kept
