"""Active attention on long-horizon forecasting (Table 2): PatchTST or the encoder-decoder Transformer with each
value activation on any of the eight benchmark CSVs (or another file in the same format).

    python -m quadratic_gating.timeseries --config quadratic_gating/configs/timeseries_etth1.yaml \
        csv_path=/data/ETT-small/ETTh1.csv
    python -m quadratic_gating.timeseries --config quadratic_gating/configs/timeseries_etth1_transformer.yaml \
        csv_path=/data/ETT-small/ETTh1.csv

The sweep is activations x seeds. Each point trains the `architecture` (`common.data.timeseries` splits, train-only
scaling; the Transformer also reads the rows' time features) with Adam and one of PatchTST's schedules: "type3" (the
learning rate held for 3 epochs, then multiplied by 0.9 each epoch), "type1" (halved every epoch, the Informer
family's), "constant", or "tst" (one-cycle over every step, for ETTm, Traffic and Electricity). It stops early when
the validation MSE has not improved for `patience` epochs and reports the test MSE and MAE (on the scaled series,
over every test window: no `drop_last`) of the epoch with the best validation MSE. "identity" is the paper's Linear
baseline. Training resumes from the run's checkpoint after each finished epoch (``common.training.loop.TrainingState``:
the model with its batch-norm statistics, Adam, the schedule, the CPU and CUDA generators; the epoch's shuffle is
seeded by (seed, epoch)). The epoch loop is this module's own, not ``common.training.fit``'s step loop: it validates
and stops early after every epoch, and its batch order predates the shared sampler's, which the recorded runs keep.
`timeseries_<dataset>.yaml` holds PatchTST's own settings for each of the eight benchmarks.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from common import runs
from common.config import ConfigError
from common.data.timeseries import DATASETS, Windows, forecasting_splits, load_dates, load_series, time_features
from common.experiment import Experiment, register
from common.layers.attention import VALUE_ACTIVATIONS
from common.training import sweeps
from common.training.checkpoint import Checkpointer
from common.training.loop import TrainingState
from common.training.monitor import Monitoring
from common.training.sweeps import check_device
from quadratic_gating.models import ForecastTransformer, PatchTST

ARCHITECTURES = ("patchtst", "transformer")
LR_SCHEDULES = ("type3", "type1", "constant", "tst")


@dataclass
class PatchTSTConfig:
    """PatchTST's own defaults for ETTh1/ETTh2 (its larger datasets use dim 128, 16 heads, ffn 256, dropout 0.2)."""

    patch_len: int = 16
    stride: int = 8
    layers: int = 3
    dim: int = 16
    heads: int = 4
    ffn: int = 128
    dropout: float = 0.3  # embeddings, residual branches and FFN
    head_dropout: float = 0.0
    attention_dropout: float = 0.0  # on the attention weights: PatchTST's default (none)


@dataclass
class TransformerConfig:
    """The encoder-decoder Transformer of App. F.3 (2 encoder layers, 1 decoder layer, 8 heads, FFN 2048) with the
    Informer family's other defaults (width 512, dropout 0.05, a decoder start of 48 look-back rows)."""

    label_len: int = 48
    dim: int = 512
    heads: int = 8
    encoder_layers: int = 2
    decoder_layers: int = 1
    ffn: int = 2048
    dropout: float = 0.05


@dataclass
class Config(Monitoring):
    results_dir: str = "results/quadratic_gating"
    csv_path: str = ""
    dataset: str = "ETTh1"  # which split rule applies (ETT months or 70/10/20)
    architecture: str = "patchtst"  # patchtst | transformer
    activations: list[str] = field(default_factory=lambda: list(VALUE_ACTIVATIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    lookback: int = 336
    horizon: int = 192  # the paper: 192 (36 for Illness)
    patchtst: PatchTSTConfig = field(default_factory=PatchTSTConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    epochs: int = 100
    patience: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-4
    lr_schedule: str = "type3"  # type3 (PatchTST) | type1 (halved every epoch) | constant | tst (one-cycle)
    pct_start: float = 0.3  # tst: the share of the steps that warm up
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0: torch's default

    def validate(self) -> None:
        super().validate()  # progress, tracker
        if self.architecture not in ARCHITECTURES:
            raise ConfigError.invalid("architecture", self.architecture, f"one of {', '.join(ARCHITECTURES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError.invalid("lr_schedule", self.lr_schedule, f"one of {', '.join(LR_SCHEDULES)}")
        if not 0 < self.pct_start < 1:
            raise ConfigError.invalid("pct_start", self.pct_start, "a fraction in (0, 1)")
        check_device(self.device)
        if self.dataset not in DATASETS:
            raise ConfigError.invalid("dataset", self.dataset, f"one of {', '.join(DATASETS)}")
        sweeps.check_names("activations", self.activations, VALUE_ACTIVATIONS)
        if not self.csv_path:
            raise ConfigError.invalid("csv_path", "", "the path of the dataset's CSV file (a `date` column + values)")
        sweeps.check_positive(self, "epochs", "patience", "batch_size", "lookback", "horizon")


@dataclass(frozen=True)
class Point:
    activation: str
    seed: int


def load_data(cfg: Config) -> tuple[Windows, Windows, Windows]:
    """Read the CSV and build the splits: a bad file or a window longer than a split fails here."""
    values = load_series(cfg.csv_path, cfg.dataset)
    if cfg.architecture == "patchtst":
        train, val, test, _ = forecasting_splits(values, cfg.dataset, cfg.lookback, cfg.horizon)
    else:
        marks = time_features(load_dates(cfg.csv_path))
        label_len = cfg.transformer.label_len
        train, val, test, _ = forecasting_splits(values, cfg.dataset, cfg.lookback, cfg.horizon, marks, label_len)
    return train, val, test


def build(cfg: Config, channels: int, activation: str) -> torch.nn.Module:
    if cfg.architecture == "patchtst":
        return PatchTST(channels, cfg.lookback, cfg.horizon, value_activation=activation, **asdict(cfg.patchtst))
    return ForecastTransformer(channels, cfg.horizon, value_activation=activation, **asdict(cfg.transformer))


def forecast(model: torch.nn.Module, batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(prediction, target) of a batch of `Windows` (x, y) or `MarkedWindows` (x, x_marks, y, y_marks), on the
    model's device."""
    device = next(model.parameters()).device
    batch = [t.to(device) for t in batch]
    if len(batch) == 2:
        x, y = batch
        return model(x), y
    x, x_marks, y, y_marks = batch
    return model(x, x_marks, y_marks), y[:, y.shape[1] - model.horizon :]


def learning_rate(cfg: Config, epoch: int) -> float:
    """The learning rate of 0-based `epoch`: type3 holds it for 3 epochs, then x 0.9 per epoch; type1 halves it every
    epoch; constant keeps it (tst sets it every step instead: `one_cycle`)."""
    if cfg.lr_schedule == "type3":
        return cfg.learning_rate * 0.9 ** max(0, epoch - 2)
    if cfg.lr_schedule == "type1":
        return cfg.learning_rate * 0.5**epoch
    return cfg.learning_rate


def one_cycle(cfg: Config, optimiser: torch.optim.Optimizer, steps_per_epoch: int):
    """PatchTST's "TST" schedule: torch's one-cycle policy over every step of `epochs` (cosine warm-up over the
    first `pct_start` of them from learning_rate / 25, then cosine decay to learning_rate / 1e5)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.learning_rate, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=cfg.pct_start,
    )  # fmt: skip


def _lr(optimiser: torch.optim.Optimizer) -> float:
    return optimiser.param_groups[0]["lr"]


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: Windows, batch_size: int) -> tuple[float, float]:
    """(MSE, MAE) over every window of `windows`."""
    model.eval()
    squared, absolute, count = 0.0, 0.0, 0
    for batch in DataLoader(windows, batch_size=batch_size, shuffle=False, drop_last=False):
        prediction, y = forecast(model, batch)
        error = prediction - y
        squared += error.pow(2).sum().item()
        absolute += error.abs().sum().item()
        count += error.numel()
    return squared / count, absolute / count


@register("quadratic_gating.timeseries")
class TimeSeries(Experiment):
    """Each value activation trained from each seed with early stopping; test MSE and MAE of the best epoch."""

    Config = Config
    Point = Point
    axes = ("activations", "seeds")
    run_name = "timeseries"
    paths = ("csv_path",)

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """The shared record, without the settings the run does not use (the other architecture's; pct_start
        outside the tst schedule)."""
        record = super().record(cfg, point)
        record.pop("transformer" if cfg.architecture == "patchtst" else "patchtst")
        if cfg.lr_schedule != "tst":
            record.pop("pct_start")
        return record

    load_inputs = staticmethod(load_data)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device: torch.device) -> tuple[dict, dict]:
        train, val, test = load_data(cfg)
        torch.manual_seed(point.seed)
        model = build(cfg, train[0][0].shape[-1], point.activation).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        scheduler = one_cycle(cfg, optimiser, steps_per_epoch) if cfg.lr_schedule == "tst" else None
        history, best, epoch = [], {"val_mse": float("inf")}, 0
        # the whole state_dict: PatchTST's batch-norm statistics are buffers
        training = TrainingState(model, optimiser, scheduler, whole_model=True)
        with Checkpointer(run_dir, every_steps=1) as checkpointer:
            state = checkpointer.load()
            if state is not None:
                epoch, history, best = training.restore(state)["epoch"], state["history"], state["best"]
            monitor = cls.monitor(cfg, point, run_dir)
            monitor.start(resume_step=epoch if state is not None else None)
            progress = monitor.bar(cfg.epochs, "train", initial=epoch, unit="epoch", every=1)
            while epoch < cfg.epochs and epoch - best.get("epoch", 0) < cfg.patience:
                if scheduler is None:
                    for group in optimiser.param_groups:
                        group["lr"] = learning_rate(cfg, epoch)
                generator = torch.Generator().manual_seed(point.seed * 100_003 + epoch)
                model.train()
                losses = []
                for batch in DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=generator):
                    loss = torch.nn.functional.mse_loss(*forecast(model, batch))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    if scheduler is not None:
                        scheduler.step()
                    losses.append(loss.item())
                val_mse, _ = evaluate(model, val, cfg.batch_size)
                epoch += 1
                history.append({"epoch": epoch, "train_mse": float(np.mean(losses)), "val_mse": val_mse})
                runs.append_log(run_dir, history[-1])
                train_mse = history[-1]["train_mse"]
                progress.update(1, train_mse=train_mse, val_mse=val_mse)
                monitor.scalars(epoch, {"train_mse": train_mse, "val_mse": val_mse, "lr": _lr(optimiser)})
                if val_mse < best["val_mse"]:
                    best = {"val_mse": val_mse, "epoch": epoch, "model": copy.deepcopy(model.state_dict())}
                checkpointer.step_done(epoch, partial(training.capture, epoch=epoch, history=history, best=best))
        model.load_state_dict(best["model"])
        test_mse, test_mae = evaluate(model, test, cfg.batch_size)
        results = {
            "test_mse": test_mse,
            "test_mae": test_mae,
            "best_epoch": best["epoch"],
            "epochs": epoch,
            "val_mse": best["val_mse"],
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        progress.close()
        monitor.results(epoch, results)
        return results, {name: np.array([h[name] for h in history]) for name in ("train_mse", "val_mse")}

    @classmethod
    def summary(cls, point: Point, results: dict) -> str:
        return (
            f"{point.activation} seed={point.seed}: test MSE {results['test_mse']:.4f}, MAE {results['test_mae']:.4f}"
        )


if __name__ == "__main__":
    TimeSeries.cli()
