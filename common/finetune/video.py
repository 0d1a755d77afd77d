"""Video Swin-B fine-tuning on Something-Something v2 and HMDB51 (RepLoRA Sec. 6 Table 4, App. D.2 Table 13).

    python -m replora.video --config replora/configs/video_ssv2.yaml data_root=/data/ssv2
    python -m replora.video --config replora/configs/video_hmdb51.yaml data_root=/data/hmdb51 weights_path=swin3d_b.pth

The sweep is methods x seeds x learning rates x weight decays (App. C.1's grid) on one dataset. Each point builds
torchvision's Video Swin (`swin3d_b`: patch 2 x 4 x 4, window 8 x 7 x 7, widths 128-1024, depths 2-2-18-2) with its
Kinetics-400 weights (torchvision's `Swin3D_B_Weights.KINETICS400_V1`, or the same state dict from a local
`weights_path` on a cluster without internet), a new head for the dataset's classes, adapts it (adapters on Q and V
of the fused qkv of every 3-D window attention, K rows untouched, as for the timm ViTs), trains on the training split
and reports top-1 on the evaluation split (SSv2's validation set, which is what papers report; HMDB51's test split
of `split` 1-3), the views of a test video averaging their softmax scores. Clips are read by `common.data.video`
(PyAV) as `clip` says: frames, dense or uniform (TSN) sampling, random-resized crops in training, multi-view test.

Methods: `full` (FFT), `lora`, `adapter` (the bottleneck adapter after every MLP, at each stage's width), `replora`,
`replora_linear`, and the other adapter methods of `common.finetune.methods`. Prefix tuning is not implemented here:
it prepends learned keys and values to every attention, and torchvision's shifted-window attention is a function
of the projections' weights with no place for them (peft's prefix tuning needs a transformers model). Adapter
dropout must be 0 (Table 7's value): the window attention reads the adapted qkv weight rather than calling it.
Training resumes from the run's checkpoint; the training clips' random choices are a function of (seed, video,
epoch), so a resumed run reads the clips an uninterrupted one reads. The entry point trains through
`common.training.fit` and runs as K data-parallel processes (torchrun, `slurm.submit --processes K`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.config import ConfigError
from common.data.video import DATASETS, ClipConfig, VideoClips, read_split
from common.experiment import Experiment
from common.finetune.methods import Adaptation, adapt, check_methods, trainable
from common.finetune.selection import GridPoint, check_grid, grid_points
from common.training.loop import Optimization, fit, predictions, total_steps
from common.training.monitor import Monitoring
from common.training.sweeps import autocast, check_device, classification_results

# torchvision's Video Swin models (torchvision.models.video.swin3d_*): their architectures and Kinetics-400 weights
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "swin3d_t": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "stochastic_depth_prob": 0.1},
    "swin3d_s": {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24], "stochastic_depth_prob": 0.1},
    "swin3d_b": {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "stochastic_depth_prob": 0.1},
}
WEIGHTS = {"swin3d_t": "Swin3D_T_Weights", "swin3d_s": "Swin3D_S_Weights", "swin3d_b": "Swin3D_B_Weights"}
DEFAULT_SPLITS = {"ssv2": ("train", "validation"), "hmdb51": ("train{k}", "test{k}")}
NOT_IMPLEMENTED = {
    "prefix": "prefix tuning is not implemented for torchvision's Video Swin (its window attention has no place for "
    "prefix keys and values; peft's prefix tuning needs a transformers model)"
}


def _default_optimization() -> Optimization:
    # RepLoRA Table 7, video column: AdamW, cosine, batch 512, 100 warm-up steps, 90 epochs
    return Optimization(epochs=90, batch_size=512, warmup_steps=100, scheduler="cosine")


@dataclass
class Config(Monitoring):
    results_dir: str = "results"  # runs in results/video/<hash>, where replora.tables looks
    dataset: str = "ssv2"  # ssv2 | hmdb51
    data_root: str = ""  # the dataset's root in its official layout (common.data.video)
    split: int = 1  # hmdb51: which of its three train/test splits
    model: str = "swin3d_b"  # a torchvision Video Swin: swin3d_t | swin3d_s | swin3d_b
    pretrained: bool = True  # Kinetics-400 weights (torchvision's KINETICS400_V1, or weights_path)
    weights_path: str = ""  # a local state dict of the model (clusters without internet); empty: torchvision's
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # architecture overrides (tests: tiny sizes)
    clip: ClipConfig = field(default_factory=ClipConfig)
    methods: list[str] = field(default_factory=lambda: ["lora"])
    seeds: list[int] = field(default_factory=lambda: [0])
    learning_rates: list[float] = field(default_factory=lambda: [1e-3])
    weight_decays: list[float] = field(default_factory=lambda: [1e-4])
    adaptation: Adaptation = field(default_factory=Adaptation)
    optimization: Optimization = field(default_factory=_default_optimization)  # learning_rate/weight_decay: the grid's
    device: str = "auto"
    num_workers: int = 8
    eval_batch_size: int = 16
    checkpoint_every: int = 200

    def validate(self) -> None:
        super().validate()  # progress, tracker
        if self.dataset not in DATASETS:
            raise ConfigError.invalid("dataset", self.dataset, f"one of {', '.join(DATASETS)}")
        if self.split not in (1, 2, 3):
            raise ConfigError.invalid("split", self.split, "1, 2 or 3 (HMDB51's three train/test splits)")
        if self.model not in ARCHITECTURES:
            raise ConfigError.invalid("model", self.model, f"one of {', '.join(ARCHITECTURES)}")
        if self.pretrained and self.model_kwargs:
            raise ConfigError.invalid("model_kwargs", dict(self.model_kwargs), "empty for pretrained weights")
        if self.weights_path and not Path(self.weights_path).is_file():
            raise ConfigError.invalid("weights_path", self.weights_path, "an existing state-dict file")
        check_methods(self.methods, adaptation=self.adaptation)
        for method in self.methods:
            if self.adaptation.resolve(method)[0] in NOT_IMPLEMENTED:
                raise ConfigError.invalid("methods", self.methods, NOT_IMPLEMENTED[self.adaptation.resolve(method)[0]])
        if self.adaptation.dropout:
            raise ConfigError.invalid("adaptation.dropout", self.adaptation.dropout, "0 for Video Swin (Table 7: 0)")
        check_grid(self.learning_rates, self.weight_decays, self.seeds)
        check_device(self.device)

    def splits(self) -> tuple[str, str]:
        """(training split, evaluation split) of the dataset."""
        train, test = DEFAULT_SPLITS[self.dataset]
        return train.format(k=self.split), test.format(k=self.split)


Point = GridPoint  # method, seed, learning_rate, weight_decay


def schedule(cfg: Config, point: Point) -> Optimization:
    return replace(cfg.optimization, learning_rate=point.learning_rate, weight_decay=point.weight_decay)


def load_data(cfg: Config) -> tuple[Any, Any]:
    """The training and evaluation video lists: every layout file and listed video is checked first."""
    if not cfg.data_root:
        raise ConfigError.invalid("data_root", "", f"the root folder of {cfg.dataset} in its official layout")
    train, test = cfg.splits()
    return read_split(cfg.dataset, cfg.data_root, train), read_split(cfg.dataset, cfg.data_root, test)


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    """The Video Swin with its Kinetics-400 weights (when ``pretrained``) and a new head of ``num_classes``."""
    from torchvision.models import video
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    architecture = {"patch_size": [2, 4, 4], "window_size": [8, 7, 7], **ARCHITECTURES[cfg.model], **cfg.model_kwargs}
    model = SwinTransformer3d(num_classes=400, **architecture)
    if cfg.pretrained:
        if cfg.weights_path:
            state = torch.load(cfg.weights_path, map_location="cpu", weights_only=True)
        else:
            state = getattr(video, WEIGHTS[cfg.model]).KINETICS400_V1.get_state_dict(progress=False)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            source = cfg.weights_path or WEIGHTS[cfg.model]
            raise ConfigError(f"weights {source} do not fit {cfg.model}: {str(error)[:300]}") from None
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


CLASSES = {"ssv2": 174, "hmdb51": 51}


def parameter_counts(methods: list[str], adaptation: Adaptation, model: str = "swin3d_b") -> list[dict]:
    """Trainable parameters of each method on the real Video Swin shapes (the meta device: nothing allocated or
    downloaded), for each dataset's head: the adapters alone, and with the new head (which trains too)."""
    rows = []
    for dataset, classes in CLASSES.items():
        cfg = Config(pretrained=False, model=model)
        for method in methods:
            with torch.device("meta"):
                backbone = build_model(cfg, classes)
                adapted = adapt(backbone, method, adaptation, head=backbone.head)
            counts = trainable(adapted, backbone.head)
            rows.append(
                {
                    "method": method,
                    "dataset": dataset,
                    "trainable_params": counts["trainable_params"],
                    "adapter_params": counts["adapter_params"],
                    "backbone_params": adapted.adapter_base_params,
                }
            )
    return rows


class Finetune(Experiment):
    """Fine-tuning a Video Swin on SSv2 or HMDB51: every method, learning rate, weight decay and seed; top-1 accuracy
    on the evaluation split. RepLoRA registers it as ``replora.video``."""

    Config = Config
    Point = Point
    run_name = "video"
    data_parallel = True  # torchrun / tasks_per_node: K processes share each step's batch
    load_inputs = staticmethod(load_data)

    @classmethod
    def sweep(cls, cfg: Config) -> list[Point]:
        return grid_points(cfg)

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """What a point's numbers depend on (the data by its root folder, the splits by name)."""
        train, test = cfg.splits()
        return {
            **asdict(point),
            "dataset": cfg.dataset,
            "data_root": str(Path(cfg.data_root).absolute()),
            "train_split": train,
            "eval_split": test,
            "model": cfg.model,
            "pretrained": cfg.pretrained,
            "weights_path": cfg.weights_path,
            "model_kwargs": dict(cfg.model_kwargs),
            "clip": asdict(cfg.clip),
            "adaptation": cfg.adaptation.record(point.method),
            "optimization": asdict(schedule(cfg, point)),
        }

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        started = time.perf_counter()
        train_videos, test_videos = load_data(cfg)
        train = VideoClips(train_videos, cfg.clip, train=True, seed=point.seed)
        test = VideoClips(test_videos, cfg.clip, train=False)
        torch.manual_seed(point.seed)
        backbone = build_model(cfg, len(train_videos.classes))
        head = backbone.head
        model = adapt(backbone, point.method, cfg.adaptation, head=head).to(device)
        counts = trainable(model, head)
        steps = total_steps(len(train), schedule(cfg, point))

        def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            clips, labels = batch  # (B, 3, T, H, W), (B,)
            with autocast(device):
                return nn.functional.cross_entropy(model(clips.to(device)).float(), labels.to(device))

        def predict_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            clips = batch[0].to(device)  # (B, V, 3, T, H, W): the test views of each video
            with autocast(device):
                logits = model(clips.flatten(0, 1)).float()  # (B V, classes)
            return logits.softmax(-1).view(*clips.shape[:2], -1).mean(1).argmax(-1)

        collate = torch.utils.data.default_collate
        monitor = cls.monitor(cfg, point, run_dir)
        losses = fit(
            model, train, collate, loss_fn, schedule(cfg, point), steps, run_dir, point.seed, cfg.checkpoint_every,
            num_workers=cfg.num_workers, monitor=monitor,
        )  # fmt: skip
        predicted = predictions(model, test, collate, predict_fn, cfg.eval_batch_size, cfg.num_workers, monitor=monitor)
        results = classification_results(
            predicted, test.labels, len(train), len(train_videos.classes), steps, losses, started, counts
        )
        monitor.results(len(losses), results)
        return results, {"losses": np.asarray(losses), "predictions": predicted}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return f"{point}: top-1 {results['accuracy']:.2f}%"
