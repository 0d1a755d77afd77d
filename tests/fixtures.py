"""Tiny datasets in the real on-disk layouts and tiny random backbones, for the fine-tuning entry points' tests.

    python -m tests.fixtures /tmp/fixtures   # every VTAB-1K task, every FGVC dataset and the commonsense files

(the command builds the trees the `slurm.submit --dry-run` examples of the paper sweeps read).
"""

import json
import shutil
import sys
from pathlib import Path

from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from common.data.commonsense import ANSWERS, TASKS
from common.data.vision import FGVC_DATASETS, FGVC_IMAGE_DIRS, FGVC_SPLITS, VTAB_SPLITS, VTAB_TASKS

COLOURS = ((255, 255, 255), (255, 0, 0), (0, 0, 255))  # class -> solid colour of its images (3 classes)

# A tiny ViT with the layout of ViT-B/16 (fused qkv, fc1/fc2, a Linear head): Config.model_kwargs of vision tests.
TINY_VIT = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}


def _image(path: Path, colour: tuple[int, int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path, "JPEG", quality=95)
    return path.name


def write_vtab(root: Path, tasks=("cifar",), per_class: int = 4) -> Path:
    """`root/<task>/{train800,val200,train800val200,test}.txt` + images: 3 classes (2 where the task has 2) of
    `per_class` solid-colour JPEGs each."""
    for task in tasks:
        folder = root / task
        lines = []
        for label, colour in enumerate(COLOURS[: VTAB_TASKS[task]]):  # patch_camelyon has 2 classes
            for i in range(per_class):
                _image(folder / "images" / f"{label}_{i}.jpg", colour)
                lines.append(f"images/{label}_{i}.jpg {label}\n")
        for split in VTAB_SPLITS:
            (folder / f"{split}.txt").write_text("".join(lines))
    return root


def write_fgvc(root: Path, datasets=("cub",), per_class: int = 4) -> Path:
    """`root/<dataset>/{train,val,test}.json` (image path -> 1-based class id) + images, 3 classes."""
    for name in datasets:
        folder = root / name
        image_dir = folder / FGVC_IMAGE_DIRS[name]
        ids = {}
        for label, colour in enumerate(COLOURS):
            for i in range(per_class):
                _image(image_dir / f"{label}_{i}.jpg", colour)
                ids[f"{label}_{i}.jpg"] = label + 1
        for split in FGVC_SPLITS:
            (folder / f"{split}.json").write_text(json.dumps(ids))
    return root


def commonsense_record(task: str, i: int) -> dict[str, str]:
    answer = ANSWERS[task][i % len(ANSWERS[task])]
    return {
        "instruction": f"Question {i} of {task}. Answer format: {answer}",
        "input": "",
        "output": f"the correct answer is {answer}",
        "answer": answer,
    }


def write_series_csv(path: Path, values) -> Path:
    """A time-series CSV in the benchmark format: an hourly `date` column from 2020-01-01 00:00, then the columns of
    `values` (rows, channels)."""
    import numpy as np

    lines = ["date," + ",".join(f"x{c}" for c in range(values.shape[1]))]
    dates = np.datetime64("2020-01-01T00:00") + np.arange(len(values)) * np.timedelta64(1, "h")
    for date, row in zip(dates, values, strict=True):
        lines.append(f"{str(date).replace('T', ' ')}:00," + ",".join(f"{v:.6g}" for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_commonsense(root: Path, per_task: int = 2) -> Path:
    """`root/commonsense_170k.json` (records of every task) and `root/<task>/test.json` for the eight tasks."""
    root.mkdir(parents=True, exist_ok=True)
    train = [commonsense_record(task, i) for task in TASKS for i in range(per_task)]
    (root / "commonsense_170k.json").write_text(json.dumps(train))
    for task in TASKS:
        (root / task).mkdir(exist_ok=True)
        (root / task / "test.json").write_text(json.dumps([commonsense_record(task, i) for i in range(per_task)]))
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write_vtab(out / "vtab-1k", tasks=tuple(VTAB_TASKS), per_class=1)
    write_fgvc(out / "fgvc", datasets=tuple(FGVC_DATASETS), per_class=1)
    write_commonsense(out / "commonsense", per_task=1)
    print(f"wrote VTAB-1K ({len(VTAB_TASKS)} tasks), FGVC ({len(FGVC_DATASETS)} datasets), commonsense to {out}")


WORDS = {
    "red": ["apple", "cherry", "rose", "brick"],
    "blue": ["sky", "sea", "ice", "jeans"],
    "green": ["grass", "leaf", "frog", "lime"],
}


def write_text_csvs(root: Path, label_column: str = "label") -> tuple[Path, Path]:
    """`train.csv` (24 rows) and `test.csv` (12 rows) of short texts whose colour word is their label."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [(f"a {colour} {noun} {i}", colour) for i in range(2) for colour, nouns in WORDS.items() for noun in nouns]
    for name, part in (("train.csv", rows), ("test.csv", rows[::2])):
        lines = [f"text,{label_column}"] + [f"{text},{label}" for text, label in part]
        (root / name).write_text("\n".join(lines) + "\n")
    return root / "train.csv", root / "test.csv"


def write_tiny_bert(path: Path) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32, 4 heads) and a word-piece tokenizer for the fixture texts,
    saved as a local HF model folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "0", "1", *WORDS, *sum(WORDS.values(), [])]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    BertModel(config).save_pretrained(path)
    return path


EOS = "</s>"


def byte_level_chars() -> list[str]:
    """The character the byte-level pre-tokenizer writes for each byte 0-255 (GPT-2's map: printable bytes stand
    for themselves, the others are shifted past 255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(byte) if byte in printable else chr(next(shifted)) for byte in range(256)]


def byte_tokenizer(eos_at_end: bool = False) -> PreTrainedTokenizerFast:
    """A tokenizer with one token per UTF-8 byte (ids 0-255) and EOS = 256; optionally it appends EOS itself."""
    tokenizer = Tokenizer(models.BPE(vocab={char: byte for byte, char in enumerate(byte_level_chars())}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([EOS])
    if eos_at_end:
        tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 256)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS)


def write_tiny_llama(path: Path) -> Path:
    """A randomly initialised 2-layer LLaMA (hidden 32, 4 heads) with the byte-level tokenizer, as a local HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, eos_token_id=tokenizer.eos_token_id, pad_token_id=0, bos_token_id=None,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    return path


SSV2_TEMPLATES = (  # fixture class c -> its template; labels.json names the class without the brackets
    "Pushing [something] from left to right",
    "Pushing [something] from right to left",
    "Holding [something] next to [something]",
    "Putting [something] on a surface",
    "Moving [something] up",
    "Moving [something] down",
)
HMDB51_CLASSES = ("brush_hair", "cartwheel", "fall_floor", "ride_bike", "shoot_bow", "smile")
GREY_TOP = 200  # grey level of a video's last frame (its first is black)


def video_frame(label: int, number: int, frames: int, size: int):
    """Frame `number` of a fixture video of class `label`: (size, 3 * size / 2, 3) uint8 RGB, the left half the
    class's colour (COLOURS, cycled), the right half grey at GREY_TOP * number / (frames - 1), so that a frame tells
    its class and its index and a horizontal flip shows."""
    import numpy as np

    width = size * 3 // 2
    frame = np.empty((size, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = COLOURS[label % len(COLOURS)]
    frame[:, width // 2 :] = GREY_TOP * number // max(frames - 1, 1)
    return frame


def write_video(path: Path, label: int, frames: int, size: int) -> Path:
    """A `frames`-frame video of `video_frame`s: VP9 in WebM at 12 fps (as SSv2) for a .webm path, MPEG-4 part 2 in
    AVI at 30 fps (as HMDB51) for a .avi path."""
    import av

    codec, rate, options = {
        # Fast modes at a high quality: a few milliseconds a video, colours within 4 levels of the frames written.
        ".webm": ("libvpx-vp9", 12, {"deadline": "realtime", "cpu-used": "8", "crf": "10"}),
        ".avi": ("mpeg4", 30, {"b": "1000000"}),
    }[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.height, stream.width = video_frame(label, 0, frames, size).shape[:2]
        stream.pix_fmt = "yuv420p"
        for number in range(frames):
            frame = av.VideoFrame.from_ndarray(video_frame(label, number, frames, size), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush the encoder
    return path


def write_ssv2(root: Path, classes: int = 3, per_class: int = 2, frames: int = 8, size: int = 32) -> Path:
    """Something-Something v2's layout: `labels.json` (class ids in reverse file order, so that neither the file's
    order nor the names' order is the ids'), `train.json` and `validation.json` with `per_class` entries of each of
    `classes` (at most 6) classes, ids 100, 101, ... (train first), and their videos
    `20bn-something-something-v2/<id>.webm` (`write_video`, VP9)."""
    root.mkdir(parents=True, exist_ok=True)
    names = [template.replace("[", "").replace("]", "") for template in SSV2_TEMPLATES[:classes]]
    (root / "labels.json").write_text(json.dumps({name: str(c) for c, name in reversed(list(enumerate(names)))}))
    video_id = 100
    for split in ("train", "validation"):
        entries = []
        for label in range(classes):
            for _ in range(per_class):
                write_video(root / "20bn-something-something-v2" / f"{video_id}.webm", label, frames, size)
                template = SSV2_TEMPLATES[label]
                entries.append(
                    {
                        "id": str(video_id),
                        "label": template.replace("[something]", "a cup"),
                        "template": template,
                        "placeholders": ["a cup"] * template.count("[something]"),
                    }
                )
                video_id += 1
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


def write_hmdb51(root: Path, classes: int = 3, per_class: int = 2, frames: int = 8, size: int = 32) -> Path:
    """HMDB51's layout: `per_class` videos `videos/<class>/<class>_<j>.avi` (`write_video`, MPEG-4 part 2) of each
    of `classes` (at most 6) classes of HMDB51_CLASSES, and `testTrainMulti_7030_splits/<class>_test_split<k>.txt`
    for k = 1, 2, 3, lines `<class>_<j>.avi <tag> ` (the release's trailing space): in split k video
    j = (k - 1) mod per_class tests (tag 2), the others train (tag 1)."""
    for label, name in enumerate(HMDB51_CLASSES[:classes]):
        for j in range(per_class):
            write_video(root / "videos" / name / f"{name}_{j}.avi", label, frames, size)
        for fold in (1, 2, 3):
            lines = [f"{name}_{j}.avi {2 if j == (fold - 1) % per_class else 1} \n" for j in range(per_class)]
            split_file = root / "testTrainMulti_7030_splits" / f"{name}_test_split{fold}.txt"
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text("".join(lines))
    return root


# The 10 human answers of VQA fixture question i (cycled): spellings that the official normalisation merges.
VQA_HUMAN_ANSWERS = (
    ["two", "2", "2", "2", "red", "Red", "red.", "a dog", "the dog", "dogs"],
    ["yes"] * 10,
    ["no"] * 7 + ["yes"] * 3,
)


def _json_lines(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def _vqa(root: Path, split: str, n: int) -> None:
    year = {"train": "train2014", "val": "val2014"}[split]
    questions, annotations = [], []
    for i in range(n):
        image_id = 9 + 100 * i  # 9, 109, ...: keys coco_9, coco_109 (never zero-padded)
        question_id = image_id * 1000 + i
        answers = VQA_HUMAN_ANSWERS[i % len(VQA_HUMAN_ANSWERS)]
        questions.append(
            {"image_id": image_id, "question": f"What is in image {image_id}?", "question_id": question_id}
        )
        annotations.append(
            {
                "question_id": question_id,
                "image_id": image_id,
                "answers": [
                    {"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)
                ],
                "multiple_choice_answer": max(set(answers), key=answers.count),
                "answer_type": "other",
                "question_type": "what is",
            }
        )
    header = {"info": {}, "license": {}, "data_subtype": year, "data_type": "mscoco"}
    (root / f"v2_OpenEnded_mscoco_{year}_questions.json").write_text(
        json.dumps({**header, "task_type": "Open-Ended", "questions": questions})
    )
    (root / f"v2_mscoco_{year}_annotations.json").write_text(json.dumps({**header, "annotations": annotations}))


def _gqa(root: Path, split: str, n: int) -> None:
    questions = {
        f"0{2930152 + i}": {  # GQA's ids are strings, some with a leading zero
            "imageId": f"n{161313 + i}" if i % 2 else str(2354786 + i),
            "question": f"Is object {i} on the left?",
            "answer": ("yes", "left", "red", "no")[i % 4],
            "fullAnswer": f"Object {i} is as asked.",
            "isBalanced": True,
        }
        for i in range(n)
    }
    (root / f"{split}_balanced_questions.json").write_text(json.dumps(questions))


def _nlvr2(root: Path, split: str, n: int) -> None:
    records = [
        {
            "identifier": f"{split}-{850 + i}-{i % 2}-{i % 3}",
            "sentence": f"The left image contains {i + 1} dogs.",
            "label": "True" if i % 2 == 0 else "False",
            "writer": "103",
            "synset": "dog",
            "query": "dogs 1",
        }
        for i in range(n)
    ]
    _json_lines(root / f"{split}.json", records)


KARPATHY_FIXTURE_IDS = {"train": 1000, "val": 2000, "test": 3000}  # cocoid of image i of each split: base + i


def _karpathy(root: Path, split: str, n: int) -> None:
    images = []
    for group, base in KARPATHY_FIXTURE_IDS.items():
        for i in range(n):
            label = ("train", "restval")[i % 2] if group == "train" else group
            folder = "train2014" if label == "train" else "val2014"
            sentences = [
                {"raw": f"A photo {i} of the {group} split, caption {k}. ", "tokens": ["a", "photo"], "sentid": k}
                for k in range(2 + i % 3)
            ]
            images.append(
                {
                    "filepath": folder,
                    "filename": f"COCO_{folder}_{base + i:012d}.jpg",
                    "cocoid": base + i,
                    "split": label,
                    "sentences": sentences,
                    "imgid": len(images),
                }
            )
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))


def tv_video_name(i: int) -> str:
    return f"castle_s01e{i + 1:02d}_seg02_clip_{i:02d}"


def _video_qa(root: Path, task: str, split: str, n: int) -> None:
    choices = {"tvqa": 5, "how2qa": 4}[task]
    records = []
    for i in range(n):
        record = {
            "qid": 100 + i if task == "tvqa" else f"how2qa_{i}",  # integer and string ids both occur
            "q": f"What does person {i} hold?",
            **{f"a{k}": f"answer {k} of question {i}" for k in range(choices)},
            "answer_idx": i % choices,
            "vid_name": tv_video_name(i) if task == "tvqa" else f"HcQeXd0Hc_{i}_60_120",
            "ts": "NaN-NaN" if i == n - 1 else f"{10.5 + i}-{20.25 + i}",  # the last one's moment unknown
        }
        if task == "tvqa":
            record["show_name"] = "Castle"
        if split == "test_public":
            del record["answer_idx"]
        records.append(record)
    _json_lines(root / f"{task}_{split}_release.jsonl", records)


def _video_captions(root: Path, task: str, split: str, n: int) -> None:
    records = []
    for i in range(n):
        name = tv_video_name(i) if task == "tvc" else f"yc2_video_{i:03d}"
        descs = [{"desc": f"Person {i} does step {k}. "} for k in range(2)]
        if task == "tvc":
            descs = [{**desc, "type": "v", "desc_id": 70000 + 2 * i + k} for k, desc in enumerate(descs)]
        ts = [10.5 + i, 20.25 + i]
        records.append({"vid_name": name, "clip_id": 5000 + i, "ts": ts, "duration": 90.0, "descs": descs})
    _json_lines(root / f"{task}_{split}_release.jsonl", records)
    if task == "tvc":  # subtitles of every clip's video but the last: lines before, inside and after its moment
        subtitles = [
            {
                "vid_name": tv_video_name(i),
                "sub": [
                    {"start": 0.0, "end": 2.0, "text": "Before."},
                    {"start": 11.0 + i, "end": 13.0 + i, "text": f" Inside {i}. "},
                    {"start": 19.0 + i, "end": 25.0 + i, "text": "Across the end."},
                    {"start": 30.0 + i, "end": 31.0 + i, "text": "After."},
                ],
            }
            for i in range(n - 1)
        ]
        _json_lines(root / "tvqa_subtitles.jsonl", subtitles)


def write_vl_annotations(root: Path, task: str, split: str = "train", n: int = 4) -> Path:
    """`root`, holding `n` examples of one split of a vision-language task in its release's layout
    (`common.data.vision_language`): VQA question i is about image 9 + 100 i with the 10 answers
    VQA_HUMAN_ANSWERS[i mod 3]; GQA's ids are "0<2930152 + i>"; NLVR2's labels alternate True / False; the Karpathy
    file (written whole whatever `split`) has n images per split, cocoid KARPATHY_FIXTURE_IDS[split] + i, the train
    ones alternately "train" and "restval", 2 + (i mod 3) captions each; TVQA / How2QA's answer_idx is i mod the
    choices (absent in test_public), the last question's ts "NaN-NaN"; TVC / YC2C clip i has clip_id 5000 + i, ts
    [10.5 + i, 20.25 + i] and 2 descs; for TVC, `tvqa_subtitles.jsonl` has the videos of every clip but the last."""
    root.mkdir(parents=True, exist_ok=True)
    if task in ("tvqa", "how2qa"):
        _video_qa(root, task, split, n)
    elif task in ("tvc", "yc2c"):
        _video_captions(root, task, split, n)
    else:
        {"vqa": _vqa, "gqa": _gqa, "nlvr2": _nlvr2, "caption": _karpathy}[task](root, split, n)
    return root


def write_tiny_clip(path: Path) -> Path:
    """A randomly initialised CLIP vision tower (hidden 32, 2 layers, 2 heads, patch 8, image 32: a 4 x 4 grid) and
    its CLIPImageProcessor (short side 32, crop 32), saved as a local HF model folder."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8, image_size=32
    )
    CLIPVisionModel(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def apply_edits(root: Path, edits: dict) -> None:
    """Break a fixture for a bad-input test: each relative path gets its new text, or is removed (None)."""
    for relative, text in edits.items():
        path = root / relative
        if text is not None:
            path.write_text(text)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
