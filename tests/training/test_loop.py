"""The shared fine-tuning loop: schedule, batch order, resume after a crash, accuracy."""

import numpy as np
import pytest
import torch
from torch import nn

from common import runs
from common.config import ConfigError
from common.training.loop import (
    Optimization,
    StepBatches,
    fit,
    learning_rate_factor,
    predictions,
    top1,
    total_steps,
)

N, DIM, CLASSES = 40, 6, 3


class Data(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(N, DIM, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 1).long()

    def __len__(self):
        return N

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(DIM, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, CLASSES))


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


SCHEDULE = Optimization(epochs=3, batch_size=8, learning_rate=0.05, weight_decay=0.01, warmup_steps=4)


def test_total_steps_scale_epochs_by_one_over_the_fraction():
    assert total_steps(40, SCHEDULE) == 3 * 5
    assert total_steps(4, SCHEDULE, fraction=0.1) == 30 * 1  # 30 epochs of one (short) batch
    assert total_steps(41, SCHEDULE) == 3 * 6  # the last batch of an epoch is smaller, not dropped


@pytest.mark.parametrize("scheduler", ["cosine", "linear", "constant"])
def test_learning_rate_warms_up_linearly_then_decays(scheduler):
    schedule = Optimization(warmup_steps=4, scheduler=scheduler)
    factors = [learning_rate_factor(s, 20, schedule) for s in range(20)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b for a, b in zip(factors[4:], factors[5:], strict=False))
    if scheduler != "constant":
        assert factors[-1] < 0.2
    else:
        assert factors[-1] == 1.0


def test_a_floor_keeps_the_decay_above_a_fraction_of_the_peak():
    schedule = Optimization(warmup_steps=4, scheduler="cosine")
    plain = [learning_rate_factor(s, 20, schedule) for s in range(20)]
    floored = [learning_rate_factor(s, 20, schedule, floor=0.1) for s in range(20)]
    assert floored[:5] == plain[:5]  # the warm-up is unchanged
    assert floored[5:] == pytest.approx([0.1 + 0.9 * f for f in plain[5:]])
    assert min(floored) > 0.1 and floored[-1] < 0.11


def test_batches_visit_every_example_once_per_epoch_and_resume_mid_run():
    full = list(StepBatches(10, 4, seed=3, steps=9))  # 3 epochs of 3 batches (4, 4, 2)
    assert [len(b) for b in full] == [4, 4, 2] * 3
    for epoch in range(3):
        assert sorted(sum(full[3 * epoch : 3 * epoch + 3], [])) == list(range(10))
    assert full[:3] != full[3:6]  # a new order every epoch
    assert list(StepBatches(10, 4, seed=3, steps=9, start=5)) == full[5:]
    assert list(StepBatches(10, 4, seed=4, steps=9)) != full


def test_fit_learns_and_a_crashed_run_resumes_to_the_same_parameters(tmp_path):
    data, steps = Data(), total_steps(N, SCHEDULE)
    reference = model()
    losses = fit(reference, data, torch.utils.data.default_collate, loss_fn, SCHEDULE, steps, tmp_path / "a", seed=0)
    assert len(losses) == steps and np.mean(losses[-3:]) < np.mean(losses[:3])

    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 11:
            raise RuntimeError("node failure")
        return loss_fn(model, batch)

    interrupted = model()
    with pytest.raises(RuntimeError, match="node failure"):
        fit(
            interrupted,
            data,
            torch.utils.data.default_collate,
            crashing,
            SCHEDULE,
            steps,
            tmp_path / "b",
            0,
            checkpoint_every=4,
        )
    resumed = model()  # a fresh process: the initial weights again, then the checkpoint of step 8
    losses_b = fit(
        resumed, data, torch.utils.data.default_collate, loss_fn, SCHEDULE, steps, tmp_path / "b", 0, checkpoint_every=4
    )
    assert losses_b == losses
    for a, b in zip(reference.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    logged = [line for line in (tmp_path / "b" / runs.LOG_FILE).read_text().splitlines() if '"step"' in line]
    assert len(logged) == len({line.split(",")[0] for line in logged})  # every logged step once


def test_fit_trains_only_parameters_that_require_grad(tmp_path):
    net = model()
    net[0].requires_grad_(False)
    frozen = net[0].weight.clone()
    fit(net, Data(), torch.utils.data.default_collate, loss_fn, SCHEDULE, 5, tmp_path, seed=0)
    assert torch.equal(net[0].weight, frozen)
    net.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        fit(net, Data(), torch.utils.data.default_collate, loss_fn, SCHEDULE, 5, tmp_path / "x", seed=0)


def test_predictions_and_top1():
    net = model()
    predicted = predictions(
        net, Data(), torch.utils.data.default_collate, lambda m, b: m(b[0]).argmax(-1), batch_size=7
    )
    assert predicted.shape == (N,) and not net.training
    assert top1(np.array([0, 1, 2, 2]), [0, 1, 1, 2]) == 75.0
    with pytest.raises(ValueError):
        top1(np.array([0, 1]), [0, 1, 2])


@pytest.mark.parametrize(
    "field, value",
    [("epochs", 0), ("batch_size", 0), ("learning_rate", -1.0), ("warmup_steps", -1), ("scheduler", "step")],
)
def test_bad_optimization_settings_are_refused(field, value):
    schedule = Optimization(**{field: value})
    with pytest.raises(ConfigError, match=f"optimization.{field}"):
        schedule.validate()


def test_micro_batches_accumulate_to_the_whole_batch_gradient(tmp_path):
    def no_dropout() -> nn.Module:
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(DIM, 16), nn.ReLU(), nn.Linear(16, CLASSES))

    whole, accumulated = no_dropout(), no_dropout()
    collate = torch.utils.data.default_collate
    losses = fit(whole, Data(), collate, loss_fn, SCHEDULE, 10, tmp_path / "a", seed=0)
    micro = Optimization(**{**SCHEDULE.__dict__, "micro_batch_size": 3})  # batches of 8 as 3 + 3 + 2
    losses_micro = fit(accumulated, Data(), collate, loss_fn, micro, 10, tmp_path / "b", seed=0)
    assert losses_micro == pytest.approx(losses, rel=1e-5)
    for a, b in zip(whole.parameters(), accumulated.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert len(StepBatches(40, 8, 0, 10, micro_batch_size=3)) == 30


def test_a_dataset_that_takes_the_epoch_gets_index_epoch_pairs_that_resume_alike():
    whole = list(StepBatches(10, 4, seed=3, steps=7, with_epoch=True))  # 3 steps per epoch: 4, 4, 2
    assert whole[0][0][1] == 0 and whole[3][0][1] == 1 and whole[6][0][1] == 2
    assert sorted(i for i, _ in sum(whole[:3], [])) == list(range(10))  # every example once in epoch 0
    assert list(StepBatches(10, 4, seed=3, steps=7, start=4, with_epoch=True)) == whole[4:]
    assert [[i for i, _ in b] for b in whole] == list(StepBatches(10, 4, seed=3, steps=7))
