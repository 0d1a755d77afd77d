"""The bottleneck Adapter baseline of RepLoRA Tables 2-4 and HyRA Tables 2-4: a sequential adapter after every
MLP block (Pfeiffer et al.; AdapterHub's `seq_bn` configuration), placed by the same injector as our other methods.

    apply_adapters(model, "adapter", reduction_factor=16)          # hidden width // 16 bottleneck units

With z = h + t the MLP block's output h plus the residual stream t it adds to, and f(x) = W_up s(W_down x + b_d)
+ b_u (s = ReLU unless ``non_linearity`` says otherwise), the adapted block computes

    pre-LN blocks (ViT, LLaMA, GPT-2):          z + f(z)
    post-LN blocks (BERT: LN after the add):    LN(z + f(LN(z)))

which is what AdapterHub computes for `seq_bn` (its residual is taken before the layer norm, which is applied before
and after the adapter with the block's own LN weights). The AdapterHub library itself pins transformers 4.57 and
huggingface_hub < 1.0, which this repository's transformers 5 excludes, so this module implements the adapter for
every backbone; ``tests/adapters/test_adapterhub.py`` checks it against the library's on a transformers ViT and BERT
with the same weights, in a separate environment (``make adapterhub-check``).

Initialisation (``init``): ``zero_start`` (default; zero up projection, so the adapted model starts exactly at the
base model like our other methods) or ``bert`` (AdapterHub's default: every weight N(0, 0.02), biases zero). A
bottleneck adapter is a non-linear module between layers: it cannot be merged into a weight or exported as LoRA.
"""

from __future__ import annotations

import torch
from torch import nn

from common.adapters.targets import find_sites
from common.config import ConfigError
from common.layers.activations import ACTIVATIONS

INITS = ("zero_start", "bert")
ATTRIBUTE = "bottleneck"  # attribute of the hooked module that holds its adapter


class Bottleneck(nn.Module):
    """f(x) = W_up s(W_down x + b_d) + b_u, width -> width // reduction_factor -> width."""

    def __init__(self, width: int, reduction_factor: float = 16, non_linearity: str = "relu", init: str = "zero_start"):
        super().__init__()
        hidden = max(1, int(width // reduction_factor))
        self.down = nn.Linear(width, hidden)
        self.activation = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(hidden, width)
        if init == "bert":
            for layer in (self.down, self.up):
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        else:
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return self.up(self.activation(self.down(x)))


def check_options(reduction_factor: float = 16, non_linearity: str = "relu", init: str = "zero_start") -> None:
    if not reduction_factor > 0:
        raise ConfigError.invalid("reduction_factor", reduction_factor, "a positive number")
    if non_linearity not in ACTIVATIONS:
        raise ConfigError.invalid("non_linearity", non_linearity, f"one of {', '.join(ACTIVATIONS)}")
    if init not in INITS:
        raise ConfigError.invalid("init", init, f"one of {', '.join(INITS)}")


def _pre_ln_hook(module, args, output):
    adapter = getattr(module, ATTRIBUTE)
    if isinstance(output, tuple):  # (hidden states, attention weights, ...) of some decoder layers
        return (output[0] + adapter(output[0]), *output[1:])
    return output + adapter(output)


def _post_ln_hook(norm, args, output):
    return norm.forward(args[0] + getattr(norm, ATTRIBUTE)(output))  # LN(z + f(LN(z))); forward: no hook again


def hooked_modules(model: nn.Module) -> list[tuple[str, nn.Module, bool, int]]:
    """(path, module, post_ln, width) of every module whose output the adapter changes: per MLP site, the module that
    adds the MLP output to the residual stream (the block, or a transformers `...Output` module), or the LayerNorm
    that follows that addition in a post-LN block; ``width`` is that residual stream's (the MLP's output width,
    which differs between the stages of a hierarchical backbone such as Swin)."""
    out = []
    for site in find_sites(model, ["down"]):
        down = site.targets[0]
        parent_path = down.path.rpartition(".")[0]
        if parent_path == site.path:  # the projection is the MLP module's own (timm, torchvision, LLaMA, GPT-2)
            path = site.path.rpartition(".")[0]
            out.append((path, model.get_submodule(path) if path else model, False, down.out_features))
            continue
        parent = model.get_submodule(parent_path)  # transformers' ...Output(hidden_states, input_tensor)
        if isinstance(getattr(parent, "LayerNorm", None), nn.LayerNorm):
            out.append((f"{parent_path}.LayerNorm", parent.LayerNorm, True, down.out_features))
        else:
            out.append((parent_path, parent, False, down.out_features))
    return out


def attach(model: nn.Module, **options) -> list[Bottleneck]:
    """Put a bottleneck adapter on every MLP block of ``model`` (frozen elsewhere by the caller); returns them."""
    check_options(**options)
    adapters = []
    for _, module, post_ln, width in hooked_modules(model):
        adapter = Bottleneck(width, **options)
        module.add_module(ATTRIBUTE, adapter)
        adapter.hook = module.register_forward_hook(_post_ln_hook if post_ln else _pre_ln_hook)
        adapters.append(adapter)
    return adapters


def parameter_count(model: nn.Module, **options) -> int:
    """The parameters ``attach`` would add, counted on the meta device."""
    check_options(**options)
    with torch.device("meta"):
        return sum(p.numel() for *_, width in hooked_modules(model) for p in Bottleneck(width, **options).parameters())
