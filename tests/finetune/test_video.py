"""The Video Swin fine-tuning entry point (RepLoRA Table 4) on tiny SSv2 / HMDB51 fixtures in the official layouts
and a tiny random torchvision Video Swin."""

import numpy as np
import pandas as pd
import pytest

from common import runs
from common.config import ConfigError, load_config
from common.finetune import video
from replora import tables
from tests.fixtures import write_hmdb51, write_ssv2

TINY = [
    "pretrained=false",
    "model=swin3d_t",
    "model_kwargs={embed_dim: 16, depths: [1, 1], num_heads: [2, 2], window_size: [2, 2, 2]}",
    "clip.frames=4",
    "clip.size=16",
    "clip.short_side=16",
    "optimization.epochs=2",
    "optimization.batch_size=4",
    "optimization.warmup_steps=1",
    "num_workers=0",
    "eval_batch_size=4",
    "progress=false",
]
METHODS = ["full", "lora", "adapter", "replora", "replora_linear"]


def config(tmp_path, dataset, root, *overrides):
    return load_config(
        video.Config, None, [f"results_dir={tmp_path / 'results'}", f"dataset={dataset}", f"data_root={root}",
                             *TINY, *overrides],
    )  # fmt: skip


def test_every_method_trains_evaluates_on_several_views_and_fills_the_tables(tmp_path):
    root = write_ssv2(tmp_path / "ssv2", classes=3, per_class=2)
    cfg = config(tmp_path, "ssv2", root, f"methods=[{','.join(METHODS)}]", "clip.sampling=uniform",
                 "clip.flip=false", "clip.test_clips=2", "clip.test_crops=3", "learning_rates=[0.01]")  # fmt: skip
    video.Finetune.main(cfg)
    results = {p.method: runs.read_run(video.Finetune.point_dir(cfg, p)) for p in video.Finetune.sweep(cfg)}
    assert set(results) == set(METHODS)
    for run in results.values():
        r = run["results"]
        assert 0 <= r["accuracy"] <= 100 and r["test_examples"] == 6 and r["classes"] == 3
        assert r["steps"] == 2 * 2  # 2 epochs of 6 training videos in batches of 4
        assert run["arrays"]["predictions"].shape == (6,) and np.isfinite(run["arrays"]["losses"]).all()
    params = {m: results[m]["results"]["adapter_params"] for m in METHODS}
    assert params["lora"] < params["replora"] < params["full"] and params["replora_linear"] < params["replora"]
    assert params["lora"] == 8 * 2 * (16 + 16) + 8 * 2 * (32 + 32)  # rank 8 on Q and V, a block per stage
    out = tmp_path / "tables"
    tables.main(tables.TablesConfig(results_dir=str(tmp_path / "results"), out_dir=str(out)))
    long = pd.read_csv(out / "table04_video_long.csv")
    ssv2 = long[long.dataset == "SSv2"].set_index("method")
    assert ssv2.loc["RepLoRA", "paper"] == 46.12 and ssv2.loc["Prefix", "ours"] == "n/i"
    assert ssv2.loc["LoRA", "ours"] != "not run" and ssv2.loc["LoRA", "paper_ppt"] == 0.37
    assert long[long.dataset == "HMDB51"]["ours"].isin(["not run", "n/i"]).all()  # no HMDB51 runs here
    counts = pd.read_csv(out / "table04_video_params.csv").set_index("method")
    assert counts.loc["FFT", "ours_adapters_m"] == pytest.approx(87.639, abs=1e-3)  # Video Swin-B without its head
    assert counts.loc["LoRA", "ours_adapters_m"] == pytest.approx(0.385, abs=1e-3)  # 32 x sum of block widths


@pytest.mark.parametrize("method", METHODS)
def test_a_crashed_run_resumes_to_the_same_numbers_and_hmdb51_reads_its_split(tmp_path, monkeypatch, method):
    root = write_hmdb51(tmp_path / "hmdb51", classes=3, per_class=3)
    overrides = [f"methods=[{method}]", "split=2", "optimization.epochs=3", "checkpoint_every=2"]
    reference = config(tmp_path, "hmdb51", root, *overrides, f"results_dir={tmp_path / 'a'}")
    video.Finetune.main(reference)
    (point,) = video.Finetune.sweep(reference)
    expected = runs.read_run(video.Finetune.point_dir(reference, point))
    assert expected["config"]["train_split"] == "train2" and expected["results"]["test_examples"] == 3
    cfg = config(tmp_path, "hmdb51", root, *overrides, f"results_dir={tmp_path / 'b'}")
    real, calls = video.nn.functional.cross_entropy, {"n": 0}

    def crash_at_the_fourth_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("node failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(video.nn.functional, "cross_entropy", crash_at_the_fourth_step)
    with pytest.raises(RuntimeError, match="node failure"):
        video.Finetune.main(cfg)
    monkeypatch.setattr(video.nn.functional, "cross_entropy", real)
    video.Finetune.main(cfg)
    resumed = runs.read_run(video.Finetune.point_dir(cfg, point))
    np.testing.assert_array_equal(resumed["arrays"]["losses"], expected["arrays"]["losses"])
    np.testing.assert_array_equal(resumed["arrays"]["predictions"], expected["arrays"]["predictions"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("methods=[lora,prefix]", "prefix tuning is not implemented for torchvision's Video Swin"),
        ("adaptation.dropout=0.1", "'adaptation.dropout' = 0.1 is not allowed: 0 for Video Swin"),
        ("split=4", "'split' = 4 is not allowed"),
        ("dataset=kinetics", "'dataset' = 'kinetics' is not allowed: one of ssv2, hmdb51"),
        ("model=swin3d_l", "'model' = 'swin3d_l' is not allowed"),
        ("clip.sampling=random", "'clip.sampling'"),
        ("pretrained=true", "'model_kwargs'"),
        ("weights_path=/nowhere.pth", "'weights_path' = '/nowhere.pth'"),
    ],
)
def test_bad_config_names_the_field(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        config(tmp_path, "ssv2", tmp_path, override)


def test_missing_data_is_refused_before_any_work(tmp_path):
    root = write_ssv2(tmp_path / "ssv2")
    (root / "validation.json").unlink()
    cfg = config(tmp_path, "ssv2", root)
    with pytest.raises(ConfigError, match="validation.json"):
        video.Finetune.main(cfg)
    with pytest.raises(ConfigError, match="'data_root'"):
        video.Finetune.check_inputs(config(tmp_path, "ssv2", ""))
    assert not (tmp_path / "results").exists()
