"""The commonsense entry point end to end on a tiny random LLaMA with a byte-level tokenizer and fixture files."""

import json

import pytest

from common import runs
from common.config import ConfigError, load_config
from common.data.commonsense import TASKS
from common.finetune import commonsense
from tests.fixtures import write_commonsense, write_tiny_llama


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("llama"))


def tiny_config(tmp_path, model_dir, *overrides):
    root = tmp_path / "commonsense"
    if not root.exists():
        write_commonsense(root, per_task=2)
    return load_config(
        commonsense.Config,
        None,
        [
            f"results_dir={tmp_path / 'results'}",
            f"model={model_dir}",
            f"data_root={root}",
            "adaptation.rank=4",
            "adaptation.alpha=8",
            "optimization.epochs=1",
            "optimization.batch_size=8",
            "optimization.micro_batch_size=4",
            "optimization.warmup_steps=1",
            "cutoff_len=64",
            "validation_size=0",
            *overrides,
        ],
    )


def test_every_method_trains_and_is_scored_on_every_task(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, "methods=[lora,replora,hyra,peft_lora,prefix]", "adaptation.targets=[q,v]")
    commonsense.Finetune.main(cfg)
    for point in commonsense.Finetune.sweep(cfg):
        run = runs.read_run(commonsense.Finetune.point_dir(cfg, point))
        results = run["results"]
        assert set(results["accuracy"]) == set(TASKS)
        assert all(0 <= a <= 100 for a in results["accuracy"].values())
        assert results["train_examples"] == 16 and results["steps"] == 2  # 16 records, batches of 8
        assert all(run["arrays"][f"correct_{task}"].shape == (2,) for task in TASKS)
        assert results["trainable_params"] > 0
    lines = [
        json.loads(line)
        for line in (commonsense.Finetune.point_dir(cfg, point) / runs.LOG_FILE).read_text().splitlines()
    ]
    assert [line["task"] for line in lines if "task" in line] == list(TASKS)


def test_sample_efficiency_trains_on_a_fraction_for_more_epochs(tmp_path, model_dir):
    cfg = tiny_config(
        tmp_path, model_dir, "fractions=[0.25]", "tasks=[boolq,piqa]", "adaptation.targets=[q,k,v,up,down]"
    )
    commonsense.Finetune.main(cfg)
    results = runs.read_run(commonsense.Finetune.point_dir(cfg, commonsense.Finetune.sweep(cfg)[0]))["results"]
    # a quarter of each answer class, at least one: answer1 and answer2 (4 records each) keep 1, the other 8 keep 1
    assert results["train_examples"] == 10 and results["steps"] == 4 * 2  # 4 epochs of 2 batches
    assert set(results["accuracy"]) == {"boolq", "piqa"}


def test_held_out_training_records_give_the_validation_loss(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, "validation_size=4", "tasks=[boolq]", "learning_rates=[0.001,0.01]")
    commonsense.Finetune.main(cfg)
    results = [
        runs.read_run(commonsense.Finetune.point_dir(cfg, p))["results"] for p in commonsense.Finetune.sweep(cfg)
    ]
    assert len(results) == 2 and all(r["train_examples"] == 12 and r["val_examples"] == 4 for r in results)
    assert all(0 < r["val_loss"] < 20 for r in results) and results[0]["val_loss"] != results[1]["val_loss"]
    with pytest.raises(ConfigError, match="'validation_size'"):
        commonsense.Finetune.main(tiny_config(tmp_path, model_dir, "validation_size=16"))


def test_bad_input_is_refused_naming_the_file_or_field(tmp_path, model_dir):
    with pytest.raises(ConfigError, match="tasks"):
        tiny_config(tmp_path, model_dir, "tasks=[boolq,mmlu]")
    with pytest.raises(ConfigError, match="model"):
        tiny_config(tmp_path, model_dir, f"model={tmp_path}")
    cfg = tiny_config(tmp_path, model_dir)
    test_file = tmp_path / "commonsense" / "piqa" / "test.json"
    records = json.loads(test_file.read_text())
    test_file.write_text(json.dumps([{**records[0], "answer": "solution3"}]))
    with pytest.raises(ConfigError, match=r"piqa/test.json.*solution3"):
        commonsense.Finetune.main(cfg)
    test_file.unlink()
    with pytest.raises(ConfigError, match=r"piqa/test.json' does not exist"):
        commonsense.Finetune.main(cfg)
    assert not (tmp_path / "results").exists()


def test_paper_dry_runs_list_the_llama_jobs_with_their_resources(tmp_path, capsys, monkeypatch):
    from slurm import submit

    monkeypatch.setattr(submit, "slurm_partitions", lambda: None)  # the example profile's partition, not a live one

    root = write_commonsense(tmp_path / "commonsense", per_task=1)
    experiments = "commonsense_llama7b,commonsense_llama13b"
    args = ["--paper", "replora", "--experiments", experiments, "--cluster", "example", "--dry-run"]
    assert submit.main([*args, f"results_dir={tmp_path}", f"data_root={root}", "validation_size=2"]) == 0
    out = capsys.readouterr().out
    assert out.count("points: 5 in the sweep, 0 finished, 5 pending") == 2  # LoRA, prefix, Adapter, RepLoRA (both)
    assert "#SBATCH --mem=64GB" in out and "#SBATCH --mem=96GB" in out and out.count("#SBATCH --time=1440") == 2
    assert "model='yahma/llama-7b-hf'" not in out  # points print the method, fraction and seed
