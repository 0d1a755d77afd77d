"""Fill a feature store (`common.data.features`) with the CLIP features of a folder of images or videos.

    python -m common.data.clip_features source=images media_dir=data/coco/images out=data/features/coco_clip.h5
    python -m common.data.clip_features source=video media_dir=data/tvqa/videos prefix=tvqa_ \\
        out=data/features/tvqa_clip.h5 frames=8
    # optional: model=openai/clip-vit-base-patch32 prefix=coco_ image_size=224 batch_size=32 device=auto

The model is transformers' CLIP vision tower, `CLIPVisionModel.from_pretrained(model)`: a hub name or a local
folder (a full CLIP checkpoint works: its vision half is read). It runs in float32; the store keeps float16.

- `source=images`: every .jpg / .jpeg / .png under `media_dir` (any depth, suffix in any case). An image's
  features are the last hidden state's patch tokens without the CLS token, row-major over the patch grid (the
  encoder output as the model returns it, before the post-layernorm that only the pooled CLS token goes through):
  (N, D) with N = (image size / patch size)^2, 7 x 7 = 49 for ViT-B/32 at 224.
- `source=video`: every .mp4 / .webm / .avi / .mkv under `media_dir`, decoded with PyAV (`common.data.video`). A
  video's features are the pooled output (the post-layernormed CLS token) of `frames` frames spread uniformly over
  it, frame j of a C-frame video being floor((j + 1/2) C / frames), the middle of the j-th of `frames` equal parts
  (a video of fewer frames repeats some): (T, D) with T = frames.

Keys are what the readers of `common.data.vision_language` look up: `prefix` + the file's stem, except that a COCO
file name `COCO_<set><year>_<zero-padded id>` gives the integer id: `COCO_val2014_000000391895.jpg` -> `coco_391895`
(the `coco_<image_id>` of VQA and the Karpathy split). GQA's `2354786.jpg` -> `gqa_2354786`, NLVR2's
`dev-850-0-img0.png` -> `nlvr2_dev-850-0-img0`, TVQA's `castle_s01e01_seg02_clip_00.mp4` ->
`tvqa_castle_s01e01_seg02_clip_00`. `prefix` (default `coco_`) must be one of the readers' prefixes for the source:
a video store names its own.

Preprocessing is the model's own: `CLIPImageProcessor.from_pretrained(model)`, i.e. the `preprocessor_config.json`
of the local folder or hub repository. Where there is none, CLIP's standard preprocessing at `image_size`: RGB,
bicubic resize of the short side to `image_size`, centre crop `image_size` x `image_size`, scale to [0, 1],
normalise by CLIP's mean and std (`CLIPImageProcessor`'s defaults); `image_size` is then the only setting read. The
crop must match the model's input size.

Before any image is read, the command checks the config, the folder, that it holds media of the source's kind, that
no two files give one key, that the model loads and that the crop fits it. The store is written atomically
(`write_store`), with the file attributes `model`, `source`, `prefix`, `feature` and, for videos, `frames`.
"""

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionModel

from common.config import ConfigError, cli_config
from common.data.features import write_store
from common.data.video import decode_frames, frame_count
from common.data.vision_language import IMAGE_TASKS, MEDIA_PREFIXES, VIDEO_TASKS
from common.training.sweeps import check_device, device_of

SOURCES = ("images", "video")
SUFFIXES = {"images": (".jpg", ".jpeg", ".png"), "video": (".mp4", ".webm", ".avi", ".mkv")}
PREFIXES = {
    "images": tuple(dict.fromkeys(MEDIA_PREFIXES[task] for task in IMAGE_TASKS)),
    "video": tuple(dict.fromkeys(MEDIA_PREFIXES[task] for task in VIDEO_TASKS)),
}
COCO_FILE = re.compile(r"COCO_[A-Za-z]+\d{4}_(?P<id>\d+)")  # COCO_train2014_000000000009
PROGRESS_LINES = 20  # about this many progress lines a run


@dataclass
class ClipFeaturesConfig:
    source: str = ""  # images | video
    media_dir: str = ""  # folder searched at any depth for the source's files
    out: str = ""  # the feature store to write, a .h5 / .hdf5 file (replaced when it exists)
    model: str = "openai/clip-vit-base-patch32"  # hub name or local folder of a CLIP (vision) model
    prefix: str = "coco_"  # key prefix: coco_ | gqa_ | nlvr2_ (images), tvqa_ | how2qa_ | tvc_ | yc2c_ (video)
    frames: int = 8  # frames sampled per video
    image_size: int = 224  # crop side where the model has no preprocessor_config.json
    batch_size: int = 32  # images (or video frames) per forward pass
    device: str = "auto"  # auto: the first GPU when one is visible

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError.invalid("source", self.source, f"one of {', '.join(SOURCES)}")
        if not Path(self.media_dir).is_dir():
            raise ConfigError.invalid("media_dir", self.media_dir, "an existing folder of images or videos")
        if Path(self.out).suffix not in (".h5", ".hdf5"):
            raise ConfigError.invalid("out", self.out, "the path of a .h5 or .hdf5 file")
        if self.prefix not in PREFIXES[self.source]:
            allowed = ", ".join(PREFIXES[self.source])
            raise ConfigError.invalid("prefix", self.prefix, f"one of the {self.source} key prefixes {allowed}")
        for name in ("frames", "image_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "an integer >= 1")
        check_device(self.device)
        if device_of(self.device).type == "cuda" and not torch.cuda.is_available():
            raise ConfigError.invalid("device", self.device, "auto or cpu: no GPU is visible")


def media_key(path: Path, prefix: str) -> str:
    """The feature-store key of a media file: `prefix` + its stem, a COCO file's integer id instead of its stem."""
    match = COCO_FILE.fullmatch(path.stem)
    return f"{prefix}{int(match['id'])}" if match else f"{prefix}{path.stem}"


def frame_indices(count: int, frames: int) -> list[int]:
    """The frames read of a `count`-frame video: the middles of `frames` equal parts, floor((j + 1/2) count / frames),
    j = 0 .. frames - 1."""
    return [int((j + 0.5) * count / frames) for j in range(frames)]


def media_files(source: str, media_dir: str | Path, prefix: str) -> dict[str, Path]:
    """Key -> file of every media file of `source`'s kind under `media_dir`, in path order; two files with one key
    are an error that names both."""
    folder = Path(media_dir).absolute()
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in SUFFIXES[source] or not path.is_file():
            continue
        key = media_key(path, prefix)
        if key in files:
            raise ConfigError(f"media files '{files[key]}' and '{path}' both give the feature-store key {key!r}")
        files[key] = path
    if not files:
        raise ConfigError.invalid(
            "media_dir", str(folder), f"a folder holding {source} ({', '.join(SUFFIXES[source])})"
        )
    return files


def load_clip(model: str, image_size: int, device: torch.device) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """The vision tower (eval mode, on `device`) and its preprocessing (module docstring), checked to fit."""
    try:
        vision = CLIPVisionModel.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise ConfigError.invalid("model", model, f"a CLIP hub name or local CLIP model folder ({error})") from error
    try:
        processor = CLIPImageProcessor.from_pretrained(model)
        origin = f"the preprocessor_config.json of '{model}'"
    except OSError:
        processor = CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
        origin = f"image_size={image_size}"
    crop = (processor.crop_size["height"], processor.crop_size["width"])
    expected = vision.config.image_size
    if crop != (expected, expected):
        raise ConfigError.invalid(
            "image_size", image_size, f"the input size {expected} of '{model}': {origin} crops to {crop[0]}x{crop[1]}"
        )
    return vision.eval().to(device), processor


def _read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise ConfigError(f"image '{path}' cannot be read: {error}") from error


@torch.inference_mode()
def _encode(images: list[Image.Image], vision: CLIPVisionModel, processor: CLIPImageProcessor, device: torch.device):
    """The model's output on a batch of images, preprocessed by `processor`."""
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]  # (B, 3, S, S)
    return vision(pixel_values=pixels.to(device))


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def image_features(files: dict[str, Path], vision, processor, batch_size: int, device) -> Iterator[tuple]:
    """(key, (N, D) patch-token features) of every image, `batch_size` images a forward pass."""
    for batch in _batches(list(files.items()), batch_size):
        out = _encode([_read_image(path) for _, path in batch], vision, processor, device)
        grids = out.last_hidden_state[:, 1:].float().cpu().numpy()  # (B, N, D): CLS token dropped
        yield from zip([key for key, _ in batch], grids, strict=True)


def video_features(files: dict[str, Path], vision, processor, frames: int, batch_size: int, device) -> Iterator:
    """(key, (T, D) pooled features of the video's sampled frames) of every video."""
    for key, path in files.items():
        decoded = decode_frames(path, frame_indices(frame_count(path), frames))  # (T, H, W, 3) uint8
        images = [Image.fromarray(frame) for frame in decoded.numpy()]
        pooled = [_encode(batch, vision, processor, device).pooler_output for batch in _batches(images, batch_size)]
        yield key, torch.cat(pooled).float().cpu().numpy()  # (T, D)


def _with_progress(items: Iterator[tuple[str, np.ndarray]], total: int, source: str) -> Iterator:
    """`items`, printing how many are done about PROGRESS_LINES times."""
    every, start = max(1, total // PROGRESS_LINES), time.monotonic()
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == total:
            print(f"{source}: {done}/{total} encoded ({time.monotonic() - start:.0f} s)", flush=True)


def main(cfg: ClipFeaturesConfig) -> Path:
    """Encode every media file of `cfg.media_dir` and write the feature store `cfg.out`; returns its path."""
    files = media_files(cfg.source, cfg.media_dir, cfg.prefix)
    device = device_of(cfg.device)
    vision, processor = load_clip(cfg.model, cfg.image_size, device)
    print(f"{cfg.source}: {len(files)} files under '{cfg.media_dir}', model '{cfg.model}' on {device}", flush=True)
    attrs = {"model": cfg.model, "source": cfg.source, "prefix": cfg.prefix}
    if cfg.source == "images":
        items = image_features(files, vision, processor, cfg.batch_size, device)
        attrs["feature"] = "patch tokens of the last hidden state, without CLS"
    else:
        items = video_features(files, vision, processor, cfg.frames, cfg.batch_size, device)
        attrs |= {"feature": "pooler_output of each sampled frame", "frames": cfg.frames}
    path = write_store(cfg.out, _with_progress(items, len(files), cfg.source), attrs)
    print(f"wrote {len(files)} items (dim {vision.config.hidden_size}) to '{path}'", flush=True)
    return path


if __name__ == "__main__":
    main(cli_config(ClipFeaturesConfig, description=__doc__))
