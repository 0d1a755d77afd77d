"""Multi-head self-attention with a configurable value activation and normaliser, and the same change for the
attention of existing models.

*Active attention* (quadratic-gating paper, Eq. (20)) applies a non-linear function to the values:
Act-Att(q, K, V) = softmax(q K^T / sqrt(d)) sigma(V): each value row is a non-linear expert of the attention's
mixture of experts. The normaliser is softmax, an element-wise sigmoid with a bias (sigmoid attention,
sigmoid(q K^T / sqrt(d) + b), b = -log(T) by default for T keys), or the Performer's FAVOR+ estimate of softmax
attention in linear time: positive random features phi with phi(q) . phi(k) ~ exp(q . k / sqrt(d)), so that the
output is phi(q) (phi(K)^T sigma(V)) / phi(q) (phi(K)^T 1) (prefix sums over the keys when causal).

    attention = MultiHeadAttention(dim=128, num_heads=8, value_activation="gelu", causal=True)
    y = attention(x)                                   # (B, T, dim)
    cross = MultiHeadAttention(dim=128, num_heads=8, value_activation="gelu")
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
NORMALISERS = ("softmax", "sigmoid", "performer")


def _check(value_activation: str, normaliser: str = "softmax") -> None:
    if value_activation not in VALUE_ACTIVATIONS:
        raise ConfigError.invalid("value_activation", value_activation, f"one of {', '.join(VALUE_ACTIVATIONS)}")
    if normaliser not in NORMALISERS:
        raise ConfigError.invalid("normaliser", normaliser, f"one of {', '.join(NORMALISERS)}")


class MultiHeadAttention(nn.Module):
    """Self-attention over (B, T, dim) with a fused `qkv` projection and an output projection `proj` (timm's names).

    `sigmoid_bias`: the bias b of the sigmoid normaliser; None means -log(T). `locality`: locality self-attention
    (LSA, for ViTs on small datasets): no token attends to itself, and the score scale 1 / sqrt(d) is learned.
    `features`: the Performer's number of random features (0: head_dim x ceil(log head_dim)), drawn once, as
    orthogonal Gaussian blocks, from torch's RNG when the module is built (a buffer: saved with the model;
    `redraw_features()` draws new ones).
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
        features: int = 0,
    ) -> None:
        super().__init__()
        _check(value_activation, normaliser)
        if normaliser == "performer" and locality:
            raise ConfigError.invalid("locality", locality, "False for the performer normaliser")
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
        if normaliser == "performer":
            if features < 0:
                raise ConfigError.invalid("features", features, "a positive number of random features (0: default)")
            self.features = features or self.head_dim * math.ceil(math.log(self.head_dim))
            self.register_buffer("omega", orthogonal_gaussian(self.features, self.head_dim))

    def redraw_features(self) -> None:
        """New random features for the Performer normaliser (in place)."""
        self.omega.copy_(orthogonal_gaussian(self.features, self.head_dim).to(self.omega))

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
        if self.normaliser == "performer":
            if attn_mask is not None:
                raise ConfigError.invalid("attn_mask", "a mask", "None for the performer normaliser")
            y = favor_attention(q, k, v, self.omega, self.causal)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
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


def orthogonal_gaussian(features: int, dim: int) -> torch.Tensor:
    """(features, dim) rows that are orthogonal within each block of `dim`, with Gaussian-vector lengths."""
    blocks = [torch.linalg.qr(torch.randn(dim, dim))[0].T for _ in range(math.ceil(features / dim))]
    return torch.cat(blocks)[:features] * torch.randn(features, dim).norm(dim=1, keepdim=True)


def positive_features(x: torch.Tensor, omega: torch.Tensor, per_row: bool) -> torch.Tensor:
    """FAVOR+'s phi(x) = exp(omega x - |x|^2 / 2) / sqrt(m) of (B, H, T, d) inputs already scaled by d^(-1/4). A
    stabilising maximum is subtracted (per row for queries, per head for keys); it cancels exactly in the ratio, so a
    causal output does not depend on later keys through it."""
    projection = x @ omega.T  # (B, H, T, m)
    shift = projection.amax(-1, keepdim=True) if per_row else projection.amax((-2, -1), keepdim=True)
    return torch.exp(projection - x.pow(2).sum(-1, keepdim=True) / 2 - shift.detach()) / math.sqrt(len(omega))


def favor_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, omega: torch.Tensor, causal: bool
) -> torch.Tensor:
    """The Performer's estimate of softmax(q k^T / sqrt(d)) v for (B, H, T, d) heads, in time linear in T; in at least
    float32 whatever the autocast (exponentials and prefix sums lose too much in bfloat16)."""
    dtype, wide = v.dtype, torch.promote_types(v.dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):
        y = _favor(q.to(wide), k.to(wide), v.to(wide), omega.to(wide), causal)
    return y.to(dtype)


def _favor(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, omega: torch.Tensor, causal: bool) -> torch.Tensor:
    scale = q.shape[-1] ** -0.25
    phi_q, phi_k = positive_features(q * scale, omega, True), positive_features(k * scale, omega, False)
    if causal:  # prefix sums over the keys: token t sees keys 1..t
        numerator = torch.einsum("bhtm,bhtmd->bhtd", phi_q, torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), 2))
        denominator = torch.einsum("bhtm,bhtm->bht", phi_q, torch.cumsum(phi_k, 2))
    else:
        numerator = phi_q @ (phi_k.transpose(-2, -1) @ v)
        denominator = phi_q @ phi_k.sum(2).unsqueeze(-1)  # (B, H, T, 1)
        denominator = denominator.squeeze(-1)
    return numerator / denominator.clamp_min(torch.finfo(denominator.dtype).tiny).unsqueeze(-1)


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
