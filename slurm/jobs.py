"""What happened to submitted jobs: submission records, the SLURM queue, and submitit's result files.

Every SLURM submission writes a record, ``<results_dir>/slurm_logs/submissions/<array id>-<experiment>.json``:
the experiment, its config file and overrides, and the sweep point each job computes (a point that another
experiment of the same submission computes is recorded with that job). A point's state is read from three places,
in this order of authority:

    done       its run directory holds results.json (the experiment's own is_done)
    pending, running, ...   its job is in the SLURM queue (squeue), with SLURM's state
    failed     submitit wrote an error result (the traceback), or the job left the queue without a result
               (cancelled, killed at its memory limit, timed out more often than submitit requeues)

No accounting database is needed (the one-node cluster of local_cluster.sh has none): squeue and submitit's
files suffice.
"""

import datetime
import json
import pickle
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from submitit.core.utils import JobPaths

from common import runs

SUBMISSIONS_DIR = "submissions"
# SLURM states of a job that has left the queue for good (every other state means it is, or will be, running).
FINISHED_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
)


@dataclass
class Submission:
    """One submitted job array: what it computes and which job computes which sweep point."""

    experiment: str  # <paper>.<experiment>, or the module name for a module submission
    module: str
    config_file: str | None
    overrides: list[str]
    cluster: str
    log_dir: str  # absolute
    cwd: str  # where it was submitted from: relative paths in the config are relative to it
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> repr(point)
    time_utc: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def array_id(self) -> str:
        return next(iter(self.jobs)).split("_")[0]

    def write(self) -> Path:
        path = Path(self.log_dir) / SUBMISSIONS_DIR / f"{self.array_id}-{self.experiment}.json"
        runs.atomic_write_json(path, asdict(self))
        return path


def read_submissions(root: str | Path) -> list[Submission]:
    """Every submission recorded under `root`, oldest first."""
    records = [Submission(**json.loads(path.read_text())) for path in Path(root).glob(f"**/{SUBMISSIONS_DIR}/*.json")]
    return sorted(records, key=lambda record: (record.time_utc, int(record.array_id)))


def queue_states(job_ids: list[str]) -> dict[str, str] | None:
    """SLURM's state of each job of `job_ids` still known to the controller; None where squeue is unavailable."""
    if not job_ids or shutil.which("squeue") is None:
        return None
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    # -r: one line per array task; -t all: finished jobs too, while the controller still holds them.
    command = ["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(arrays)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        # squeue refuses ids the controller has already forgotten: ask one array at a time.
        if len(arrays) > 1:
            states: dict[str, str] = {}
            for array in arrays:
                states.update(queue_states([array]) or {})
            return states
        return {} if "Invalid job id" in done.stderr else None
    return dict(line.split() for line in done.stdout.splitlines() if line.strip())


def is_active(state: str | None) -> bool:
    """Whether a job in SLURM state `state` (None: not in the queue) is pending or running."""
    return state is not None and state not in FINISHED_STATES


def job_paths(log_dir: str | Path, job_id: str) -> JobPaths:
    """submitit's files of job `job_id` (log folder <log_dir>/<job id>)."""
    return JobPaths(Path(log_dir) / "%j", job_id=job_id, task_id=0)


def job_result(log_dir: str | Path, job_id: str) -> tuple[str, Any] | None:
    """submitit's ("success", value) or ("error", traceback) of a job, or None while it has none."""
    path = job_paths(log_dir, job_id).result_pickle
    if not path.is_file():
        return None
    with open(path, "rb") as file:
        return pickle.load(file)


def job_error(log_dir: str | Path, job_id: str, slurm_state: str | None = None) -> str:
    """Why a job that left the queue has no result: submitit's traceback, or SLURM's last state where it raised none."""
    result = job_result(log_dir, job_id)
    if result is not None and result[0] == "error":
        return result[1]
    return f"the job left the queue without a result (SLURM state {slurm_state or 'gone'})"


def log_tail(log_dir: str | Path, job_id: str, lines: int = 20) -> str:
    """The last `lines` lines of a job's stderr log ("" where there is none)."""
    path = job_paths(log_dir, job_id).stderr
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
