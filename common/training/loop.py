"""The fine-tuning loop every real experiment shares: AdamW, warm-up + cosine or linear decay, seeded batch order,
checkpoint and resume, accuracy.

    schedule = Optimization(epochs=100, batch_size=64, learning_rate=1e-3, weight_decay=1e-4)
    steps = total_steps(len(train), schedule, fraction=0.1)            # epochs scaled by 1 / fraction
    losses = fit(model, train, collate, loss_fn, schedule, steps, run_dir, seed=0)
    top1 = accuracy(model, test, collate, predict_fn)

The order of the training examples is a pure function of (seed, epoch): epoch e visits a permutation drawn from a
generator seeded with [seed, e], in batches of ``batch_size`` (the last one smaller). Together with the model's
trainable parameters, the optimiser, the schedule and torch's RNG (dropout) in the checkpoint, a run that is
interrupted and resumed takes exactly the steps of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from common import runs
from common.config import ConfigError
from common.training import distributed
from common.training.checkpoint import Checkpointer
from common.training.monitor import Monitor

SCHEDULERS = ("cosine", "linear", "constant")


@dataclass
class Optimization:
    """AdamW with linear warm-up to ``learning_rate`` over ``warmup_steps``, then ``scheduler`` decay to 0."""

    epochs: float = 100.0
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    scheduler: str = "cosine"
    max_grad_norm: float = 0.0  # 0: no clipping
    micro_batch_size: int = 0  # > 0: accumulate gradients over micro-batches of this size (0: whole batches)

    def validate(self) -> None:
        for name in ("epochs", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ConfigError.invalid(f"optimization.{name}", getattr(self, name), "a positive number")
        if self.batch_size < 1:
            raise ConfigError.invalid("optimization.batch_size", self.batch_size, "a positive integer")
        for name in ("weight_decay", "warmup_steps", "max_grad_norm", "micro_batch_size"):
            if getattr(self, name) < 0:
                raise ConfigError.invalid(f"optimization.{name}", getattr(self, name), "a number >= 0")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError.invalid("optimization.scheduler", self.scheduler, f"one of {', '.join(SCHEDULERS)}")


def total_steps(num_examples: int, schedule: Optimization, fraction: float = 1.0) -> int:
    """Optimiser steps of a run: ``epochs / fraction`` epochs of ceil(num_examples / batch_size) steps each.

    A sample-efficiency run on a fraction f of the data trains 1/f times as many epochs (RepLoRA Sec. 6), so every
    fraction sees about as many examples as the full run.
    """
    if num_examples < 1:
        raise ConfigError(f"a training set needs at least one example, got {num_examples}")
    epochs = schedule.epochs / fraction
    return max(1, round(epochs * math.ceil(num_examples / schedule.batch_size)))


def learning_rate_factor(step: int, steps: int, schedule: Optimization, floor: float = 0.0) -> float:
    """The multiplier of the learning rate at optimiser step ``step`` (0-based) of ``steps``; the decay ends at
    ``floor`` (GPT-2 pre-training decays to a tenth of the peak, not to 0)."""
    warmup = min(schedule.warmup_steps, steps - 1)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, steps - warmup)
    if schedule.scheduler == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * progress))
    elif schedule.scheduler == "linear":
        decay = 1 - progress
    else:
        decay = 1.0
    return floor + (1 - floor) * decay


class StepBatches(Sampler[list[int]]):
    """The index batches of optimiser steps ``start, ..., steps - 1``: epoch e is a permutation seeded by [seed, e].

    Iterating yields each step's batch in micro-batches of at most ``micro_batch_size`` (0: whole batches), the
    unit a DataLoader collates; ``plan`` says which step each of them belongs to. With ``ranks`` > 1 processes
    training together, this process (``rank``) takes its contiguous part of every step's batch (``distributed.shard``).
    With ``with_epoch`` it yields (index, epoch) pairs, for a dataset whose random augmentation is a function of
    them (``takes_epoch``: a resumed run then draws the augmentations an uninterrupted one draws).
    """

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int,
        steps: int,
        start: int = 0,
        micro_batch_size: int = 0,
        rank: int = 0,
        ranks: int = 1,
        with_epoch: bool = False,
    ) -> None:
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.steps, self.start = steps, start
        self.micro = micro_batch_size or batch_size
        self.per_epoch = math.ceil(num_examples / batch_size)
        self.rank, self.ranks = rank, ranks
        self.with_epoch = with_epoch

    def __len__(self) -> int:
        return sum(1 for _ in self.plan())

    def step_batches(self) -> Iterator[list[int]]:
        """The whole batch of each step, on every rank alike."""
        epoch, order = None, None
        for step in range(self.start, self.steps):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            first = (step % self.per_epoch) * self.batch_size
            yield order[first : first + self.batch_size].tolist()

    def _parts(self) -> Iterator[tuple[list, int]]:
        """(this rank's part of a step's batch, the whole batch's size) of each step; with ``with_epoch`` the items
        are (index, epoch) pairs."""
        for step, batch in enumerate(self.step_batches(), start=self.start):
            part = distributed.shard(batch, self.ranks, self.rank) if self.ranks > 1 else batch
            if self.with_epoch:
                part = [(i, step // self.per_epoch) for i in part]
            yield part, len(batch)

    def _chunks(self, batch: list[int]) -> list[list[int]]:
        return [batch[i : i + self.micro] for i in range(0, len(batch), self.micro)]

    def __iter__(self) -> Iterator[list[int]]:
        for part, _ in self._parts():
            yield from self._chunks(part)

    def plan(self) -> Iterator[tuple[float, bool]]:
        """Per micro-batch, in order: (its share of its step's whole batch, whether it ends the step)."""
        for part, size in self._parts():
            chunks = self._chunks(part)
            for i, chunk in enumerate(chunks):
                yield len(chunk) / size, i == len(chunks) - 1


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, by name (what a checkpoint must hold; the frozen backbone is rebuilt)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


@dataclass
class TrainingState:
    """What a checkpoint holds besides a loop's own progress, saved and restored the same way by every training
    loop: the model (its trainable parameters, or its whole ``state_dict`` where buffers such as batch-norm
    statistics change too), the optimiser, the learning-rate schedule, and the CPU and CUDA random generators
    (dropout masks, on whichever device draws them)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None  # a torch learning-rate scheduler, or None
    whole_model: bool = False  # True: the model's state_dict (buffers too); False: the trainable parameters

    def capture(self, **progress: Any) -> dict:
        """The checkpoint: this state and the loop's ``progress`` (step, losses, history, ...). Processes that
        train together all call it: each one's generators are gathered (``rng_by_rank``), the rest is rank 0's."""
        model = self.model.state_dict() if self.whole_model else trainable_state(self.model)
        rng = {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        by_rank = distributed.gather(rng) if distributed.active() else None
        return {
            **progress,
            "model": model,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            **rng,
            "rng_by_rank": by_rank,
        }

    def restore(self, state: dict) -> dict:
        """Load a checkpoint written by ``capture``; returns it, for the loop to read its progress back."""
        if self.whole_model:
            self.model.load_state_dict(state["model"])
        else:
            load_trainable_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        rng = state
        by_rank = state.get("rng_by_rank")
        if by_rank is not None and len(by_rank) == distributed.world_size():
            rng = by_rank[distributed.rank()]  # this process's own dropout stream
        torch.set_rng_state(rng["torch_rng"])
        if rng.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda_rng"])
        return state


def fit(
    model: nn.Module,
    dataset: Dataset,
    collate: Callable[[list], Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    schedule: Optimization,
    steps: int,
    run_dir: str | Path,
    seed: int,
    checkpoint_every: int = 500,
    log_every: int = 10,
    num_workers: int = 0,
    final_lr_fraction: float = 0.0,
    monitor: Monitor | None = None,
) -> list[float]:
    """Train the parameters of ``model`` that require grad for ``steps`` optimiser steps; the loss of every step.

    ``loss_fn(model, batch)`` returns the mean loss of a batch that ``collate`` built (``collate`` or ``loss_fn``
    moves it to the model's device). Resumes from ``run_dir``'s checkpoint when there is one; every ``log_every`` steps
    appends {"step", "loss", "lr"} to the run's log. The schedule decays to ``final_lr_fraction`` x the peak.
    ``monitor`` shows the steps' progress and sends loss, learning rate and throughput to its tracker (flushed at the
    end; the caller closes it after the evaluation's numbers, ``monitor.results``).
    """
    ranks, rank = distributed.world_size(), distributed.rank()
    distributed.check_batches(len(dataset), schedule.batch_size, schedule.micro_batch_size, ranks)
    monitor = monitor if monitor is not None and rank == 0 else Monitor()  # rank 0 shows and writes
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters: nothing to fine-tune")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases, norms, diagonal vectors: no weight decay
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": schedule.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=schedule.learning_rate,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: learning_rate_factor(s, steps, schedule, final_lr_fraction)
    )
    torch.manual_seed(seed if rank == 0 else seed * 1_000_003 + rank)  # each process its own dropout stream
    losses: list[float] = []
    step = 0
    training = TrainingState(model, optimizer, scheduler)
    with Checkpointer(run_dir, every_steps=checkpoint_every) as checkpointer:
        state = checkpointer.load()
        if state is not None:
            step, losses = training.restore(state)["step"], state["losses"]
        monitor.start(resume_step=step if state is not None else None)
        progress = monitor.bar(steps, "train", initial=step, unit="step", every=log_every)
        window_start, window_steps = time.perf_counter(), 0

        batches = StepBatches(
            len(dataset), schedule.batch_size, seed, steps, step, schedule.micro_batch_size, rank, ranks,
            with_epoch=getattr(dataset, "takes_epoch", False),
        )  # fmt: skip
        # Its own generator: a DataLoader draws a seed from the global RNG when it starts, which would shift the
        # dropout masks of a resumed run against an uninterrupted one.
        loader = DataLoader(
            dataset, batch_sampler=batches, collate_fn=collate, num_workers=num_workers, generator=torch.Generator()
        )
        trained = data_parallel(model) if distributed.active() else model
        model.train()
        step_loss, first = 0.0, True
        for batch, (share, last) in zip(loader, batches.plan(), strict=True):
            # Several processes: DistributedDataParallel averages their gradients when a step's last micro-batch
            # runs backward (ranks x share undoes the average: the step's gradient is the whole batch's mean).
            with trained.no_sync() if trained is not model and not last else contextlib.nullcontext():
                loss = loss_fn(trained, batch)
                if first:
                    optimizer.zero_grad(set_to_none=True)
                (loss * (share * ranks)).backward()  # micro-batch means weighted by their sizes
            step_loss, first = step_loss + loss.item() * share, False
            if not last:
                continue
            step_loss = distributed.sum_scalar(step_loss)  # the whole batch's mean loss
            if schedule.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(params, schedule.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(step_loss)
            progress.update(1, loss=step_loss, lr=_lr(optimizer))
            step_loss, first, window_steps = 0.0, True, window_steps + 1
            if step % log_every == 0 or step == steps:
                entry = {"step": step, "loss": float(np.mean(losses[-log_every:])), "lr": _lr(optimizer)}
                if rank == 0:
                    runs.append_log(run_dir, entry)
                steps_per_s = window_steps / max(time.perf_counter() - window_start, 1e-9)
                monitor.scalars(step, {**entry, "examples_per_s": steps_per_s * schedule.batch_size})
                window_start, window_steps = time.perf_counter(), 0
            checkpointer.step_done(step, partial(training.capture, step=step, losses=losses))
        progress.close()
    monitor.flush()
    return losses


def data_parallel(model: nn.Module) -> nn.Module:
    """``model`` wrapped for data-parallel training over the process group (its own device, gradients of the
    trainable parameters averaged in buckets during backward)."""
    device = next(p.device for p in model.parameters() if p.requires_grad)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


@torch.no_grad()
def predictions(
    model: nn.Module,
    dataset: Dataset,
    collate: Callable[[list], Any],
    predict_fn: Callable[[nn.Module, Any], torch.Tensor],
    batch_size: int = 128,
    num_workers: int = 0,
    monitor: Monitor | None = None,
) -> np.ndarray:
    """``predict_fn(model, batch)`` (a class index per example) over ``dataset`` in order, in eval mode; ``monitor``
    shows the batches' progress."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=num_workers)
    progress = (monitor if monitor is not None else Monitor()).bar(len(loader), "eval", unit="batch")
    out = []
    for batch in loader:
        out.append(predict_fn(model, batch).cpu().numpy())
        progress.update()
    progress.close()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def top1(predicted: np.ndarray, labels: Sequence[int]) -> float:
    """Top-1 accuracy in percent."""
    labels = np.asarray(labels)
    if predicted.shape != labels.shape or not labels.size:
        raise ValueError(f"top1 needs as many predictions as labels (>0), got {predicted.shape} and {labels.shape}")
    return float(100.0 * np.mean(predicted == labels))
