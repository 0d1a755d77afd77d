"""The Performance-Parameter Trade-off of RepLoRA Sec. 6: PPT = M_t exp(-log10(P_M / C + 1)).

M_t is the task performance as a fraction (the papers print PPT on the 0-1 scale next to accuracies in %),
P_M the trainable parameters and C a normalisation constant the paper does not print. Its video tables
(Table 13: six PPT cells, Video Swin-B, P in millions) pin C to 9.34-9.75 M parameters; we use
``VIDEO_SWIN_C`` = 9.5 M, which reproduces all six (e.g. RepLoRA HMDB51: 68.23 %, 1.45 M -> 0.64).
"""

from __future__ import annotations

import math

VIDEO_SWIN_C = 9.5e6


def ppt(performance_pct: float, params: float, normaliser: float = VIDEO_SWIN_C) -> float:
    """PPT of a method with ``performance_pct`` (%) and ``params`` trainable parameters (same unit as C)."""
    if params < 0 or normaliser <= 0:
        raise ValueError(f"ppt needs params >= 0 and a positive normaliser, got {params} and {normaliser}")
    return performance_pct / 100 * math.exp(-math.log10(params / normaliser + 1))
