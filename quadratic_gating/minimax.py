"""QG Thm C.1 on its own terms: the minimax envelope over the family of truths of its construction (softmax gate).

    python -m quadratic_gating.minimax --config quadratic_gating/configs/minimax.yaml [key=value ...]

One true atom (here the zero reference) is split into two atoms on its gate with half its mass each and expert
biases beta* +- eps, the construction of QG App. D.3's proof; every truth of the family is fitted by least squares
with N = N* + 1 atoms from the family's common centre. Linear experts (Thm C.1: slower than any polynomial rate)
beside ReLU experts (Thm 3.3: parametric). ``python -m common.synthetic.figures paper=quadratic_gating`` draws the
envelope sup_eps mean loss against n and tabulates its slope. The machinery is ``common.synthetic.minimax``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.experiment import register
from common.synthetic.minimax import Minimax as MinimaxSweep
from common.synthetic.minimax import MinimaxConfig, envelope_rate  # noqa: F401


@dataclass
class Config(MinimaxConfig):
    THEOREM: ClassVar[tuple[str, str]] = ("softmax", "QG Thm C.1")
    results_dir: str = "results/quadratic_gating"


@register("quadratic_gating.minimax")
class Minimax(MinimaxSweep):
    Config = Config


if __name__ == "__main__":
    Minimax.cli()
