"""The models of the quadratic-gating paper's real experiments, built on `common.layers` so that every attention can
be active attention (Eq. (20): a value activation).

- `PatchTST`: the supervised PatchTST of the time-series experiments (Table 2): per-channel instance
  normalisation (RevIN without affine parameters), patches of `patch_len` with `stride` (the series padded at the
  end by repeating its last value `stride` times), a linear patch embedding with a learned position embedding, a
  Transformer encoder with BatchNorm, and a flatten-linear head to the horizon; channels are independent.
- `ForecastTransformer`: the encoder-decoder Transformer of the time-series experiments (Table 2), the Informer
  family's baseline: value, position and time-feature embeddings, post-norm encoder and decoder layers (the
  decoder's self-attention causal, its cross-attention on the encoder's output), a linear output; the decoder
  reads the last `label_len` look-back rows followed by zeros and predicts the horizon.
- `SmallViT`: a ViT for small images with shifted patch tokens (SPT) and locality self-attention (LSA), with
  active attention: the ViT-Tiny of the CIFAR-10 experiment (Figure 2a), or with class-attention layers and
  LayerScale its CaiT-Tiny.
- `TransformerLM`: the small word-level language model of the WikiText-103 experiment (Figure 2c): token embedding
  and sinusoidal positions, pre-norm causal blocks whose attention is softmax or the Performer's (both active), and
  an adaptive softmax over the frequency-sorted vocabulary.
- `gpt2_moe`: GPT-2 with its FFNs replaced by sparse MoE blocks with a linear or quadratic router (Table 3), and
  `parameter_counts` (total and active parameters, Table 5).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from common.config import ConfigError
from common.layers.attention import MultiHeadAttention
from common.layers.moe import MoEFeedForward


class BatchNormTokens(nn.Module):
    """BatchNorm1d over the feature axis of (B, T, d) tokens (PatchTST's normalisation)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer: x + attention -> norm -> x + FFN -> norm."""

    def __init__(
        self, dim: int, heads: int, ffn: int, dropout: float, value_activation: str, norm: str,
        attention_dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.attention = MultiHeadAttention(dim, heads, value_activation=value_activation, dropout=attention_dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        make_norm = BatchNormTokens if norm == "batch" else nn.LayerNorm
        self.norm1, self.norm2 = make_norm(dim), make_norm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class PatchTST(nn.Module):
    """(B, lookback, channels) -> (B, horizon, channels)."""

    def __init__(
        self,
        channels: int,
        lookback: int = 336,
        horizon: int = 192,
        patch_len: int = 16,
        stride: int = 8,
        layers: int = 3,
        dim: int = 128,
        heads: int = 16,
        ffn: int = 256,
        dropout: float = 0.2,
        head_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        value_activation: str = "identity",
    ) -> None:
        super().__init__()
        if patch_len > lookback:
            raise ConfigError.invalid("patch_len", patch_len, f"at most the look-back window ({lookback})")
        self.patch_len, self.stride = patch_len, stride
        self.num_patches = (lookback + stride - patch_len) // stride + 1  # with the end padding
        self.embed = nn.Linear(patch_len, dim)
        self.position = nn.Parameter(torch.empty(self.num_patches, dim).uniform_(-0.02, 0.02))
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(dim, heads, ffn, dropout, value_activation, "batch", attention_dropout) for _ in range(layers)
        )
        self.head = nn.Sequential(nn.Flatten(-2), nn.Dropout(head_dropout), nn.Linear(self.num_patches * dim, horizon))
        self.channels, self.horizon = channels, horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        mean = x.mean(1, keepdim=True)  # (B, 1, C): instance normalisation, undone at the end
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
        z = ((x - mean) / std).transpose(1, 2)  # (B, C, L)
        z = torch.cat([z, z[..., -1:].expand(B, C, self.stride)], dim=-1)  # pad the end by repeating the last value
        patches = z.unfold(-1, self.patch_len, self.stride)  # (B, C, P, patch_len)
        tokens = self.dropout(self.embed(patches) + self.position).reshape(B * C, self.num_patches, -1)  # (BC, P, d)
        for layer in self.encoder:
            tokens = layer(tokens)
        y = self.head(tokens.reshape(B, C, self.num_patches, -1))  # (B, C, horizon)
        return y.transpose(1, 2) * std + mean


def sinusoid_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sine / cosine position encoding of "Attention is all you need"."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


class SeriesEmbedding(nn.Module):
    """(B, T, channels) values and (B, T, marks) time features -> (B, T, dim): a circular 3-tap convolution of the
    values + sinusoidal positions + a linear map of the time features."""

    def __init__(self, channels: int, marks: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.values = nn.Conv1d(channels, dim, 3, padding=1, padding_mode="circular", bias=False)
        self.marks = nn.Linear(marks, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, marks: torch.Tensor) -> torch.Tensor:
        position = sinusoid_positions(x.shape[1], self.marks.out_features).to(x.device)
        return self.dropout(self.values(x.transpose(1, 2)).transpose(1, 2) + position + self.marks(marks))


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: causal self-attention, cross-attention on the encoder's output, FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, value_activation: str) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(dim, heads, value_activation, causal=True, dropout=dropout)
        self.cross = MultiHeadAttention(dim, heads, value_activation, dropout=dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x)))
        x = self.norm2(x + self.dropout(self.cross(x, context=memory)))
        return self.norm3(x + self.dropout(self.ffn(x)))


class ForecastTransformer(nn.Module):
    """(B, lookback, channels) values with their time features, and the decoder span's time features
    (B, label_len + horizon, marks) -> (B, horizon, channels)."""

    def __init__(
        self, channels: int, horizon: int, label_len: int = 48, dim: int = 512, heads: int = 8,
        encoder_layers: int = 2, decoder_layers: int = 1, ffn: int = 2048, dropout: float = 0.05, marks: int = 4,
        value_activation: str = "identity",
    ) -> None:  # fmt: skip
        super().__init__()
        self.horizon, self.label_len = horizon, label_len
        self.embed_encoder = SeriesEmbedding(channels, marks, dim, dropout)
        self.embed_decoder = SeriesEmbedding(channels, marks, dim, dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(dim, heads, ffn, dropout, value_activation, "layer", dropout) for _ in range(encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(dim, heads, ffn, dropout, value_activation) for _ in range(decoder_layers)
        )
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.out = nn.Linear(dim, channels)

    def forward(self, x: torch.Tensor, x_marks: torch.Tensor, y_marks: torch.Tensor) -> torch.Tensor:
        B, _, C = x.shape
        start = x[:, x.shape[1] - self.label_len :]
        decoder_input = torch.cat([start, x.new_zeros(B, self.horizon, C)], dim=1)
        memory = self.embed_encoder(x, x_marks)
        for layer in self.encoder:
            memory = layer(memory)
        memory = self.encoder_norm(memory)
        h = self.embed_decoder(decoder_input, y_marks)
        for layer in self.decoder:
            h = layer(h, memory)
        return self.out(self.decoder_norm(h))[:, -self.horizon :]


class LMBlock(nn.Module):
    """Pre-norm causal block: x + attention(LN x), then x + FFN(LN x) (ReLU)."""

    def __init__(
        self, dim: int, heads: int, ffn: int, dropout: float, normaliser: str, value_activation: str, features: int
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(
            dim, heads, value_activation, normaliser, causal=True, dropout=dropout, features=features
        )
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class TransformerLM(nn.Module):
    """(B, T + 1) token windows -> the mean next-token cross-entropy (nats) of tokens 2 ... T + 1.

    `cutoffs`: the adaptive softmax's cluster boundaries in the frequency-sorted vocabulary (those below the
    vocabulary size are kept; none left: a full softmax)."""

    def __init__(
        self, vocabulary: int, block_size: int = 256, dim: int = 128, layers: int = 16, heads: int = 8,
        ffn: int = 2048, dropout: float = 0.1, normaliser: str = "softmax", value_activation: str = "identity",
        features: int = 0, cutoffs: tuple[int, ...] = (20_000, 40_000, 200_000), div_value: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocabulary, dim)
        self.register_buffer("position", sinusoid_positions(block_size, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            LMBlock(dim, heads, ffn, dropout, normaliser, value_activation, features) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        kept = [c for c in cutoffs if 0 < c < vocabulary - 1]
        self.output = (
            nn.AdaptiveLogSoftmaxWithLoss(dim, vocabulary, kept, div_value=div_value)
            if kept
            else nn.Linear(dim, vocabulary)
        )

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed(ids) * math.sqrt(self.embed.embedding_dim) + self.position[: ids.shape[1]])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        h = self.hidden(window[:, :-1]).flatten(0, 1)
        targets = window[:, 1:].flatten()
        if isinstance(self.output, nn.Linear):
            return nn.functional.cross_entropy(self.output(h), targets)
        return self.output(h, targets).loss


class MoEMLP(nn.Module):
    """A GPT-2 block's MLP replaced by a sparse MoE block; the load-balancing loss of its last call is in `aux`."""

    def __init__(self, moe: MoEFeedForward, dropout: float) -> None:
        super().__init__()
        self.moe, self.dropout = moe, nn.Dropout(dropout)
        self.aux = torch.zeros(())

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out, self.aux = self.moe(hidden_states)
        return self.dropout(out)


def gpt2_moe(
    config, router: str | None, num_experts: int = 8, top_k: int = 2, hidden: int = 1536, rank: int = 32,
    moe_every: int = 1,
) -> nn.Module:  # fmt: skip
    """A transformers GPT-2 LM whose FFN in every `moe_every`-th block (1: all) is an MoE of `num_experts` experts of
    width `hidden` with top-k routing (`router`: linear | quadratic); `router=None` keeps the dense model with FFN
    width `config.n_inner` (GPT2-dense of Table 5: 3072). `moe_aux_loss(model)` sums the blocks' load-balancing losses.
    """
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(config)
    if router is None:
        return model
    if moe_every < 1:
        raise ConfigError.invalid("moe_every", moe_every, "a positive integer (1: every block)")
    for index, block in enumerate(model.transformer.h):
        if index % moe_every == moe_every - 1:
            moe = MoEFeedForward(config.n_embd, hidden, num_experts, top_k, router, rank, activation="gelu")
            block.mlp = MoEMLP(moe, config.resid_pdrop)
    return model


def next_token_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of each (B, T + 1) window's tokens 2 ... T + 1 given the ones before them, for a
    transformers causal LM (float32 logits under autocast)."""
    logits = model(input_ids=batch[:, :-1]).logits  # (B, T, vocabulary)
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten())


def moe_aux_loss(model: nn.Module) -> torch.Tensor:
    """The sum of the load-balancing losses of the last forward pass of every MoE block of `model`."""
    losses = [m.aux for m in model.modules() if isinstance(m, MoEMLP)]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total parameters (tied embeddings once) and active parameters (those one token uses: the router and top_k
    experts of each MoE block instead of all of its experts)."""
    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    for module in model.modules():
        if isinstance(module, MoEFeedForward):
            experts = sum(p.numel() for p in (module.w1, module.w2, module.b1, module.b2) if p is not None)
            inactive += experts - experts // module.num_experts * module.top_k
    return {"total": total, "active": total - inactive}


class ShiftedPatchTokens(nn.Module):
    """Shifted patch tokenisation (SPT, for ViTs on small datasets): the image and its four copies shifted by half
    a patch along the diagonals, cut into patches, each flattened, layer-normed and embedded."""

    def __init__(self, channels: int, patch: int, dim: int) -> None:
        super().__init__()
        self.patch, self.shift = patch, patch // 2
        self.norm = nn.LayerNorm(5 * channels * patch * patch)
        self.embed = nn.Linear(5 * channels * patch * patch, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        s = self.shift
        padded = nn.functional.pad(images, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
        H, W = images.shape[-2:]
        shifts = ((-s, -s), (-s, s), (s, -s), (s, s))
        crops = [images] + [padded[..., s + dy : s + dy + H, s + dx : s + dx + W] for dy, dx in shifts]
        x = torch.cat(crops, dim=1)  # (B, 5C, H, W)
        B, C5 = x.shape[:2]
        patches = x.unfold(2, self.patch, self.patch).unfold(3, self.patch, self.patch)  # (B, 5C, h, w, p, p)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C5 * self.patch * self.patch)  # (B, hw, 5C p p)
        return self.embed(self.norm(patches))


class ViTBlock(nn.Module):
    """Pre-norm Transformer block: x + attention(LN x), then x + MLP(LN x); with `layer_scale` > 0 each branch is
    scaled per channel by a learned vector started at `layer_scale` (CaiT's LayerScale)."""

    def __init__(
        self, dim: int, heads: int, mlp: int, dropout: float, value_activation: str, locality: bool,
        layer_scale: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, heads, value_activation, dropout=dropout, locality=locality)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim), nn.Dropout(dropout)
        )
        self.scale1 = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None
        self.scale2 = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None

    def _scaled(self, scale: nn.Parameter | None, branch: torch.Tensor) -> torch.Tensor:
        return branch if scale is None else scale * branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._scaled(self.scale1, self.attention(self.norm1(x)))
        return x + self._scaled(self.scale2, self.mlp(self.norm2(x)))


class ClassAttentionBlock(ViTBlock):
    """CaiT's class-attention block: only the class token queries, over itself and the patch tokens; then its MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + hw, dim): the class token first
        cls, tokens = x[:, :1], self.norm1(x)
        cls = cls + self._scaled(self.scale1, self.attention(tokens[:, :1], context=tokens))
        cls = cls + self._scaled(self.scale2, self.mlp(self.norm2(cls)))
        return torch.cat([cls, x[:, 1:]], dim=1)


class SmallViT(nn.Module):
    """A ViT for small images (CIFAR-10, Fashion-MNIST): SPT tokens (or plain patches), learned positions, pre-norm
    blocks with (locality) active attention, a linear head on the class token.

    `class_layers` = 0: ViT, the class token joins the patches from the first block (ViT-Tiny of Figure 2a).
    `class_layers` > 0: CaiT, `depth` blocks over the patches only, then `class_layers` class-attention blocks
    (CaiT-Tiny of Figure 2a), usually with `layer_scale` (0.1 for CaiT's shallow models)."""

    def __init__(
        self, image_size: int, channels: int, classes: int, patch: int = 4, dim: int = 192, depth: int = 6,
        heads: int = 8, mlp: int = 384, dropout: float = 0.0, value_activation: str = "identity",
        spt: bool = True, locality: bool = True, class_layers: int = 0, layer_scale: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if image_size % patch:
            raise ConfigError.invalid("patch", patch, f"a divisor of the image size {image_size}")
        self.patch = patch
        self.tokens = ShiftedPatchTokens(channels, patch, dim) if spt else nn.Sequential(
            nn.Conv2d(channels, dim, patch, patch), nn.Flatten(2)
        )  # fmt: skip
        self.spt = spt
        count = (image_size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, count + (class_layers == 0), dim) * 0.02)
        self.blocks = nn.ModuleList(
            ViTBlock(dim, heads, mlp, dropout, value_activation, locality, layer_scale) for _ in range(depth)
        )
        self.class_blocks = nn.ModuleList(
            ClassAttentionBlock(dim, heads, mlp, dropout, value_activation, False, layer_scale)
            for _ in range(class_layers)
        )
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.tokens(images) if self.spt else self.tokens(images).transpose(1, 2)  # (B, hw, dim)
        cls = self.cls.expand(len(x), -1, -1)
        x = torch.cat([cls, x], dim=1) + self.position if not self.class_blocks else x + self.position
        for block in self.blocks:
            x = block(x)
        if self.class_blocks:
            x = torch.cat([cls, x], dim=1)
            for block in self.class_blocks:
                x = block(x)
        return self.head(self.norm(x[:, 0]))  # (B, classes)
