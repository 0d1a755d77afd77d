"""Peak memory of a benchmark's child process."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_resident_bytes() -> float:
    """This process's peak resident memory since it started. Linux: VmHWM of /proc/self/status, which a new
    program starts afresh; getrusage's ru_maxrss is not used there because Linux carries it over from the parent
    across fork and exec, so every child would report at least the benchmark's own peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024  # kB
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024))
