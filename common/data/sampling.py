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


def validation_mask(labels: Sequence, per_class: int, seed: int = 0) -> np.ndarray:
    """A boolean mask of `per_class` random items of every class of `labels`: a validation split carved from the
    training rows (the rest trains). It depends only on the labels and `seed`, not on a run's seed, so every run of
    a sweep is selected on the same rows; a class needs more than `per_class` items."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if per_class < 0 or (per_class and counts.min() <= per_class):
        raise ConfigError.invalid(
            "validation_per_class", per_class, f"0 or fewer than the smallest class's {counts.min()} training rows"
        )
    generator = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in classes:
        mask[generator.choice(np.flatnonzero(labels == label), size=per_class, replace=False)] = True
    return mask
