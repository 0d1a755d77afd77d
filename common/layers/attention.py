"""Multi-head self-attention with a configurable value activation and normaliser, and the same change for the
attention of existing models.

*Active attention* (quadratic-gating paper, Eq. (20)) applies a non-linear function to the values:
Act-Att(q, K, V) = softmax(q K^T / sqrt(d)) sigma(V): each value row is a non-linear expert of the attention's
mixture of experts. The normaliser is softmax, or an element-wise sigmoid with a bias (sigmoid attention,
sigmoid(q K^T / sqrt(d) + b), b = -log(T) by default for T keys).

    attention = MultiHeadAttention(dim=128, num_heads=8, value_activation="gelu", causal=True)
    y = attention(x)                                   # (B, T, dim)
    y = cross(x, context=memory)                       # cross-attention: keys and values from memory (B, S, dim)

    model = timm.create_model("vit_base_patch16_224")
    use_value_activation(model, "gelu")                # every attention of the model now computes sigma(V)

`use_value_activation` finds the value projection of every attention module the adapter injector knows (timm's
fused `qkv`, GPT-2's `c_attn`, separate `v_proj` / `value`) and applies the activation to its value rows only, so
the model's own attention code (fused kernels included) computes Eq. (20) unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from common.config import ConfigError
from common.layers.activations import ACTIVATIONS

VALUE_ACTIVATIONS = ("identity", "gelu", "relu", "silu", "sigmoid", "tanh")
NORMALISERS = ("softmax", "sigmoid")


def _check(value_activation: str, normaliser: str = "softmax") -> None:
    if value_activation not in VALUE_ACTIVATIONS:
        raise ConfigError.invalid("value_activation", value_activation, f"one of {', '.join(VALUE_ACTIVATIONS)}")
    if normaliser not in NORMALISERS:
        raise ConfigError.invalid("normaliser", normaliser, f"one of {', '.join(NORMALISERS)}")


class MultiHeadAttention(nn.Module):
    """Self-attention over (B, T, dim) with a fused `qkv` projection and an output projection `proj` (timm's names).

    `sigmoid_bias`: the bias b of the sigmoid normaliser; None means -log(T). `locality`: locality self-attention
    (LSA, for ViTs on small datasets): no token attends to itself, and the score scale 1 / sqrt(d) is learned.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        value_activation: str = "identity",
        normaliser: str = "softmax",
        causal: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        sigmoid_bias: float | None = None,
        locality: bool = False,
    ) -> None:
        super().__init__()
        _check(value_activation, normaliser)
        if dim % num_heads:
            raise ConfigError.invalid("num_heads", num_heads, f"a divisor of the width {dim}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.value_activation = ACTIVATIONS[value_activation]()
        self.normaliser, self.causal, self.dropout = normaliser, causal, dropout
        self.sigmoid_bias = sigmoid_bias
        if locality and causal:  # the first token would have nothing to attend to
            raise ConfigError.invalid("locality", locality, "False for causal attention")
        # LSA's learnable temperature, kept as log(scale) so that it stays positive
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(self.head_dim))) if locality else None

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`attn_mask`: boolean (T, S) or (B, 1, T, S), True where a query may attend to a key. `context` (B, S, dim):
        cross-attention, the queries from `x` and the keys and values from `context` (the same projections)."""
        B, T, C = x.shape
        if context is None:
            q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, T, hd)
        else:
            if self.causal or self.log_scale is not None:
                raise ConfigError.invalid("context", "a tensor", "None for causal or locality self-attention")
            S = context.shape[1]
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x, weight[:C], None if bias is None else bias[:C])
            q = q.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
            kv = F.linear(context, weight[C:], None if bias is None else bias[C:])
            k, v = kv.view(B, S, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        v = self.value_activation(v)
        dropout = self.dropout if self.training else 0.0
        if self.normaliser == "softmax" and self.log_scale is None:  # the fused kernel
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, is_causal=self.causal)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        scale = self.log_scale.exp() if self.log_scale is not None else 1 / math.sqrt(self.head_dim)
        scores = q @ k.transpose(-2, -1) * scale  # (B, H, T, S)
        allowed = attn_mask
        if self.causal:
            lower = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            allowed = lower if allowed is None else allowed & lower
        if self.log_scale is not None:  # LSA: no token attends to itself
            not_self = ~torch.eye(T, dtype=torch.bool, device=x.device)
            allowed = not_self if allowed is None else allowed & not_self
        if self.normaliser == "softmax":
            weights = (scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))).softmax(-1)
        else:
            bias = -math.log(k.shape[2]) if self.sigmoid_bias is None else self.sigmoid_bias
            weights = torch.sigmoid(scores + bias)
            weights = weights if allowed is None else weights.masked_fill(~allowed, 0.0)
        y = F.dropout(weights, dropout) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class ActivatedRows(nn.Module):
    """A projection whose output features `rows` (the values of a fused qkv, or all of a value projection) pass
    through an activation."""

    def __init__(self, base: nn.Module, rows: slice, activation: str) -> None:
        super().__init__()
        self.base, self.rows, self.activation_name = base, rows, activation
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.rows == slice(0, y.shape[-1]):
            return self.activation(y)
        return torch.cat([y[..., : self.rows.start], self.activation(y[..., self.rows]), y[..., self.rows.stop :]], -1)


def use_value_activation(model: nn.Module, activation: str) -> int:
    """Turn every attention of `model` into active attention with `activation` (in place); returns how many."""
    from common.adapters.targets import find_sites  # the adapters' site finder knows every layout

    _check(activation)
    if any(isinstance(module, ActivatedRows) for module in model.modules()):
        raise ConfigError.invalid("model", type(model).__name__, "a model whose values have no activation yet")
    sites = find_sites(model, ["v"])
    for site in sites:
        (target,) = site.targets
        parent_path, _, name = target.path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, name, ActivatedRows(getattr(parent, name), target.rows, activation))
    return len(sites)
