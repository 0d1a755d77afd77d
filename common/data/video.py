"""Video-classification data for Video Swin-B fine-tuning (RepLoRA Table 4): Something-Something v2 and HMDB51.

    from common.data.video import ClipConfig, VideoClips, read_split

    videos = read_split("ssv2", "data/ssv2", "train")  # root/train.json, root/20bn-something-something-v2/<id>.webm
    clip = ClipConfig(sampling="uniform", frames=16, flip=False)  # SSv2's labels say left/right: no flips
    train = VideoClips(videos, clip, train=True, seed=0)
    x, label = train[(7, 0)]  # item 7 as epoch 0 draws it: (3, 16, 224, 224)
    test = VideoClips(read_split("hmdb51", "data/hmdb51", "test1"), ClipConfig(test_clips=4, test_crops=3), train=False)
    views, label = test[0]  # (12, 3, 16, 224, 224): 4 temporal x 3 spatial views, their logits are averaged

Layouts (the official releases):

- SSv2: `root/labels.json`, a JSON object mapping class name to class id as a string ("0" .. "173");
  `root/train.json` and `root/validation.json`, lists of objects `{"id": "78687", "label": "holding potato next to
  vicks vaporub bottle", "template": "Holding [something] next to [something]", "placeholders": [...]}`; videos
  `root/20bn-something-something-v2/<id>.webm` (VP9). These are the files of the release's label package (its
  `labels/` folder), moved next to the video folder. The class of an entry is its template with the square
  brackets removed ("Holding something next to something"), looked up in labels.json; `classes` is ordered by
  class id, which must number the classes 0, 1, ... The test split has no labels and is not read.
- HMDB51: videos `root/videos/<class>/<name>.avi` (MPEG-4 part 2; the 51 class folders of the unpacked rars) and
  the split files `root/testTrainMulti_7030_splits/<class>_test_split<k>.txt`, k = 1, 2, 3, each line
  `<name>.avi <tag>` with tag 1 = training, 2 = testing, 0 = unused in split k. The classes are the class names
  of the split files (`brush_hair`, `fall_floor`, ...), sorted; split `train<k>` / `test<k>` is every class's
  tag-1 / tag-2 videos of split k.

`read_split` checks a whole split (names, files, lines, labels, that every selected video exists) before any video
is decoded and raises `ConfigError` naming the file, the value and what is allowed, so that a bad path fails at
start-up rather than hours into a run.

A clip is read as `ClipConfig` says (the Video Swin recipe is configuration, not code): dense sampling (`frames`
frames `stride` apart) or TSN-style uniform sampling (one frame from each of `frames` equal segments, Video Swin's
SSv2 recipe); in training a random-resized crop and an optional horizontal flip, at test `test_clips` temporal x
`test_crops` spatial views. Training draws come from `np.random.default_rng([seed, index, epoch])`, so a clip is a
function of (seed, index, epoch) alone: a resumed run redraws what an uninterrupted one drew, whatever the workers.

Videos are decoded with PyAV: it is maintained, its wheels bundle FFmpeg with the VP8/VP9 (SSv2's .webm) and
MPEG-4 part 2 (HMDB51's .avi) decoders, so no system FFmpeg is needed (unlike torchcodec), and torchvision's own
video reader is deprecated.
"""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from common.config import ConfigError
from common.data.files import existing_file, read_json

DATASETS = ("ssv2", "hmdb51")
SAMPLINGS = ("dense", "uniform")

SSV2_VIDEO_DIR = "20bn-something-something-v2"
HMDB51_FOLDS = (1, 2, 3)
HMDB51_SPLITS = tuple(f"{part}{fold}" for fold in HMDB51_FOLDS for part in ("train", "test"))
HMDB51_SPLIT_DIR = "testTrainMulti_7030_splits"
SPLITS = {"ssv2": ("train", "validation"), "hmdb51": HMDB51_SPLITS}
HMDB51_TAGS = {"train": 1, "test": 2}  # tag 0: unused in that split
ROOT_LAYOUTS = {
    "ssv2": f"labels.json, train.json, validation.json and {SSV2_VIDEO_DIR}/",
    "hmdb51": f"videos/ and {HMDB51_SPLIT_DIR}/",
}
HMDB51_SPLIT_FILE = re.compile(r"(?P<name>.+)_test_split[123]\.txt")

CROP_ASPECTS = (3 / 4, 4 / 3)  # width / height of training crops
CROP_TRIES = 10  # random crop boxes tried before the centre crop (torchvision's RandomResizedCrop)


@dataclass
class ClipConfig:
    """How a clip is read from a video (the Video Swin recipe is configuration)."""

    frames: int = 16  # frames per clip
    # dense: `frames` frames `stride` apart from a start (random in training, the centre of each temporal view at
    # test); uniform: one frame from each of `frames` equal segments (TSN-style; Video Swin's SSv2 recipe), random
    # within the segment in training, the segment centre at test
    sampling: str = "dense"
    stride: int = 2  # dense sampling only
    size: int = 224  # side of the square crop fed to the model
    short_side: int = 256  # test: resize the short side to this, then crop(s) of `size`
    min_area: float = 0.25  # training: random-resized crop of area in [min_area, 1] of the frame, aspect [3/4, 4/3]
    flip: bool = True  # training: random horizontal flip (set false for SSv2, whose labels say left/right)
    test_clips: int = 1  # temporal views at test, evenly spread
    test_crops: int = 1  # spatial views at test: 1 (centre) or 3 (left/top, centre, right/bottom along the long side)
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_STD))

    def validate(self) -> None:
        for name in ("frames", "stride", "size", "test_clips"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(f"clip.{name}", getattr(self, name), "a positive integer")
        if self.sampling not in SAMPLINGS:
            raise ConfigError.invalid("clip.sampling", self.sampling, f"one of {', '.join(SAMPLINGS)}")
        if self.short_side < self.size:
            raise ConfigError.invalid("clip.short_side", self.short_side, f"at least clip.size = {self.size}")
        if not 0 < self.min_area <= 1:
            raise ConfigError.invalid("clip.min_area", self.min_area, "a fraction of the frame's area in (0, 1]")
        if self.test_crops not in (1, 3):
            raise ConfigError.invalid("clip.test_crops", self.test_crops, "1 (centre) or 3 (along the long side)")
        if len(self.mean) != 3:
            raise ConfigError.invalid("clip.mean", self.mean, "one value per RGB channel")
        if len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError.invalid("clip.std", self.std, "three positive values, one per RGB channel")


@dataclass
class VideoList:
    """The videos of one split of a dataset and the dataset's classes."""

    root: Path  # the dataset root
    items: list[tuple[Path, int]]  # (absolute video path, class index)
    classes: list[str]  # class names; index = position


def split_names(dataset: str) -> tuple[str, ...]:
    """The splits `read_split` reads for `dataset`."""
    if dataset not in SPLITS:
        raise ConfigError.invalid("dataset", dataset, f"one of the video datasets {', '.join(DATASETS)}")
    return SPLITS[dataset]


def read_split(dataset: str, data_root: str | Path, split: str) -> VideoList:
    """One split of SSv2 or HMDB51 in the release's layout (module docstring), checked whole; nothing is decoded."""
    splits = split_names(dataset)
    if split not in splits:
        raise ConfigError.invalid("split", split, f"one of the {dataset} splits {', '.join(splits)}")
    root = Path(data_root).absolute()
    if not root.is_dir():
        raise ConfigError.invalid("data_root", str(root), f"an existing folder holding {ROOT_LAYOUTS[dataset]}")
    return _read_ssv2(root, split) if dataset == "ssv2" else _read_hmdb51(root, split)


def _read_ssv2(root: Path, split: str) -> VideoList:
    labels_path = root / "labels.json"
    class_ids = read_json(labels_path, "SSv2 labels file")
    if not isinstance(class_ids, dict):
        raise ConfigError(
            f"SSv2 labels file '{labels_path}' holds a JSON {type(class_ids).__name__}; it must hold an object "
            'mapping class name to class id ("0", "1", ...)'
        )
    index_of = {}
    for name, class_id in class_ids.items():
        # The release writes ids as strings; JSON true/false load as bool, a subclass of int: they are not ids.
        if isinstance(class_id, bool) or not re.fullmatch(r"\d+", str(class_id)):
            raise ConfigError(f'{labels_path}, class {name!r}: id {class_id!r} is not a class id ("0", "1", ...)')
        index_of[name] = int(class_id)
    if sorted(index_of.values()) != list(range(len(index_of))):
        raise ConfigError(
            f"SSv2 labels file '{labels_path}': the ids of its {len(index_of)} classes must be 0 .. "
            f"{len(index_of) - 1}, each once"
        )
    classes = sorted(index_of, key=index_of.get)

    path = root / f"{split}.json"
    entries = read_json(path, "SSv2 split file")
    if not isinstance(entries, list):
        raise ConfigError(
            f"SSv2 split file '{path}' holds a JSON {type(entries).__name__}; it must hold a list of objects "
            'with "id" and "template"'
        )
    if not entries:
        raise ConfigError(f"SSv2 split file '{path}' lists no videos")
    items = []
    for number, entry in enumerate(entries):
        where = f"{path}, entry {number}"
        if not (isinstance(entry, dict) and isinstance(entry.get("template"), str)):
            raise ConfigError(f'{where}: {entry!r} is not an object with a string "template"')
        video_id = entry.get("id")
        if isinstance(video_id, bool) or not isinstance(video_id, str | int):
            raise ConfigError(f'{where}: "id" {video_id!r} is not a video id (the name of a .webm without suffix)')
        name = entry["template"].replace("[", "").replace("]", "")
        if name not in index_of:
            raise ConfigError(
                f"{where} (id {video_id}): template {entry['template']!r} gives class {name!r}, which is not one of "
                f"the {len(classes)} classes of '{labels_path}'"
            )
        items.append((root / SSV2_VIDEO_DIR / f"{video_id}.webm", index_of[name]))
    return _video_list(root, items, classes, [path] * len(items))


def _read_hmdb51(root: Path, split: str) -> VideoList:
    split_dir = root / HMDB51_SPLIT_DIR
    if not split_dir.is_dir():
        raise ConfigError(f"HMDB51 split folder '{split_dir}' does not exist under root '{root}'")
    matches = [HMDB51_SPLIT_FILE.fullmatch(path.name) for path in split_dir.iterdir()]
    classes = sorted({match["name"] for match in matches if match})
    if not classes:
        raise ConfigError(f"HMDB51 split folder '{split_dir}' has no split files '<class>_test_split<k>.txt'")
    part, fold = split[:-1], int(split[-1])
    items, listed_in = [], []
    for label, name in enumerate(classes):
        path = existing_file(split_dir / f"{name}_test_split{fold}.txt", "HMDB51 split file")
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ConfigError(
                    f"{path}, line {number}: {line!r} is not '<name>.avi <tag>' with tag 1 (train), 2 (test) or 0"
                )
            if int(fields[1]) == HMDB51_TAGS[part]:
                items.append((root / "videos" / name / fields[0], label))
                listed_in.append(path)
    if not items:
        raise ConfigError(
            f"no HMDB51 split file '{split_dir}/<class>_test_split{fold}.txt' tags a video {HMDB51_TAGS[part]} ({part})"
        )
    return _video_list(root, items, classes, listed_in)


def _video_list(root: Path, items: list[tuple[Path, int]], classes: list[str], listed_in: list[Path]) -> VideoList:
    """The split of `items` (item i listed in the file `listed_in[i]`), once every one of its videos is known to
    exist."""
    missing = [(path, source) for (path, _), source in zip(items, listed_in, strict=True) if not path.is_file()]
    if missing:
        raise ConfigError(
            f"{len(missing)} of the {len(items)} videos of the split do not exist, the first is '{missing[0][0]}' "
            f"(listed in '{missing[0][1]}')"
        )
    return VideoList(root, items, classes)


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except av.FFmpegError as error:
        raise ConfigError(f"video '{path}' cannot be opened: {error}") from error


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise ConfigError(f"video '{path}' has no video stream")
    return container.streams.video[0]


def frame_count(path: Path) -> int:
    """The number of frames of a video: the container's count where it stores one (AVI), else the number of video
    packets (WebM stores none; a VP9 packet is one shown frame). Nothing is decoded."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as error:
            raise ConfigError(f"video '{path}' cannot be read: {error}") from error
    if count < 1:
        raise ConfigError(f"video '{path}' has no frames")
    return count


def decode_frames(path: Path, indices: list[int]) -> torch.Tensor:
    """uint8 (T, H, W, 3) RGB frames of a video at `indices` (0-based, in any order, repeats allowed; indices past the
    last frame give the last frame), decoding the stream once, in order, up to the last frame needed."""
    if not indices or min(indices) < 0:
        raise ValueError(f"decode_frames needs at least one frame index, none negative, got {indices}")
    wanted, last = set(indices), max(indices)
    frames: dict[int, np.ndarray] = {}
    final = None  # (number, frame) of the last frame decoded
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            for number, frame in enumerate(container.decode(stream)):
                if number in wanted:
                    frames[number] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                final = number, frame
                if number == last:
                    break
        except av.FFmpegError as error:
            raise ConfigError(f"video '{path}' cannot be decoded: {error}") from error
        if final is None:
            raise ConfigError(f"video '{path}' has no frames that decode")
        end, frame = final
        if end not in frames:  # a video shorter than `last`: later indices get its last frame
            frames[end] = frame.to_ndarray(format="rgb24")
    return torch.from_numpy(np.stack([frames[min(index, end)] for index in indices]))  # (T, H, W, 3)


def _clip_indices(count: int, clip: ClipConfig, positions: np.ndarray) -> list[int]:
    """The frame indices of one clip of a `count`-frame video; `positions` lie in [0, 1). Dense sampling reads
    `positions[0]`: where the start lies among the possible starts. Uniform sampling reads one position per segment:
    where its frame lies in it. A dense clip longer than the video runs past its end: `decode_frames` gives the
    last frame there."""
    steps = np.arange(clip.frames)
    if clip.sampling == "dense":
        span = (clip.frames - 1) * clip.stride + 1
        indices = np.floor(positions[0] * max(count - span + 1, 1)) + clip.stride * steps
    else:
        indices = np.floor((steps + positions) * count / clip.frames)
    return indices.astype(int).tolist()


def _random_box(height: int, width: int, min_area: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a training crop: area a uniform fraction in [min_area, 1] of the frame's, aspect
    (width / height) log-uniform in [3/4, 4/3]; after CROP_TRIES boxes that do not fit, the largest centred box of an
    allowed aspect (torchvision's RandomResizedCrop, drawn from `rng`)."""
    for _ in range(CROP_TRIES):
        area = height * width * rng.uniform(min_area, 1.0)
        aspect = math.exp(rng.uniform(*np.log(CROP_ASPECTS)))
        h, w = round(math.sqrt(area / aspect)), round(math.sqrt(area * aspect))
        if 0 < h <= height and 0 < w <= width:
            return int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w
    aspect = min(max(width / height, CROP_ASPECTS[0]), CROP_ASPECTS[1])
    h, w = min(height, round(width / aspect)), min(width, round(height * aspect))
    return (height - h) // 2, (width - w) // 2, h, w


def _test_corners(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """(top, left) of the `crops` test crops of side `size`: the centre, or 3 along the long side (left/top, centre,
    right/bottom), centred across it."""
    top, left = (height - size) // 2, (width - size) // 2
    if crops == 1:
        return [(top, left)]
    if width >= height:
        return [(top, 0), (top, left), (top, width - size)]
    return [(0, left), (top, left), (height - size, left)]


def _resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, 3, H, W) -> (T, 3, *size), bilinear with antialiasing."""
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)


class VideoClips(torch.utils.data.Dataset):
    """Clips of the videos of a `VideoList`, read as a `ClipConfig` says, as float32 frames / 255 normalised by the
    config's mean and std.

    In training the key is a pair (index, epoch) and an item is one random clip (3, T, size, size): its temporal
    positions, crop box and flip come from `np.random.default_rng([seed, index, epoch])`, so the same key always
    gives the same clip, whatever the worker or the global RNG state. At test the key is an index and an item is
    its V = test_clips x test_crops views (V, 3, T, size, size), temporal view major, always the same.
    """

    def __init__(self, videos: VideoList, clip: ClipConfig, train: bool, seed: int = 0) -> None:
        clip.validate()
        self.videos = videos
        self.clip = clip
        self.train = train
        self.seed = seed
        self.takes_epoch = train
        self.num_classes = len(videos.classes)
        self.mean = torch.tensor(clip.mean, dtype=torch.float32).view(3, 1, 1, 1)
        self.std = torch.tensor(clip.std, dtype=torch.float32).view(3, 1, 1, 1)

    @property
    def labels(self) -> list[int]:
        """The class index of every item, in order."""
        return [label for _, label in self.videos.items]

    def __len__(self) -> int:
        return len(self.videos.items)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, int]:
        if not self.train:
            return self._test_views(key)
        if not (isinstance(key, tuple | list) and len(key) == 2):
            raise TypeError(f"a training VideoClips is indexed by (index, epoch) pairs, got {key!r}")
        return self._train_clip(*key)

    def _normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 3, T, S, S) pixel values in [0, 255] -> float32 (frames / 255 - mean) / std per channel."""
        return ((frames / 255 - self.mean) / self.std).contiguous()

    def _train_clip(self, index: int, epoch: int) -> tuple[torch.Tensor, int]:
        path, label = self.videos.items[index]
        clip = self.clip
        rng = np.random.default_rng([self.seed, index, epoch])
        positions = rng.random(1 if clip.sampling == "dense" else clip.frames)
        frames = decode_frames(path, _clip_indices(frame_count(path), clip, positions))  # (T, H, W, 3)
        frames = frames.permute(0, 3, 1, 2).float()  # (T, 3, H, W)
        top, left, h, w = _random_box(frames.shape[2], frames.shape[3], clip.min_area, rng)
        frames = _resize(frames[:, :, top : top + h, left : left + w], (clip.size, clip.size))  # (T, 3, S, S)
        if clip.flip and rng.random() < 0.5:
            frames = frames.flip(-1)
        return self._normalise(frames.transpose(0, 1)), label  # (3, T, S, S)

    def _test_views(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.videos.items[index]
        clip, size = self.clip, self.clip.size
        count = frame_count(path)
        # Temporal view j sits at (j + 1/2) / test_clips: the middle of the j-th of test_clips equal parts.
        indices = [
            frame
            for view in range(clip.test_clips)
            for frame in _clip_indices(count, clip, np.full(clip.frames, (view + 0.5) / clip.test_clips))
        ]
        frames = decode_frames(path, indices).permute(0, 3, 1, 2).float()  # (C*T, 3, H, W)
        height, width = frames.shape[2:]
        # The short side becomes short_side; the long side scales with it (truncated, as torchvision's Resize).
        scale = clip.short_side / min(height, width)
        height, width = (
            (clip.short_side, int(width * scale)) if height <= width else (int(height * scale), clip.short_side)
        )
        frames = _resize(frames, (height, width))
        crops = [
            frames[:, :, top : top + size, left : left + size]
            for top, left in _test_corners(height, width, size, clip.test_crops)
        ]
        views = torch.stack(crops, 1).unflatten(0, (clip.test_clips, clip.frames))  # (C, T, K, 3, S, S)
        views = views.permute(0, 2, 3, 1, 4, 5).flatten(0, 1)  # (C*K, 3, T, S, S)
        return self._normalise(views), label
