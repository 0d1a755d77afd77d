"""Submit the pending sweep points of any experiment as one job array: locally, in process, or on SLURM.

    python -m slurm.submit MODULE [--config FILE] [key=value ...] [--cluster NAME] [--parallel N] [--dry-run]
    python -m slurm.submit sigmoid_attention.synthetic --config sigmoid_attention/configs/fig1a.yaml --dry-run

NAME is `local` (submitit LocalExecutor: subprocesses on this machine, `--parallel` at a time), `debug`
(in this process, one point after the other), or a SLURM profile `slurm/clusters/NAME.yaml`. Without
`--cluster`: `local` where `sbatch` is not on PATH, else the profile `default`.

An experiment module is launchable when it has

    Config                   dataclass schema of its config
    sweep(cfg) -> list       picklable sweep points
    is_done(cfg, point)      whether the point's result is already written
    run_point(cfg, point)    computes one point (skips it if done), writes it atomically, returns its run dir
    main(cfg)                runs every pending point in process

The config is loaded and validated, and the cluster profile read, before anything is submitted. Each job
calls the module's own `run_point`, so a SLURM job, a local job and `python -m <module>` share one code
path. A job that hits its time limit or is preempted is requeued with the same point; resuming from a
checkpoint is the experiment's business.
"""

import argparse
import importlib
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import submitit
import torch
from submitit.helpers import Checkpointable

from common.config import ConfigError, add_config_arguments, load_config

EXPERIMENT_CONTRACT = ("Config", "sweep", "is_done", "run_point", "main")
PROFILES_DIR = Path(__file__).parent / "clusters"
BUILTIN_CLUSTERS = ("local", "debug")
DEFAULT_PROFILE = "default"
DEFAULT_RESULTS_DIR = "results"
# submitit's LocalExecutor kills a job after 2 minutes unless told otherwise; local runs get a day.
LOCAL_TIMEOUT_MIN = 24 * 60


class SubmitError(Exception):
    """The launcher cannot proceed: an experiment module or cluster profile that is missing or incomplete."""


@dataclass
class ClusterProfile:
    """Resources of one job of the array on a SLURM cluster, read from slurm/clusters/<name>.yaml."""

    partition: str
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 60
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 64  # jobs of the array that run at the same time
    setup: list[str] = field(default_factory=list)  # shell lines run before each job, e.g. activating an env

    def validate(self) -> None:
        for name in ("cpus_per_task", "mem_gb", "timeout_min", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if self.gpus_per_node < 0:
            raise ConfigError.invalid("gpus_per_node", self.gpus_per_node, "an integer >= 0")

    def executor_parameters(self) -> dict[str, Any]:
        """The profile as submitit AutoExecutor parameters."""
        parameters = {
            "slurm_partition": self.partition,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_setup": list(self.setup),
        }
        optional = {"slurm_account": self.account, "slurm_qos": self.qos, "slurm_constraint": self.constraint}
        parameters.update({key: value for key, value in optional.items() if value is not None})
        return parameters


class PointJob(Checkpointable):
    """One sweep point as a submitit job: `run_point` of the experiment module, requeued on timeout."""

    def __init__(self, module_name: str) -> None:
        self.module_name = module_name

    def __call__(self, cfg: Any, point: Any) -> Path:
        return importlib.import_module(self.module_name).run_point(cfg, point)


def import_experiment(name: str) -> ModuleType:
    """The experiment module `name`, checked to follow the launcher's contract."""
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise SubmitError(f"experiment module '{name}' cannot be imported: {error}") from error
    missing = [attr for attr in EXPERIMENT_CONTRACT if not hasattr(module, attr)]
    if missing:
        raise SubmitError(
            f"experiment module '{name}' lacks {', '.join(missing)}; "
            f"a launchable module defines {', '.join(EXPERIMENT_CONTRACT)}"
        )
    return module


def available_clusters() -> list[str]:
    """Names `--cluster` accepts: the built-in executors and the profiles in slurm/clusters/."""
    return [*BUILTIN_CLUSTERS, *sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))]


def default_cluster() -> str:
    """`local` off a SLURM cluster; on one (sbatch on PATH), the profile `default`."""
    if shutil.which("sbatch") is None:
        return "local"
    if (PROFILES_DIR / f"{DEFAULT_PROFILE}.yaml").is_file():
        return DEFAULT_PROFILE
    raise SubmitError(
        f"sbatch is on PATH but there is no profile {PROFILES_DIR / (DEFAULT_PROFILE + '.yaml')}: "
        f"pass --cluster with one of {', '.join(available_clusters())} (see slurm/README.md)"
    )


def load_profile(name: str) -> ClusterProfile | None:
    """The SLURM profile `name`, or None for the built-in `local` and `debug`."""
    if name in BUILTIN_CLUSTERS:
        return None
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise SubmitError(f"unknown cluster '{name}'; available: {', '.join(available_clusters())}")
    return load_config(ClusterProfile, path)


def executor_parameters(cluster: str, profile: ClusterProfile | None) -> dict[str, Any]:
    """The submitit parameters of every job on `cluster`."""
    if cluster == "debug":
        return {}
    if cluster == "local":
        # Local jobs see this machine's GPUs (submitit hides all GPUs from a job that asks for none).
        return {"timeout_min": LOCAL_TIMEOUT_MIN, "gpus_per_node": torch.cuda.device_count()}
    return profile.executor_parameters()


def build_executor(cluster: str, profile: ClusterProfile | None, log_dir: Path, job_name: str) -> submitit.AutoExecutor:
    """A submitit executor for `cluster` that writes its logs to log_dir/<job id>."""
    kind = cluster if cluster in BUILTIN_CLUSTERS else "slurm"
    executor = submitit.AutoExecutor(folder=log_dir / "%j", cluster=kind)
    executor.update_parameters(name=job_name, **executor_parameters(cluster, profile))
    return executor


def _wait(jobs: list[submitit.Job], points: list[Any]) -> int:
    """Wait for `jobs`, print each failure with its point and log file; returns the number that failed."""
    failed = 0
    for job, point in zip(jobs, points, strict=True):
        error = job.exception()
        if error is None:
            print(f"done   {point} -> {job.result()}")
            continue
        failed += 1
        print(f"FAILED {point} (job {job.job_id}, log {job.paths.stderr}):\n{error}", file=sys.stderr)
    return failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The launcher's command line: the experiment's `[--config FILE] [key=value ...]` plus cluster flags."""
    parser = argparse.ArgumentParser(
        prog="python -m slurm.submit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("module", help="experiment module, e.g. sigmoid_attention.synthetic")
    add_config_arguments(parser)
    parser.add_argument("--cluster", help="local, debug, or a profile in slurm/clusters/ (default: see above)")
    parser.add_argument("--parallel", type=int, default=1, help="local cluster: jobs that run at once (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be submitted, submit nothing")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Launch an experiment's pending points; returns the exit code (0 ok, 1 a job failed, 2 bad input)."""
    args = parse_args(argv)
    try:
        if args.parallel < 1:
            raise SubmitError(f"--parallel = {args.parallel} is not allowed: a positive integer")
        module = import_experiment(args.module)
        cfg = load_config(module.Config, args.config, args.overrides)
        cluster = args.cluster or default_cluster()
        profile = load_profile(cluster)
    except (SubmitError, ConfigError) as error:
        print(f"slurm.submit: error: {error}", file=sys.stderr)
        return 2

    points = module.sweep(cfg)
    pending = [point for point in points if not module.is_done(cfg, point)]
    log_dir = Path(getattr(cfg, "results_dir", DEFAULT_RESULTS_DIR)) / "slurm_logs"
    parameters = executor_parameters(cluster, profile)
    print(f"experiment: {args.module}")
    print(f"cluster: {cluster}" + (f" ({args.parallel} job(s) at a time)" if cluster == "local" else ""))
    print(f"resources: {parameters}")
    print(f"points: {len(points)} in the sweep, {len(points) - len(pending)} finished, {len(pending)} pending")
    if args.dry_run:
        for point in pending:
            print(f"  pending {point}")
        print("dry run: nothing submitted")
        return 0
    if not pending:
        return 0

    executor = build_executor(cluster, profile, log_dir, job_name=args.module)
    job = PointJob(args.module)
    if cluster not in BUILTIN_CLUSTERS:
        jobs = executor.map_array(job, [cfg] * len(pending), pending)
        print(f"submitted {len(jobs)} jobs as array {jobs[0].job_id.split('_')[0]}; logs in {log_dir}")
        return 0
    # Local and debug jobs are waited for here; local ones run --parallel at a time.
    batch = args.parallel if cluster == "local" else len(pending)
    failed = 0
    for start in range(0, len(pending), batch):
        points_batch = pending[start : start + batch]
        failed += _wait(executor.map_array(job, [cfg] * len(points_batch), points_batch), points_batch)
    print(f"{len(pending) - failed} of {len(pending)} jobs succeeded; logs in {log_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
