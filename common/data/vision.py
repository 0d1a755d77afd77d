"""Image-classification datasets for ViT-B/16 fine-tuning: VTAB-1K and FGVC in the on-disk layouts of PETL codebases.

    from common.data.vision import vtab_dataset, fgvc_dataset, subsample_per_class

    train = vtab_dataset("data/vtab-1k", "cifar", "train800val200")  # root/cifar/train800val200.txt
    test = fgvc_dataset("data/fgvc", "cub", "test")  # root/cub/test.json
    few = subsample_per_class(train, fraction=0.1, seed=0)  # 10% of every class, for sample-efficiency sweeps

Layouts:

- VTAB-1K: `root/<task>/{train800,val200,train800val200,test}.txt`, each line `<image path> <integer label>` with the
  path relative to the task folder (e.g. `images/0001.jpg 3`).
- FGVC: `root/<dataset>/{train,val,test}.json` (the VPT release's split files), each a JSON object mapping an image
  path to an integer class id. Paths are relative to the dataset's image folder (`FGVC_IMAGE_DIRS`: `images/` for
  CUB and NABirds, `Images/` for Stanford Dogs, the dataset folder itself for Flowers and Cars). Class ids are as
  the files have them (1-based for CUB, with gaps for NABirds); the sorted distinct ids of the three split files
  are numbered 0, 1, ... so that every split shares one contiguous labelling.

Every item comes through `eval_transform`: 224x224 bicubic resize and ImageNet normalisation, no augmentation.
Every reader checks the whole split (names, files, lines, labels, that every listed image exists) before any
image is opened, and raises `ConfigError` naming the file, the value and what is allowed, so that a bad path
fails at start-up rather than hours into a run.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms

from common.config import ConfigError
from common.data.files import existing_file, read_json
from common.data.sampling import per_class_subset

IMAGE_SIZE = 224

VTAB_TASKS: dict[str, int] = {
    "cifar": 100,
    "caltech101": 102,
    "dtd": 47,
    "oxford_flowers102": 102,
    "oxford_iiit_pet": 37,
    "svhn": 10,
    "sun397": 397,
    "patch_camelyon": 2,
    "eurosat": 10,
    "resisc45": 45,
    "diabetic_retinopathy": 5,
    "clevr_count": 8,
    "clevr_dist": 6,
    "dmlab": 6,
    "kitti": 4,
    "dsprites_loc": 16,
    "dsprites_ori": 16,
    "smallnorb_azi": 18,
    "smallnorb_ele": 9,
}

VTAB_GROUPS: dict[str, str] = {
    "cifar": "natural",
    "caltech101": "natural",
    "dtd": "natural",
    "oxford_flowers102": "natural",
    "oxford_iiit_pet": "natural",
    "svhn": "natural",
    "sun397": "natural",
    "patch_camelyon": "specialized",
    "eurosat": "specialized",
    "resisc45": "specialized",
    "diabetic_retinopathy": "specialized",
    "clevr_count": "structured",
    "clevr_dist": "structured",
    "dmlab": "structured",
    "kitti": "structured",
    "dsprites_loc": "structured",
    "dsprites_ori": "structured",
    "smallnorb_azi": "structured",
    "smallnorb_ele": "structured",
}

FGVC_DATASETS: dict[str, int] = {
    "cub": 200,
    "nabirds": 555,
    "oxford_flowers": 102,
    "stanford_dogs": 120,
    "stanford_cars": 196,
}

# Folder, inside the dataset folder, that the split files' image paths are relative to.
FGVC_IMAGE_DIRS: dict[str, str] = {
    "cub": "images",
    "nabirds": "images",
    "oxford_flowers": "",
    "stanford_dogs": "Images",
    "stanford_cars": "",
}

VTAB_SPLITS = ("train800", "val200", "train800val200", "test")
FGVC_SPLITS = ("train", "val", "test")


def _to_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB: grayscale, palette and RGBA images all become three channels."""
    return image.convert("RGB")


def eval_transform(image_size: int = IMAGE_SIZE) -> transforms.Compose:
    """The evaluation transform: RGB, bicubic resize to (image_size, image_size), tensor, ImageNet normalisation."""
    return transforms.Compose(
        [
            # A named function rather than a lambda, so DataLoader workers can pickle the transform.
            transforms.Lambda(_to_rgb),
            transforms.Resize((image_size, image_size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        ]
    )


class ImageListDataset(torch.utils.data.Dataset):
    """A list of (absolute image path, label) pairs read with PIL and passed through a transform."""

    def __init__(
        self,
        items: Sequence[tuple[Path, int]],
        num_classes: int,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
    ):
        self.items = list(items)
        self.num_classes = num_classes
        self.transform = transform if transform is not None else eval_transform()

    @property
    def labels(self) -> list[int]:
        """The label of every item, in order."""
        return [label for _, label in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        with Image.open(path) as image:
            return self.transform(image), label  # (3, H, W)


def _check_label(label: int, num_classes: int, where: str, dataset: str) -> None:
    """Raise unless `label` is a class id of a dataset with `num_classes` classes."""
    if not 0 <= label < num_classes:
        raise ConfigError(
            f"{where}: label {label} is outside [0, {num_classes}); '{dataset}' has {num_classes} classes"
        )


def _image_list(
    items: list[tuple[Path, int]],
    num_classes: int,
    split_file: Path,
    transform: Callable[[Image.Image], torch.Tensor] | None,
) -> ImageListDataset:
    """The dataset of a split file's items, once the file is known to list at least one image and all of them exist."""
    if not items:
        raise ConfigError(f"split file '{split_file}' lists no images")
    missing = [path for path, _ in items if not path.is_file()]
    if missing:
        raise ConfigError(
            f"{len(missing)} of the {len(items)} images listed in '{split_file}' do not exist, "
            f"the first is '{missing[0]}'"
        )
    return ImageListDataset(items, num_classes, transform)


def _dataset_dir(root: str | Path, name: str, kind: str) -> Path:
    """The folder `root/name` of one task or dataset, which must exist."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise ConfigError(f"{kind} root directory '{root}' does not exist")
    folder = root / name
    if not folder.is_dir():
        raise ConfigError(f"{kind} directory '{folder}' for '{name}' does not exist under root '{root}'")
    return folder


def vtab_dataset(
    root: str | Path,
    task: str,
    split: str,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
) -> ImageListDataset:
    """One split of one VTAB-1K task, read from `root/<task>/<split>.txt`."""
    if task not in VTAB_TASKS:
        raise ConfigError.invalid("task", task, f"one of the VTAB-1K tasks {', '.join(VTAB_TASKS)}")
    if split not in VTAB_SPLITS:
        raise ConfigError.invalid("split", split, f"one of the VTAB-1K splits {', '.join(VTAB_SPLITS)}")
    num_classes = VTAB_TASKS[task]
    folder = _dataset_dir(root, task, "VTAB-1K task")
    path = existing_file(folder / f"{split}.txt", "split file")
    items = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        # Split at the last space only, so an image path may itself contain spaces.
        fields = line.strip().rsplit(maxsplit=1)
        try:
            image, label = fields[0], int(fields[1])
        except (IndexError, ValueError):
            raise ConfigError(f"{path}, line {number}: {line!r} is not '<image path> <integer label>'") from None
        _check_label(label, num_classes, f"{path}, line {number}", task)
        items.append((folder / image, label))
    return _image_list(items, num_classes, path, transform)


def fgvc_dataset(
    root: str | Path,
    name: str,
    split: str,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
) -> ImageListDataset:
    """One split of one FGVC dataset, read from `root/<name>/<split>.json`."""
    if name not in FGVC_DATASETS:
        raise ConfigError.invalid("dataset", name, f"one of the FGVC datasets {', '.join(FGVC_DATASETS)}")
    if split not in FGVC_SPLITS:
        raise ConfigError.invalid("split", split, f"one of the FGVC splits {', '.join(FGVC_SPLITS)}")
    num_classes = FGVC_DATASETS[name]
    folder = _dataset_dir(root, name, "FGVC dataset")
    class_ids = {other: _read_fgvc_split(folder / f"{other}.json") for other in FGVC_SPLITS}
    distinct = sorted({class_id for split_ids in class_ids.values() for class_id in split_ids.values()})
    if len(distinct) > num_classes:
        raise ConfigError(
            f"the split files of '{folder}' hold {len(distinct)} distinct class ids; '{name}' has {num_classes} classes"
        )
    label_of = {class_id: label for label, class_id in enumerate(distinct)}
    image_dir = folder / FGVC_IMAGE_DIRS[name]
    items = [(image_dir / image, label_of[class_id]) for image, class_id in class_ids[split].items()]
    return _image_list(items, num_classes, folder / f"{split}.json", transform)


def _read_fgvc_split(path: Path) -> dict[str, int]:
    """The image path -> class id mapping of one FGVC split file, checked to be one."""
    class_ids = read_json(path, "split file")
    if not isinstance(class_ids, dict):
        raise ConfigError(
            f"split file '{path}' holds a JSON {type(class_ids).__name__}; it must hold an object mapping "
            "image path to integer class id"
        )
    for image, class_id in class_ids.items():
        # JSON true/false load as bool, a subclass of int: they are not class ids.
        if not isinstance(class_id, int) or isinstance(class_id, bool):
            raise ConfigError(f"{path}, key {image!r}: class id {class_id!r} is not an integer")
    return class_ids


def subsample_per_class(dataset: ImageListDataset, fraction: float, seed: int) -> ImageListDataset:
    """A random `fraction` of every class of `dataset`, in the original order (`sampling.per_class_subset`)."""
    keep = per_class_subset(dataset.labels, fraction, seed)
    items = [item for item, kept in zip(dataset.items, keep, strict=True) if kept]
    return ImageListDataset(items, dataset.num_classes, dataset.transform)


IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def image_folder(
    root: str | Path, split: str, transform: Callable[[Image.Image], torch.Tensor] | None = None
) -> tuple[ImageListDataset, list[str]]:
    """ImageNet's usual layout, `root/<split>/<class folder>/<image>` (e.g. `train/n01440764/n01440764_10026.JPEG`,
    the validation images moved into their class folders), and its classes: the sorted folder names, numbered 0, 1,
    ... in that order."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise ConfigError.invalid("data_root", str(root), f"a folder with a '{split}/' folder of class folders")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"image folder '{folder}' has no class folders")
    items = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((folder / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise ConfigError(f"image folder '{folder}' has no images ({', '.join(IMAGE_SUFFIXES)})")
    return ImageListDataset(items, len(classes), transform), classes
