"""Tiny datasets in the real on-disk layouts and tiny random backbones, for the fine-tuning entry points' tests.

    python -m tests.fixtures /tmp/fixtures   # every VTAB-1K task, every FGVC dataset and the commonsense files

(the command builds the trees the `slurm.submit --dry-run` examples of the paper sweeps read).
"""

import json
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
