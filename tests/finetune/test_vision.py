"""The ViT fine-tuning entry point end to end on tiny VTAB-1K / FGVC fixtures and a tiny random timm ViT."""

import numpy as np
import pytest

from common import runs
from common.config import ConfigError, load_config
from common.data.vision import VTAB_TASKS
from common.finetune import vision
from tests.fixtures import TINY_VIT, write_fgvc, write_vtab

TINY = [
    "pretrained=false",
    f"model_kwargs={TINY_VIT}".replace("'", ""),
    "image_size=32",
    "num_workers=0",
    "optimization.epochs=2",
    "optimization.batch_size=4",
    "optimization.warmup_steps=1",
]


def tiny_config(tmp_path, benchmark, data_root, *overrides):
    return load_config(
        vision.Config,
        None,
        [f"results_dir={tmp_path / 'results'}", f"benchmark={benchmark}", f"data_root={data_root}", *TINY, *overrides],
    )


def test_every_method_trains_and_evaluates_on_vtab(tmp_path):
    root = write_vtab(tmp_path / "vtab", tasks=("cifar", "dtd"))
    cfg = tiny_config(tmp_path, "vtab", root, "tasks=[cifar,dtd]", "methods=[lora,replora,hyra,peft_lora,dora,full]")
    vision.Finetune.main(cfg)
    points = vision.Finetune.sweep(cfg)
    assert len(points) == 12
    results = {(p.task, p.method): runs.read_run(vision.Finetune.point_dir(cfg, p))["results"] for p in points}
    for (task, method), r in results.items():
        assert 0 <= r["accuracy"] <= 100 and r["test_examples"] == 12 and r["classes"] == VTAB_TASKS[task]
        assert r["steps"] == 2 * 3  # 2 epochs of 12 images in batches of 4
        assert not (
            vision.Finetune.point_dir(cfg, vision.Point(task, method, 1.0, 0, 1e-3, 1e-4)) / runs.CHECKPOINT_FILE
        ).exists()
    params = {m: results[("cifar", m)]["trainable_params"] for m in cfg.methods}
    assert params["lora"] < params["full"] and params["hyra"] != params["lora"]
    assert params["lora"] == 2 * 2 * 8 * (32 + 32) + (32 + 1) * 100  # Q and V, 2 blocks, rank 8, + the head
    assert params["peft_lora"] == 2 * 8 * (32 + 96) + (32 + 1) * 100  # peft adapts the whole fused qkv
    # running again does nothing: every point is found done
    before = {p: (vision.Finetune.point_dir(cfg, p) / runs.RESULTS_FILE).stat().st_mtime_ns for p in points}
    vision.Finetune.main(cfg)
    assert before == {p: (vision.Finetune.point_dir(cfg, p) / runs.RESULTS_FILE).stat().st_mtime_ns for p in points}


def test_fgvc_sample_efficiency_subsamples_every_class_and_scales_epochs(tmp_path):
    root = write_fgvc(tmp_path / "fgvc", datasets=("stanford_dogs",), per_class=4)
    cfg = tiny_config(
        tmp_path, "fgvc", root, "tasks=[stanford_dogs]", "methods=[lora]", "fractions=[0.25,1.0]",
        "validation_split=none",
    )  # fmt: skip
    vision.Finetune.main(cfg)
    by_fraction = {p.fraction: runs.read_run(vision.Finetune.point_dir(cfg, p)) for p in vision.Finetune.sweep(cfg)}
    # the papers' protocol, train + val: 8 images per class; 25% -> 2 per class; epochs x4 so that as many examples
    # are seen
    assert by_fraction[0.25]["results"]["train_examples"] == 6 and by_fraction[1.0]["results"]["train_examples"] == 24
    assert by_fraction[0.25]["results"]["steps"] == 2 * 4 * 2 and by_fraction[1.0]["results"]["steps"] == 2 * 6
    assert by_fraction[1.0]["results"]["classes"] == 120


def test_by_default_the_validation_split_is_held_out_and_scored(tmp_path):
    root = write_fgvc(tmp_path / "fgvc", datasets=("stanford_dogs",), per_class=4)
    cfg = tiny_config(tmp_path, "fgvc", root, "tasks=[stanford_dogs]", "methods=[lora]")
    assert cfg.splits() == ["train"] and cfg.val_split() == "val"
    vision.Finetune.main(cfg)
    results = runs.read_run(vision.Finetune.point_dir(cfg, vision.Finetune.sweep(cfg)[0]))["results"]
    assert results["train_examples"] == 12 and results["val_examples"] == 12 and 0 <= results["val_accuracy"] <= 100
    vtab = tiny_config(tmp_path, "vtab", tmp_path)
    assert vtab.splits() == ["train800"] and vtab.val_split() == "val200"
    with pytest.raises(ConfigError, match="'validation_split'"):
        tiny_config(tmp_path, "vtab", tmp_path, "train_splits=[train800val200]")  # would train on val200
    with pytest.raises(ConfigError, match="'validation_split'"):
        tiny_config(tmp_path, "vtab", tmp_path, "validation_split=val")


def test_a_fixed_seed_reproduces_the_numbers(tmp_path):
    root = write_vtab(tmp_path / "vtab")
    first = tiny_config(tmp_path, "vtab", root, "tasks=[cifar]", "methods=[hyra]")
    second = tiny_config(tmp_path, "vtab", root, "tasks=[cifar]", "methods=[hyra]", f"results_dir={tmp_path / 'again'}")
    arrays = []
    for cfg in (first, second):
        vision.Finetune.main(cfg)
        arrays.append(runs.read_run(vision.Finetune.point_dir(cfg, vision.Finetune.sweep(cfg)[0]))["arrays"])
    assert np.array_equal(arrays[0]["losses"], arrays[1]["losses"])
    assert np.array_equal(arrays[0]["predictions"], arrays[1]["predictions"])


def test_the_grid_is_the_cross_product_of_its_lists(tmp_path):
    cfg = tiny_config(
        tmp_path, "vtab", tmp_path, "learning_rates=[0.001,0.01]", "weight_decays=[0.0001,0.1]", "methods=[lora,hyra]"
    )
    points = vision.Finetune.sweep(cfg)
    assert len(points) == 19 * 2 * 2 * 2 and len({vision.Finetune.point_dir(cfg, p) for p in points}) == len(points)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["tasks=[cifar,imagenet]"], "tasks"),
        (["benchmark=inat"], "benchmark"),
        (["methods=[lora,prefix]"], "methods"),
        (["methods=[qlora]"], "methods"),
        (["model=vit_huge_nonexistent"], "model"),
        (["eval_split=train800val200"], "eval_split"),
        (["fractions=[0]"], "fractions"),
        (["checkpoint_path=/nonexistent/weights.bin"], "checkpoint_path"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        tiny_config(tmp_path, "vtab", tmp_path, *overrides)


def test_bad_data_is_refused_before_training_naming_the_file(tmp_path):
    root = write_vtab(tmp_path / "vtab")
    cfg = tiny_config(tmp_path, "vtab", root, "tasks=[cifar,dtd]")
    with pytest.raises(ConfigError, match="dtd"):  # a task folder missing
        vision.Finetune.main(cfg)
    assert not (tmp_path / "results").exists()  # nothing trained, nothing written
    one_task = tiny_config(tmp_path, "vtab", root, "tasks=[cifar]", "validation_split=none")
    split = root / "cifar" / "train800val200.txt"
    good = split.read_text()
    split.write_text(good + "images/0_0.jpg 100\n")  # cifar has 100 classes: 0-99
    with pytest.raises(ConfigError, match=r"train800val200.txt, line 13.*100"):
        vision.Finetune.check_inputs(one_task)
    split.write_text(good)
    (root / "cifar" / "test.txt").unlink()
    with pytest.raises(ConfigError, match="test.txt"):
        vision.Finetune.check_inputs(one_task)
    fgvc = write_fgvc(tmp_path / "fgvc", datasets=("cub",))
    with pytest.raises(ConfigError, match="cifar"):  # an FGVC tree given as VTAB-1K: no task folder
        vision.Finetune.check_inputs(tiny_config(tmp_path, "vtab", fgvc, "tasks=[cifar]"))


def test_paper_dry_runs_list_the_full_sweeps_with_gpu_resources(tmp_path, capsys, monkeypatch):
    """`slurm.submit --paper P --experiments vtab,fgvc --dry-run`: every point of the paper grid, one GPU each."""
    from slurm import submit

    monkeypatch.setattr(submit, "slurm_partitions", lambda: None)  # the example profile's partition, not a live one
    from tests.fixtures import write_vtab as vtab_tree

    vtab_tree(tmp_path / "vtab", tasks=tuple(VTAB_TASKS), per_class=1)
    write_fgvc(tmp_path / "fgvc", datasets=("cub", "nabirds", "oxford_flowers", "stanford_dogs", "stanford_cars"))
    for paper, methods in (("replora", 5), ("hyra", 6)):
        args = ["--paper", paper, "--experiments", "vtab", "--cluster", "example", "--dry-run"]
        assert submit.main([*args, f"results_dir={tmp_path}", f"data_root={tmp_path / 'vtab'}"]) == 0
        out = capsys.readouterr().out
        assert f"points: {19 * methods * 25} in the sweep, 0 finished, {19 * methods * 25} pending" in out
        arrays = -(-19 * methods * 25 // 1000)  # SLURM's default MaxArraySize is 1001: 1000 jobs per array
        assert f"submitted as {arrays} job array(s) of at most 1000 jobs" in out
        assert "#SBATCH --gpus-per-node=1" in out and "#SBATCH --array=0-999%64" in out
    args = ["--paper", "replora", "--experiments", "vtab", "--cluster", "example", "--dry-run"]
    assert submit.main([*args, f"results_dir={tmp_path}", f"data_root={tmp_path / 'missing'}"]) == 2
    assert "missing" in capsys.readouterr().err  # the data is read before anything is submitted
