"""The text-classification entry point (the CPU-scale reproduction) on a tiny BERT and fixture CSVs; the WordNet
supersense corpus builder on a file in WordNet's data.noun format."""

from pathlib import Path

import pytest

from common import runs
from common.config import ConfigError, load_config
from common.data import wordnet
from common.finetune import text
from tests.fixtures import write_text_csvs, write_tiny_bert


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("bert"))


def tiny_config(tmp_path, model_dir, *overrides):
    train, test = write_text_csvs(tmp_path / "data")
    return load_config(
        text.Config,
        None,
        [
            f"results_dir={tmp_path / 'results'}",
            f"model_dir={model_dir}",
            f"train_csv={train}",
            f"test_csv={test}",
            "optimization.epochs=2",
            "optimization.batch_size=8",
            "optimization.warmup_steps=1",
            "validation_per_class=2",
            "learning_rates=[0.001]",
            "weight_decays=[0.0001]",
            *overrides,
        ],
    )


def test_every_method_and_fraction_trains_and_evaluates(tmp_path, model_dir):
    cfg = tiny_config(
        tmp_path, model_dir, "methods=[lora,replora,replora_linear,hyra,peft_lora,full]", "fractions=[0.25,1.0]"
    )
    text.TextClassification.main(cfg)
    results = {
        (p.method, p.fraction): runs.read_run(text.TextClassification.point_dir(cfg, p))["results"]
        for p in text.TextClassification.sweep(cfg)
    }
    assert len(results) == 12
    for (_, fraction), r in results.items():
        assert 0 <= r["accuracy"] <= 100 and r["test_examples"] == 12 and r["classes"] == 3
        # 8 rows per class, 2 of them validation; 25% keeps round(1.5) = 2 per class and trains 4x the epochs
        assert r["train_examples"] == (6 if fraction == 0.25 else 18) and r["val_examples"] == 6
        assert r["steps"] == (2 * 4 * 1 if fraction == 0.25 else 2 * 3)
    assert results[("lora", 1.0)]["adapter_params"] == 2 * 2 * 8 * (32 + 32)  # Q and V of 2 layers, rank 8
    assert results[("full", 1.0)]["trainable_pct"] == pytest.approx(100, abs=1)


def test_a_fixed_seed_reproduces_the_numbers_and_seeds_differ(tmp_path, model_dir):
    runs_of = []
    for name in ("a", "b"):
        cfg = tiny_config(tmp_path, model_dir, "methods=[hyra]", "seeds=[0,1]", f"results_dir={tmp_path / name}")
        text.TextClassification.main(cfg)
        runs_of.append(
            [
                runs.read_run(text.TextClassification.point_dir(cfg, p))["arrays"]["losses"].tolist()
                for p in text.TextClassification.sweep(cfg)
            ]
        )
    assert runs_of[0] == runs_of[1] and runs_of[0][0] != runs_of[0][1]


def test_a_staged_grid_carries_each_methods_validation_choice_to_every_other_point(tmp_path, model_dir):
    cfg = tiny_config(
        tmp_path, model_dir, "methods=[lora,hyra]", "learning_rates=[0.0001,0.3]", "fractions=[0.5,1.0]",
        "seeds=[0,1]", "grid_at.fraction=1.0", "grid_at.seeds=[0]",
    )  # fmt: skip
    assert len(text.TextClassification.sweep(cfg)) == 4  # the grid stage only, until it is done
    text.TextClassification.main(cfg)
    points = text.TextClassification.sweep(cfg)
    assert len(points) == 4 + 2 * 3  # then per method: f = 0.5 seeds 0, 1 and f = 1.0 seed 1
    for method in ("lora", "hyra"):
        grid = {
            p.learning_rate: runs.read_run(text.TextClassification.point_dir(cfg, p))["results"]["val_accuracy"]
            for p in points[:4]
            if p.method == method
        }
        best = min(lr for lr, v in grid.items() if v == max(grid.values()))
        assert {p.learning_rate for p in points[4:] if p.method == method} == {best}
        assert all(text.TextClassification.is_done(cfg, p) for p in points)


def test_bad_input_is_refused_naming_the_file_or_field(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir)
    with pytest.raises(ConfigError, match="label_column.*'topic'.*train.csv"):
        tiny_config(tmp_path, model_dir, "label_column=topic")
    with pytest.raises(ConfigError, match="train_csv"):
        tiny_config(tmp_path, model_dir, "train_csv=")
    with pytest.raises(ConfigError, match="model_dir"):
        tiny_config(tmp_path, model_dir, f"model_dir={tmp_path}")
    with pytest.raises(ConfigError, match="methods"):
        tiny_config(tmp_path, model_dir, "methods=[lora,prefix]")
    for override, field in [
        ("learning_rates=[]", "learning_rates"),
        ("weight_decays=[-0.1]", "weight_decays"),
        ("grid_at.fraction=2", "grid_at.fraction"),
        ("adaptation.options={hyra: {init: literal}}", "init"),
        ("adaptation.options={replora: {activation: swish}}", "activation"),
    ]:
        with pytest.raises(ConfigError, match=f"'{field}'"):
            tiny_config(tmp_path, model_dir, override)
    with pytest.raises(ConfigError, match="'validation_per_class'"):  # 8 rows per class: at most 7
        text.TextClassification.main(tiny_config(tmp_path, model_dir, "validation_per_class=8"))
    test_csv = tmp_path / "data" / "test.csv"
    test_csv.write_text(test_csv.read_text() + "a purple plum 0,purple\n")
    with pytest.raises(ConfigError, match=r"test.csv', row 14: label 'purple'"):
        text.TextClassification.main(cfg)
    assert not (tmp_path / "results").exists()


NOUN_FILE = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00015388 03 n 01 animal 0 001 @ 00004475 n 0000 | a living organism characterized by voluntary movement
02121620 05 n 01 cat 0 001 @ 02120997 n 0000 | feline mammal usually having thick soft fur; "cats purr"
02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "the dog barked all night"
02085374 05 n 01 toy_dog 0 001 @ 02084071 n 0000 | a member of the genus Canis; "a toy"
07739125 13 n 01 apple 0 001 @ 07705931 n 0000 | fruit with red or yellow or green skin
07747607 13 n 01 orange 0 001 @ 07705931 n 0000 | round yellow to orange fruit of any of several citrus trees
07753592 13 n 01 banana 0 001 @ 07705931 n 0000 | elongated crescent-shaped yellow fruit with soft sweet flesh
"""


def test_wordnet_definitions_are_read_with_their_supersense_and_split_without_repeats(tmp_path):
    (tmp_path / "data.noun").write_text(NOUN_FILE)
    glosses = wordnet.read_noun_glosses(tmp_path / "data.noun")
    assert [(g.offset, g.supersense) for g in glosses][:3] == [
        ("00015388", "Tops"),
        ("02121620", "animal"),
        ("02084071", "animal"),
    ]
    assert glosses[1].definition == "feline mammal usually having thick soft fur"  # the example is dropped
    train, test = wordnet.supersense_split(glosses, ("animal", "food"), 1, 1, seed=0)
    assert sorted(g.supersense for g in train) == ["animal", "food"] and len(test) == 2
    assert not {g.definition for g in train} & {g.definition for g in test}
    with pytest.raises(ConfigError, match="'animal' has 2 distinct definitions"):  # dog and toy_dog share one
        wordnet.supersense_split(glosses, ("animal", "food"), 2, 1, seed=0)
    with pytest.raises(ConfigError, match="classes"):
        wordnet.supersense_split(glosses, ("animal", "vehicle"), 1, 1, seed=0)
    wordnet.main(["--wordnet-dir", str(tmp_path), "--out", str(tmp_path / "csv"), "--classes", "animal,food",
                  "--train-per-class", "1", "--test-per-class", "1"])  # fmt: skip
    header, *rows = (tmp_path / "csv" / "train.csv").read_text().splitlines()
    assert header == "text,label,synset" and len(rows) == 2
    (tmp_path / "data.noun").write_text(NOUN_FILE + "01234567 31 v 01 think 0 000 | judge\n")
    with pytest.raises(ConfigError, match="line 10"):
        wordnet.read_noun_glosses(tmp_path / "data.noun")


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="Debian's wordnet-base is not installed")
def test_the_real_wordnet_gives_the_published_split():
    glosses = wordnet.read_noun_glosses("/usr/share/wordnet/data.noun")
    assert len(glosses) == 82115  # WordNet 3.0's noun synsets
    train, test = wordnet.supersense_split(glosses, wordnet.DEFAULT_CLASSES, 300, 100, seed=0)
    assert len(train) == 3000 and len(test) == 1000
    assert (
        train[0].definition == "a very hard hit ball" and train[0].supersense == "act"
    )  # the recorded CSVs' first row
