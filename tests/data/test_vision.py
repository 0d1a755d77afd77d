"""VTAB-1K and FGVC readers on tiny on-disk fixtures in the real layouts: items, tensors, subsampling, bad input."""

import json
import pickle
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from common.config import ConfigError
from common.data import vision
from common.data.vision import (
    FGVC_DATASETS,
    FGVC_SPLITS,
    IMAGE_SIZE,
    VTAB_GROUPS,
    VTAB_SPLITS,
    VTAB_TASKS,
    ImageListDataset,
    eval_transform,
    fgvc_dataset,
    subsample_per_class,
    vtab_dataset,
)
from tests.fixtures import apply_edits

COLOURS = {0: (255, 255, 255), 1: (255, 0, 0), 2: (0, 0, 255)}  # class -> solid colour of its images
IMAGES_PER_CLASS = 2


def image_names() -> dict[str, int]:
    """Image path relative to its task/dataset folder -> label, for every fixture image."""
    return {f"images/{label}_{i}.jpg": label for label in COLOURS for i in range(IMAGES_PER_CLASS)}


def first_per_class() -> dict[str, int]:
    """The first image of every class, the smaller splits of the fixtures."""
    return {f"images/{label}_0.jpg": label for label in COLOURS}


def write_images(folder: Path) -> None:
    (folder / "images").mkdir(parents=True)
    for name, label in image_names().items():
        Image.new("RGB", (8, 8), COLOURS[label]).save(folder / name, "JPEG", quality=95)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root holding VTAB-1K task `cifar` and FGVC dataset `cub`, three classes of two 8x8 JPEGs each."""
    for folder in (tmp_path / "cifar", tmp_path / "cub"):
        write_images(folder)
    for split in VTAB_SPLITS:
        images = image_names() if split.startswith("train800") else first_per_class()
        lines = "".join(f"{name} {label}\n" for name, label in images.items())
        (tmp_path / "cifar" / f"{split}.txt").write_text(lines)
    for split in FGVC_SPLITS:
        images = image_names() if split == "train" else first_per_class()
        # As in the VPT release for CUB: paths relative to cub/images/, class ids 1-based.
        class_ids = {name.removeprefix("images/"): label + 1 for name, label in images.items()}
        (tmp_path / "cub" / f"{split}.json").write_text(json.dumps(class_ids))
    return tmp_path


READERS = {"vtab": (vtab_dataset, "cifar", VTAB_TASKS["cifar"]), "fgvc": (fgvc_dataset, "cub", FGVC_DATASETS["cub"])}


@pytest.mark.parametrize("layout", READERS)
def test_reader_lists_every_image_of_the_split_with_its_label(data_root, layout):
    reader, name, num_classes = READERS[layout]
    splits = VTAB_SPLITS if layout == "vtab" else FGVC_SPLITS
    for split in splits:
        dataset = reader(data_root, name, split)
        expected = image_names() if split in ("train800", "train800val200", "train") else first_per_class()
        assert dataset.items == [(data_root / name / image, label) for image, label in expected.items()]
        assert all(path.is_absolute() for path, _ in dataset.items)
        assert dataset.labels == list(expected.values())
        assert len(dataset) == len(expected)
        assert dataset.num_classes == num_classes


@pytest.mark.parametrize("layout", READERS)
def test_items_are_resized_imagenet_normalised_tensors(data_root, layout):
    reader, name, _ = READERS[layout]
    dataset = reader(data_root, name, "test")
    white, label = dataset[dataset.labels.index(0)]
    assert white.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert white.dtype == torch.float32
    assert type(label) is int and label == 0
    mean, std = torch.tensor(IMAGENET_DEFAULT_MEAN), torch.tensor(IMAGENET_DEFAULT_STD)
    expected = ((1 - mean) / std)[:, None, None].expand_as(white)  # (3, H, W)
    torch.testing.assert_close(white, expected, atol=0.02, rtol=0)
    red, _ = dataset[dataset.labels.index(1)]
    assert red[0].mean() > 2 and red[2].mean() < -1  # channels in RGB order


def test_eval_transform_makes_three_channels_of_the_asked_size():
    grey = Image.new("L", (10, 6), 128)
    assert eval_transform(32)(grey).shape == (3, 32, 32)


def test_dataset_pickles_for_dataloader_workers(data_root):
    dataset = vtab_dataset(data_root, "cifar", "test")
    copy = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(copy[0][0], dataset[0][0])


def test_task_tables_cover_vtab_and_fgvc():
    assert len(VTAB_TASKS) == 19
    assert VTAB_GROUPS.keys() == VTAB_TASKS.keys()
    # VTAB_TASKS lists the tasks group by group: cifar..sun397, patch_camelyon..diabetic_retinopathy, the rest.
    assert [VTAB_GROUPS[task] for task in VTAB_TASKS] == ["natural"] * 7 + ["specialized"] * 4 + ["structured"] * 8
    assert VTAB_TASKS["sun397"] == 397 and VTAB_TASKS["patch_camelyon"] == 2
    assert FGVC_DATASETS == {
        "cub": 200,
        "nabirds": 555,
        "oxford_flowers": 102,
        "stanford_dogs": 120,
        "stanford_cars": 196,
    }


def unequal_classes() -> ImageListDataset:
    """Ten items of class 0, four of class 1 and one of class 2, interleaved; the paths are never opened."""
    labels = [0, 1] * 4 + [0] * 6 + [2]
    return ImageListDataset([(Path(f"/images/{i}.jpg"), label) for i, label in enumerate(labels)], num_classes=3)


@pytest.mark.parametrize(
    ("fraction", "counts"),
    [(1.0, {0: 10, 1: 4, 2: 1}), (0.5, {0: 5, 1: 2, 2: 1}), (0.3, {0: 3, 1: 1, 2: 1}), (0.01, {0: 1, 1: 1, 2: 1})],
)
def test_subsample_keeps_a_rounded_fraction_of_every_class_in_order(fraction, counts):
    dataset = unequal_classes()
    subset = subsample_per_class(dataset, fraction, seed=0)
    assert Counter(subset.labels) == counts
    positions = [dataset.items.index(item) for item in subset.items]
    assert positions == sorted(positions)
    assert subset.num_classes == dataset.num_classes and subset.transform is dataset.transform


def test_subsample_is_fixed_by_the_seed():
    dataset = unequal_classes()
    draws = [subsample_per_class(dataset, 0.5, seed).items for seed in range(5)]
    assert subsample_per_class(dataset, 0.5, seed=0).items == draws[0]
    assert len({tuple(draw) for draw in draws}) > 1


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_subsample_refuses_a_fraction_outside_zero_one(fraction):
    with pytest.raises(ConfigError, match=rf"'fraction' = {fraction}.*\(0, 1\]"):
        subsample_per_class(unequal_classes(), fraction, seed=0)


# Each case: reader, task/dataset name, split, {file under the data root: new text, or None to delete it},
# and what the error message must say.
BAD_INPUT = [
    pytest.param(vtab_dataset, "cifar10", "test", {}, r"'cifar10'.*cifar, caltech101", id="vtab-unknown-task"),
    pytest.param(
        vtab_dataset, "cifar", "train", {}, r"'train'.*train800, val200, train800val200, test", id="vtab-split"
    ),
    pytest.param(vtab_dataset, "cifar", "test", {"": None}, r"root directory '.*' does not exist", id="vtab-no-root"),
    pytest.param(vtab_dataset, "dtd", "test", {}, r"directory '.*dtd' for 'dtd' does not exist", id="vtab-no-task-dir"),
    pytest.param(
        vtab_dataset,
        "cifar",
        "val200",
        {"cifar/val200.txt": None},
        r"cifar/val200\.txt' does not exist",
        id="vtab-no-file",
    ),
    pytest.param(
        vtab_dataset,
        "cifar",
        "test",
        {"cifar/test.txt": "images/0_0.jpg 0\nimages/1_0.jpg\n"},
        r"test\.txt, line 2: 'images/1_0\.jpg' is not '<image path> <integer label>'",
        id="vtab-no-label",
    ),
    pytest.param(
        vtab_dataset,
        "cifar",
        "test",
        {"cifar/test.txt": "images/0_0.jpg zero\n"},
        r"test\.txt, line 1: 'images/0_0\.jpg zero'",
        id="vtab-word-label",
    ),
    pytest.param(
        vtab_dataset,
        "cifar",
        "test",
        {"cifar/test.txt": "images/0_0.jpg 0\n\nimages/1_0.jpg 100\n"},
        r"test\.txt, line 3: label 100 is outside \[0, 100\)",
        id="vtab-label-too-big",
    ),
    pytest.param(
        vtab_dataset,
        "cifar",
        "test",
        {"cifar/test.txt": "images/0_0.jpg -1\n"},
        r"test\.txt, line 1: label -1 is outside \[0, 100\)",
        id="vtab-negative-label",
    ),
    pytest.param(
        vtab_dataset,
        "cifar",
        "test",
        {"cifar/test.txt": "images/0_0.jpg 0\nimages/gone.jpg 1\n"},
        r"1 of the 2 images listed in '.*test\.txt' do not exist, the first is '.*images/gone\.jpg'",
        id="vtab-missing-image",
    ),
    pytest.param(
        vtab_dataset, "cifar", "test", {"cifar/test.txt": "\n"}, r"test\.txt' lists no images", id="vtab-empty"
    ),
    pytest.param(fgvc_dataset, "cub200", "test", {}, r"'cub200'.*cub, nabirds", id="fgvc-unknown-dataset"),
    pytest.param(fgvc_dataset, "cub", "train800", {}, r"'train800'.*train, val, test", id="fgvc-split"),
    pytest.param(fgvc_dataset, "cub", "test", {"": None}, r"root directory '.*' does not exist", id="fgvc-no-root"),
    pytest.param(fgvc_dataset, "nabirds", "test", {}, r"'.*nabirds' for 'nabirds' does not exist", id="fgvc-no-dir"),
    pytest.param(
        fgvc_dataset, "cub", "val", {"cub/val.json": None}, r"cub/val\.json' does not exist", id="fgvc-no-file"
    ),
    pytest.param(
        fgvc_dataset, "cub", "test", {"cub/test.json": "{"}, r"test\.json' is not valid JSON", id="fgvc-bad-json"
    ),
    pytest.param(
        fgvc_dataset,
        "cub",
        "test",
        {"cub/test.json": '["images/0_0.jpg"]'},
        r"test\.json' holds a JSON list; it must hold an object",
        id="fgvc-list",
    ),
    pytest.param(
        fgvc_dataset,
        "cub",
        "test",
        {"cub/test.json": '{"images/0_0.jpg": "0"}'},
        r"test\.json, key 'images/0_0\.jpg': class id '0' is not an integer",
        id="fgvc-string-id",
    ),
    pytest.param(
        fgvc_dataset,
        "cub",
        "test",
        {"cub/test.json": '{"images/0_0.jpg": true}'},
        r"key 'images/0_0\.jpg': class id True is not an integer",
        id="fgvc-bool-id",
    ),
    pytest.param(
        fgvc_dataset,
        "cub",
        "test",
        {"cub/train.json": json.dumps({f"{i}.jpg": i for i in range(201)})},
        r"split files of '.*cub' hold 201 distinct class ids; 'cub' has 200 classes",
        id="fgvc-too-many-classes",
    ),
    pytest.param(
        fgvc_dataset,
        "cub",
        "test",
        {"cub/test.json": '{"0_0.jpg": 1, "gone.jpg": 2}'},
        r"1 of the 2 images listed in '.*test\.json' do not exist, the first is '.*images/gone\.jpg'",
        id="fgvc-missing-image",
    ),
]


@pytest.mark.parametrize(("reader", "name", "split", "edits", "message"), BAD_INPUT)
def test_bad_input_is_a_config_error_before_any_image_is_opened(
    data_root, monkeypatch, reader, name, split, edits, message
):
    apply_edits(data_root, edits)

    def refuse_to_open(*args, **kwargs):
        raise AssertionError("an image was opened before the split was checked")

    monkeypatch.setattr(vision.Image, "open", refuse_to_open)
    with pytest.raises(ConfigError, match=message):
        reader(data_root, name, split)
