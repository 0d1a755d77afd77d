"""The shared base of every adapter: a factor generator per site and a wrapper around each adapted projection.

For every adapted weight W (out, in) the adapted layer computes W x + (alpha / r) B (A dropout(x)), with
B (out, r) and A (r, in) produced by the site's ``FactorGenerator``: LoRA returns its parameters, RepLoRA and
HyRA compute them from shared (hyper)networks. A generator runs once per forward pass of its site's owner module
(an attention block or an MLP block), however many projections read its factors, never per token or per head.
After training, ``merge`` folds (alpha / r) B A into W: inference then costs what the base model costs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from common.adapters.targets import Target, is_conv1d


class FactorGenerator(nn.Module):
    """Produces the low-rank factors {target: (B (out, r), A (r, in))} of one site.

    Subclasses implement ``generate``. Inside a forward pass of the owner module the result is computed once and
    shared by every projection that reads it (``begin_pass``/``end_pass`` are the owner's hooks); outside one
    (merging, exporting) each call computes it afresh, so nothing stale is ever read.
    """

    def __init__(self, targets: list[Target], rank: int):
        super().__init__()
        self.target_shapes = {t.name: (t.out_features, t.in_features) for t in targets}
        self.rank = rank
        self._in_pass = False
        self._cache = None

    def generate(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def factors(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if not self._in_pass:
            return self.generate()
        if self._cache is None:
            self._cache = self.generate()
        return self._cache

    def begin_pass(self, *_) -> None:
        self._in_pass, self._cache = True, None

    def end_pass(self, *_) -> None:
        self._in_pass, self._cache = False, None


def kaiming_uniform(*shape: int) -> nn.Parameter:
    """A weight with nn.Linear's default initialisation (Kaiming-uniform, a = sqrt(5)): bound 1 / sqrt(fan_in)."""
    weight = torch.empty(*shape)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return nn.Parameter(weight)


class AdaptedProjection(nn.Module):
    """A frozen Linear or Conv1D plus low-rank updates of some of its output rows (Q and V of a fused qkv).

    ``targets``: (target, generator) pairs; each generator is registered on its site's owner module, not here,
    so that a generator shared by two projections (q_proj and v_proj) is one module with one set of parameters.
    """

    def __init__(self, base: nn.Module, targets: list[tuple[Target, FactorGenerator]], scaling: float, dropout: float):
        super().__init__()
        self.base = base
        self.targets = [t for t, _ in targets]
        self._generators = [g for _, g in targets]  # a plain list: not submodules of this wrapper
        self.scaling = scaling
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (..., out)
        if self.merged:
            return y
        h = self.dropout(x)
        for target, generator in zip(self.targets, self._generators, strict=True):
            B, A = generator.factors()[target.name]  # (out_t, r), (r, in)
            delta = (h @ A.to(h.dtype).T) @ (self.scaling * B.to(h.dtype)).T  # (..., out_t)
            if target.rows == slice(0, y.shape[-1]):
                y = y + delta
            else:
                y[..., target.rows] += delta
        return y

    @torch.no_grad()
    def factors(self) -> list[tuple[Target, torch.Tensor, torch.Tensor]]:
        """(target, B (out_t, r), A (r, in)) for each adapted target, without autograd history."""
        out = []
        for target, generator in zip(self.targets, self._generators, strict=True):
            B, A = generator.factors()[target.name]
            out.append((target, B.detach(), A.detach()))
        return out

    @torch.no_grad()
    def delta_weights(self) -> list[tuple[Target, torch.Tensor]]:
        """(target, (alpha / r) B A (out_t, in)) for each adapted target."""
        return [(target, self.scaling * B @ A) for target, B, A in self.factors()]

    @torch.no_grad()
    def _fold(self, sign: float) -> None:
        weight = self.base.weight
        for target, delta in self.delta_weights():
            if is_conv1d(self.base):  # weight (in, out)
                weight[:, target.rows] += sign * delta.T.to(weight.dtype)
            else:  # weight (out, in)
                weight[target.rows] += sign * delta.to(weight.dtype)

    def merge(self) -> None:
        if not self.merged:
            self._fold(+1.0)
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            self._fold(-1.0)
            self.merged = False


class WeightAdaptedProjection(AdaptedProjection):
    """An adapted projection whose owner reads its ``weight`` and ``bias`` instead of calling it (torchvision's Swin
    and Video Swin pass ``qkv.weight`` to a functional window attention): ``weight`` is W + (alpha / r) B A, with
    gradients through the factors. Adapter dropout acts on inputs, which such an owner never hands over: these
    projections take dropout 0."""

    @property
    def weight(self) -> torch.Tensor:
        weight = self.base.weight  # (out, in): torchvision's projections are Linear
        if self.merged:
            return weight
        delta = weight.new_zeros(weight.shape)
        for target, generator in zip(self.targets, self._generators, strict=True):
            B, A = generator.factors()[target.name]  # (out_t, r), (r, in)
            delta[target.rows] = (self.scaling * B.to(weight.dtype)) @ A.to(weight.dtype)
        return weight + delta

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias
