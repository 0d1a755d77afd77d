"""Performance measurements (not tests): ratios against baselines, written to results/."""
