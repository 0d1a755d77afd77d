"""Two-level mixtures: G groups of a flat family, mixed by a group gate (SM Sec. 4, HyRA Sec. 3).

    f_G(x) = sum_g w_g(x) f_g(x),     f_g = the flat family's mixture of the atoms of group g

``outer`` picks the group weights w_g:

    softmax   w_g = softmax_g(omega_g^T x + beta_g)  blocks outer_b (d), outer_c (1)  hierarchical MoE, SM Eq. (20)
    constant  w_g = pi_g = sigmoid(p_g)              block pi_logit (1)               multi-head LoRA, HyRA (6), (9)

Atoms are stored group-major, K per group: atoms g K ... g K + K - 1 form group g, each with its own flat
model in ``inners`` (the heads of multi-head LoRA differ in their frozen matrices). An atom's parameter vector
is the flat family's blocks, then the group's blocks and a ``group`` block holding the group index, so that a
parameter tensor says which atom is in which group. The group's parameters are read from its first atom (the
copies on the other atoms are never used or fitted); ``tied`` flat blocks are shared by the atoms with the same
index in every group (HyRA's A_j, shared across heads) and read from group 0.

Gauges (spec Sec. 2.3-1, applied at both levels as SM (A.3) does for one): inside each group the flat
family's ``reference`` atom keeps its true (zero) gating parameters, and with softmax group weights so does
the last group's (omega, beta). ``fixed_mask`` holds these and the unused entries out of the fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from common.synthetic.models import BlockLayout

OUTERS = {"softmax": "hierarchical", "constant": "multihead"}  # outer gate -> prefix of the family's score name


@dataclass(frozen=True, eq=False)
class GroupedMixture(BlockLayout):
    """``len(inners)`` groups of ``inners[g].num_atoms`` atoms each, mixed by the ``outer`` group gate."""

    inners: tuple  # one flat model (MixtureOfExperts or LoRAMoE) per group, same family and atom count
    outer: str = "softmax"
    tied: tuple[str, ...] = ()  # flat blocks shared across groups
    reference: int | None = None  # index in a group of the flat reference atom; None: the last

    def __post_init__(self):
        if self.outer not in OUTERS:
            raise ValueError(f"outer = {self.outer!r} is not allowed: choose one of {', '.join(OUTERS)}")
        if len(self.inners) < 2:
            raise ValueError(f"num_groups = {len(self.inners)} is not allowed: at least 2 groups")
        if len({(type(m), m.num_atoms, m.params_per_atom, m.score) for m in self.inners}) != 1:
            raise ValueError("inners: every group needs the same flat family and number of atoms")
        unknown = [name for name in self.tied if name not in self.inner.block_sizes]
        if unknown:
            raise ValueError(
                f"tied = {unknown} is not allowed: blocks of the flat family {list(self.inner.block_sizes)}"
            )

    @property
    def inner(self):
        return self.inners[0]

    @property
    def num_groups(self) -> int:
        return len(self.inners)

    @property
    def per_group(self) -> int:
        return self.inner.num_atoms

    @property
    def num_atoms(self) -> int:
        return self.num_groups * self.per_group

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def gate(self) -> str:
        return self.inner.gate

    @property
    def score(self) -> str:
        """The name the Voronoi losses know this family by, e.g. hierarchical_linear or multihead_lora_vanilla."""
        return f"{OUTERS[self.outer]}_{self.inner.score}"

    tempered = False

    @property
    def scaled(self) -> bool:
        return self.inner.scaled

    @property
    def reference_index(self) -> int:
        return self.per_group - 1 if self.reference is None else self.reference

    def with_atoms(self, num_atoms: int) -> GroupedMixture:
        """The same family with ``num_atoms`` atoms per group (the reference atom keeps its index)."""
        inners = tuple(m.with_atoms(num_atoms) for m in self.inners)
        return GroupedMixture(inners, self.outer, self.tied, self.reference_index)

    # --- parameter layout -------------------------------------------------------------------------
    @cached_property
    def outer_sizes(self) -> dict[str, int]:
        return {"outer_b": self.dim, "outer_c": 1} if self.outer == "softmax" else {"pi_logit": 1}

    @cached_property
    def block_sizes(self) -> dict[str, int]:
        return {**self.inner.block_sizes, **self.outer_sizes, "group": 1}

    @property
    def inner_size(self) -> int:
        return self.inner.params_per_atom

    @property
    def gate_size(self) -> int:
        return self.inner.gate_size

    @cached_property
    def _tied_columns(self) -> torch.Tensor:
        columns = torch.zeros(self.params_per_atom, dtype=torch.bool)
        for name in self.tied:
            columns[self.block_slices[name]] = True
        return columns

    @cached_property
    def unused_mask(self) -> torch.Tensor:
        """(N, P): the flat family's unused entries, the group copies, tied copies and the group index."""
        K = self.per_group
        unused = torch.zeros(self.num_atoms, self.params_per_atom, dtype=torch.bool)
        unused[:, : self.inner_size] = self.inner.unused_mask.repeat(self.num_groups, 1)
        outer = slice(self.inner_size, self.params_per_atom - 1)
        not_first = torch.arange(self.num_atoms) % K != 0
        unused[not_first, outer] = True
        unused[K:, self._tied_columns] = True
        unused[:, -1] = True
        return unused

    @cached_property
    def fixed_mask(self) -> torch.Tensor:
        """(N, P) entries never fitted: ``unused_mask``, the reference atoms' flat gates, the last group's gate."""
        fixed = self.unused_mask.clone()
        K = self.per_group
        if self.gate == "softmax":
            fixed[self.reference_index :: K, : self.gate_size] = True
        if self.outer == "softmax":
            fixed[(self.num_groups - 1) * K, self.inner_size : self.params_per_atom - 1] = True
        return fixed

    def initial_sources(self, num_true: int, over_specified_atom: int) -> list[int]:
        """The true atom each atom of this (fitted) model starts at, given a truth with ``num_true`` atoms in
        all: group g's first K* atoms copy true group g's, its extras copy its ``over_specified_atom``."""
        k_true = num_true // self.num_groups
        return [
            g * k_true + (k if k < k_true else over_specified_atom)
            for g in range(self.num_groups)
            for k in range(self.per_group)
        ]

    def assemble(self, inner_thetas: list[torch.Tensor], outer: dict[str, torch.Tensor]) -> torch.Tensor:
        """Parameters (G K, P) from each group's flat parameters (K, P_inner) and the group blocks (G, size):
        the group blocks are copied onto every atom of the group, tied blocks from group 0."""
        K = inner_thetas[0].shape[0]
        parts = []
        for g, inner in enumerate(inner_thetas):
            inner = inner.clone()
            inner[:, self._tied_columns[: self.inner_size]] = inner_thetas[0][:, self._tied_columns[: self.inner_size]]
            group = [outer[name][g].expand(K, -1) for name in self.outer_sizes]
            parts.append(torch.cat([inner, *group, torch.full((K, 1), float(g), dtype=inner.dtype)], dim=-1))
        return torch.cat(parts)

    def _resolve(self, theta: torch.Tensor) -> torch.Tensor:
        """theta with the group blocks and tied blocks of every atom read from where they are stored."""
        N = theta.shape[-2]
        K = N // self.num_groups
        index = torch.arange(N, device=theta.device)
        first, same_in_group0 = index - index % K, index % K
        out = theta.clone()
        outer = slice(self.inner_size, self.params_per_atom - 1)
        out[..., outer] = theta[..., first, outer]
        tied = self._tied_columns.to(theta.device)
        out[..., tied] = theta[..., same_in_group0, :][..., tied]
        return out

    def blocks(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The flat family's blocks and the group blocks on every atom (..., N, k); ``pi`` = sigmoid(pi_logit)."""
        theta = self._resolve(theta)
        out = self.inner.blocks(theta[..., : self.inner_size])
        out |= {name: theta[..., self.block_slices[name]] for name in (*self.outer_sizes, "group")}
        if self.outer == "constant":
            out["pi"] = torch.sigmoid(out["pi_logit"])
        return out

    # --- forward ------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The flat family's features, then x for the group gate."""
        return (*self.inner.features(x), x)

    def _group_weights(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """w (R, n, G) or, for constant weights, (R, 1, G)."""
        K = theta.shape[-2] // self.num_groups
        first = theta[..., ::K, :]  # (R, G, P)
        if self.outer == "constant":
            return torch.sigmoid(first[..., None, :, self.block_slices["pi_logit"].start])
        scores = x @ first[..., self.block_slices["outer_b"]].transpose(-1, -2)
        return torch.softmax(scores + first[..., None, :, self.block_slices["outer_c"].start], dim=-1)

    def _group_parts(self, theta: torch.Tensor, features: tuple) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        K = theta.shape[-2] // self.num_groups
        resolved = self._resolve(theta)[..., : self.inner_size]
        thetas = [resolved[..., g * K : (g + 1) * K, :] for g in range(self.num_groups)]
        return self._group_weights(theta, features[-1]), thetas, K

    def predict(self, theta: torch.Tensor, features: tuple) -> torch.Tensor:
        """f_G(x) (R, n[, q]) for parameters (R, N, P)."""
        weights, thetas, _ = self._group_parts(theta, features)
        out = 0.0
        for g, (model, part) in enumerate(zip(self.inners, thetas, strict=True)):
            f = model.predict(part, features[:-1])
            out = out + _expand(weights[..., g], f) * f
        return out

    def jacobian(self, theta: torch.Tensor, features: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """f_G(x) (R, n[, q]) and its Jacobian (R, n[, q], N, P) from the flat family's Jacobians.

        d f / d(atom of group g) = w_g d f_g / d(atom); tied blocks collect the terms of every group on group 0;
        softmax group weights: d f / d s_g = w_g (f_g - f), s_g = omega_g^T x + beta_g; constant weights:
        d f / d p_g = pi_g (1 - pi_g) f_g.
        """
        weights, thetas, K = self._group_parts(theta, features)
        x = features[-1]
        parts = [model.jacobian(part, features[:-1]) for model, part in zip(self.inners, thetas, strict=True)]
        values = [f for f, _ in parts]
        w = [_expand(weights[..., g], values[g]) for g in range(self.num_groups)]
        f = sum(wg * fg for wg, fg in zip(w, values, strict=True))
        jac = x.new_empty(*parts[0][1].shape[:-2], theta.shape[-2], self.params_per_atom)
        inner, outer = slice(0, self.inner_size), slice(self.inner_size, self.params_per_atom - 1)
        jac[..., self.inner_size :] = 0.0
        if self.outer == "softmax":
            score_features = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)  # (R, n, d + 1)
            if f.dim() > 2:
                score_features = score_features[..., None, :]
        # Each flat Jacobian is computed contiguous and written, scaled, into its columns once: products that
        # broadcast straight into the strided columns are several times slower.
        for g, (_, flat) in enumerate(parts):
            torch.mul(flat, w[g][..., None, None], out=jac[..., g * K : (g + 1) * K, inner])
            if self.outer == "softmax":
                d_score = w[g] * (values[g] - f)  # (R, n[, q])
                jac[..., g * K, outer] = d_score[..., None] * score_features
            else:
                pi = weights[..., g]  # (R, 1)
                jac[..., g * K, outer] = (_expand(pi * (1 - pi), values[g]) * values[g])[..., None]
        for name in self.tied:  # slices, not the boolean column mask: views, no gather and scatter
            columns = self.block_slices[name]
            for g in range(1, self.num_groups):
                jac[..., :K, columns] += jac[..., g * K : (g + 1) * K, columns]
            jac[..., K:, columns] = 0.0
        return f, jac


def _expand(weight: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """A group weight (R, n) or (R, 1) shaped to multiply a group output (R, n) or (R, n, q)."""
    return weight[..., None] if value.dim() > weight.dim() else weight
