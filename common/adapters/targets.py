"""Where adapters go: the attention (and optionally MLP) projections of HF transformers and timm backbones.

A *site* is one module that owns the projections an adapter method adapts together: an attention module
(Q, K, V) or an MLP block (up, down). The projections come in three layouts, found by their names:

- separate projections: LLaMA-style ``q_proj/k_proj/v_proj``, BERT-style ``query/key/value``, timm CaiT's class
  attention ``q/k/v``;
- GPT-2's fused ``c_attn`` (a ``Conv1D``, weight (in, 3d)) and the fused ``qkv`` (a ``Linear``, weight (3d, in)) of
  timm's ViT and torchvision's (Video) Swin: the targets are slices [0, d), [d, 2d), [2d, 3d) of the output features.

MLP projections: ``up_proj/down_proj`` (LLaMA), ``c_fc/c_proj`` under ``mlp`` (GPT-2), ``fc1/fc2`` under ``mlp``
(timm), ``intermediate.dense/output.dense`` (BERT layers), ``0/3`` under ``mlp`` (torchvision's MLP).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from common.config import ConfigError

ATTENTION_TARGETS = ("q", "k", "v")
MLP_TARGETS = ("up", "down")
TARGETS = ATTENTION_TARGETS + MLP_TARGETS

SEPARATE_LAYOUTS = (
    {"q": "q_proj", "k": "k_proj", "v": "v_proj"},
    {"q": "query", "k": "key", "v": "value"},
    {"q": "q", "k": "k", "v": "v"},
)
FUSED_LAYOUTS = ("c_attn", "qkv")
MLP_LAYOUTS = (
    {"up": "up_proj", "down": "down_proj"},
    {"up": "c_fc", "down": "c_proj"},
    {"up": "fc1", "down": "fc2"},
    {"up": "intermediate.dense", "down": "output.dense"},
    {"up": "0", "down": "3"},  # torchvision's MLP (a Sequential: Linear, GELU, Dropout, Linear, Dropout)
)
# Attention modules that read their projections' weights instead of calling them: torchvision's Swin and Video Swin
# pass qkv.weight to a functional window attention. Their adapted projections expose the adapted weight.
WEIGHT_READERS = ("ShiftedWindowAttention", "ShiftedWindowAttention3d", "ShiftedWindowAttentionV2")


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D``: a linear map whose weight is stored (in, out)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def features(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of a Linear or Conv1D."""
    if is_conv1d(module):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def _projection(root: nn.Module, path: str) -> nn.Module | None:
    try:
        module = root.get_submodule(path)
    except AttributeError:
        return None
    return module if isinstance(module, nn.Linear) or is_conv1d(module) else None


@dataclass
class Target:
    """One adapted weight: the rows ``rows`` (a slice of output features) of the projection at ``path``."""

    name: str  # q | k | v | up | down
    path: str  # dotted path of the projection module from the model root
    rows: slice  # its output features that this target adapts
    in_features: int

    @property
    def out_features(self) -> int:
        return self.rows.stop - self.rows.start


@dataclass
class Site:
    """A module whose projections one adapter generates factors for together."""

    path: str  # dotted path of the owner module ('' for the root)
    kind: str  # attention | mlp
    targets: list[Target]
    head_dim: int | None  # attention sites: features per head of the projections


def _head_dim(owner: nn.Module, width: int) -> int | None:
    if getattr(owner, "head_dim", None):
        return int(owner.head_dim)
    if getattr(owner, "attention_head_size", None):
        return int(owner.attention_head_size)
    heads = getattr(owner, "num_heads", None) or getattr(getattr(owner, "config", None), "num_attention_heads", None)
    return width // heads if heads else None


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _attention_site(path: str, owner: nn.Module, wanted: list[str]) -> Site | None:
    for layout in SEPARATE_LAYOUTS:
        modules = {t: _projection(owner, name) for t, name in layout.items()}
        if modules["q"] is None or modules["v"] is None:
            continue
        targets = []
        for t in wanted:
            if modules[t] is None:
                raise ConfigError.invalid("targets", wanted, f"targets this backbone has at {path!r}: q, v")
            fan_in, fan_out = features(modules[t])
            targets.append(Target(t, _join(path, layout[t]), slice(0, fan_out), fan_in))
        return Site(path, "attention", targets, _head_dim(owner, features(modules["q"])[1]))
    for name in FUSED_LAYOUTS:
        module = _projection(owner, name)
        if module is None or hasattr(owner, "q_attn"):  # GPT-2 cross-attention fuses only K and V
            continue
        fan_in, fan_out = features(module)
        if fan_out % 3:
            continue
        width = fan_out // 3
        rows = {t: slice(i * width, (i + 1) * width) for i, t in enumerate(ATTENTION_TARGETS)}
        targets = [Target(t, _join(path, name), rows[t], fan_in) for t in wanted]
        return Site(path, "attention", targets, _head_dim(owner, width))
    return None


def _mlp_site(path: str, owner: nn.Module, wanted: list[str]) -> Site | None:
    for layout in MLP_LAYOUTS:
        modules = {t: _projection(owner, name) for t, name in layout.items()}
        if any(m is None for m in modules.values()):
            continue
        if layout["up"] in ("c_fc", "fc1", "0") and not path.endswith("mlp"):
            continue
        targets = []
        for t in wanted:
            fan_in, fan_out = features(modules[t])
            targets.append(Target(t, _join(path, layout[t]), slice(0, fan_out), fan_in))
        return Site(path, "mlp", targets, None)
    return None


def find_sites(model: nn.Module, targets: tuple[str, ...] | list[str]) -> list[Site]:
    """Every attention and MLP site of ``model`` with the requested targets, in module order.

    Raises ``ConfigError`` naming the field when a target is unknown or the backbone has no matching projection.
    """
    targets = list(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if not targets or unknown or len(set(targets)) != len(targets):
        raise ConfigError.invalid("targets", targets, f"distinct names among {', '.join(TARGETS)}")
    attention = [t for t in ATTENTION_TARGETS if t in targets]
    mlp = [t for t in MLP_TARGETS if t in targets]
    sites = []
    for path, module in model.named_modules():
        site = (_attention_site(path, module, attention) if attention else None) or (
            _mlp_site(path, module, mlp) if mlp else None
        )
        if site is not None:
            sites.append(site)
    for kind, wanted in (("attention", attention), ("mlp", mlp)):
        if wanted and not any(s.kind == kind for s in sites):
            raise ConfigError(
                f"config field 'targets' = {targets!r}: {type(model).__name__} has no {kind} projection this "
                "injector knows (attention: q_proj/k_proj/v_proj, query/key/value, q/k/v, fused c_attn or qkv; "
                "MLP: up_proj/down_proj, mlp.c_fc/c_proj, mlp.fc1/fc2, intermediate.dense/output.dense)"
            )
    return sites
