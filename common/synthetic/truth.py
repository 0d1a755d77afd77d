"""Ground truths, data and near-truth initialisations of the synthetic rate experiments.

Inputs, noise and truth draws follow the sigmoid paper's App. E (spec Sec. 4.6); the gauges and the
initialisation follow spec Sec. 2.3 and 2.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from common.synthetic.models import MixtureOfExperts, gate_mass, gate_mass_inverse


def make_generator(seed: int, *keys: int | str) -> torch.Generator:
    """A torch generator whose stream is fixed by (seed, *keys), independent across different keys.

    A string key enters by its first four bytes only ("gbar" and "gbar-init" are the same key): kept so that
    stored results reproduce; number streams of one kind with integer keys, e.g. ("truth", g).
    """
    words = [seed] + [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") % 2**32 for k in keys]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def softmax_reference_gauge(model: MixtureOfExperts, theta: torch.Tensor, reference: int = -1) -> torch.Tensor:
    """Subtract the reference atom's gating parameters from every atom (spec Sec. 2.3-1).

    Softmax gating is invariant to adding the same (A, b, c) to every atom; after this gauge the reference
    atom has zero gating parameters, as QG App. E and SM (A.3) assume. f_G is unchanged.
    """
    theta = theta.clone()
    gate = slice(0, model.gate_size)
    theta[..., gate] -= theta[..., reference : (reference + 1) or None, gate]
    return theta


def cell_distances(
    model: MixtureOfExperts, theta: torch.Tensor, other: torch.Tensor, cell_blocks: Sequence[str]
) -> torch.Tensor:
    """Euclidean distances (..., N, M) between atoms of theta (..., N, P) and other (..., M, P) on cell blocks."""
    a, b = model.blocks(theta), model.blocks(other)
    u = torch.cat([a[name] for name in cell_blocks], dim=-1)
    v = torch.cat([b[name] for name in cell_blocks], dim=-1)
    return torch.cdist(u, v)


def sample_ground_truth(
    model: MixtureOfExperts,
    *,
    seed: int,
    gate_variance: float,
    expert_variance: float,
    zero_gate_atoms: Sequence[int] = (),
    variances: Mapping[str, float] | None = None,
    temperature: float = 1.0,
    min_separation: float = 0.5,
    min_active_fraction: float = 0.0,
    max_tries: int = 1000,
    stream: tuple[int | str, ...] = ("truth",),
) -> torch.Tensor:
    """Draw true parameters (N*, P) as SG App. E: every entry i.i.d. N(0, variance), drawn once.

    Gating parameters (A, b, c) have ``gate_variance``, expert parameters (alpha, beta) ``expert_variance``,
    unless ``variances`` names a block's own variance; the scale of normalised experts is +-U[0.5, 1.5]
    (spec Sec. 5.1), and tempered scores get the shared ``temperature``. Atoms in ``zero_gate_atoms`` get
    (A, b, c) = 0 (the sparse regime). A is symmetrised and softmax truths are re-expressed with the last
    atom as zero reference; neither changes f_G*. Draws are repeated until all atoms are at least
    ``min_separation`` apart in the cell metric (spec Sec. 2.2) and every expert's pre-activation
    alpha^T x + beta is positive on at least ``min_active_fraction`` of the inputs (a ReLU expert that is
    almost never active is barely identifiable: its Fisher information is tiny). The rule looks at the draw
    only, not at the expert type, so ReLU and linear curves share their truth. ``stream`` are the keys of
    the random stream (the groups of a two-level model draw from their own: ("truth", g)).
    """
    generator = make_generator(seed, *stream)
    probe = sample_inputs(4096, model.dim, make_generator(seed, "active"))
    d, num = model.dim, model.num_atoms
    for _ in range(max_tries):

        def draw(name, *shape, variance):
            variance = (variances or {}).get(name, variance)
            return torch.randn(*shape, generator=generator, dtype=torch.float64) * math.sqrt(variance)

        # every block is drawn, in this order, whether the model has it or not: the draws stay the same
        blocks = {
            "A": draw("A", num, d, d, variance=gate_variance),
            "b": draw("b", num, d, variance=gate_variance),
            "c": draw("c", num, 1, variance=gate_variance),
            "alpha": draw("alpha", num, d, variance=expert_variance),
            "beta": draw("beta", num, 1, variance=expert_variance),
        }
        if model.scaled:
            sign = torch.randint(0, 2, (num, 1), generator=generator).double() * 2 - 1
            blocks["scale"] = sign * (0.5 + torch.rand(num, 1, generator=generator, dtype=torch.float64))
        if model.tempered:
            blocks["rho"] = torch.full((num, 1), math.log(temperature), dtype=torch.float64)
        for name in ("A", "b", "c"):
            blocks[name][list(zero_gate_atoms)] = 0.0
        theta = model.pack(blocks)
        if model.gate == "softmax":
            theta = softmax_reference_gauge(model, theta)
        distances = cell_distances(model, theta, theta, cell_blocks(model))
        distances.fill_diagonal_(math.inf)
        active = ((probe @ blocks["alpha"].T + blocks["beta"].T) > 0).double().mean(0)
        if distances.min() >= min_separation and active.min() >= min_active_fraction:
            return theta
    raise RuntimeError(
        f"no ground truth with min_separation={min_separation} and min_active_fraction={min_active_fraction} "
        f"in {max_tries} draws"
    )


def cell_blocks(model: MixtureOfExperts) -> tuple[str, ...]:
    """The atom location used for Voronoi cells: (A, b, eta), (A, eta) for the monomial score, (b, eta) linear."""
    return tuple(name for name in ("A", "b", "eta") if name == "eta" or name in model.block_sizes)


def sample_inputs(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """n inputs (n, d) from Uniform([-1, 1]^d), the input law of every experiment (SG Eq. (81))."""
    return torch.rand(n, dim, generator=generator, dtype=torch.float64) * 2 - 1


def sample_data(
    model: MixtureOfExperts,
    theta_true: torch.Tensor,
    n: int,
    noise_variance: float,
    generators: Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One data set per generator: X ~ Uniform([-1, 1]^d) (SG Eq. (81)), Y = f_G*(X) + N(0, nu) (Eq. (82)).

    Returns x (R, n, d) and y (R, n), or (R, n, q) with independent noise per output for vector outputs.
    """
    x = torch.stack([sample_inputs(n, model.dim, g) for g in generators])
    f = model.predict(theta_true.expand(len(generators), -1, -1), model.features(x))  # (R, n[, q])
    noise = torch.stack([torch.randn(f.shape[1:], generator=g, dtype=torch.float64) for g in generators])
    return x, f + math.sqrt(noise_variance) * noise


def initial_atom_sources(num_true: int, num_atoms: int, over_specified_atom: int) -> list[int]:
    """Which true atom each fitted atom starts at: one per true atom, extras copy ``over_specified_atom``."""
    return list(range(num_true)) + [over_specified_atom] * (num_atoms - num_true)


def fitted_mask(model: MixtureOfExperts, num_atoms: int, fixed_gate_atom: int | None = None) -> torch.Tensor:
    """The mask (N, P) of fitted parameters: all but ``fixed_gate_atom``'s gating parameters (spec Sec. 2.3-1)
    and entries the model never uses. Models with their own gauges (``GroupedMixture``) say which are fixed."""
    if hasattr(model, "fixed_mask"):
        return ~model.with_atoms(num_atoms).fixed_mask
    free = ~model.with_atoms(num_atoms).unused_mask
    if fixed_gate_atom is not None:
        free[fixed_gate_atom, : model.gate_size] = False
    return free


def initialise_near_truth(
    model: MixtureOfExperts,
    theta_true: torch.Tensor,
    *,
    num_atoms: int,
    over_specified_atom: int,
    scale: float,
    generators: Sequence[torch.Generator],
    fixed_gate_atom: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial parameters (R, N, P) near the truth, and the mask (N, P) of parameters that are fitted.

    Spec Sec. 2.5: fitted atom i starts at its source true atom plus N(0, s^2) noise per entry, with
    s = ``scale`` x RMS of that true block (floor 0.01). The m fitted atoms sharing a source split its mass
    equally (c = inverse-mass(mass*/m)). ``fixed_gate_atom``: that fitted atom's gating parameters stay at
    their true value (softmax reference gauge, option (a) of spec Sec. 2.3-1) and are never noised.
    """
    num_true = theta_true.shape[0]
    if hasattr(model, "initial_sources"):  # two-level models: extras copy an atom of their own group
        sources = model.with_atoms(num_atoms).initial_sources(num_true, over_specified_atom)
    else:
        sources = initial_atom_sources(num_true, num_atoms, over_specified_atom)
    counts = torch.bincount(torch.tensor(sources), minlength=num_true).to(theta_true)
    start = theta_true[sources].clone()  # (N, P)
    c = model.block_slices["c"]
    tau = model.blocks(theta_true)["tau"][:1] if model.tempered else 1.0  # mass exp(c / tau) when tempered
    start[:, c] = tau * gate_mass_inverse(model.gate, gate_mass(model.gate, start[:, c] / tau) / counts[sources, None])
    true_blocks = model.blocks(theta_true)
    stds = torch.cat(
        [
            (scale * true_blocks[name][sources].pow(2).mean(-1, keepdim=True).sqrt()).clamp_min(0.01).expand(-1, size)
            for name, size in model.block_sizes.items()
        ],
        dim=-1,
    )  # (N, P)
    free = fitted_mask(model, num_atoms, fixed_gate_atom)
    noise = torch.stack([torch.randn(start.shape, generator=g, dtype=start.dtype) for g in generators])
    return start + noise * stds * free, free
