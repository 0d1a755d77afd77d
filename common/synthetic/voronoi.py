"""Voronoi losses between a fitted and a true mixing measure: one generic implementation, one config per paper.

Every paper of this repository measures parameter estimation with the same construction (spec Sec. 2.2):

1. cells: each fitted atom i joins the cell V_j of its nearest true atom j (Euclidean norm of the
   concatenated ``cell_blocks``; ties go to the smallest j), so |V_j| = 0, 1 or more;
2. a mass term per cell, | sum_{i in V_j} mass_i - mass*_j |, with mass = exp(c) for softmax gating and
   sigmoid(c) for sigmoid gating (an empty cell contributes its whole true mass);
3. per-atom terms  weight_i * sum_blocks ||block_i - block*_j||^{exponent}, where the exponent depends on
   the size of the cell (exactly specified |V_j| = 1 vs over-specified |V_j| > 1) and the weight is the
   fitted mass (softmax losses) or 1 (sigmoid losses).

A paper's named loss (QG Eq. (17), (25), (27); SG L1, L2,r, L3; SM Eq. (6), (10), (16), (18); RepLoRA D1,r,
D2, D3) is a ``VoronoiLoss`` value in ``LOSSES``, and a two-level one (SM Eq. (25), (29); HyRA Eq. (7), D2)
a ``HierarchicalVoronoiLoss`` around one; ``losses_for`` lists those of a gate and model family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from common.synthetic.models import gate_mass

Exponent = float | Callable[[int], float]  # constant, or a function of the cell size m >= 2

# rbar(m) of QG Sec. 3: the smallest r for which the polynomial system of the m atoms of one cell has only
# the trivial solution; known values only (spec Sec. 3.3).
RBAR = {2: 4, 3: 6}


def rbar(m: int) -> int:
    if m not in RBAR:
        raise ValueError(f"rbar({m}) is unknown (known for cell sizes {sorted(RBAR)}): over-specify by at most 2")
    return RBAR[m]


@dataclass(frozen=True)
class VoronoiLoss:
    """A configured Voronoi loss; call it on fitted and true atoms."""

    name: str
    cell_blocks: tuple[str, ...]  # blocks that locate an atom for the cell assignment
    exact: Mapping[str, float]  # block -> exponent in cells with exactly one fitted atom
    over: Mapping[str, Exponent]  # block -> exponent in cells with more than one fitted atom
    mass: str = "exp"  # gate transform of c giving the mass: "exp" (softmax) | "sigmoid"
    weighted: bool = True  # weight each atom's terms by its fitted mass
    mass_cells: str = "all"  # cells with a mass term: "all" | "not_exact" (|V_j| != 1) | "none"
    reference: str = "truth"  # what the loss compares with: "truth" (G*) or "best_approximation" (G-bar)
    scores: tuple[str, ...] = ("quadratic_polynomial",)  # the model families (scores) the loss is defined on
    mass_block: str = "c"  # the block whose gate transform is the mass (c / tau for tempered scores)
    description: str = field(default="", compare=False)

    def __call__(self, fitted: Mapping[str, torch.Tensor], true: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Loss (R,) of fitted blocks (R, N, k) against true blocks (N*, k) or (R, N*, k)."""
        return self.terms(fitted, true)["total"]

    def terms(self, fitted: Mapping[str, torch.Tensor], true: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss split into its parts: ``mass`` (R,), ``atoms`` (R,), ``total`` (R,), ``cell_sizes`` (R, N*),
        and ``per_cell`` (R, N*), each true atom's share of the total (its mass term and its cell's atom terms)."""
        true = {k: v.expand(fitted[k].shape[0], *v.shape[-2:]) for k, v in true.items()}
        u = torch.cat([fitted[b] for b in self.cell_blocks], dim=-1)  # (R, N, k)
        v = torch.cat([true[b] for b in self.cell_blocks], dim=-1)  # (R, N*, k)
        cell = torch.cdist(u, v).argmin(-1)  # (R, N): first minimum = smallest j on ties
        num_true = v.shape[1]
        members = torch.nn.functional.one_hot(cell, num_true).to(u.dtype)  # (R, N, N*)
        sizes = members.sum(1)  # (R, N*)
        atom_size = sizes.gather(1, cell).long()  # (R, N) size of each atom's cell

        gate = "softmax" if self.mass == "exp" else "sigmoid"
        mass = gate_mass(gate, fitted[self.mass_block].squeeze(-1))  # (R, N)
        true_mass = gate_mass(gate, true[self.mass_block].squeeze(-1))
        mass_gap = (torch.einsum("rn,rnj->rj", mass, members) - true_mass).abs()  # (R, N*)
        if self.mass_cells == "not_exact":
            mass_gap = mass_gap * (sizes != 1)
        elif self.mass_cells == "none":
            mass_gap = torch.zeros_like(mass_gap)

        max_size = members.shape[1]
        occurring = set(atom_size.unique().tolist())
        atom_terms = torch.zeros_like(mass)
        for block in dict.fromkeys([*self.exact, *self.over]):
            matched = true[block].gather(1, cell[..., None].expand(-1, -1, true[block].shape[-1]))
            distance = (fitted[block] - matched).norm(dim=-1)  # (R, N)
            exponents = [self._exponent(block, m) if m in occurring else float("nan") for m in range(max_size + 1)]
            table = torch.tensor(exponents, dtype=u.dtype)
            exponent = table[atom_size]  # nan where the block has no term for that cell size
            atom_terms += torch.where(exponent.isnan(), 0.0, distance.pow(exponent.nan_to_num(1.0)))
        weights = mass if self.weighted else torch.ones_like(mass)
        per_cell = mass_gap + torch.einsum("rn,rnj->rj", weights * atom_terms, members)  # (R, N*)
        return {
            "mass": mass_gap.sum(-1),
            "atoms": (weights * atom_terms).sum(-1),
            "total": per_cell.sum(-1),
            "cell_sizes": sizes,
            "per_cell": per_cell,
        }

    def _exponent(self, block: str, m: int) -> float:
        """The exponent of ``block`` in a cell of m fitted atoms (nan: the block has no term there).

        Raises ValueError where the exponent is a function of m that is unknown for this m (QG's rbar(m) for
        m >= 4): leaving the block out would silently understate the loss.
        """
        if m <= 1:
            return float(self.exact.get(block, float("nan")))
        value = self.over.get(block, float("nan"))
        if not callable(value):
            return float(value)
        try:
            return float(value(m))
        except ValueError as error:
            raise ValueError(
                f"Voronoi loss {self.name!r}: a cell holds {m} fitted atoms, and the exponent of its {block!r} term "
                f"is unknown for that cell size ({error}); fit at most N* + 2 atoms or use a loss with fixed "
                "exponents (e.g. softmax_l2_r1)"
            ) from error


def _same(blocks: tuple[str, ...], exponent: float) -> dict[str, float]:
    return {b: exponent for b in blocks}


def softmax_l2(r: float) -> VoronoiLoss:
    """QG Eq. (27), L2,r: the same exponent r for every block and every cell (linear experts, any r >= 1)."""
    blocks = ("A", "b", "alpha", "beta")
    return VoronoiLoss(
        f"softmax_l2_r{r:g}",
        cell_blocks=("A", "b", "eta"),
        exact=_same(blocks, r),
        over=_same(blocks, r),
        description=f"QG Eq. (27) with r = {r:g}",
    )


def softmax_mono_l2(r: float) -> VoronoiLoss:
    """The monomial-gate analogue of QG Eq. (27) (QG App. B: "similar"): L2,r without the b term."""
    blocks = ("A", "alpha", "beta")
    return VoronoiLoss(
        f"softmax_mono_l2_r{r:g}",
        cell_blocks=("A", "eta"),
        exact=_same(blocks, r),
        over=_same(blocks, r),
        scores=("quadratic_monomial",),
        description=f"QG Eq. (27) without b, monomial gate, r = {r:g}",
    )


def softmax_linear_l2(r: float) -> VoronoiLoss:
    """SM Eq. (10), L2,r: linear score (omega = block b), linear experts, exponent r everywhere."""
    blocks = ("b", "alpha", "beta")
    return VoronoiLoss(
        f"softmax_linear_l2_r{r:g}",
        cell_blocks=("b", "eta"),
        exact=_same(blocks, r),
        over=_same(blocks, r),
        scores=("linear",),
        description=f"SM Eq. (10), r = {r:g}",
    )


def softmax_temperature_l3(r: float) -> VoronoiLoss:
    """SM Eq. (16), L3,r: dense-to-sparse gate with a linear router; masses e^{beta / tau}, |d tau|^r terms."""
    blocks = ("b", "tau", "eta")
    return VoronoiLoss(
        f"softmax_temperature_l3_r{r:g}",
        cell_blocks=("b", "eta"),
        exact=_same(blocks, r),
        over=_same(blocks, r),
        scores=("linear_temperature",),
        mass_block="c_over_tau",
        description=f"SM Eq. (16), r = {r:g}",
    )


def lora_d1(r: float, product: bool) -> VoronoiLoss:
    """RepLoRA D1,r on the raw factors (B_Q, A_Q, B_V, A_V), or on the products (Z_Q, Z_V) (spec Sec. 6.1)."""
    blocks = ("ZQ", "ZV") if product else ("BQ", "AQ", "BV", "AV")
    return VoronoiLoss(
        f"lora_vanilla{'_product' if product else ''}_d1_r{r:g}",
        cell_blocks=blocks,
        exact=_same(blocks, r),
        over=_same(blocks, r),
        scores=("lora_vanilla",),
        description=f"RepLoRA D1,r, r = {r:g}, on the {'products' if product else 'raw factors'}",
    )


def sigmoid_l2(r: float) -> VoronoiLoss:
    """SG Eq. (11), L2,r (sparse regime, polynomial experts): exponent r everywhere, mass terms on O only."""
    return VoronoiLoss(
        f"sigmoid_l2_r{r:g}",
        cell_blocks=("A", "b", "eta"),
        exact=_same(("A", "b", "c", "alpha", "beta"), r),
        over=_same(("A", "b", "alpha", "beta"), r),
        mass="sigmoid",
        weighted=False,
        mass_cells="not_exact",
        description=f"SG Eq. (11), r = {r:g}",
    )


LOSSES: dict[str, VoronoiLoss | HierarchicalVoronoiLoss] = {
    loss.name: loss
    for loss in [
        VoronoiLoss(
            "softmax_l1",
            cell_blocks=("A", "b", "eta"),
            exact=_same(("A", "b", "eta"), 1),
            over={"A": lambda m: rbar(m) / 2, "b": rbar, "eta": 2},
            description="QG Eq. (17): quadratic polynomial softmax gate, strongly identifiable experts",
        ),
        VoronoiLoss(
            "softmax_l3",
            cell_blocks=("A", "eta"),
            exact=_same(("A", "eta"), 1),
            over=_same(("A", "eta"), 2),
            scores=("quadratic_monomial",),
            description="QG Eq. (25): quadratic monomial softmax gate, strongly identifiable experts",
        ),
        softmax_l2(1),
        softmax_l2(2),
        softmax_mono_l2(1),
        softmax_mono_l2(2),
        VoronoiLoss(
            "softmax_linear_l1",
            cell_blocks=("b", "eta"),
            exact=_same(("b", "eta"), 1),
            over=_same(("b", "eta"), 2),
            scores=("linear",),
            description="SM Eq. (6): linear softmax gate (omega = block b), strongly identifiable experts",
        ),
        softmax_linear_l2(1),
        softmax_linear_l2(2),
        softmax_temperature_l3(1),
        softmax_temperature_l3(2),
        VoronoiLoss(
            "softmax_temperature_scale_free_l1",
            cell_blocks=("b_over_tau", "eta"),
            exact=_same(("b_over_tau", "eta"), 1),
            over=_same(("b_over_tau", "eta"), 2),
            scores=("linear_temperature",),
            mass_block="c_over_tau",
            description="SM Eq. (6) on the scale-free gate (omega / tau, beta / tau): spec Sec. 5.2 (e) diagnostic",
        ),
        VoronoiLoss(
            "softmax_router_l4",
            cell_blocks=("b", "eta"),
            exact=_same(("b", "tau", "eta"), 1),
            over=_same(("b", "tau", "eta"), 2),
            scores=("tanh_temperature",),
            mass_block="c_over_tau",
            description="SM Eq. (18), L4: dense-to-sparse gate with a tanh router, strongly identifiable experts",
        ),
        lora_d1(1, product=False),
        lora_d1(2, product=False),
        lora_d1(1, product=True),
        lora_d1(2, product=True),
        VoronoiLoss(
            "lora_d2",
            cell_blocks=("Z",),
            exact={"Z": 1},
            over={"Z": 2},
            scores=("lora_shared", "lora_shared_sigmoid", "lora_shared_tanh"),
            description="RepLoRA D2 on the shared product Z (for the non-linear one: the D2 formula on Z)",
        ),
        VoronoiLoss(
            "lora_d3",
            cell_blocks=("U", "V"),
            exact=_same(("U", "V"), 1),
            over=_same(("U", "V"), 2),
            scores=("lora_shared_sigmoid", "lora_shared_tanh"),
            description="RepLoRA D3 on the raw factors (U, V) of the non-linear reparameterisation",
        ),
        VoronoiLoss(
            "sigmoid_l1",
            cell_blocks=("A", "b", "eta"),
            exact=_same(("A", "b", "c", "eta"), 1),
            over=_same(("A", "b", "eta"), 2),
            mass="sigmoid",
            weighted=False,
            mass_cells="not_exact",
            description="SG Thm 1, L1: sparse regime, strongly identifiable experts",
        ),
        sigmoid_l2(1),
        sigmoid_l2(2),
        VoronoiLoss(
            "sigmoid_l3",
            cell_blocks=("A", "b", "eta"),
            exact=_same(("A", "b", "c", "eta"), 1),
            over=_same(("A", "b", "c", "eta"), 1),
            mass="sigmoid",
            weighted=False,
            mass_cells="none",
            reference="best_approximation",
            description="SG Thm 3, L3: dense regime, against the best N-atom approximation G-bar",
        ),
    ]
}


@dataclass(frozen=True)
class HierarchicalVoronoiLoss:
    """A two-level Voronoi loss (SM Eq. (25), (29); HyRA Eq. (7)): groups first, then atoms inside groups.

    Every atom carries the index of its group in the ``group`` block, and its group's parameters (the same on
    all atoms of a group). The fitted and the true measure have the same number of groups. First level: each
    fitted group joins the true group nearest on ``outer_cell_blocks``; per true group, a mass term
    | sum of the fitted group masses - true mass | and, per fitted group, mass * ||d outer||^outer_exponent.
    Second level: per fitted group, its mass times ``inner`` between its atoms and the matched true group's
    (no second level when ``inner`` is None: the group-level error alone, e.g. |pi-hat_h - pi*_h|).
    """

    name: str
    outer_cell_blocks: tuple[str, ...]  # group location (empty: groups matched by index)
    outer_mass_block: str  # the group's mass parameter
    inner: VoronoiLoss | None
    outer_exponent: float = 1.0
    outer_mass: str = "exp"  # "exp": mass exp(block); "identity": the block is the mass (constant head weights)
    scores: tuple[str, ...] = ()
    mass: str = "exp"  # the gate of the inner level, for ``losses_for``
    reference: str = "truth"
    description: str = field(default="", compare=False)

    def __call__(self, fitted: Mapping[str, torch.Tensor], true: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.terms(fitted, true)["total"]

    def _group_mass(self, blocks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        value = blocks[self.outer_mass_block][..., 0]
        return torch.exp(value) if self.outer_mass == "exp" else value

    def terms(self, fitted: Mapping[str, torch.Tensor], true: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``total`` (R,), ``mass`` (R,) (first level), ``cell_sizes`` and ``per_cell`` (R, N*) by true atom."""
        R = fitted[self.outer_mass_block].shape[0]
        true = {k: v.expand(R, *v.shape[-2:]) for k, v in true.items()}
        total, outer_mass = torch.zeros(R, dtype=torch.float64), torch.zeros(R, dtype=torch.float64)
        sizes = torch.zeros(R, true["group"].shape[1], dtype=torch.float64)
        per_cell = torch.zeros_like(sizes)
        for r in range(R):
            fit_groups, true_groups = fitted["group"][r, :, 0].long(), true["group"][r, :, 0].long()
            first_fit = [int((fit_groups == g).nonzero()[0]) for g in fit_groups.unique()]
            first_true = [int((true_groups == g).nonzero()[0]) for g in true_groups.unique()]
            if self.outer_cell_blocks:
                u = torch.cat([fitted[b][r, first_fit] for b in self.outer_cell_blocks], -1)
                v = torch.cat([true[b][r, first_true] for b in self.outer_cell_blocks], -1)
                match = torch.cdist(u, v).argmin(-1)  # fitted group -> true group
            else:
                match = torch.arange(len(first_fit))
            masses = self._group_mass({k: v[r, first_fit] for k, v in fitted.items()})
            true_masses = self._group_mass({k: v[r, first_true] for k, v in true.items()})
            gaps = (torch.zeros_like(true_masses).index_add(0, match, masses) - true_masses).abs()
            outer_mass[r] = gaps.sum()
            group_terms = gaps.clone()  # per true group: its mass gap, its fitted groups' location and inner terms
            for i, (g, j) in enumerate(zip(fit_groups.unique(), match, strict=True)):
                atoms, true_atoms = fit_groups == g, true_groups == true_groups.unique()[j]
                if self.outer_cell_blocks:
                    distance = sum(
                        (fitted[b][r, first_fit[i]] - true[b][r, first_true[j]]).pow(2).sum()
                        for b in self.outer_cell_blocks
                    )
                    group_terms[j] += masses[i] * distance.sqrt() ** self.outer_exponent
                if self.inner is None:
                    continue
                inner = self.inner.terms(
                    {k: v[r : r + 1, atoms] for k, v in fitted.items()}, {k: v[r, true_atoms] for k, v in true.items()}
                )
                group_terms[j] += masses[i] * inner["total"][0]
                sizes[r, true_atoms] += inner["cell_sizes"][0]
                per_cell[r, true_atoms] += masses[i] * inner["per_cell"][0]
            for j, g in enumerate(true_groups.unique()):  # spread each group's own terms over its true atoms
                true_atoms = true_groups == g
                own = group_terms[j] - per_cell[r, true_atoms].sum()
                per_cell[r, true_atoms] += own / true_atoms.sum()
            total[r] = group_terms.sum()
        return {"total": total, "mass": outer_mass, "cell_sizes": sizes, "per_cell": per_cell}


def hierarchical_softmax(r: float | None) -> HierarchicalVoronoiLoss:
    """SM Eq. (25), L5 (r None: strongly identifiable experts) or Eq. (29), L6,r (linear experts).

    Groups are matched on their gate omega (block outer_b), masses exp(beta) (block outer_c); inside a matched
    group the flat loss of the linear-score family: SM Eq. (6) for L5, Eq. (10) with exponent r for L6,r (whose
    first-level omega term also carries r, spec Sec. 5.4).
    """
    inner = LOSSES["softmax_linear_l1"] if r is None else softmax_linear_l2(r)
    return HierarchicalVoronoiLoss(
        "hierarchical_l5" if r is None else f"hierarchical_l6_r{r:g}",
        outer_cell_blocks=("outer_b",),
        outer_mass_block="outer_c",
        inner=inner,
        outer_exponent=1.0 if r is None else r,
        scores=("hierarchical_linear",),
        description="SM Eq. (25), L5" if r is None else f"SM Eq. (29), L6,r with r = {r:g}",
    )


def multihead(name: str, inner: VoronoiLoss | None, scores: tuple[str, ...], description: str):
    """HyRA Eq. (7) and Thm 2's D2: heads matched by index (tau(h) = h, spec Sec. 7.1 (c)), |pi - pi*| per head,
    and inside each head pi times the flat LoRA loss ``inner`` (none: the head-weight error alone)."""
    return HierarchicalVoronoiLoss(
        name,
        outer_cell_blocks=(),
        outer_mass_block="pi",
        inner=inner,
        outer_mass="identity",
        scores=scores,
        description=description,
    )


_VANILLA, _SHARED = ("multihead_lora_vanilla",), ("multihead_lora_shared_sigmoid", "multihead_lora_shared_tanh")
LOSSES |= {
    loss.name: loss
    for loss in [
        hierarchical_softmax(None),
        hierarchical_softmax(1),
        hierarchical_softmax(2),
        HierarchicalVoronoiLoss(
            "hierarchical_outer",
            outer_cell_blocks=("outer_b",),
            outer_mass_block="outer_c",
            inner=None,
            scores=("hierarchical_linear",),
            description="The first-level terms of SM Eq. (25): group masses exp(beta) and gates omega",
        ),
        *(
            multihead(f"multihead_{loss.name}", loss, _VANILLA, f"HyRA Eq. (7) with {loss.description}")
            for loss in (lora_d1(r, product) for product in (False, True) for r in (1, 2))
        ),
        multihead("multihead_d2", LOSSES["lora_d2"], _SHARED, "HyRA Thm 2's D2 on the products Z_h,j"),
        multihead("multihead_d3", LOSSES["lora_d3"], _SHARED, "HyRA Thm 2's D2 on the factors (W_2 B, W_1 A)"),
        multihead("multihead_pi", None, _VANILLA + _SHARED, "The head-weight error sum_h |pi-hat_h - pi*_h|"),
    ]
}


def losses_for(gate: str, score: str) -> dict[str, VoronoiLoss]:
    """The named losses defined for a gate ("softmax" | "sigmoid") and a gating score."""
    mass = "exp" if gate == "softmax" else "sigmoid"
    return {name: loss for name, loss in LOSSES.items() if loss.mass == mass and score in loss.scores}
