"""SSv2 and HMDB51 readers, PyAV decoding and clip sampling on tiny real videos in the releases' layouts."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import ConfigError
from common.data import video
from common.data.video import (
    DATASETS,
    SAMPLINGS,
    ClipConfig,
    VideoClips,
    VideoList,
    decode_frames,
    frame_count,
    read_split,
    split_names,
)
from tests.fixtures import COLOURS, GREY_TOP, HMDB51_CLASSES, apply_edits, write_hmdb51, write_ssv2, write_video

FRAMES = 8  # frames of every fixture video
SIZE, WIDTH = 32, 48  # height and width of fixture frames: the left half class colour, the right half grey
SSV2_CLASSES = ["Pushing something from left to right", "Pushing something from right to left"]
SSV2_CLASSES.append("Holding something next to something")
TOLERANCE = 6  # pixel levels that VP9 / MPEG-4 compression may move a flat colour


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """SSv2 (`ssv2/`) and HMDB51 (`hmdb51/`) fixtures: 3 classes of 2 videos per split, 8 frames of 32 x 48."""
    root = tmp_path_factory.mktemp("videos")
    write_ssv2(root / "ssv2", frames=FRAMES, size=SIZE)
    write_hmdb51(root / "hmdb51", frames=FRAMES, size=SIZE)
    return root


@pytest.fixture
def data_root(pristine, tmp_path) -> Path:
    """A copy of the fixtures that a test may edit."""
    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    return tmp_path


def unnormalise(frames: torch.Tensor, clip: ClipConfig) -> torch.Tensor:
    """(..., 3, T, S, S) model input -> pixel levels in [0, 255]."""
    mean, std = torch.tensor(clip.mean).view(3, 1, 1, 1), torch.tensor(clip.std).view(3, 1, 1, 1)
    return (frames * std + mean) * 255


def frame_numbers(frames: torch.Tensor, clip: ClipConfig, video_frames: int) -> list[int]:
    """Which frame of a `video_frames`-frame fixture video each frame of a (3, T, S, S) clip is, read from the grey
    level of its right edge (its right half is grey at GREY_TOP * number / (video_frames - 1))."""
    grey = unnormalise(frames, clip)[:, :, :, -3:].mean(dim=(0, 2, 3))  # (T,)
    return [round(level * (video_frames - 1) / GREY_TOP) for level in grey.tolist()]


def one_video(tmp_path: Path, frames: int, suffix: str = ".webm", label: int = 1) -> VideoList:
    """A VideoList of a single fixture video of `frames` frames (class `label`)."""
    path = write_video(tmp_path / f"clip{suffix}", label, frames, SIZE)
    return VideoList(tmp_path, [(path, label)], ["white", "red", "blue"])


def test_split_names_and_tables():
    assert DATASETS == ("ssv2", "hmdb51") and SAMPLINGS == ("dense", "uniform")
    assert split_names("ssv2") == ("train", "validation")
    assert split_names("hmdb51") == ("train1", "test1", "train2", "test2", "train3", "test3")
    with pytest.raises(ConfigError, match=r"'dataset' = 'kinetics400'.*ssv2, hmdb51"):
        split_names("kinetics400")


def test_ssv2_reader_numbers_classes_by_labels_json_and_lists_each_split(pristine):
    root = pristine / "ssv2"
    for split, first_id in (("train", 100), ("validation", 106)):
        videos = read_split("ssv2", root, split)
        # labels.json lists the ids in reverse and the names sort otherwise: only the ids give this order.
        assert videos.classes == SSV2_CLASSES
        assert videos.root == root.absolute()
        expected = [(root / "20bn-something-something-v2" / f"{first_id + i}.webm", i // 2) for i in range(6)]
        assert videos.items == expected
        assert all(path.is_absolute() for path, _ in videos.items)


def test_hmdb51_reader_selects_the_tagged_videos_of_each_fold(data_root):
    root = data_root / "hmdb51"
    # A tag-0 video is unused: the reader neither lists it nor asks that it exist.
    with (root / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt").open("a") as file:
        file.write("cartwheel_unused.avi 0 \n")
    classes = list(HMDB51_CLASSES[:3])
    for fold in (1, 2, 3):
        tested = (fold - 1) % 2  # the fixture's test video of every class in this fold
        for part, videos in (("train", [1 - tested]), ("test", [tested])):
            split = read_split("hmdb51", str(root), f"{part}{fold}")
            assert split.classes == classes
            assert split.items == [
                (root / "videos" / name / f"{name}_{j}.avi", label)
                for label, name in enumerate(classes)
                for j in videos
            ]


@pytest.mark.parametrize("dataset", DATASETS)
def test_decode_frames_gives_the_written_frames(pristine, dataset):
    videos = read_split(dataset, pristine / dataset, split_names(dataset)[0])
    for path, label in videos.items[::2]:
        assert frame_count(path) == FRAMES
        frames = decode_frames(path, [3, 0, 3, 20])  # 20: past the end, the last frame
        assert frames.shape == (4, SIZE, WIDTH, 3) and frames.dtype == torch.uint8
        colour = torch.tensor(COLOURS[label]).expand(4, SIZE, WIDTH // 2 - 4, 3)
        torch.testing.assert_close(frames[:, :, 2 : WIDTH // 2 - 2].long(), colour, atol=TOLERANCE, rtol=0)
        grey = torch.tensor([GREY_TOP * number // (FRAMES - 1) for number in (3, 0, 3, FRAMES - 1)])
        torch.testing.assert_close(frames[:, :, -4:].float().mean(dim=(1, 2, 3)), grey.float(), atol=3, rtol=0)
        assert torch.equal(frames[0], frames[2])


# sampling, clip frames, stride, temporal test views, frames of the video, the frames of each view.
TEST_SAMPLING = [
    ("dense", 4, 2, 1, 8, [[1, 3, 5, 7]]),
    ("dense", 4, 2, 2, 8, [[0, 2, 4, 6], [1, 3, 5, 7]]),
    ("dense", 4, 1, 2, 20, [[4, 5, 6, 7], [12, 13, 14, 15]]),
    ("dense", 8, 2, 1, 8, [[0, 2, 4, 6, 7, 7, 7, 7]]),  # shorter than the clip: the last frame repeats
    ("uniform", 4, 2, 1, 8, [[1, 3, 5, 7]]),
    ("uniform", 4, 2, 1, 20, [[2, 7, 12, 17]]),
    ("uniform", 4, 2, 2, 20, [[1, 6, 11, 16], [3, 8, 13, 18]]),
    ("uniform", 16, 2, 1, 8, [[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]]),
]


@pytest.mark.parametrize(("sampling", "frames", "stride", "views", "length", "expected"), TEST_SAMPLING)
def test_test_views_read_the_centre_of_each_temporal_view(tmp_path, sampling, frames, stride, views, length, expected):
    clip = ClipConfig(frames=frames, sampling=sampling, stride=stride, size=SIZE, short_side=SIZE, test_clips=views)
    dataset = VideoClips(one_video(tmp_path, length), clip, train=False)
    clips, label = dataset[0]
    assert clips.shape == (views, 3, frames, SIZE, SIZE) and label == 1
    assert [frame_numbers(view, clip, length) for view in clips] == expected


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_training_clips_keep_the_sampling_pattern(tmp_path, sampling):
    # min_area 1 and no flip: every crop holds both halves of the frame, the grey one on the right.
    clip = ClipConfig(frames=4, sampling=sampling, stride=3, size=SIZE, min_area=1.0, flip=False)
    dataset = VideoClips(one_video(tmp_path, 20), clip, train=True)
    draws = set()
    for epoch in range(8):
        numbers = frame_numbers(dataset[(0, epoch)][0], clip, 20)
        if sampling == "dense":
            assert np.diff(numbers).tolist() == [3, 3, 3] and 0 <= numbers[0] <= 20 - 10
        else:
            assert [number // 5 for number in numbers] == [0, 1, 2, 3]  # one frame in each 5-frame segment
        draws.add(tuple(numbers))
    assert len(draws) > 1


@pytest.mark.parametrize("dataset", DATASETS)
def test_a_training_clip_is_a_function_of_seed_index_and_epoch(pristine, dataset):
    videos = read_split(dataset, pristine / dataset, split_names(dataset)[0])
    clip = ClipConfig(frames=4, stride=1, size=16, min_area=0.3)
    clips = VideoClips(videos, clip, train=True, seed=3)
    assert clips.takes_epoch and len(clips) == len(videos.items) and clips.num_classes == 3
    assert clips.labels == [label for _, label in videos.items]
    first, label = clips[(2, 0)]
    assert first.shape == (3, 4, 16, 16) and first.dtype == torch.float32 and label == videos.items[2][1]
    torch.manual_seed(123)
    np.random.seed(123)  # no global RNG state is read
    again = VideoClips(videos, clip, train=True, seed=3)[(2, 0)][0]
    assert torch.equal(first, again)
    assert not torch.equal(first, clips[(2, 1)][0])
    assert not torch.equal(first, VideoClips(videos, clip, train=True, seed=4)[(2, 0)][0])
    copy = pickle.loads(pickle.dumps(clips))  # as DataLoader workers get it
    assert torch.equal(copy[(2, 0)][0], first)
    with pytest.raises(TypeError, match=r"\(index, epoch\) pairs"):
        clips[2]


@pytest.mark.parametrize("flip", [False, True])
def test_flip_false_never_flips(tmp_path, flip):
    clip = ClipConfig(frames=2, size=SIZE, min_area=1.0, flip=flip)
    dataset = VideoClips(one_video(tmp_path, FRAMES, label=1), clip, train=True)
    flipped = []
    for epoch in range(16):
        pixels = unnormalise(dataset[(0, epoch)][0], clip)  # (3, T, S, S)
        red = pixels[0] - pixels[2]  # 255 on the red half, 0 on the grey half
        left, right = red[..., :4].mean(), red[..., -4:].mean()
        assert abs(left - right) > 200
        flipped.append(bool(right > left))
    assert any(flipped) == flip and not all(flipped)


@pytest.mark.parametrize("dataset", DATASETS)
def test_test_views_are_fixed_and_spread_along_the_long_side(pristine, dataset):
    videos = read_split(dataset, pristine / dataset, split_names(dataset)[1])
    clip = ClipConfig(frames=4, size=16, short_side=20, test_clips=2, test_crops=3)
    clips = VideoClips(videos, clip, train=False)
    assert not clips.takes_epoch
    views, label = clips[1]
    assert views.shape == (6, 3, 4, 16, 16) and views.dtype == torch.float32 and label == videos.items[1][1]
    assert torch.equal(views, clips[1][0])
    # Frames of 20 x 30 after the resize: the left crop (columns 0-15) is class colour, the right one (14-29) grey
    # from its third column on.
    pixels = unnormalise(views, clip)  # (V, 3, T, S, S)
    colour = torch.tensor(COLOURS[label], dtype=torch.float32).view(3, 1, 1, 1)
    for view in (0, 3):  # the left crop of each temporal view
        torch.testing.assert_close(pixels[view, :, :, :, :8], colour.expand(3, 4, 16, 8), atol=TOLERANCE, rtol=0)
    right = pixels[2::3, :, :, :, 2:]  # (C, 3, T, S, S - 2)
    grey = right.amax(dim=1) - right.amin(dim=1)  # (C, T, S, S - 2): the channels agree
    assert grey.max() < TOLERANCE


@pytest.mark.parametrize("suffix", [".webm", ".avi"])
def test_an_unreadable_video_is_a_config_error_naming_it(tmp_path, suffix):
    videos = one_video(tmp_path, FRAMES, suffix)
    path = videos.items[0][0]
    path.write_bytes(b"not a video at all " * 64)
    for read in (
        lambda: frame_count(path),
        lambda: decode_frames(path, [0]),
        lambda: VideoClips(videos, ClipConfig(frames=2, size=16), train=True)[(0, 0)],
        lambda: VideoClips(videos, ClipConfig(frames=2, size=16), train=False)[0],
    ):
        with pytest.raises(ConfigError, match=rf"video '{path}' cannot be"):
            read()


def test_a_file_without_a_video_stream_is_a_config_error(tmp_path):
    import av

    path = tmp_path / "sound.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), dtype=np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(ConfigError, match=r"sound\.webm' has no video stream"):
        decode_frames(path, [0])


# Each case: dataset, split, {file under the data root: new text, or None to delete it}, what the message must say.
BAD_INPUT = [
    pytest.param("ucf101", "train", {}, r"'dataset' = 'ucf101'.*ssv2, hmdb51", id="unknown-dataset"),
    pytest.param("ssv2", "test", {}, r"'split' = 'test'.*ssv2 splits train, validation", id="ssv2-split"),
    pytest.param("hmdb51", "train4", {}, r"'split' = 'train4'.*train1, test1, .*test3", id="hmdb51-split"),
    pytest.param("ssv2", "train", {"ssv2": None}, r"'data_root' = '.*ssv2'.*labels\.json", id="ssv2-no-root"),
    pytest.param("hmdb51", "test1", {"hmdb51": None}, r"'data_root' = '.*hmdb51'.*videos/", id="hmdb51-no-root"),
    pytest.param(
        "ssv2", "train", {"ssv2/labels.json": None}, r"labels file '.*labels\.json' does not exist", id="no-labels"
    ),
    pytest.param(
        "ssv2",
        "validation",
        {"ssv2/validation.json": None},
        r"split file '.*validation\.json' does not exist",
        id="ssv2-no-split-file",
    ),
    pytest.param("ssv2", "train", {"ssv2/labels.json": "{"}, r"labels\.json' is not valid JSON", id="labels-bad-json"),
    pytest.param("ssv2", "train", {"ssv2/train.json": "[{"}, r"train\.json' is not valid JSON", id="split-bad-json"),
    pytest.param(
        "ssv2", "train", {"ssv2/labels.json": '["a"]'}, r"labels\.json' holds a JSON list", id="labels-not-object"
    ),
    pytest.param(
        "ssv2",
        "train",
        {"ssv2/labels.json": '{"Moving something up": "one"}'},
        r"labels\.json, class 'Moving something up': id 'one' is not a class id",
        id="labels-bad-id",
    ),
    pytest.param(
        "ssv2",
        "train",
        {"ssv2/labels.json": '{"a": "0", "b": "2"}'},
        r"labels\.json': the ids of its 2 classes must be 0 \.\. 1",
        id="labels-gap",
    ),
    pytest.param(
        "ssv2", "train", {"ssv2/train.json": '{"id": "100"}'}, r"train\.json' holds a JSON dict", id="split-not-list"
    ),
    pytest.param(
        "ssv2",
        "train",
        {"ssv2/train.json": '[{"id": "100", "label": "a cup"}]'},
        r"train\.json, entry 0: .* is not an object with a string \"template\"",
        id="entry-no-template",
    ),
    pytest.param(
        "ssv2",
        "train",
        {"ssv2/train.json": '[{"template": "Moving [something] up"}]'},
        r"train\.json, entry 0: \"id\" None is not a video id",
        id="entry-no-id",
    ),
    pytest.param(
        "ssv2",
        "validation",
        {"ssv2/validation.json": '[{"id": "106", "template": "Dancing with [something]"}]'},
        r"validation\.json, entry 0 \(id 106\): template 'Dancing with \[something\]' gives class "
        r"'Dancing with something', which is not one of the 3 classes of '.*labels\.json'",
        id="template-not-in-labels",
    ),
    pytest.param(
        "ssv2",
        "train",
        {"ssv2/20bn-something-something-v2/101.webm": None},
        r"1 of the 6 videos of the split do not exist, the first is '.*/101\.webm' \(listed in '.*train\.json'\)",
        id="ssv2-missing-video",
    ),
    pytest.param("ssv2", "train", {"ssv2/train.json": "[]"}, r"train\.json' lists no videos", id="ssv2-empty"),
    pytest.param(
        "hmdb51",
        "test2",
        {f"hmdb51/testTrainMulti_7030_splits/{name}_test_split2.txt": "" for name in HMDB51_CLASSES[:3]},
        r"no HMDB51 split file '.*testTrainMulti_7030_splits/<class>_test_split2\.txt' tags a video 2 \(test\)",
        id="hmdb51-empty",
    ),
    pytest.param(
        "hmdb51",
        "train1",
        {"hmdb51/testTrainMulti_7030_splits": None},
        r"split folder '.*testTrainMulti_7030_splits' does not exist",
        id="hmdb51-no-split-folder",
    ),
    pytest.param(
        "hmdb51",
        "train2",
        {"hmdb51/testTrainMulti_7030_splits/cartwheel_test_split2.txt": None},
        r"split file '.*cartwheel_test_split2\.txt' does not exist",
        id="hmdb51-no-split-file",
    ),
    pytest.param(
        "hmdb51",
        "test1",
        {"hmdb51/testTrainMulti_7030_splits/fall_floor_test_split1.txt": "fall_floor_0.avi 2\nfall_floor_1.avi\n"},
        r"fall_floor_test_split1\.txt, line 2: 'fall_floor_1\.avi' is not '<name>\.avi <tag>'",
        id="hmdb51-no-tag",
    ),
    pytest.param(
        "hmdb51",
        "test1",
        {"hmdb51/testTrainMulti_7030_splits/fall_floor_test_split1.txt": "fall_floor_0.avi 3\n"},
        r"line 1: 'fall_floor_0\.avi 3' is not '<name>\.avi <tag>' with tag 1 \(train\), 2 \(test\) or 0",
        id="hmdb51-bad-tag",
    ),
    pytest.param(
        "hmdb51",
        "test1",
        {"hmdb51/videos/brush_hair/brush_hair_0.avi": None},
        r"1 of the 3 videos of the split do not exist, the first is '.*videos/brush_hair/brush_hair_0\.avi' "
        r"\(listed in '.*/brush_hair_test_split1\.txt'\)",
        id="hmdb51-missing-video",
    ),
]


@pytest.mark.parametrize(("dataset", "split", "edits", "message"), BAD_INPUT)
def test_bad_input_is_a_config_error_before_any_video_is_opened(data_root, monkeypatch, dataset, split, edits, message):
    apply_edits(data_root, edits)

    def refuse_to_open(*args, **kwargs):
        raise AssertionError("a video was opened before the split was checked")

    monkeypatch.setattr(video.av, "open", refuse_to_open)
    with pytest.raises(ConfigError, match=message):
        read_split(dataset, data_root / dataset, split)


def test_an_hmdb51_split_folder_without_split_files_is_a_config_error(data_root):
    folder = data_root / "hmdb51" / "testTrainMulti_7030_splits"
    for path in folder.iterdir():
        path.rename(path.with_suffix(".bak"))
    with pytest.raises(ConfigError, match=r"'.*testTrainMulti_7030_splits' has no split files"):
        read_split("hmdb51", data_root / "hmdb51", "train1")


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("frames", 0, "a positive integer"),
        ("sampling", "random", "one of dense, uniform"),
        ("stride", 0, "a positive integer"),
        ("size", -1, "a positive integer"),
        ("short_side", 200, "at least clip.size = 224"),
        ("min_area", 0.0, r"\(0, 1\]"),
        ("min_area", 1.5, r"\(0, 1\]"),
        ("test_clips", 0, "a positive integer"),
        ("test_crops", 2, "1 .centre. or 3"),
        ("mean", [0.5, 0.5], "one value per RGB channel"),
        ("std", [0.2, 0.0, 0.2], "three positive values"),
    ],
)
def test_bad_clip_config_fields_are_named(field, value, allowed):
    clip = ClipConfig(**{field: value})
    message = rf"'clip\.{field}' = {value!r}.*{allowed}".replace("[", r"\[")
    with pytest.raises(ConfigError, match=message):
        clip.validate()
    with pytest.raises(ConfigError, match=message):  # a dataset checks its config before it reads anything
        VideoClips(VideoList(Path("/nowhere"), [], []), clip, train=True)
