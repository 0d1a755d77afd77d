"""The slow-rate theorems' own statement: a minimax check on the family of truths their proofs construct.

SG Thm 2 (sigmoid gate, polynomial experts, sparse regime) and QG Thm C.1 (softmax gate, linear experts) are
minimax lower bounds, inf over estimators of sup over true mixing measures of E[L2,r(G-hat_n, G)] >~ n^-1/2,
proved with truths that approach a singular configuration (SG App. B.3): one true atom j with a
constant gate split into two atoms on the same gate, with half of its mass each and expert biases beta*_j +- eps.
A fixed truth need not show the bound; this module measures it on that family.

For each eps in ``splits`` the truth G*_eps has N* + 1 atoms (eps = 0: the unsplit G* with N* atoms), and every
truth is fitted by the least-squares estimator with N = N* + 1 atoms at each n. The estimator must not know eps,
so every fit starts from the family's common centre, G* with atom j duplicated at half mass (the over-specified
start of spec Sec. 2.5), plus the usual perturbation: a start near each G*_eps would hand the fit the split
along directions the data cannot see. With linear experts those directions are exact: the pair contributes
gate * [(alpha^T x + beta + eps) + (alpha^T x + beta - eps)] / 2 = gate * E*_j(x) whatever eps, so the data have
the same law for every eps (the proof's alpha*_j = 0 is not needed). With ReLU experts the split moves the kinks
and the data see it. The envelope sup_eps mean L(G-hat_n, G*_eps) over n is the theorems' quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from common.config import ConfigError
from common.synthetic.models import MixtureOfExperts, gate_mass, gate_mass_inverse
from common.synthetic.rates import fit_rate
from common.synthetic.sweep import CurveConfig, SweepConfig, Synthetic, zero_gate_atoms


@dataclass
class SplitCurve(CurveConfig):
    """A curve of the family at one split eps (0: the unsplit truth G*)."""

    split: float = 0.0


def split_truth(model: MixtureOfExperts, theta: torch.Tensor, atom: int, split: float) -> torch.Tensor:
    """G*_eps (N* + 1, P) from G* (N*, P): atom ``atom`` becomes two atoms with its gate, half its mass each, and
    expert biases beta* + eps (in its place) and beta* - eps (appended last). SG App. B.3's construction."""
    c = model.block_slices["c"]
    beta = model.block_slices["beta"]
    half = theta[atom].clone()
    half[c] = gate_mass_inverse(model.gate, gate_mass(model.gate, theta[atom, c]) / 2)
    plus, minus = half.clone(), half.clone()
    plus[beta] += split
    minus[beta] -= split
    out = torch.cat([theta, minus[None]])
    out[atom] = plus
    return out


@dataclass
class MinimaxConfig(SweepConfig):
    """A family of truths G*_eps; a paper's subclass names the gate of its theorem in ``THEOREM``."""

    THEOREM: ClassVar[tuple[str, str] | None] = None  # (gate, theorem), e.g. ("sigmoid", "SG Thm 2")
    figure: str = "minimax"
    splits: list[float] = field(default_factory=lambda: [0.0, 0.03, 0.1, 0.3, 1.0])  # eps of the family

    def validate(self) -> None:
        if self.THEOREM is not None:
            gate, theorem = self.THEOREM
            for i, curve in enumerate(self.curves):
                if curve.gate != gate:
                    raise ConfigError.invalid(f"curves[{i}].gate", curve.gate, f"{gate} ({theorem})")
        if not self.splits or any(eps < 0 for eps in self.splits) or len(set(self.splits)) != len(self.splits):
            raise ConfigError.invalid("splits", self.splits, "distinct non-negative splits eps")
        if self.num_atoms != [self.num_true + 1]:
            raise ConfigError.invalid("num_atoms", self.num_atoms, f"[N* + 1] = [{self.num_true + 1}]")
        for i, curve in enumerate(self.curves):
            if curve.regime != "zero_reference":
                raise ConfigError.invalid(
                    f"curves[{i}].regime", curve.regime, "zero_reference (the split atom has a constant gate)"
                )
        super().validate()

    def split_atom(self, curve: CurveConfig) -> int:
        return zero_gate_atoms(self, curve)[-1]

    def true_model(self, curve: CurveConfig) -> MixtureOfExperts:
        base = super().true_model(curve)
        return base.with_atoms(self.num_true + 1) if getattr(curve, "split", 0.0) > 0 else base

    def draw_truth(self, curve: CurveConfig, model) -> torch.Tensor:
        base_model = model.with_atoms(self.num_true)
        theta = super().draw_truth(curve, base_model)
        split = getattr(curve, "split", 0.0)
        return split_truth(base_model, theta, self.split_atom(curve), split) if split > 0 else theta

    def start_centre(self, curve: CurveConfig, model, theta: torch.Tensor):
        base_model = model.with_atoms(self.num_true)
        return super().draw_truth(curve, base_model), self.split_atom(curve)

    def model_record(self, curve: CurveConfig) -> dict:
        return {"split": getattr(curve, "split", 0.0), "start": "family_centre"}

    def expanded(self) -> SweepConfig:
        """The sweep of the family: every curve at every split, as curves of one config."""
        curves = [
            SplitCurve(**{**vars(curve), "label": f"{curve.label}, eps={eps:g}"}, split=eps)
            for curve in self.curves
            for eps in self.splits
        ]
        return replace(self, curves=curves)


def envelope_rate(sample_sizes, values: np.ndarray, num_bootstrap: int = 2000, seed: int = 0):
    """The slope of log sup_eps mean_r loss on log n, with a bootstrap 95% CI (replicates resampled per (eps, n)).

    values (E, K, R): E splits, K sample sizes, R replicates. Returns (envelope (K,), argmax eps index (K,),
    slope, ci_low, ci_high).
    """
    values = np.asarray(values, dtype=float)
    E, K, R = values.shape
    envelope = values.mean(-1).max(0)
    log_n = np.log(np.asarray(sample_sizes, dtype=float))
    slope = fit_rate(sample_sizes, envelope[:, None]).slope
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, R, size=(num_bootstrap, E, K, R))
    boot = np.take_along_axis(values[None], picks, axis=3).mean(-1).max(1)  # (B, K)
    centred = log_n - log_n.mean()
    boot_slopes = (np.log(boot) - np.log(boot).mean(-1, keepdims=True)) @ centred / (centred @ centred)
    low, high = np.quantile(boot_slopes, [0.025, 0.975])
    return envelope, values.mean(-1).argmax(0), float(slope), float(low), float(high)


def minimax_rows(cfg: MinimaxConfig) -> tuple[list[dict], dict, list]:
    """Slopes of every split's mean loss and of the envelope, per curve and loss; the drawn envelopes; missing."""
    from common.synthetic.report import collect  # the report module draws; this one only computes

    family = cfg.expanded()
    sizes = np.asarray(cfg.sample_sizes)
    rows, drawn, missing = [], {}, []
    for c, curve in enumerate(cfg.curves):
        indices = [c * len(cfg.splits) + e for e in range(len(cfg.splits))]
        for metric in (curve.loss, *curve.tabulate, "regression_error"):
            collected = [collect(family, i, cfg.num_atoms[0], metric) for i in indices]
            gone = [p for got in collected for p in got.missing]
            if gone:
                missing += [(cfg.figure, curve.label, p) for p in gone]
                break
            values = np.stack([got.values for got in collected])  # (E, K, R)
            envelope, worst, slope, low, high = envelope_rate(sizes, values)
            base = {"figure": cfg.figure, "curve": curve.label, "loss": metric}
            for e, eps in enumerate(cfg.splits):
                rate = fit_rate(sizes, values[e])
                rows.append(
                    base
                    | {"split": f"{eps:g}", "slope": rate.slope, "ci_low": rate.ci_low, "ci_high": rate.ci_high}
                    | {"mean_first_n": values[e, 0].mean(), "mean_last_n": values[e, -1].mean()}
                    | {"converged": float(np.mean([got.converged for got in collected[e : e + 1]]))}
                )
            rows.append(
                base
                | {"split": "sup", "slope": slope, "ci_low": low, "ci_high": high}
                | {"mean_first_n": envelope[0], "mean_last_n": envelope[-1]}
                | {"worst_split_first_n": cfg.splits[worst[0]], "worst_split_last_n": cfg.splits[worst[-1]]}
            )
            if metric == curve.loss:
                drawn[curve.label] = (metric, values, envelope, slope)
    return rows, drawn, missing


def write_minimax_report(cfg: MinimaxConfig, out_dir) -> list:
    """``minimax.{pdf,png}`` (one panel per curve: each split's mean loss and the envelope against n) and
    ``minimax_slopes.{csv,md}``; returns the missing points (panel, curve, point)."""

    import matplotlib.pyplot as plt
    import pandas as pd

    from common.plotting import save_figure, use_house_style, write_table

    rows, drawn, missing = minimax_rows(cfg)
    out_dir = Path(out_dir)
    if rows:
        for path in write_table(pd.DataFrame(rows), out_dir / f"{cfg.figure}_slopes", float_format="%.4g"):
            print(f"wrote {path}")
    if len(drawn) == len(cfg.curves):
        use_house_style()
        fig, axes = plt.subplots(1, len(drawn), figsize=(4.0 * len(drawn), 3.6), squeeze=False)
        colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(cfg.splits)))
        for ax, (label, (metric, values, envelope, slope)) in zip(axes[0], drawn.items(), strict=True):
            for e, eps in enumerate(cfg.splits):
                ax.plot(cfg.sample_sizes, values[e].mean(-1), "o-", color=colors[e], ms=3, lw=1, label=f"eps = {eps:g}")
            ax.plot(cfg.sample_sizes, envelope, "k--", lw=2, label=f"sup over eps: $n^{{{slope:.2f}}}$")
            ax.set(xscale="log", yscale="log", xlabel="sample size $n$", ylabel=f"mean {metric}")
            ax.set_title(f"{label} experts", fontsize="small")
            ax.legend(fontsize="x-small")
        fig.suptitle(cfg.title, fontsize="small")
        for path in save_figure(fig, out_dir / cfg.figure):
            print(f"wrote {path}")
        plt.close(fig)
    return missing


class Minimax(Synthetic):
    """A paper's minimax family as an experiment (``sigmoid_attention.minimax``, ``quadratic_gating.minimax``): the
    synthetic sweep of ``cfg.expanded()``, every truth of the family a curve."""

    Config = MinimaxConfig

    @classmethod
    def expanded(cls, cfg: MinimaxConfig) -> SweepConfig:
        return cfg.expanded()
