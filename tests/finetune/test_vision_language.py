"""RepLoRA on VL-BART end to end on tiny annotation sets in the tasks' official formats, a feature store of random
features and a tiny random BART: both task groups train, generate or choose, are scored by the real metric code,
resume bit for bit and fill the tables; the metrics on known cases."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

from common import runs
from common.config import ConfigError, load_config
from common.data import clip_features
from common.data.features import write_store
from common.data.vision_language import Example, read_task, vqa_soft_scores
from common.finetune import vl_metrics
from replora import tables, vision_language
from tests.fixtures import COLOURS, byte_level_chars, write_tiny_clip, write_video, write_vl_annotations

GROUPS = {"image": ["vqa", "gqa", "nlvr2", "caption"], "video": ["tvqa", "how2qa", "tvc", "yc2c"]}
METHODS = ["full", "lora", "replora", "replora_linear"]
DIM = 8  # feature width


def write_tiny_bart(path):
    """A randomly initialised 1 + 1 layer BART (width 32) with a byte-level tokenizer (<s> text </s>)."""
    vocab = {char: byte for byte, char in enumerate(byte_level_chars())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(["<s>", "</s>", "<pad>"])  # 256, 257, 258
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 256), ("</s>", 257)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(path)
    config = BartConfig(
        vocab_size=259, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=512,
        pad_token_id=258, bos_token_id=256, eos_token_id=257, decoder_start_token_id=257, forced_eos_token_id=257,
    )  # fmt: skip
    torch.manual_seed(0)
    BartForConditionalGeneration(config).save_pretrained(path)
    return path


def write_media(folder, prefix, stems, video):
    """A tiny image (or video) per media key, named as the extraction command reads it back."""
    folder.mkdir(parents=True)
    for i, stem in enumerate(stems):
        if video:
            write_video(folder / f"{stem}.avi", label=i, frames=6, size=16)
        else:
            name = f"COCO_train2014_{int(stem):012d}" if prefix == "coco_" else stem
            Image.new("RGB", (40, 32), COLOURS[i % len(COLOURS)]).save(folder / f"{name}.png")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Annotations of both groups (train and evaluation splits); feature stores written by the extraction command
    with a tiny random CLIP from tiny images and videos, one per source; the tiny BART."""
    root = tmp_path_factory.mktemp("vl")
    keys = set()
    for task in GROUPS["image"] + GROUPS["video"]:
        for train in (True, False):
            split = (vision_language.TRAIN_SPLITS if train else vision_language.EVAL_SPLITS)[task]
            write_vl_annotations(root / "annotations" / task, task, split, n=4)
            keys |= {key for e in read_task(task, root / "annotations" / task, split) for key in e.media}
    clip = write_tiny_clip(root / "clip")
    stores = []
    for prefix in sorted({key.split("_", 1)[0] + "_" for key in keys}):
        video = prefix in ("tvqa_", "how2qa_", "tvc_", "yc2c_")
        stems = sorted(key[len(prefix) :] for key in keys if key.startswith(prefix))
        write_media(root / "media" / prefix, prefix, stems, video)
        stores.append(root / "features" / f"{prefix[:-1]}.h5")
        clip_features.main(clip_features.ClipFeaturesConfig(
            source="video" if video else "images", media_dir=str(root / "media" / prefix), out=str(stores[-1]),
            model=str(clip), prefix=prefix, frames=3, batch_size=8, device="cpu",
        ))  # fmt: skip
    return root, write_tiny_bart(root / "bart"), stores


def config(inputs, tmp_path, group, *overrides):
    root, bart, stores = inputs
    return load_config(
        vision_language.Config, None,
        [f"results_dir={tmp_path / 'results'}", f"tasks=[{','.join(GROUPS[group])}]",
         f"annotations_dir={root / 'annotations'}", f"features_paths=[{','.join(map(str, stores))}]", f"model={bart}",
         "adaptation.rank=4", "adaptation.alpha=4", "optimization.epochs=2", "optimization.batch_size=8",
         "max_target_tokens=8", "caption_beams=2", "num_workers=0", "eval_batch_size=4", "progress=false",
         "learning_rates=[0.01]", *overrides],
    )  # fmt: skip


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_trains_every_method_is_scored_and_fills_the_tables(inputs, tmp_path, group):
    cfg = config(inputs, tmp_path, group, f"methods=[{','.join(METHODS)}]")
    vision_language.VisionLanguage.main(cfg)
    results = {
        p.method: runs.read_run(vision_language.VisionLanguage.point_dir(cfg, p))["results"]
        for p in vision_language.VisionLanguage.sweep(cfg)
    }
    for r in results.values():
        assert set(r["accuracy"]) == set(GROUPS[group]) and r["eval_examples"] == dict.fromkeys(GROUPS[group], 4)
        for task, value in r["accuracy"].items():
            assert value >= 0 and (task in vl_metrics.CAPTION_TASKS or value <= 100)
        assert r["average"] == pytest.approx(np.mean(list(r["accuracy"].values())))
    assert results["lora"]["adapter_params"] < results["full"]["adapter_params"]
    out = tmp_path / "tables"
    tables.main(tables.TablesConfig(results_dir=str(tmp_path / "results"), out_dir=str(out)))
    name = "table05_image_text" if group == "image" else "table06_video_text"
    long = pd.read_csv(out / f"{name}_long.csv")
    assert (long[long.method.isin(["FT", "LoRA", "RepLoRA"])]["ours"] != "not run").all()
    assert long.ours_ppt.isna().all()  # the printed PPT is not Sec. 6's formula: not computed


def test_a_crashed_run_resumes_to_the_same_numbers(inputs, tmp_path, monkeypatch):
    overrides = ["methods=[replora]", "optimization.epochs=3", "checkpoint_every=2"]
    reference = config(inputs, tmp_path, "image", *overrides, f"results_dir={tmp_path / 'a'}")
    vision_language.VisionLanguage.main(reference)
    (point,) = vision_language.VisionLanguage.sweep(reference)
    expected = runs.read_run(vision_language.VisionLanguage.point_dir(reference, point))
    cfg = config(inputs, tmp_path, "image", *overrides, f"results_dir={tmp_path / 'b'}")
    real, calls = vision_language.VLBart.forward, {"n": 0}

    def crash_at_the_fourth_step(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("node failure")
        return real(self, batch)

    monkeypatch.setattr(vision_language.VLBart, "forward", crash_at_the_fourth_step)
    with pytest.raises(RuntimeError, match="node failure"):
        vision_language.VisionLanguage.main(cfg)
    monkeypatch.setattr(vision_language.VLBart, "forward", real)
    vision_language.VisionLanguage.main(cfg)
    resumed = runs.read_run(vision_language.VisionLanguage.point_dir(cfg, point))
    np.testing.assert_array_equal(resumed["arrays"]["losses"], expected["arrays"]["losses"])
    assert resumed["results"]["accuracy"] == expected["results"]["accuracy"]


def example(task, answers=None, targets=(), choices=(), label=None):
    return Example(task, "0", ("k",), "", tuple(targets), answers or {}, tuple(choices), label)


def test_metrics_on_known_cases():
    # VQA: 10 humans; "two" normalises to "2" (given by 3: 0.9); "red" by 1 (0.3); "blue" by none
    humans = ["2", "2", "two", "red", "green", "green", "green", "green", "yes", "no"]
    vqa = example("vqa", vqa_soft_scores(humans))
    assert vl_metrics.vqa_accuracy(["two", "Red.", "blue"], [vqa] * 3) == pytest.approx(100 * (0.9 + 0.3 + 0) / 3)
    assert vl_metrics.vqa_accuracy(["green"], [vqa]) == 100.0
    gqa = example("gqa", {"left": 1.0})
    assert vl_metrics.score("gqa", ["left", "Left.", "right"], [gqa] * 3) == pytest.approx(200 / 3)
    tvqa = example("tvqa", choices=["a", "b", "c"], label=2)
    assert vl_metrics.score("tvqa", [2, 0], [tvqa, tvqa]) == 50.0
    # CIDEr-D (pycocoevalcap): a caption equal to its one reference, sharing no n-gram with the other image's, scores
    # 10 per n-gram order it has (the mean over n = 1..4, x 10): 6 words have all four orders (10), 3 words no
    # 4-gram (7.5); the corpus score is their mean, 8.75 (x 100). A caption sharing nothing with its references: 0
    captions = [example("caption", targets=["a red bus on a street"]), example("caption", targets=["two dogs play"])]
    assert vl_metrics.cider(["a red bus on a street", "two dogs play"], captions) == pytest.approx(875.0)
    assert vl_metrics.cider(["purple elephants", "green sky"], captions) == 0.0


def test_bad_input_is_named_before_any_work(inputs, tmp_path):
    with pytest.raises(ConfigError, match="'tasks' = .*one group"):
        config(inputs, tmp_path, "image", "tasks=[vqa,tvqa]")
    with pytest.raises(ConfigError, match="'eval_splits.vqa' = 'test'"):
        config(inputs, tmp_path, "image", "eval_splits={vqa: test}")
    with pytest.raises(ConfigError, match="'warmup_ratio' = 1.5"):
        config(inputs, tmp_path, "image", "warmup_ratio=1.5")
    root, _, stores = inputs
    store = tmp_path / "partial.h5"
    write_store(store, [("coco_9", np.zeros((4, DIM)))])
    cfg = config(inputs, tmp_path, "image", f"features_paths=[{store}]")
    with pytest.raises(ConfigError, match="'features_paths'.*keys are missing"):
        vision_language.VisionLanguage.main(cfg)
    with pytest.raises(ConfigError, match="one feature width"):  # the tiny CLIP's 32-d against 8-d
        vision_language.VisionLanguage.main(config(inputs, tmp_path, "image", f"features_paths=[{store},{stores[0]}]"))
    with pytest.raises(ConfigError, match="'model' = '/nowhere'"):
        vision_language.load_model(config(inputs, tmp_path, "image", "model=/nowhere"), DIM)
    assert not (tmp_path / "results").exists()
    assert json.loads((root / "annotations" / "nlvr2" / "dev.json").read_text().splitlines()[0])["identifier"]
