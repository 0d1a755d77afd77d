"""Vision-language annotation readers on tiny files in the releases' layouts, the VQA metric's normalisation and soft
scores, the HDF5 feature store, and CLIP feature extraction with a tiny random CLIP."""

import json
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionModel

from common.config import ConfigError, cli_config, load_config
from common.data.clip_features import ClipFeaturesConfig, frame_indices, main, media_key
from common.data.features import FeatureStore, check_media, write_store
from common.data.video import decode_frames
from common.data.vision_language import (
    IMAGE_TASKS,
    MEDIA_PREFIXES,
    TASKS,
    VIDEO_TASKS,
    Example,
    read_task,
    split_names,
    vqa_normalize,
    vqa_soft_scores,
)
from tests.fixtures import KARPATHY_FIXTURE_IDS, tv_video_name, write_tiny_clip, write_video, write_vl_annotations

N = 4  # examples of every fixture split
ALL_SPLITS = [(task, split) for task in TASKS for split in split_names(task)]


def test_task_and_split_tables():
    assert IMAGE_TASKS == ("vqa", "gqa", "nlvr2", "caption") and VIDEO_TASKS == ("tvqa", "how2qa", "tvc", "yc2c")
    assert TASKS == IMAGE_TASKS + VIDEO_TASKS
    assert split_names("vqa") == ("train", "val") and split_names("nlvr2") == ("train", "dev", "test1")
    assert split_names("gqa") == ("train", "val", "testdev") and split_names("caption") == ("train", "val", "test")
    assert split_names("tvqa") == split_names("how2qa") == ("train", "val", "test_public")
    assert split_names("tvc") == split_names("yc2c") == ("train", "val")
    with pytest.raises(ConfigError, match=r"'task' = 'okvqa'.*vqa, gqa, nlvr2, caption, tvqa, how2qa, tvc, yc2c"):
        split_names("okvqa")


@pytest.mark.parametrize(("task", "split"), ALL_SPLITS)
def test_every_split_of_every_task_reads_its_fixture(tmp_path, task, split):
    examples = read_task(task, write_vl_annotations(tmp_path, task, split, n=N), split)
    assert len(examples) == N and len({example.id for example in examples}) == N
    for example in examples:
        assert example.task == task and isinstance(example.id, str)
        assert all(key.startswith(MEDIA_PREFIXES[task]) for key in example.media)
        assert len(example.media) == (2 if task == "nlvr2" else 1)
        unlabelled = split == "test_public" or task in ("caption", "tvc", "yc2c")
        assert (example.answers == {}) == unlabelled
        assert set(example.answers) <= set(example.targets)


# The first example of each task's train split, in full.
FIRST_EXAMPLES = {
    "vqa": Example(
        "vqa", "9000", ("coco_9",), "What is in image 9?", ("2", "red", "dog", "dogs"),
        {"2": 1.0, "red": 0.9, "dog": 0.6, "dogs": 0.3},
    ),
    "gqa": Example("gqa", "02930152", ("gqa_2354786",), "Is object 0 on the left?", ("yes",), {"yes": 1.0}),
    "nlvr2": Example(
        "nlvr2", "train-850-0-0", ("nlvr2_train-850-0-img0", "nlvr2_train-850-0-img1"),
        "The left image contains 1 dogs.", ("true",), {"true": 1.0},
    ),
    "caption": Example(
        "caption", "1000", ("coco_1000",), "",
        ("A photo 0 of the train split, caption 0.", "A photo 0 of the train split, caption 1."), {},
    ),
    "tvqa": Example(
        "tvqa", "100", ("tvqa_castle_s01e01_seg02_clip_00",), "What does person 0 hold?",
        ("answer 0 of question 0",), {"answer 0 of question 0": 1.0},
        tuple(f"answer {k} of question 0" for k in range(5)), 0, (10.5, 20.25),
    ),
    "how2qa": Example(
        "how2qa", "how2qa_0", ("how2qa_HcQeXd0Hc_0_60_120",), "What does person 0 hold?",
        ("answer 0 of question 0",), {"answer 0 of question 0": 1.0},
        tuple(f"answer {k} of question 0" for k in range(4)), 0, (10.5, 20.25),
    ),
    "tvc": Example(
        "tvc", "5000", ("tvc_castle_s01e01_seg02_clip_00",), "Inside 0. Across the end.",
        ("Person 0 does step 0.", "Person 0 does step 1."), {}, span=(10.5, 20.25),
    ),
    "yc2c": Example(
        "yc2c", "5000", ("yc2c_yc2_video_000",), "", ("Person 0 does step 0.", "Person 0 does step 1."), {},
        span=(10.5, 20.25),
    ),
}  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_first_example_of_each_task(tmp_path, task):
    assert read_task(task, write_vl_annotations(tmp_path, task), "train")[0] == FIRST_EXAMPLES[task]


def test_vqa_examples_score_the_normalised_human_answers(tmp_path):
    examples = read_task("vqa", write_vl_annotations(tmp_path, "vqa", "val"), "val")
    assert [e.id for e in examples] == ["9000", "109001", "209002", "309003"]
    assert [e.media for e in examples] == [("coco_9",), ("coco_109",), ("coco_209",), ("coco_309",)]
    assert examples[1].answers == {"yes": 1.0} and examples[1].targets == ("yes",)
    assert examples[2].answers == pytest.approx({"no": 1.0, "yes": 0.9}) and examples[2].targets == ("no", "yes")
    assert examples[3] == replace(examples[0], id="309003", media=("coco_309",), text="What is in image 309?")


def test_gqa_and_nlvr2_examples(tmp_path):
    gqa = read_task("gqa", write_vl_annotations(tmp_path / "gqa", "gqa", "testdev"), "testdev")
    assert [e.id for e in gqa] == ["02930152", "02930153", "02930154", "02930155"]
    assert [e.media[0] for e in gqa] == ["gqa_2354786", "gqa_n161314", "gqa_2354788", "gqa_n161316"]
    assert [e.targets for e in gqa] == [("yes",), ("left",), ("red",), ("no",)]
    nlvr2 = read_task("nlvr2", write_vl_annotations(tmp_path / "nlvr2", "nlvr2", "dev"), "dev")
    assert [e.id for e in nlvr2] == ["dev-850-0-0", "dev-851-1-1", "dev-852-0-2", "dev-853-1-0"]
    assert nlvr2[3].media == ("nlvr2_dev-853-1-img0", "nlvr2_dev-853-1-img1")
    assert [e.targets[0] for e in nlvr2] == ["true", "false", "true", "false"]
    assert [e.answers for e in nlvr2[:2]] == [{"true": 1.0}, {"false": 1.0}]


def test_karpathy_splits_train_is_train_and_restval(tmp_path):
    root = write_vl_annotations(tmp_path, "caption")
    labels = [image["split"] for image in json.loads((root / "dataset_coco.json").read_text())["images"]]
    assert labels[:N] == ["train", "restval", "train", "restval"]
    for split, base in KARPATHY_FIXTURE_IDS.items():
        examples = read_task("caption", root, split)
        assert [e.id for e in examples] == [str(base + i) for i in range(N)]
        assert [e.media for e in examples] == [(f"coco_{base + i}",) for i in range(N)]
        assert [len(e.targets) for e in examples] == [2, 3, 4, 2]
        assert examples[1].targets[2] == f"A photo 1 of the {split} split, caption 2."  # raw, stripped
        assert all(e.text == "" and e.answers == {} for e in examples)


@pytest.mark.parametrize(("task", "choices"), [("tvqa", 5), ("how2qa", 4)])
def test_video_qa_labels_choices_and_spans(tmp_path, task, choices):
    root = write_vl_annotations(tmp_path, task, "val")
    examples = read_task(task, root, "val")
    assert [e.label for e in examples] == [i % choices for i in range(N)]
    assert all(len(e.choices) == choices for e in examples)
    assert [e.targets for e in examples] == [(f"answer {i % choices} of question {i}",) for i in range(N)]
    assert [e.span for e in examples] == [(10.5, 20.25), (11.5, 21.25), (12.5, 22.25), None]  # "NaN-NaN": None
    test = read_task(task, write_vl_annotations(root, task, "test_public"), "test_public")
    assert all(e.label is None and e.targets == () and e.answers == {} for e in test)
    assert [e.choices for e in test] == [e.choices for e in examples]


def test_tvc_text_is_the_subtitles_inside_the_clip(tmp_path):
    root = write_vl_annotations(tmp_path, "tvc", "val")
    examples = read_task("tvc", root, "val")
    assert [e.media for e in examples] == [(f"tvc_{tv_video_name(i)}",) for i in range(N)]
    assert [e.text for e in examples] == [f"Inside {i}. Across the end." for i in range(N - 1)] + [""]
    (root / "tvqa_subtitles.jsonl").unlink()  # without the file every text is empty
    assert [e.text for e in read_task("tvc", root, "val")] == [""] * N
    yc2c = read_task("yc2c", write_vl_annotations(tmp_path, "yc2c", "val"), "val")
    assert [e.id for e in yc2c] == ["5000", "5001", "5002", "5003"] and yc2c[3].span == (13.5, 23.25)


# --- the official VQA evaluation's normalisation and accuracy ----------------------------------------------------

NORMALISED = [
    ("Two dogs!", "2 dogs"),  # number word, mark without a space: deleted at the end
    ("yes/no", "yes no"),  # a mark touching no space becomes a space
    ("hello , world", "hello world"),  # a mark next to a space is deleted
    ("1,000 people", "1000 people"),  # a digit group: every mark is deleted
    ("red-white", "red white"),
    ("The End.", "end"),  # lower case, article dropped, final period deleted
    ("3.5 cm", "3.5 cm"),  # a period before a digit stays
    ("a.m.", "am"),
    ("  none\n", "0"),
    ("dont", "don't"),  # a contraction gets its apostrophe back
    ("youre", "you're"),
    ("couldnt've", "couldn't've"),
    ("its", "its"),  # an ordinary word: not in the table
    ("an apple", "apple"),
    ("ten", "10"),
    ("it's 'ok'", "it's 'ok'"),  # apostrophes are not punctuation
]


@pytest.mark.parametrize(("answer", "normalised"), NORMALISED)
def test_vqa_normalize_follows_the_official_rules(answer, normalised):
    assert vqa_normalize(answer) == normalised


def test_vqa_soft_scores_are_the_leave_one_out_accuracy():
    assert vqa_soft_scores(["dog"] + ["cat"] * 9) == pytest.approx({"cat": 1.0, "dog": 0.3})
    assert vqa_soft_scores(["dog"] * 2 + ["cat"] * 8) == pytest.approx({"cat": 1.0, "dog": 0.6})
    assert vqa_soft_scores(["dog"] * 3 + ["cat"] * 7) == pytest.approx({"cat": 1.0, "dog": 0.9})
    assert vqa_soft_scores(["dog"] * 4 + ["cat"] * 6) == pytest.approx({"dog": 1.0, "cat": 1.0})
    scores = vqa_soft_scores(["two", "2", "2", "2", "red", "Red", "red.", "a dog", "the dog", "dogs"])
    assert scores == pytest.approx({"2": 1.0, "red": 0.9, "dog": 0.6, "dogs": 0.3})
    assert list(scores) == ["2", "red", "dog", "dogs"]  # best first
    assert list(vqa_soft_scores(["b", "c", "c", "b", "d"])) == ["b", "c", "d"]  # ties: first given first
    assert vqa_soft_scores([]) == {}


# --- bad input ---------------------------------------------------------------------------------------------------


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_lines(path: Path, change) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    change(records)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


VQA_Q, VQA_A = "v2_OpenEnded_mscoco_train2014_questions.json", "v2_mscoco_train2014_annotations.json"


def _set(container, key, value):
    container[key] = value


# task, file, how it is broken, what the error must say (the file's name is checked in every case).
BAD_INPUT = [
    ("vqa", VQA_A, lambda p: p.unlink(), r"VQA annotations file '.*v2_mscoco_train2014_annotations.json' does not"),
    ("vqa", VQA_Q, lambda p: p.write_text("{not json"), r"VQA questions file .* is not valid JSON"),
    ("vqa", VQA_Q, lambda p: p.write_text("[]"), r"must hold a JSON object with a list 'questions'"),
    ("vqa", VQA_A, lambda p: edit_json(p, lambda d: d["annotations"].pop(1)),
     r"question 1 \(question 109001\): question 109001 has no annotation in '.*annotations.json'"),
    ("vqa", VQA_Q, lambda p: edit_json(p, lambda d: d["questions"].pop(2)),
     r"1 annotations have no question in '.*questions.json', the first is question 209002"),
    ("vqa", VQA_Q, lambda p: edit_json(p, lambda d: _set(d["questions"][1], "image_id", 110)),
     r"question 109001\): image_id 110 differs from the image_id 109 of its annotation"),
    ("vqa", VQA_Q, lambda p: edit_json(p, lambda d: _set(d["questions"][0], "image_id", "9")),
     r"question 0 \(question 9000\): field 'image_id' = '9' is not an integer"),
    ("vqa", VQA_A, lambda p: edit_json(p, lambda d: d["annotations"][3].pop("answers")),
     r"annotation 3 \(question 309003\): field 'answers' is missing"),
    ("vqa", VQA_A, lambda p: edit_json(p, lambda d: _set(d["annotations"][0]["answers"][4], "answer", None)),
     r"annotation 0 \(question 9000\), answer 4: field 'answer' = None is not a string"),
    ("gqa", "train_balanced_questions.json", lambda p: edit_json(p, lambda d: d["02930153"].pop("answer")),
     r"GQA questions file '.*train_balanced_questions.json', question 02930153: field 'answer' is missing"),
    ("gqa", "train_balanced_questions.json", lambda p: p.write_text("[]"), r"must hold a JSON object mapping"),
    ("nlvr2", "train.json", lambda p: p.write_text(p.read_text() + "{oops\n"), r"train.json', line 5: not valid JSON"),
    ("nlvr2", "train.json", lambda p: edit_lines(p, lambda r: _set(r[1], "label", "maybe")),
     r"line 2 \(train-851-1-1\): label 'maybe' is not one of 'True', 'False'"),
    ("nlvr2", "train.json", lambda p: edit_lines(p, lambda r: _set(r[0], "identifier", "train-850")),
     r"line 1: identifier 'train-850' is not '<split>-<a>-<b>-<c>'"),
    ("nlvr2", "train.json", lambda p: edit_lines(p, lambda r: _set(r[2], "identifier", r[0]["identifier"])),
     r"train.json': id 'train-850-0-0' is given to more than one example"),
    ("nlvr2", "train.json", lambda p: p.write_text("\n"), r"NLVR2 file '.*train.json' has no examples"),
    ("caption", "dataset_coco.json", lambda p: edit_json(p, lambda d: _set(d["images"][5], "split", "minival")),
     r"image 5 \(cocoid 2001\): split 'minival' is not one of train, restval, val, test"),
    ("caption", "dataset_coco.json", lambda p: edit_json(p, lambda d: d["images"][1]["sentences"][0].pop("raw")),
     r"image 1 \(cocoid 1001\), sentence 0: field 'raw' is missing"),
    ("tvqa", "tvqa_train_release.jsonl", lambda p: edit_lines(p, lambda r: r[2].pop("a3")),
     r"tvqa file '.*tvqa_train_release.jsonl', line 3 \(qid 102\): field 'a3' is missing"),
    ("tvqa", "tvqa_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[1], "answer_idx", 5)),
     r"line 2 \(qid 101\): field 'answer_idx' = 5 is not in 0 .. 4"),
    ("how2qa", "how2qa_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[0], "answer_idx", 4)),
     r"line 1 \(qid how2qa_0\): field 'answer_idx' = 4 is not in 0 .. 3"),
    ("how2qa", "how2qa_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[0], "answer_idx", True)),
     r"line 1 \(qid how2qa_0\): field 'answer_idx' = True is not an integer"),
    ("tvqa", "tvqa_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[0], "ts", "12.3 to 20")),
     r"line 1 \(qid 100\): field 'ts' = '12.3 to 20' is not '<start>-<end>'"),
    ("tvqa", "tvqa_train_release.jsonl", lambda p: edit_lines(p, lambda r: r[3].pop("vid_name")),
     r"line 4 \(qid 103\): field 'vid_name' is missing"),
    ("tvc", "tvc_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[1], "ts", [3.0])),
     r"tvc file '.*tvc_train_release.jsonl', line 2 \(clip 5001\): field 'ts' = \[3.0\] is not \[start, end\]"),
    ("tvc", "tvc_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[0], "descs", [])),
     r"line 1 \(clip 5000\): field 'descs' is empty"),
    ("tvc", "tvqa_subtitles.jsonl", lambda p: edit_lines(p, lambda r: r[1]["sub"][2].pop("end")),
     r"TVQA subtitles file '.*tvqa_subtitles.jsonl', line 2 \(castle_s01e02_seg02_clip_01\), subtitle 2: field 'end'"),
    ("yc2c", "yc2c_train_release.jsonl", lambda p: edit_lines(p, lambda r: _set(r[3], "descs", [{"text": "x"}])),
     r"line 4 \(clip 5003\), desc 0: field 'desc' is missing"),
    ("yc2c", "yc2c_train_release.jsonl", lambda p: p.write_text("[1, 2]\n"), r"line 1: \[1, 2\] is not a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("task", "name", "breaks", "message"), BAD_INPUT)
def test_bad_annotations_name_the_file_record_and_field(tmp_path, task, name, breaks, message):
    root = write_vl_annotations(tmp_path, task)
    read_task(task, root, "train")  # the fixture is valid: the next read fails because of `breaks` alone
    breaks(root / name)
    with pytest.raises(ConfigError, match=message) as error:
        read_task(task, root, "train")
    assert name in str(error.value)


def test_bad_task_split_or_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"'task' = 'vqa2' is not allowed"):
        read_task("vqa2", tmp_path, "train")
    with pytest.raises(ConfigError, match=r"'split' = 'test' is not allowed: one of the vqa splits train, val"):
        read_task("vqa", tmp_path, "test")
    with pytest.raises(ConfigError, match=r"'annotations_dir' = '.*missing' is not allowed"):
        read_task("gqa", tmp_path / "missing", "val")
    with pytest.raises(ConfigError, match=r"GQA questions file '.*val_balanced_questions.json' does not exist"):
        read_task("gqa", tmp_path, "val")


# --- the feature store -------------------------------------------------------------------------------------------

D = 6


def features(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, D)).astype(np.float32)


ITEMS = {"coco_9": features(0, 4), "nlvr2_dev-850-0-img0": features(1, 4), "tvqa_castle_s01e01": features(2, 3)}


@pytest.fixture
def store_path(tmp_path) -> Path:
    return write_store(tmp_path / "store.h5", ITEMS.items(), attrs={"model": "tiny", "frames": 3})


def test_store_round_trip(store_path):
    assert [p.name for p in store_path.parent.iterdir()] == ["store.h5"]  # no temporary file left
    with FeatureStore(store_path) as store:
        assert store.dim == D and len(store) == 3 and store.keys() == sorted(ITEMS)
        assert "coco_9" in store and "coco_10" not in store
        assert store.attrs["model"] == "tiny" and store.attrs["frames"] == 3
        for key, array in ITEMS.items():
            value = store[key]
            assert value.dtype == torch.float32 and value.shape == array.shape
            assert torch.equal(value, torch.from_numpy(array.astype(np.float16)).float())
    with h5py.File(store_path) as file:
        assert file["coco_9"].dtype == np.float16 and file.attrs["dim"] == D


def test_store_errors_name_the_key_and_the_file(store_path, tmp_path):
    store = FeatureStore(store_path)
    with pytest.raises(ConfigError, match=r"media key 'coco_10' is not in the feature store '.*store.h5'"):
        store["coco_10"]
    with pytest.raises(ConfigError, match=r"feature store '.*absent.h5' does not exist"):
        FeatureStore(tmp_path / "absent.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ConfigError, match=r"feature store '.*text.h5' is not an HDF5 file"):
        FeatureStore(tmp_path / "text.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as file:
        file["coco_9"] = features(0, 2)
    with pytest.raises(ConfigError, match=r"'.*plain.h5' has no 'dim' attribute"):
        FeatureStore(tmp_path / "plain.h5")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("a", features(0, 2)), ("b", np.zeros((2, D + 1)))], r"'b' have D = 7, the earlier ones D = 6"),
        ([("a/b", features(0, 2))], r"'a/b' is not a non-empty string without '/'"),
        ([("a", features(0, 2)), ("a", features(1, 2))], r"'a' is written twice"),
        ([("a", np.zeros(D))], r"shape \(6,\); they must be \(N, D\)"),
        ([("a", np.full((1, D), 1e6))], r"'a' are not finite in float16"),
        ([], r"no items to write"),
    ],
)
def test_a_failed_write_keeps_the_previous_store(store_path, items, message):
    with pytest.raises(ValueError, match=message):
        write_store(store_path, iter(items))
    assert [p.name for p in store_path.parent.iterdir()] == ["store.h5"]
    assert FeatureStore(store_path).keys() == sorted(ITEMS)


def test_check_media_counts_the_missing_keys(store_path):
    store = FeatureStore(store_path)
    stored = Example("nlvr2", "dev-850-0-0", ("nlvr2_dev-850-0-img0",), "", (), {})
    check_media([stored], store)
    examples = [
        stored,
        Example("nlvr2", "dev-850-0-1", ("nlvr2_dev-850-0-img0", "nlvr2_dev-850-0-img1"), "", (), {}),
        Example("vqa", "7", ("coco_9",), "", (), {}),
        Example("vqa", "8", ("coco_7",), "", (), {}),
    ]
    message = (
        r"'image_features' = '.*store.h5' is not allowed: .* 2 of their 4 keys are missing, the first is "
        r"'nlvr2_dev-850-0-img1' \(example 'dev-850-0-1'\)"
    )
    with pytest.raises(ConfigError, match=message):
        check_media(examples, store, field="image_features")


class StoreRows(torch.utils.data.Dataset):
    def __init__(self, store: FeatureStore, keys: list[str]):
        self.store, self.keys = store, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        # Also whether the handle read from was opened by this process, never the one inherited from the parent.
        return self.store[self.keys[index]][:2], self.store._pid == os.getpid()  # (2, D)


def test_store_reads_in_dataloader_workers(store_path):
    store = FeatureStore(store_path)
    keys = sorted(ITEMS) * 2
    expected = torch.stack([store[key][:2] for key in keys])  # the parent process holds an open handle now
    loader = torch.utils.data.DataLoader(StoreRows(store, keys), batch_size=2, num_workers=2)
    rows, own_handle = zip(*loader, strict=True)
    assert torch.equal(torch.cat(rows), expected) and torch.cat(own_handle).all()
    copy = pickle.loads(pickle.dumps(store))  # as spawned workers get it: without the handle
    assert copy._file is None and torch.equal(copy["coco_9"], store["coco_9"])


# --- CLIP feature extraction -------------------------------------------------------------------------------------

GRID = (32 // 8) ** 2  # patch tokens of the tiny CLIP: a 4 x 4 grid
HIDDEN = 32
IMAGES = {  # file under media_dir -> key with prefix coco_
    "val2014/COCO_val2014_000000391895.jpg": "coco_391895",
    "train2014/deeper/COCO_train2014_000000000009.png": "coco_9",
    "2354786.jpeg": "coco_2354786",
}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture
def image_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(IMAGES):
        path = tmp_path / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(40 + 8 * k, 48, 3), dtype=np.uint8)  # sizes differ: resize and crop work
        Image.fromarray(pixels).save(path)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    return tmp_path / "images"


def run(*overrides: str) -> Path:
    """The command as `python -m common.data.clip_features <overrides>` runs it, raising its ConfigError."""
    return main(load_config(ClipFeaturesConfig, overrides=list(overrides)))


def clip_outputs(clip_dir: Path, images: list[Image.Image]):
    """What the tiny CLIP computes on `images`, preprocessed by its own processor."""
    processor = CLIPImageProcessor.from_pretrained(clip_dir)
    model = CLIPVisionModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        return model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])


def test_media_keys_and_frame_indices():
    assert media_key(Path("a/COCO_val2014_000000391895.jpg"), "coco_") == "coco_391895"
    assert media_key(Path("COCO_test2015_000000000001.png"), "coco_") == "coco_1"
    assert media_key(Path("2354786.jpg"), "gqa_") == "gqa_2354786"
    assert media_key(Path("dev-850-0-img0.png"), "nlvr2_") == "nlvr2_dev-850-0-img0"
    assert media_key(Path("castle_s01e01_seg02_clip_00.mp4"), "tvqa_") == "tvqa_castle_s01e01_seg02_clip_00"
    assert frame_indices(8, 4) == [1, 3, 5, 7]
    assert frame_indices(20, 4) == [2, 7, 12, 17]
    assert frame_indices(3, 5) == [0, 0, 1, 2, 2]  # a short video repeats frames
    assert frame_indices(10, 1) == [5]


def test_image_features_are_the_patch_tokens(clip_dir, image_dir, tmp_path, capsys):
    out = tmp_path / "features" / "coco.h5"
    run("source=images", f"media_dir={image_dir}", "prefix=coco_", f"out={out}", f"model={clip_dir}", "batch_size=2")
    assert "wrote 3 items (dim 32)" in capsys.readouterr().out
    store = FeatureStore(out)
    assert store.keys() == sorted(IMAGES.values()) and store.dim == HIDDEN
    assert store.attrs["source"] == "images" and store.attrs["model"] == str(clip_dir)
    images = [Image.open(image_dir / name).convert("RGB") for name in IMAGES]
    expected = clip_outputs(clip_dir, images).last_hidden_state[:, 1:]  # (3, 16, 32): CLS dropped
    for key, grid in zip(IMAGES.values(), expected, strict=True):
        assert store[key].shape == (GRID, HIDDEN)
        torch.testing.assert_close(store[key], grid.half().float(), atol=2e-3, rtol=2e-3)


def test_without_a_preprocessor_config_image_size_sets_clips_preprocessing(clip_dir, image_dir, tmp_path):
    bare = tmp_path / "bare-clip"
    shutil.copytree(clip_dir, bare)
    (bare / "preprocessor_config.json").unlink()
    common = ("source=images", f"media_dir={image_dir}", "prefix=coco_", f"model={bare}")
    with pytest.raises(ConfigError, match=r"'image_size' = 224 .* the input size 32 of '.*bare-clip'"):
        run(*common, f"out={tmp_path / 'a.h5'}")
    run(*common, f"out={tmp_path / 'b.h5'}", "image_size=32")
    run("source=images", f"media_dir={image_dir}", "prefix=coco_", f"model={clip_dir}", f"out={tmp_path / 'c.h5'}")
    fallback, saved = FeatureStore(tmp_path / "b.h5"), FeatureStore(tmp_path / "c.h5")
    assert all(torch.equal(fallback[key], saved[key]) for key in IMAGES.values())


def test_video_features_are_pooled_per_sampled_frame(clip_dir, tmp_path):
    # name -> (fixture colour, frames, the frames read: the middles of 4 equal parts)
    videos = {"clip_a.webm": (1, 8, [1, 3, 5, 7]), "sub/clip_b.avi": (2, 12, [1, 4, 7, 10])}
    for name, (label, frames, _) in videos.items():
        write_video(tmp_path / "videos" / name, label, frames, 32)
    out = tmp_path / "tvqa.h5"
    run("source=video", f"media_dir={tmp_path / 'videos'}", "prefix=tvqa_", f"out={out}", f"model={clip_dir}",
        "frames=4", "batch_size=3")  # fmt: skip
    store = FeatureStore(out)
    assert store.keys() == ["tvqa_clip_a", "tvqa_clip_b"] and store.attrs["frames"] == 4
    for name, (_, _, read) in videos.items():
        decoded = decode_frames(tmp_path / "videos" / name, read).numpy()
        pooled = clip_outputs(clip_dir, [Image.fromarray(frame) for frame in decoded]).pooler_output  # (4, 32)
        key = f"tvqa_{Path(name).stem}"
        assert store[key].shape == (4, HIDDEN)
        torch.testing.assert_close(store[key], pooled.half().float(), atol=2e-3, rtol=2e-3)


def test_extraction_checks_before_encoding(clip_dir, image_dir, tmp_path):
    out = f"out={tmp_path / 'x.h5'}"
    base = ("source=images", f"media_dir={image_dir}", f"model={clip_dir}", out)  # prefix: the default coco_
    cases = [  # (overrides, what the error says)
        (("source=audio",), r"'source' = 'audio' is not allowed: one of images, video"),
        (("prefix=tvqa_",), r"'prefix' = 'tvqa_' is not allowed: one of the images key prefixes coco_, gqa_, nlvr2_"),
        (("source=video",), r"'prefix' = 'coco_' is not allowed: one of the video key prefixes tvqa_, how2qa_"),
        ((f"out={tmp_path / 'x.npz'}",), r"'out' = '.*x.npz' is not allowed: the path of a .h5 or .hdf5 file"),
        ((f"media_dir={tmp_path / 'none'}",), r"'media_dir' = '.*none' is not allowed"),
        (("frames=0",), r"'frames' = 0 is not allowed: an integer >= 1"),
        (("device=tpu",), r"'device' = 'tpu' is not allowed"),
        (("source=video", "prefix=tvqa_"), r"'media_dir' = '.*images' is not allowed: a folder holding video"),
        ((f"model={tmp_path / 'no-model'}",), r"'model' = '.*no-model' is not allowed: a CLIP hub name or local"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            run(*base, *overrides)
    Image.new("RGB", (8, 8)).save(image_dir / "COCO_val2014_000000000009.jpg")  # coco_9 a second time
    with pytest.raises(
        ConfigError, match=r"media files '.*' and '.*' both give the feature-store key 'coco_9'"
    ) as error:
        run(*base)
    assert "COCO_train2014_000000000009.png" in str(error.value) and "COCO_val2014_000000000009.jpg" in str(error.value)
    (image_dir / "COCO_val2014_000000000009.jpg").write_text("broken")
    (image_dir / "train2014" / "deeper" / "COCO_train2014_000000000009.png").unlink()
    with pytest.raises(ConfigError, match=r"image '.*COCO_val2014_000000000009.jpg' cannot be read"):
        run(*base)
    assert not (tmp_path / "x.h5").exists() and not list(tmp_path.glob(".x.h5.*"))  # nor a temporary file


def test_command_line_reports_config_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_config(ClipFeaturesConfig, ["source=images", "media_dir=.", "out=x.h5", "prefix=gqa", "batch_size=2"])
    assert exit_info.value.code == 2
    assert (
        "'prefix' = 'gqa' is not allowed: one of the images key prefixes coco_, gqa_, nlvr2_" in capsys.readouterr().err
    )
