"""Per-class subsampling for the sample-efficiency sweeps (RepLoRA Sec. 6, HyRA Sec. 5)."""

from collections.abc import Sequence

import numpy as np

from common.config import ConfigError


def per_class_subset(labels: Sequence, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask keeping a random `fraction` of every class of `labels`.

    Each class keeps round(fraction * count) of its items (Python's round: halves go to the even number), at least
    one, so that every class stays present even at 1%. The draw depends only on the seed and the labels.
    """
    if not 0 < fraction <= 1:
        raise ConfigError.invalid("fraction", fraction, "a fraction of every class in (0, 1]")
    generator = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keep = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):  # sorted order: the draws do not depend on the order of the items
        members = np.flatnonzero(labels == label)
        count = max(1, round(fraction * len(members)))
        keep[generator.choice(members, size=count, replace=False)] = True
    return keep
