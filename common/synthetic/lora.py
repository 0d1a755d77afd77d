"""LoRA as a mixture of experts (RepLoRA Sec. 4): batched vector-output models with low-rank atoms.

One attention head with frozen matrices M_Q, M_K, M_V (d x d) and L LoRA "experts", each perturbing the query
and value matrices by a rank-r product, reads as a softmax-gated MoE on a vectorised input X in R^d
(RepLoRA Eq. (11), (13), (15)):

    f_G(X) = sum_j softmax_j( X^T (M_Q + Z_Q,j) M_K X + c_j ) (M_V + Z_V,j) X          in R^d

``variant`` picks how an atom produces (Z_Q, Z_V), and so its stored blocks (matrices flattened row-major):

    vanilla         Z_Q = B_Q A_Q, Z_V = B_V A_V       blocks c, BQ (d x r), AQ (r x d), BV, AV   (Eq. (11))
    shared          Z_Q = Z_V = B A                    blocks c, B (d x r), A (r x d)             (Eq. (13))
    shared_sigmoid  Z_Q = Z_V = sigmoid(U) sigmoid(V)  blocks c, U (d x r), V (r x d)             (Eq. (15))
    shared_tanh     Z_Q = Z_V = tanh(U) tanh(V)        blocks c, U, V

Parameters are (R, N, P) like ``MixtureOfExperts``; ``blocks`` adds the products ZQ, ZV (and Z for the
shared variants), the gauge-invariant atoms that the product-level Voronoi losses compare (spec Sec. 2.3-4).
The model has no analytic derivatives: the fitter differentiates ``predict`` automatically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import torch

from common.synthetic.models import BlockLayout
from common.synthetic.truth import make_generator

VARIANTS = ("vanilla", "shared", "shared_sigmoid", "shared_tanh")
_SQUASH = {"shared_sigmoid": torch.sigmoid, "shared_tanh": torch.tanh}


@dataclass(frozen=True, eq=False)
class LoRAMoE(BlockLayout):
    """Softmax-gated LoRA experts on one attention head: ``num_atoms`` atoms of rank ``rank`` in R^dim."""

    variant: str
    dim: int  # d-bar: the vectorised input and output dimension
    num_atoms: int
    rank: int
    frozen: torch.Tensor = field(repr=False)  # (3, d, d): M_Q, M_K, M_V
    gate: str = "softmax"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant = {self.variant!r} is not allowed: choose one of {', '.join(VARIANTS)}")
        if not 1 <= self.rank <= self.dim:
            raise ValueError(f"rank = {self.rank} is not allowed: an integer in [1, dim = {self.dim}]")

    @property
    def score(self) -> str:
        """The name the Voronoi losses know this family by."""
        return f"lora_{self.variant}"

    @cached_property
    def block_sizes(self) -> dict[str, int]:
        dr = self.dim * self.rank
        names = {"vanilla": ("BQ", "AQ", "BV", "AV"), "shared": ("B", "A")}.get(self.variant, ("U", "V"))
        return {"c": 1, **{name: dr for name in names}}

    @property
    def gate_size(self) -> int:
        """Entries of an atom that only enter the gate (held at zero for the softmax reference atom): c."""
        return 1

    @cached_property
    def unused_mask(self) -> torch.Tensor:
        return torch.zeros(self.num_atoms, self.params_per_atom, dtype=torch.bool)

    tempered = False
    scaled = False
    vector_output = True

    def with_atoms(self, num_atoms: int) -> LoRAMoE:
        return LoRAMoE(self.variant, self.dim, num_atoms, self.rank, self.frozen, self.gate)

    # --- parameters ---------------------------------------------------------------------------------
    def _factor(self, theta: torch.Tensor, name: str, tall: bool) -> torch.Tensor:
        """A factor block as matrices (..., N, d, r) if tall else (..., N, r, d)."""
        shape = (self.dim, self.rank) if tall else (self.rank, self.dim)
        return theta[..., self.block_slices[name]].reshape(*theta.shape[:-1], *shape)

    def products(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z_Q, Z_V), each (..., N, d, d)."""
        if self.variant == "vanilla":
            zq = self._factor(theta, "BQ", True) @ self._factor(theta, "AQ", False)
            return zq, self._factor(theta, "BV", True) @ self._factor(theta, "AV", False)
        if self.variant == "shared":
            z = self._factor(theta, "B", True) @ self._factor(theta, "A", False)
        else:
            squash = _SQUASH[self.variant]
            z = squash(self._factor(theta, "U", True)) @ squash(self._factor(theta, "V", False))
        return z, z

    def blocks(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stored blocks (..., N, k) and the products ZQ, ZV (and Z when shared) flattened to (..., N, d*d)."""
        out = {name: theta[..., s] for name, s in self.block_slices.items()}
        zq, zv = self.products(theta)
        out |= {"ZQ": zq.flatten(-2), "ZV": zv.flatten(-2)}
        if self.variant != "vanilla":
            out["Z"] = out["ZQ"]
        return out

    def pack(self, blocks: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([blocks[name].flatten(-2 if blocks[name].dim() > 2 else -1) for name in self.block_sizes], -1)

    # --- forward ------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (x,)

    def predict(self, theta: torch.Tensor, features: tuple[torch.Tensor]) -> torch.Tensor:
        """f_G(X) (R, n, d) for parameters (R, N, P) and inputs (R, n, d)."""
        (x,) = features
        m_q, m_k, m_v = self.frozen.to(x)
        zq, zv = self.products(theta)  # (R, N, d, d)
        query = (m_q + zq) @ m_k  # (R, N, d, d)
        scores = torch.einsum("rni,rjik,rnk->rnj", x, query, x) + theta[..., None, :, 0]  # (R, n, N)
        values = torch.einsum("rjab,rnb->rnja", m_v + zv, x)  # (R, n, N, d)
        return (torch.softmax(scores, dim=-1)[..., None] * values).sum(-2)

    def jacobian(
        self, theta: torch.Tensor, features: tuple[torch.Tensor], out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f_G(X) (R, n, d) and its Jacobian (R, n, d, N, P), analytically (written into ``out`` if given).

        With w_j = g_j (v_j - f) = d f / d s_j and k = M_K X: d f / d c_j = w_j, d f / d Z_Q,j[a, b] = w_j X_a k_b
        and d f_o / d Z_V,j[a, b] = g_j [o = a] X_b; the factors follow by the product rule (and sigmoid' or
        tanh' for the non-linear reparameterisation).
        """
        (x,) = features
        R, n, d = x.shape
        m_q, m_k, m_v = self.frozen.to(x)
        zq, zv = self.products(theta)
        k = x @ m_k.T  # (R, n, d): M_K X
        scores = torch.einsum("rni,rjik,rnk->rnj", x, m_q + zq, k) + theta[..., None, :, 0]  # (R, n, N)
        values = torch.einsum("rjab,rnb->rnja", m_v + zv, x)  # (R, n, N, d)
        g = torch.softmax(scores, dim=-1)
        f = (g[..., None] * values).sum(-2)
        w = (g[..., None] * (values - f[..., None, :])).transpose(-1, -2)  # (R, n, d_out, N)
        r = self.rank
        # Every block is written straight into its columns of one (R, n, o, N, P) tensor: the Jacobian is the
        # largest array of the fit, and assembling it from per-block products would copy it once more.
        jac = x.new_empty(R, n, d, self.num_atoms, self.params_per_atom) if out is None else out
        jac[..., 0] = w  # c

        def columns(name, tall):  # the block's columns as (R, n, o, N, d, r) or (R, n, o, N, r, d)
            return jac[..., self.block_slices[name]].unflatten(-1, (d, r) if tall else (r, d))

        def query_terms(b, a, out_b, out_a):  # d f / d B, d f / d A through Z_Q = B A
            a_k = torch.einsum("rjtb,rnb->rnjt", a, k)  # (R, n, N, r)
            b_x = torch.einsum("rjat,rna->rnjt", b, x)
            torch.mul((w[..., None] * x[:, :, None, None, :])[..., None], a_k[:, :, None, :, None, :], out=out_b)
            torch.mul((w[..., None] * b_x[:, :, None])[..., None], k[:, :, None, None, None, :], out=out_a)

        def value_terms(b, a, out_b, out_a, accumulate):  # d f_o / d Z_V[a, b] = g [o = a] X_b, through Z_V = B A
            a_x = torch.einsum("rjtb,rnb->rnjt", a, x)  # (R, n, N, r)
            eye = torch.eye(d, dtype=x.dtype, device=x.device)[:, None, :, None]  # (o, 1, a, 1)
            g_b = g[:, :, None, :, None] * b.transpose(-1, -2)[:, None].movedim(-1, 2)  # (R, n, o, N, r): g B[o, t]
            if accumulate:
                out_b.add_(eye * (g[..., None] * a_x)[:, :, None, :, None, :])
                out_a.add_(g_b[..., None] * x[:, :, None, None, None, :])
            else:
                torch.mul(eye, (g[..., None] * a_x)[:, :, None, :, None, :], out=out_b)
                torch.mul(g_b[..., None], x[:, :, None, None, None, :], out=out_a)

        def factors(name, tall):
            return self._factor(theta, name, tall)

        if self.variant == "vanilla":
            query_terms(factors("BQ", True), factors("AQ", False), columns("BQ", True), columns("AQ", False))
            value_terms(factors("BV", True), factors("AV", False), columns("BV", True), columns("AV", False), False)
        else:
            names = ("B", "A") if self.variant == "shared" else ("U", "V")
            out_b, out_a = columns(names[0], True), columns(names[1], False)
            b, a = factors(names[0], True), factors(names[1], False)
            if self.variant != "shared":
                b, a = _SQUASH[self.variant](b), _SQUASH[self.variant](a)
            query_terms(b, a, out_b, out_a)
            value_terms(b, a, out_b, out_a, True)
            if self.variant != "shared":  # chain rule through the squashing function
                slope = {"shared_sigmoid": lambda t: t * (1 - t), "shared_tanh": lambda t: 1 - t**2}[self.variant]
                out_b.mul_(slope(b)[:, None, None]), out_a.mul_(slope(a)[:, None, None])
        return f, jac


def frozen_matrices(dim: int, seed: int, identity_key: bool = True, *keys: int) -> torch.Tensor:
    """(3, d, d): M_Q, M_K, M_V with entries N(0, 1/4), drawn once; M_K = I as in RepLoRA's proofs if asked.

    ``keys`` pick another stream (the heads of a multi-head model, HyRA's P_h^0, each have their own)."""
    generator = make_generator(seed, "frozen", *keys)
    m = torch.randn(3, dim, dim, generator=generator, dtype=torch.float64) * 0.5
    if identity_key:
        m[1] = torch.eye(dim, dtype=torch.float64)
    return m


def sample_lora_truth(
    model: LoRAMoE,
    *,
    seed: int,
    factor_std: float,
    constant: float = 0.5,
    min_separation: float = 0.5,
    stream: tuple[int | str, ...] = ("lora-truth",),
) -> torch.Tensor:
    """True atoms (N*, P) (spec Sec. 6.4): factors i.i.d. N(0, factor_std^2), c* = constant for every atom but
    the last, the softmax reference (c* = 0); redrawn until the products, (Z_Q, Z_V) or the shared Z, are
    min_separation apart. ``stream``: the keys of the random stream (each head of a multi-head model has its own)."""
    generator = make_generator(seed, *stream)
    for _ in range(1000):
        theta = torch.randn(model.num_atoms, model.params_per_atom, generator=generator, dtype=torch.float64)
        theta *= factor_std
        theta[:, 0] = constant
        theta[-1, 0] = 0.0
        blocks = model.blocks(theta)
        location = torch.cat([blocks["ZQ"], blocks["ZV"]], dim=-1) if model.variant == "vanilla" else blocks["Z"]
        distances = torch.cdist(location, location).fill_diagonal_(math.inf)
        if distances.min() >= min_separation:
            return theta
    raise RuntimeError(f"no LoRA ground truth with products {min_separation} apart in 1000 draws")
