"""One injection mechanism for every method and backbone: find the sites, attach a factor generator to each
site's owner module, wrap each adapted projection; merge, unmerge, save, load.

    model = apply_adapters(model, "hyra", targets=("q", "v"), rank=8, alpha=8)
    ...train...
    merge_adapters(model, unload=True)   # the bare base architecture with W + (alpha / r) B A in its weights
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from common.adapters import bottleneck
from common.adapters.baselines import PEFT_METHODS, apply_peft
from common.adapters.hyra import HyRAFactors
from common.adapters.layers import AdaptedProjection, FactorGenerator, WeightAdaptedProjection
from common.adapters.lora import LoRAFactors
from common.adapters.replora import RepLoRAFactors
from common.adapters.targets import WEIGHT_READERS, Site, Target, find_sites
from common.config import ConfigError
from common.runs import atomic_save_safetensors, atomic_write_text

GENERATOR = "adapter"  # attribute of a site's owner module that holds its factor generator
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_weights.safetensors"


def _replora(linear: bool) -> Callable[..., FactorGenerator]:
    return lambda targets, rank, site, shared, **kw: RepLoRAFactors(targets, rank, linear=linear, **kw)


def _hyra(targets, rank, site: Site, shared: dict, share_embeddings: bool = True, embedding_dim: int = 64, **kw):
    embeddings = None
    if share_embeddings:  # one set of head embeddings B_i for every layer with this many heads
        heads = targets[0].out_features // site.head_dim
        embeddings = shared.setdefault(("hyra_embeddings", heads), nn.Parameter(torch.randn(heads, embedding_dim)))
    return HyRAFactors(targets, rank, head_dim=site.head_dim, embedding_dim=embedding_dim, embeddings=embeddings, **kw)


# method -> factory(targets, rank, site, shared, **method_kwargs) of the generator of an attention site;
# ``shared`` is one dict per apply_adapters call, for parameters that several sites share
METHODS: dict[str, Callable[..., FactorGenerator]] = {
    "lora": lambda targets, rank, site, shared, **kw: LoRAFactors(targets, rank, **kw),
    "replora": _replora(linear=False),
    "replora_linear": _replora(linear=True),
    "hyra": _hyra,
}
BOTTLENECK = "adapter"  # the sequential bottleneck adapter (bottleneck.py): not a low-rank update, never merged


@dataclass
class AdapterConfig:
    """What ``apply_adapters`` was called with: enough to rebuild the adapters on a fresh base model."""

    method: str
    targets: list[str]
    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    method_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.method not in METHODS and self.method != BOTTLENECK:
            allowed = ", ".join([*sorted(METHODS), BOTTLENECK, *PEFT_METHODS])
            raise ConfigError.invalid("method", self.method, f"one of {allowed}")
        if not isinstance(self.rank, int) or self.rank <= 0:
            raise ConfigError.invalid("rank", self.rank, "a positive integer")
        if self.alpha <= 0:
            raise ConfigError.invalid("alpha", self.alpha, "a positive number")
        if not 0 <= self.dropout < 1:
            raise ConfigError.invalid("dropout", self.dropout, "a probability in [0, 1)")


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def sites_of(model: nn.Module) -> list[tuple[str, nn.Module, FactorGenerator]]:
    """(owner path, owner, generator) of every adapted site of ``model``."""
    return [
        (path, module, getattr(module, GENERATOR))
        for path, module in model.named_modules()
        if isinstance(getattr(module, GENERATOR, None), FactorGenerator)
    ]


def projections_of(model: nn.Module) -> list[tuple[str, AdaptedProjection]]:
    return [(path, m) for path, m in model.named_modules() if isinstance(m, AdaptedProjection)]


def apply_adapters(
    model: nn.Module,
    method: str,
    targets: tuple[str, ...] | list[str] = ("q", "v"),
    rank: int = 8,
    alpha: float = 8.0,
    dropout: float = 0.0,
    **method_kwargs,
) -> nn.Module:
    """Adapt ``model`` in place with ``method`` on ``targets`` and return it; only adapter parameters train.

    Attention targets (q, k, v) get the method's factors; MLP targets (up, down) always get plain LoRA factors
    (HyRA App. C.4). peft's methods (``PEFT_METHODS``) return peft's ``PeftModel``. Everything is checked
    before the model is touched.
    """
    if method in PEFT_METHODS:
        return apply_peft(model, method, targets, rank, alpha, dropout, **method_kwargs)
    cfg = AdapterConfig(method, list(targets), rank, float(alpha), float(dropout), dict(method_kwargs))
    cfg.validate()
    if sites_of(model) or bottlenecks_of(model):
        raise ConfigError.invalid("model", type(model).__name__, "a model without adapters (this one has them)")
    if method == BOTTLENECK:
        check_method_options(method, cfg.method_kwargs)
        attach = partial(bottleneck.attach, **cfg.method_kwargs)
    else:
        sites = find_sites(model, cfg.targets)
        readers = {type(model.get_submodule(site.path)).__name__ for site in sites} & set(WEIGHT_READERS)
        if dropout > 0 and readers:
            raise ConfigError.invalid(
                "dropout", dropout, f"0 for {', '.join(sorted(readers))}, which reads its projections' weights"
            )
        for site in sites:
            for target in site.targets:
                if rank > min(target.in_features, target.out_features):
                    raise ConfigError.invalid(
                        "rank",
                        rank,
                        f"at most min(in, out) = {min(target.in_features, target.out_features)} of the "
                        f"{target.name!r} projection {target.path!r} ({target.in_features} -> {target.out_features})",
                    )
        shared = {}
        generators = [_generator(cfg, site, shared) for site in sites]  # may still raise (method-specific checks)
        attach = partial(_attach_generators, sites=sites, generators=generators, scaling=alpha / rank, dropout=dropout)
    base_params = sum(p.numel() for p in model.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    attach(model)
    model.adapter_config = cfg
    model.adapter_base_params = base_params
    return model


def _attach_generators(
    model: nn.Module, sites: list[Site], generators: list[FactorGenerator], scaling: float, dropout: float
) -> None:
    """Register each site's generator on its owner module and wrap every adapted projection."""
    wrapped: dict[str, list] = {}
    reads_weight: set[str] = set()
    for site, generator in zip(sites, generators, strict=True):
        owner = model.get_submodule(site.path) if site.path else model
        if type(owner).__name__ in WEIGHT_READERS:
            reads_weight.update(target.path for target in site.targets)
        owner.add_module(GENERATOR, generator)
        generator.hooks = [
            owner.register_forward_pre_hook(generator.begin_pass),
            owner.register_forward_hook(generator.end_pass),
        ]
        for target in site.targets:
            wrapped.setdefault(target.path, []).append((target, generator))
    for path, pairs in wrapped.items():
        wrapper = WeightAdaptedProjection if path in reads_weight else AdaptedProjection
        _set_submodule(model, path, wrapper(model.get_submodule(path), pairs, scaling, dropout))


def _generator(cfg: AdapterConfig, site: Site, shared: dict) -> FactorGenerator:
    if site.kind == "mlp":
        return LoRAFactors(site.targets, cfg.rank)
    try:
        return METHODS[cfg.method](site.targets, cfg.rank, site, shared, **cfg.method_kwargs)
    except TypeError as error:  # an unknown keyword of the method
        raise ConfigError.invalid("method_kwargs", cfg.method_kwargs, f"options of {cfg.method!r}: {error}") from None


def check_method_options(method: str, options: dict[str, Any], field_name: str = "method_kwargs") -> None:
    """Raise the error ``apply_adapters`` would raise for ``method``'s keyword options (an unknown name, an unknown
    activation or init, a bad size), without a model: the generator is built for a small stand-in site on the meta
    device. Config validation calls this so that a sweep fails before its first point trains."""
    if method == BOTTLENECK:
        try:
            bottleneck.check_options(**options)
        except TypeError as error:
            raise ConfigError.invalid(field_name, options, f"options of {method!r}: {error}") from None
        return
    if method in PEFT_METHODS or method not in METHODS:
        return
    targets = [Target(name, name, slice(0, 16), 16) for name in ("q", "v")]
    with torch.device("meta"):
        try:
            METHODS[method](targets, 2, Site("", "attention", targets, 8), {}, **options)
        except TypeError as error:
            raise ConfigError.invalid(field_name, options, f"options of {method!r}: {error}") from None


def adapter_parameter_count(
    model: nn.Module, method: str, targets: tuple[str, ...] | list[str] = ("q", "v"), rank: int = 8, **method_kwargs
) -> int:
    """The trainable parameters ``apply_adapters(model, method, targets, rank, **method_kwargs)`` would add, counted
    on the meta device: nothing is allocated and ``model`` is not touched."""
    cfg = AdapterConfig(method, list(targets), rank, method_kwargs=dict(method_kwargs))
    cfg.validate()
    if method == BOTTLENECK:
        check_method_options(method, cfg.method_kwargs)
        return bottleneck.parameter_count(model, **method_kwargs)
    shared = {}
    with torch.device("meta"):
        generators = nn.ModuleList(_generator(cfg, site, shared) for site in find_sites(model, cfg.targets))
    return sum(p.numel() for p in generators.parameters())  # a parameter shared by several sites counts once


def lora_rank_for(model: nn.Module, targets: tuple[str, ...] | list[str], params: int) -> int:
    """The smallest LoRA rank whose factors on ``targets`` have at least ``params`` parameters (rank r costs
    r (in + out) per adapted weight)."""
    per_rank = sum(t.in_features + t.out_features for site in find_sites(model, list(targets)) for t in site.targets)
    return max(1, -(-params // per_rank))


def bottlenecks_of(model: nn.Module) -> list[tuple[str, bottleneck.Bottleneck]]:
    return [(path, m) for path, m in model.named_modules() if isinstance(m, bottleneck.Bottleneck)]


def refuse_bottleneck(model: nn.Module, action: str) -> None:
    if bottlenecks_of(model):
        raise ConfigError(
            f"{action}: this model has bottleneck adapters (method 'adapter'), a non-linear module between layers "
            "that no weight of the base model can absorb; keep the adapted model, or save it with save_adapters"
        )


def merge_adapters(model: nn.Module, unload: bool = False) -> nn.Module:
    """Fold every (alpha / r) B A into its base weight. With ``unload`` also remove the wrappers and generators:
    the model is then exactly the base architecture (inference costs what the base model costs). Refused for
    bottleneck adapters, which cannot be merged."""
    refuse_bottleneck(model, "merge_adapters")
    for _, projection in projections_of(model):
        projection.merge()
    if unload:
        for path, projection in projections_of(model):
            _set_submodule(model, path, projection.base)
        for _, owner, generator in sites_of(model):
            delattr(owner, GENERATOR)
            for hook in generator.hooks:
                hook.remove()
        del model.adapter_config, model.adapter_base_params
    return model


def unmerge_adapters(model: nn.Module) -> nn.Module:
    """Subtract the merged updates again (the adapters then train or run unmerged as before)."""
    for _, projection in projections_of(model):
        projection.unmerge()
    return model


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter of every factor generator, by its (first) name in the model: a parameter that several
    generators share (HyRA's head embeddings) appears once."""
    state, seen = {}, set()
    for path, _, generator in sites_of(model):
        for name, p in generator.named_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                state[f"{path}.{GENERATOR}.{name}" if path else f"{GENERATOR}.{name}"] = p
    for path, module in bottlenecks_of(model):
        state.update({f"{path}.{name}": p for name, p in module.named_parameters()})
    return state


def save_adapters(model: nn.Module, directory: str | Path) -> Path:
    """Write the adapter parameters (safetensors) and the config they were built with (JSON) to ``directory``."""
    if not hasattr(model, "adapter_config"):
        raise ConfigError.invalid("model", type(model).__name__, "a model adapted by apply_adapters")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in adapter_state_dict(model).items()}
    atomic_save_safetensors(directory / WEIGHTS_FILE, state)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(asdict(model.adapter_config), indent=2) + "\n")
    return directory


def load_adapters(model: nn.Module, directory: str | Path) -> nn.Module:
    """Adapt a base ``model`` as the saved adapters were and load their parameters (bit-exact)."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ConfigError.invalid("directory", str(directory), f"a directory written by save_adapters (no {name})")
    cfg = AdapterConfig(**json.loads((directory / CONFIG_FILE).read_text()))
    apply_adapters(model, cfg.method, cfg.targets, cfg.rank, cfg.alpha, cfg.dropout, **cfg.method_kwargs)
    saved, own = load_file(str(directory / WEIGHTS_FILE)), adapter_state_dict(model)
    if saved.keys() != own.keys():
        raise ConfigError(
            f"adapters in {directory} do not fit this model: missing {sorted(own.keys() - saved.keys())[:3]}, "
            f"unexpected {sorted(saved.keys() - own.keys())[:3]}"
        )
    with torch.no_grad():
        for name, p in own.items():
            if saved[name].shape != p.shape:
                raise ConfigError(
                    f"adapter parameter {name} has shape {tuple(saved[name].shape)} in {directory}, "
                    f"this model needs {tuple(p.shape)}"
                )
            p.copy_(saved[name])
    return model


def lora_factors(model: nn.Module) -> dict[str, list[tuple[str, slice, torch.Tensor, torch.Tensor]]]:
    """The plain LoRA factors every adapter materialises to: {projection path: [(target, rows, B, A)]},
    Delta W[rows] = (alpha / r) B A, detached."""
    return {
        path: [(target.name, target.rows, B.clone(), A.clone()) for target, B, A in projection.factors()]
        for path, projection in projections_of(model)
    }


def count_trainable(model: nn.Module) -> tuple[int, float]:
    """(trainable parameters, their percentage of the backbone's parameters before adaptation)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    base = getattr(model, "adapter_base_params", None) or sum(p.numel() for p in model.parameters())
    return trainable, 100.0 * trainable / base
