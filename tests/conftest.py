"""Shared test set-up: a headless matplotlib backend, and `gpu` tests skipped where CUDA is not available."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA, which is not available here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
