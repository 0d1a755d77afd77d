"""SG Thm 2 on its own terms: the minimax envelope over the proof's family of truths (sigmoid gate, sparse atom).

    python -m sigmoid_attention.minimax --config sigmoid_attention/configs/minimax.yaml [key=value ...]

One true atom with a constant gate sigma(0) is split into two atoms on that gate with half its mass each and expert
biases beta* +- eps (SG App. B.3); every truth of the family is fitted by least squares with N = N* + 1 atoms from
the family's common centre. Linear experts (Thm 2: slower than any polynomial rate) beside ReLU experts (Thm 1:
parametric). ``python -m common.synthetic.figures paper=sigmoid_attention`` draws the envelope sup_eps mean loss
against n and tabulates its slope. The machinery is ``common.synthetic.minimax``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from common.experiment import register
from common.synthetic.minimax import Minimax as MinimaxSweep
from common.synthetic.minimax import MinimaxConfig, envelope_rate  # noqa: F401


@dataclass
class Config(MinimaxConfig):
    THEOREM: ClassVar[tuple[str, str]] = ("sigmoid", "SG Thm 2")
    results_dir: str = "results/sigmoid_attention"


@register("sigmoid_attention.minimax")
class Minimax(MinimaxSweep):
    Config = Config


if __name__ == "__main__":
    Minimax.cli()
