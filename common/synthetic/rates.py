"""Empirical convergence rates: the slope of log(mean loss) on log n, with a bootstrap CI over replicates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Apparent slopes of nominal rates fitted over n in [1e3, 1e5] (spec Sec. 2.6), for reading slopes.
APPARENT_SLOPE = {"sqrt(log n / n)": -0.4445, "(log n / n)^(1/4)": -0.2223, "1 / log n": -0.1109}


@dataclass(frozen=True)
class RateFit:
    slope: float  # OLS slope of log(mean loss) on log n
    intercept: float
    ci_low: float  # bootstrap 95% CI of the slope (replicates resampled within each n)
    ci_high: float
    median_slope: float  # the same fit on the median instead of the mean


def _ols(log_n: np.ndarray, log_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of lines fitted to each row of log_y (..., K) against log_n (K,)."""
    centred = log_n - log_n.mean()
    slope = (log_y - log_y.mean(-1, keepdims=True)) @ centred / (centred @ centred)
    return slope, log_y.mean(-1) - slope * log_n.mean()


def fit_rate(sample_sizes, values, num_bootstrap: int = 2000, seed: int = 0) -> RateFit:
    """Fit loss ~ n^slope to ``values`` (K, R): R replicate losses at each of K sample sizes."""
    n = np.asarray(sample_sizes, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] != n.shape[0] or n.shape[0] < 2:
        raise ValueError(f"values must be (K, R) with K = {n.shape[0]} >= 2 sample sizes, got {values.shape}")
    log_n = np.log(n)
    slope, intercept = _ols(log_n, np.log(values.mean(1)))
    median_slope, _ = _ols(log_n, np.log(np.median(values, 1)))
    rng = np.random.default_rng(seed)
    K, R = values.shape
    picks = rng.integers(0, R, size=(num_bootstrap, K, R))
    boot_means = np.take_along_axis(values[None], picks, axis=2).mean(-1)  # (B, K)
    boot_slopes, _ = _ols(log_n, np.log(boot_means))
    low, high = np.quantile(boot_slopes, [0.025, 0.975])
    return RateFit(float(slope), float(intercept), float(low), float(high), float(median_slope))
