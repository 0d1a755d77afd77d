"""Active attention: our multi-head attention against an explicit reference, and the value activation on timm and
transformers models."""

import math

import pytest
import timm
import torch
from transformers import GPT2Config, GPT2Model

from common.config import ConfigError
from common.layers.activations import ACTIVATIONS
from common.layers.attention import VALUE_ACTIVATIONS, ActivatedRows, MultiHeadAttention, use_value_activation


def reference(attention: MultiHeadAttention, x: torch.Tensor, activation: str, normaliser: str, causal: bool):
    """Eq. (20) written out head by head: normalise(q k^T / sqrt(d)) sigma(v)."""
    B, T, C = x.shape
    H, d = attention.num_heads, attention.head_dim
    q, k, v = attention.qkv(x).split(C, dim=-1)
    heads = []
    for h in range(H):
        qh, kh, vh = (t[..., h * d : (h + 1) * d] for t in (q, k, v))
        scores = qh @ kh.transpose(-2, -1) / math.sqrt(d)
        mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else torch.ones(T, T, dtype=torch.bool)
        if normaliser == "softmax":
            weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        else:
            weights = torch.sigmoid(scores - math.log(T)) * mask
        heads.append(weights @ ACTIVATIONS[activation]()(vh))
    return attention.proj(torch.cat(heads, -1))


@pytest.mark.parametrize("activation", VALUE_ACTIVATIONS)
@pytest.mark.parametrize("normaliser", ["softmax", "sigmoid"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_is_eq_20(activation, normaliser, causal):
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4, activation, normaliser, causal).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert torch.allclose(attention(x), reference(attention, x, activation, normaliser, causal), atol=1e-10)


@pytest.mark.parametrize("normaliser", ["softmax", "sigmoid"])
def test_cross_attention_takes_keys_and_values_from_the_context(normaliser):
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 4, "tanh", normaliser).double()
    x, memory = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 7, 16, dtype=torch.float64)
    q = attention.qkv(x).split(16, dim=-1)[0]
    _, k, v = attention.qkv(memory).split(16, dim=-1)
    heads = []
    for h in range(4):
        qh, kh, vh = (t[..., 4 * h : 4 * h + 4] for t in (q, k, v))
        scores = qh @ kh.transpose(-2, -1) / 2
        weights = scores.softmax(-1) if normaliser == "softmax" else torch.sigmoid(scores - math.log(7))
        heads.append(weights @ torch.tanh(vh))
    expected = attention.proj(torch.cat(heads, -1))
    assert torch.allclose(attention(x, context=memory), expected, atol=1e-10)
    assert attention(x, context=x).allclose(attention(x), atol=1e-10)  # its own context: self-attention
    with pytest.raises(ConfigError, match="context"):
        MultiHeadAttention(16, 4, causal=True)(x.float(), context=memory.float())


@pytest.mark.parametrize("causal", [False, True])
def test_performer_attention_estimates_softmax_attention(causal):
    torch.manual_seed(0)
    exact = MultiHeadAttention(16, 2, "gelu", "softmax", causal).double()
    performer = MultiHeadAttention(16, 2, "gelu", "performer", causal, features=8192).double()
    performer.load_state_dict(exact.state_dict(), strict=False)  # the same projections; its own features
    x = 0.5 * torch.randn(2, 6, 16, dtype=torch.float64)
    expected = exact(x)
    error = (performer(x) - expected).norm() / expected.norm()
    assert error < 0.03  # the estimate's error shrinks like 1 / sqrt(features)
    few = MultiHeadAttention(16, 2, "gelu", "performer", causal, features=8).double()
    few.load_state_dict(exact.state_dict(), strict=False)
    assert (few(x) - expected).norm() / expected.norm() > error
    if causal:  # no token sees a later one
        later = x.clone()
        later[:, 3:] += torch.randn(2, 3, 16, dtype=torch.float64)
        assert torch.allclose(performer(later)[:, :3], performer(x)[:, :3], atol=1e-6)
    assert performer.features == 8192 and MultiHeadAttention(16, 2, normaliser="performer").features == 8 * 3
    before = performer.omega.clone()
    performer.redraw_features()
    assert not torch.equal(before, performer.omega) and "omega" in performer.state_dict()


def test_value_activation_on_a_timm_vit_changes_only_the_values():
    torch.manual_seed(0)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, embed_dim=32, depth=2, num_heads=2, img_size=32)
    x = torch.randn(1, 3, 32, 32)
    before = vit(x)
    qkv = vit.blocks[0].attn.qkv
    tokens = torch.randn(1, 5, 32)
    plain = qkv(tokens)
    assert use_value_activation(vit, "gelu") == 2
    wrapped = vit.blocks[0].attn.qkv
    assert isinstance(wrapped, ActivatedRows)
    out = wrapped(tokens)
    assert torch.equal(out[..., :64], plain[..., :64])  # Q and K rows untouched
    assert torch.allclose(out[..., 64:], torch.nn.functional.gelu(plain[..., 64:]))
    assert not torch.allclose(vit(x), before)
    with pytest.raises(ConfigError, match="model"):
        use_value_activation(vit, "relu")  # twice


def test_value_activation_on_a_timm_cait_reaches_the_class_attention_too():
    torch.manual_seed(0)
    cait = timm.create_model("cait_s24_224", pretrained=False, embed_dim=32, depth=2, num_heads=2, img_size=32,
                             patch_size=8, depth_token_only=2)  # fmt: skip
    x = torch.randn(1, 3, 32, 32)
    before = cait(x)
    assert use_value_activation(cait, "relu") == 2 + 2  # talking-heads blocks (fused qkv), class attention (v)
    value = cait.blocks_token_only[0].attn.v
    assert isinstance(value, ActivatedRows) and value(torch.randn(1, 3, 32)).min() >= 0
    assert not isinstance(cait.blocks_token_only[0].attn.q, ActivatedRows)
    assert not torch.allclose(cait(x), before)


def test_value_activation_on_gpt2_and_identity_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=50)).eval()
    ids = torch.randint(0, 50, (1, 6))
    before = model(ids).last_hidden_state
    assert use_value_activation(model, "identity") == 2
    assert torch.equal(model(ids).last_hidden_state, before)


@pytest.mark.parametrize(
    "kwargs, field", [({"value_activation": "softplus"}, "value_activation"), ({"normaliser": "relu"}, "normaliser"),
                      ({"num_heads": 5}, "num_heads")]
)  # fmt: skip
def test_bad_attention_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        MultiHeadAttention(**{"dim": 16, "num_heads": 4, **kwargs})


def test_locality_self_attention_masks_the_diagonal_and_learns_its_temperature():
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2, locality=True).double()
    x = torch.randn(1, 4, 8, dtype=torch.float64)
    B, T, C = x.shape
    q, k, v = attention.qkv(x).split(C, dim=-1)
    heads = []
    for h in range(2):
        qh, kh, vh = (t[..., h * 4 : (h + 1) * 4] for t in (q, k, v))
        scores = (qh @ kh.transpose(-2, -1) / 2.0).masked_fill(torch.eye(4, dtype=torch.bool), float("-inf"))
        heads.append(scores.softmax(-1) @ vh)
    assert torch.allclose(attention(x), attention.proj(torch.cat(heads, -1)))  # scale starts at 1 / sqrt(4)
    attention(x).sum().backward()
    assert attention.log_scale.grad is not None
    with pytest.raises(ConfigError, match="locality"):
        MultiHeadAttention(8, 2, locality=True, causal=True)


def test_performer_attention_runs_in_float32_under_bfloat16_autocast():
    from common.layers.attention import favor_attention, orthogonal_gaussian

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 64, 8).bfloat16() for _ in range(3))
    omega = orthogonal_gaussian(24, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = favor_attention(q, k, v, omega, causal=True)
    wide = favor_attention(q.float(), k.float(), v.float(), omega, causal=True)
    assert low.dtype == torch.bfloat16 and torch.equal(low, wide.bfloat16())  # computed wide, rounded once
