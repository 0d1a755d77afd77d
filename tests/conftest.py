"""Shared test set-up: a headless matplotlib backend; `gpu` tests skipped where CUDA is not available, `slurm`
tests where no SLURM cluster answers (unless MOE_LENS_REQUIRE_SLURM=1, as in CI: then they fail instead)."""

import os
import shutil
import subprocess

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

REQUIRE_SLURM = os.environ.get("MOE_LENS_REQUIRE_SLURM") == "1"


def slurm_unreachable() -> str | None:
    """Why no SLURM cluster answers here, or None when one does."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH (start one with slurm/local_cluster.sh)"
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or not done.stdout.strip():
        return f"no SLURM controller answers: {done.stderr.strip() or 'no nodes'}"
    return None


def pytest_collection_modifyitems(config, items):
    skips = {}
    if not torch.cuda.is_available():
        skips["gpu"] = "needs CUDA, which is not available here"
    if any(item.get_closest_marker("slurm") for item in items) and not REQUIRE_SLURM:
        reason = slurm_unreachable()
        if reason:
            skips["slurm"] = reason
    for item in items:
        for marker, reason in skips.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
