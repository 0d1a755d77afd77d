"""PatchTST with active attention: shapes, patching, instance normalisation, channel independence, learning."""

import pytest
import torch

from common.config import ConfigError
from common.layers.attention import VALUE_ACTIVATIONS
from quadratic_gating.models import PatchTST


@pytest.mark.parametrize("activation", VALUE_ACTIVATIONS)
def test_patchtst_maps_a_lookback_window_to_the_horizon(activation):
    torch.manual_seed(0)
    model = PatchTST(channels=3, lookback=48, horizon=12, patch_len=16, stride=8, layers=2, dim=16, heads=4, ffn=32,
                     value_activation=activation)  # fmt: skip
    assert model.num_patches == 6  # (48 + 8 - 16) / 8 + 1, as PatchTST pads the end by one stride
    y = model(torch.randn(5, 48, 3))
    assert y.shape == (5, 12, 3)
    y.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_channels_are_independent_and_scale_is_restored():
    torch.manual_seed(0)
    model = PatchTST(
        channels=2, lookback=32, horizon=8, patch_len=8, stride=4, layers=1, dim=16, heads=2, ffn=32
    ).eval()
    x = torch.randn(4, 32, 2)
    y = model(x)
    x2 = x.clone()
    x2[..., 1] = 100 * x2[..., 1] + 5  # rescaling one channel rescales only its forecast (instance normalisation)
    y2 = model(x2)
    assert torch.allclose(y2[..., 0], y[..., 0], atol=1e-5)
    assert torch.allclose(y2[..., 1], 100 * y[..., 1] + 5, rtol=1e-4, atol=1e-3)


def test_patchtst_fits_a_periodic_series():
    torch.manual_seed(0)
    t = torch.arange(400, dtype=torch.float32)
    series = torch.stack([torch.sin(t / 5), torch.cos(t / 7)], -1)  # (400, 2)
    windows = torch.stack([series[i : i + 40] for i in range(0, 350, 3)])  # (n, 40, 2): 32 in, 8 out
    model = PatchTST(channels=2, lookback=32, horizon=8, patch_len=8, stride=4, layers=1, dim=16, heads=2, ffn=32,
                     dropout=0.0)  # fmt: skip
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(model(windows[:, :32]), windows[:, 32:])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def test_a_patch_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match="patch_len"):
        PatchTST(channels=1, lookback=8, horizon=4, patch_len=16)


@pytest.mark.parametrize("router", [None, "linear", "quadratic"])
def test_gpt2_moe_trains_with_its_load_balancing_loss(router):
    from transformers import GPT2Config

    from quadratic_gating.models import gpt2_moe, moe_aux_loss, parameter_counts

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2, n_inner=64)
    model = gpt2_moe(config, router, num_experts=4, top_k=2, hidden=32, rank=4)
    ids = torch.randint(0, 40, (3, 16))
    loss = model(input_ids=ids, labels=ids).loss + 0.01 * moe_aux_loss(model)
    loss.backward()
    counts = parameter_counts(model)
    if router is None:
        assert counts["active"] == counts["total"] and moe_aux_loss(model).item() == 0
    else:
        experts_per_block = 4 * (16 * 32 + 32 + 32 * 16 + 16)
        assert counts["total"] - counts["active"] == 2 * experts_per_block // 2  # 2 of 4 experts idle, 2 blocks
        assert moe_aux_loss(model).item() > 0
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("spt, locality", [(True, True), (False, False)])
def test_small_vit_classifies_and_learns(spt, locality):
    from quadratic_gating.models import SmallViT

    torch.manual_seed(0)
    model = SmallViT(12, 1, 3, patch=4, dim=16, depth=2, heads=2, mlp=32, value_activation="gelu", spt=spt,
                     locality=locality)  # fmt: skip
    images = torch.randn(30, 1, 12, 12)
    labels = torch.arange(30) % 3
    images[labels == 1, :, :6] += 2  # learnable: class by where the bright half is
    images[labels == 2, :, 6:] += 2
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert (model(images).argmax(-1) == labels).float().mean() > 0.9


def test_shifted_patches_hold_the_image_and_its_four_diagonal_shifts():
    from quadratic_gating.models import ShiftedPatchTokens

    tokens = ShiftedPatchTokens(1, patch=2, dim=4)
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    s = tokens.shift
    padded = torch.nn.functional.pad(image, (s, s, s, s))
    captured = {}
    tokens.norm.register_forward_hook(lambda m, inputs, out: captured.setdefault("patches", inputs[0]))
    tokens(image)
    first = captured["patches"][0, 0].reshape(5, 2, 2)  # the top-left patch of the 5 images
    assert torch.equal(first[0], image[0, 0, :2, :2])
    assert torch.equal(first[1], padded[0, 0, 0:2, 0:2])  # shifted by (-1, -1): zeros come in at the top-left
    assert torch.equal(first[4], padded[0, 0, 2:4, 2:4])  # shifted by (+1, +1)
