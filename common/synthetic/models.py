"""Batched mixture-of-experts regression models f_G(x) = sum_i gate_i(x) * expert(x; eta_i).

Every function here works on a whole sweep of independent fits at once: parameters are a tensor
``theta`` of shape (R, N, P) -- R replicates, N atoms (experts), P parameters per atom -- and inputs are
(R, n, d). One atom's parameter vector is the concatenation of named blocks, gate blocks first:

    quadratic_polynomial score  s(x) = x^T A x + b^T x + c      blocks A, b, c   (QG Eq. (10), SG Eq. (5))
    quadratic_monomial score    s(x) = x^T A x + c              blocks A, c      (QG Eq. (22), SG Eq. (48))
    linear score                s(x) = b^T x + c                blocks b, c      (SM Eq. (2): omega, beta)
    linear_temperature score    s(x) = (b^T x + c) / tau        blocks b, c, rho (SM Eq. (12))
    tanh_temperature score      s(x) = (tanh(b^T x) + c) / tau  blocks b, c, rho (SM Eq. (17), router tanh)
    expert                      E(x) = phi(alpha^T x + beta)    blocks alpha, beta
    normalised expert           E(x) = scale * phi(alpha^T x / ||x|| + beta)
                                                                blocks alpha, beta, scale (SM Def. 1 example)

The temperature tau = exp(rho) is shared by all atoms: it is stored in atom 0's ``rho`` entry (stored last in
every atom); the other atoms' ``rho`` entries are unused and never fitted (``unused_mask``).
A is symmetric (only sym(A) is seen by x^T A x, spec Sec. 2.3-3) and stored as its d(d+1)/2 upper-triangular
entries; ``blocks`` expands it back to the full matrix so that distances are Frobenius norms.
Gates: ``softmax`` normalises the scores over atoms, ``sigmoid`` does not (SG Eq. (5)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch
import torch.nn.functional as F

GATES = ("softmax", "sigmoid")
SCORES = ("quadratic_polynomial", "quadratic_monomial", "linear", "linear_temperature", "tanh_temperature")
NORMALISED_EXPERTS = ("normalised_tanh", "normalised_gelu", "normalised_sigmoid")
EXPERTS = ("linear", "relu", "gelu", "polynomial", *NORMALISED_EXPERTS)

_ACTIVATIONS = {  # name -> (phi(z), phi'(z)) for E(x) = phi(alpha^T x + beta)
    "linear": (lambda z, p: z, lambda z, p: torch.ones_like(z)),
    "relu": (lambda z, p: F.relu(z), lambda z, p: (z > 0).to(z)),
    "gelu": (
        lambda z, p: F.gelu(z),
        lambda z, p: 0.5 * (1 + torch.erf(z / math.sqrt(2))) + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
    ),
    "polynomial": (lambda z, p: z**p, lambda z, p: p * z ** (p - 1)),
    "tanh": (lambda z, p: torch.tanh(z), lambda z, p: 1 - torch.tanh(z) ** 2),
    "sigmoid": (lambda z, p: torch.sigmoid(z), lambda z, p: torch.sigmoid(z) * (1 - torch.sigmoid(z))),
}
_ACTIVATIONS["normalised_gelu"] = _ACTIVATIONS["gelu"]
_ACTIVATIONS["normalised_tanh"] = _ACTIVATIONS["tanh"]
_ACTIVATIONS["normalised_sigmoid"] = _ACTIVATIONS["sigmoid"]


class Sensitivities(NamedTuple):
    """f_G(x) (R, n) and its derivatives (R, n, N) in each atom's score, expert pre-activation and scale."""

    f: torch.Tensor
    d_score: torch.Tensor
    d_pre: torch.Tensor
    d_scale: torch.Tensor | None  # None for experts without a scale
    d_router: torch.Tensor | None = None  # (R, n, N) derivative in the router's pre-activation b^T x (tanh router)
    d_rho: torch.Tensor | None = None  # (R, n) derivative in the shared log-temperature (tempered scores)


class BlockLayout:
    """An atom's parameter vector as named blocks stored in the order of the family's ``block_sizes``."""

    block_sizes: dict[str, int]

    @cached_property
    def block_slices(self) -> dict[str, slice]:
        """Where each named block of an atom's parameter vector lies."""
        out, start = {}, 0
        for name, size in self.block_sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def params_per_atom(self) -> int:
        return sum(self.block_sizes.values())


def gate_mass(gate: str, c: torch.Tensor) -> torch.Tensor:
    """Mass of an atom in the mixing measure: exp(c) for softmax gating, sigmoid(c) for sigmoid gating."""
    return torch.exp(c) if gate == "softmax" else torch.sigmoid(c)


def gate_mass_inverse(gate: str, mass: torch.Tensor) -> torch.Tensor:
    """The constant c whose mass is ``mass`` (inverse of ``gate_mass``)."""
    return torch.log(mass) if gate == "softmax" else torch.logit(mass)


@dataclass(frozen=True)
class MixtureOfExperts(BlockLayout):
    """A gate/score/expert family of scalar-output MoE regression models with ``num_atoms`` atoms in R^dim."""

    gate: str
    score: str
    expert: str
    dim: int
    num_atoms: int
    expert_degree: int = 1  # p of the polynomial expert (alpha^T x + beta)^p
    vector_output = False  # f_G(x) is a scalar (a LoRAMoE's is a vector in R^dim)

    def __post_init__(self):
        for field, value, allowed in (
            ("gate", self.gate, GATES),
            ("score", self.score, SCORES),
            ("expert", self.expert, EXPERTS),
        ):
            if value not in allowed:
                raise ValueError(f"{field} = {value!r} is not allowed: choose one of {', '.join(allowed)}")

    # --- parameter layout -------------------------------------------------------------------------
    @cached_property
    def block_sizes(self) -> dict[str, int]:
        """Ordered name -> size of the stored blocks of one atom (gate blocks first, then expert blocks)."""
        d = self.dim
        sizes = {"A": d * (d + 1) // 2} if self.quadratic else {}
        if self.score != "quadratic_monomial":
            sizes["b"] = d
        sizes |= {"c": 1, "alpha": d, "beta": 1}
        if self.scaled:
            sizes["scale"] = 1
        if self.tempered:
            sizes["rho"] = 1
        return sizes

    @property
    def tempered(self) -> bool:
        """A learnt temperature tau = exp(rho) shared by all atoms divides the scores."""
        return self.score.endswith("_temperature")

    @property
    def routed(self) -> bool:
        """The score's linear part goes through tanh (SM's general router)."""
        return self.score == "tanh_temperature"

    @cached_property
    def unused_mask(self) -> torch.Tensor:
        """(N, P) entries that never enter f: the rho entries of atoms 1..N-1."""
        unused = torch.zeros(self.num_atoms, self.params_per_atom, dtype=torch.bool)
        if self.tempered:
            unused[1:, self.block_slices["rho"]] = True
        return unused

    @property
    def quadratic(self) -> bool:
        return self.score.startswith("quadratic")

    @property
    def scaled(self) -> bool:
        """Experts scale * phi(alpha^T x / ||x|| + beta) with a learnt scale and normalised input."""
        return self.expert in NORMALISED_EXPERTS

    @property
    def gate_size(self) -> int:
        return self.block_slices["c"].stop

    @cached_property
    def _triu(self) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.triu_indices(self.dim, self.dim))

    @cached_property
    def _full_from_triu(self) -> torch.Tensor:
        """(d*d,) index into the triangular vector for every entry of the full symmetric matrix."""
        rows, cols = self._triu
        index = torch.empty(self.dim, self.dim, dtype=torch.long)
        index[rows, cols] = torch.arange(len(rows))
        index[cols, rows] = torch.arange(len(rows))
        return index.flatten()

    def symmetric_to_triu(self, A: torch.Tensor) -> torch.Tensor:
        """(..., d, d) -> (..., d(d+1)/2): the stored form of sym(A)."""
        A = 0.5 * (A + A.transpose(-1, -2))
        rows, cols = self._triu
        return A[..., rows, cols]

    def blocks(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named parameter blocks of (..., N, P) parameters; A as the flattened full matrix (..., N, d*d).

        Also ``eta`` = (alpha, beta), the expert parameter of the papers.
        """
        out = {name: theta[..., s] for name, s in self.block_slices.items()}
        if self.quadratic:
            out["A"] = out["A"][..., self._full_from_triu]
        if self.tempered:  # the shared temperature on every atom, and the scale-free gate (omega, beta) / tau
            tau = out["rho"][..., :1, :].exp().expand_as(out["c"])
            out |= {"tau": tau, "b_over_tau": out["b"] / tau, "c_over_tau": out["c"] / tau}
        out["eta"] = torch.cat([out[name] for name in ("alpha", "beta", "scale") if name in out], dim=-1)
        return out

    def pack(self, blocks: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of ``blocks`` for the stored blocks, with A given as (..., N, d, d)."""
        parts = [self.symmetric_to_triu(blocks[name]) if name == "A" else blocks[name] for name in self.block_sizes]
        return torch.cat(parts, dim=-1)

    # --- features and forward ---------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Design matrices of the score and the expert for inputs x (..., n, d).

        Score features [x_i x_j (doubled off the diagonal, i <= j; quadratic scores), x (unless monomial), 1] so
        that score = features @ gate-params; expert features [x, 1] (normalised experts: [x / ||x||, 1]) so that
        pre-activation = features @ (alpha, beta).
        """
        ones = torch.ones_like(x[..., :1])
        parts = []
        if self.quadratic:
            rows, cols = self._triu
            parts.append(x[..., rows] * x[..., cols] * torch.where(rows == cols, 1.0, 2.0).to(x))
        if self.score != "quadratic_monomial":
            parts.append(x)
        expert_input = x / x.norm(dim=-1, keepdim=True) if self.scaled else x
        return torch.cat([*parts, ones], dim=-1), torch.cat([expert_input, ones], dim=-1)

    def _scores(self, theta: torch.Tensor, score_features: torch.Tensor):
        """Scores (R, n, N), the router's tanh (or None) and 1 / tau (R, 1, 1) (or None)."""
        if not self.tempered:
            return score_features @ theta[..., : self.gate_size].transpose(-1, -2), None, None
        inv_tau = torch.exp(-theta[..., :1, self.block_slices["rho"]])  # (R, 1, 1)
        linear = score_features[..., :-1] @ theta[..., self.block_slices["b"]].transpose(-1, -2)  # (R, n, N)
        router = torch.tanh(linear) if self.routed else None
        scores = ((router if self.routed else linear) + theta[..., None, :, self.block_slices["c"].start]) * inv_tau
        return scores, router, inv_tau

    def gates(self, theta: torch.Tensor, score_features: torch.Tensor) -> torch.Tensor:
        """Gate values (R, n, N) of parameters (R, N, P) on score features (R, n, q)."""
        scores = self._scores(theta, score_features)[0]  # (R, n, N)
        return torch.softmax(scores, dim=-1) if self.gate == "softmax" else torch.sigmoid(scores)

    def experts(self, theta: torch.Tensor, expert_features: torch.Tensor) -> torch.Tensor:
        """Expert outputs (R, n, N) of parameters (R, N, P) on expert features (R, n, d+1)."""
        pre = expert_features @ self._expert_weights(theta).transpose(-1, -2)  # (R, n, N)
        out = _ACTIVATIONS[self.expert][0](pre, self.expert_degree)
        return out * self._scale(theta) if self.scaled else out

    def _expert_weights(self, theta: torch.Tensor) -> torch.Tensor:
        """(alpha, beta) of every atom (..., N, d + 1)."""
        return theta[..., self.gate_size : self.gate_size + self.dim + 1]

    def _scale(self, theta: torch.Tensor) -> torch.Tensor:
        """The experts' scales (..., 1, N)."""
        return theta[..., None, :, self.block_slices["scale"].start]

    def predict(self, theta: torch.Tensor, features: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """f_G(x) (R, n) for parameters (R, N, P) and ``features(x)``."""
        score_features, expert_features = features
        return (self.gates(theta, score_features) * self.experts(theta, expert_features)).sum(-1)

    def sensitivities(self, theta: torch.Tensor, features: tuple[torch.Tensor, torch.Tensor]) -> Sensitivities:
        """f_G(x) (R, n) and its derivatives (R, n, N) in each atom's score s_i, pre-activation z_i and scale.

        d f / d s_i = sigmoid'(s_i) E_i (sigmoid gate) or g_i (E_i - f) (softmax gate),
        d f / d z_i = g_i scale_i phi'(z_i) and d f / d scale_i = g_i phi(z_i). Scores and pre-activations are
        linear in the parameters, so the Jacobian is features x these weights.
        """
        score_features, expert_features = features
        scores, router, inv_tau = self._scores(theta, score_features)  # (R, n, N)
        pre = expert_features @ self._expert_weights(theta).transpose(-1, -2)  # (R, n, N)
        phi, dphi = _ACTIVATIONS[self.expert]
        activation, slope = phi(pre, self.expert_degree), dphi(pre, self.expert_degree)
        scale = self._scale(theta) if self.scaled else None  # (R, 1, N)
        experts = activation * scale if self.scaled else activation
        if self.gate == "softmax":
            gates = torch.softmax(scores, dim=-1)
            f = (gates * experts).sum(-1)
            d_score = gates * (experts - f[..., None])
        else:
            gates = torch.sigmoid(scores)
            f = (gates * experts).sum(-1)
            d_score = gates * (1 - gates) * experts
        d_pre = gates * scale * slope if self.scaled else gates * slope
        d_scale = gates * activation if self.scaled else None
        if not self.tempered:
            return Sensitivities(f, d_score, d_pre, d_scale)
        # s_i = (router_i + c_i) / tau: d s_i / d c_i = 1 / tau, d s_i / d rho = -s_i, and the linear part
        # b_i^T x enters through tanh' = 1 - tanh^2 for the tanh router.
        d_rho = -(d_score * scores).sum(-1)
        d_score = d_score * inv_tau
        d_router = d_score * (1 - router**2) if self.routed else None
        return Sensitivities(f, d_score, d_pre, d_scale, d_router, d_rho)

    def jacobian(
        self, theta: torch.Tensor, features: tuple[torch.Tensor, torch.Tensor], out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f_G(x) (R, n) and its Jacobian d f / d theta (R, n, N, P), analytically (written into ``out`` if given)."""
        sens = self.sensitivities(theta, features)
        return sens.f, self.assemble_jacobian(features, sens, out)

    def assemble_jacobian(
        self, features: tuple[torch.Tensor, torch.Tensor], sens: Sensitivities, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The Jacobian (R, n, N, P) from ``sensitivities``: each atom's features times their weights."""
        score_features, expert_features = features
        gate, expert = self.gate_size, self.gate_size + self.dim + 1
        jac = sens.d_score.new_empty(*sens.d_score.shape, self.params_per_atom) if out is None else out
        torch.mul(score_features[..., None, :], sens.d_score[..., None], out=jac[..., :gate])
        if sens.d_router is not None:
            torch.mul(score_features[..., None, :-1], sens.d_router[..., None], out=jac[..., : gate - 1])
        torch.mul(expert_features[..., None, :], sens.d_pre[..., None], out=jac[..., gate:expert])
        if self.scaled:
            jac[..., self.block_slices["scale"].start] = sens.d_scale
        if self.tempered:
            rho = self.block_slices["rho"].start
            jac[..., rho] = 0.0
            jac[..., 0, rho] = sens.d_rho
        return jac

    def vector_jacobian(
        self, features: tuple[torch.Tensor, torch.Tensor], sens: Sensitivities, v: torch.Tensor
    ) -> torch.Tensor:
        """sum_i v_i d f(x_i) / d theta (R, N, P) from ``sensitivities`` and v (R, n), without the Jacobian."""
        score_features, expert_features = features
        grad_gate = (sens.d_score * v[..., None]).transpose(-1, -2) @ score_features  # (R, N, q)
        if sens.d_router is not None:
            grad_gate[..., :-1] = (sens.d_router * v[..., None]).transpose(-1, -2) @ score_features[..., :-1]
        grad_expert = (sens.d_pre * v[..., None]).transpose(-1, -2) @ expert_features  # (R, N, d + 1)
        parts = [grad_gate, grad_expert]
        if self.scaled:
            parts.append((sens.d_scale * v[..., None]).sum(-2)[..., None])  # (R, N, 1)
        if self.tempered:
            rho = torch.zeros_like(grad_gate[..., :1])
            rho[..., 0, 0] = (sens.d_rho * v).sum(-1)
            parts.append(rho)
        return torch.cat(parts, dim=-1)

    def with_atoms(self, num_atoms: int) -> MixtureOfExperts:
        """The same family with another number of atoms (e.g. the over-specified fit of a true model)."""
        return MixtureOfExperts(self.gate, self.score, self.expert, self.dim, num_atoms, self.expert_degree)
