"""Submit the pending sweep points of an experiment, or of every experiment of a paper, as job arrays.

    python -m slurm.submit MODULE [--config FILE] [key=value ...] [--cluster NAME] [--parallel N] [--dry-run] [--wait]
    python -m slurm.submit --paper PAPER [--experiments a,b] [--variant paper|smoke] [--gpu] [key=value ...] [...]

    python -m slurm.submit sigmoid_attention.synthetic --config sigmoid_attention/configs/fig1a.yaml --dry-run
    python -m slurm.submit --paper sigmoid_attention --variant smoke --cluster localhost --wait

NAME is `local` (submitit LocalExecutor: subprocesses on this machine, `--parallel` at a time), `debug`
(in this process, one point after the other), or a SLURM profile `slurm/clusters/NAME.yaml`. Without
`--cluster`: `local` where `sbatch` is not on PATH, else the profile `default`.

With `--paper`, the experiments and the resources of their jobs come from `<paper>/configs/experiments.yaml`
(common/manifest.py); `key=value` overrides apply to every experiment's config; `--gpu` takes the manifest's
`gpu_resources` where an experiment has them (the synthetic sweeps). A module submission takes the job resources
from the profile.

An experiment module is launchable when it registers one `common.experiment.Experiment` subclass: its `Config`,
`sweep`, `is_done`, `run_point`, `check_inputs` (called for every experiment before anything is submitted) and
`main` are what the launcher uses.

Every config, profile and resource request is loaded and checked before anything is submitted. Each job calls
the experiment's own `run_point`, so a SLURM job, a local job and `python -m <module>` share one code path. A job
that hits its time limit or is preempted is requeued with the same point; resuming from a checkpoint is the
experiment's business (common/training). `python -m slurm.status` shows what became of the jobs.
"""

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.helpers import Checkpointable
from submitit.slurm.slurm import _make_sbatch_string

from common import manifest as papers
from common.config import ConfigError, add_config_arguments, load_config
from common.experiment import Experiment, registered_in
from common.manifest import Resources
from slurm import jobs

PROFILES_DIR = Path(__file__).parent / "clusters"
BUILTIN_CLUSTERS = ("local", "debug")
DEFAULT_PROFILE = "default"
DEFAULT_RESULTS_DIR = "results"
# submitit's LocalExecutor kills a job after 2 minutes unless told otherwise; local runs get a day.
LOCAL_TIMEOUT_MIN = 24 * 60
WAIT_POLL_S = 2.0


class SubmitError(Exception):
    """The launcher cannot proceed: a missing module, an unknown profile, a request the cluster cannot meet."""


@dataclass
class ClusterProfile:
    """A SLURM cluster, read from slurm/clusters/<name>.yaml: where jobs go, their default resources, limits."""

    partition: str
    gpus_per_node: int = 1  # default resources of a job, for module submissions
    cpus_per_task: int = 8
    mem_gb: int = 32
    timeout_min: int = 60
    max_gpus_per_node: int | None = None  # the most GPUs one job may ask for (None: gpus_per_node)
    cpu_partition: str | None = None  # partition of jobs that need no GPU (None: partition)
    signal_delay_s: int = 90  # submitit's stop signal comes this long before the time limit
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 64  # jobs of an array that run at the same time
    max_array_size: int = 1000  # the most jobs in one array (SLURM's MaxArraySize - 1); more are split into arrays
    max_timeouts: int = 3  # how often submitit requeues a job that reaches its time limit before giving up
    setup: list[str] = field(default_factory=list)  # shell lines run before each job, e.g. activating an env

    def validate(self) -> None:
        self.default_resources().validate()
        if self.max_timeouts < 0:
            raise ConfigError.invalid("max_timeouts", self.max_timeouts, "an integer >= 0")
        for name in ("array_parallelism", "signal_delay_s", "max_array_size"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if self.max_gpus_per_node is not None and self.max_gpus_per_node < self.gpus_per_node:
            raise ConfigError.invalid("max_gpus_per_node", self.max_gpus_per_node, "an integer >= gpus_per_node")

    def default_resources(self) -> Resources:
        return Resources(self.gpus_per_node, self.cpus_per_task, self.mem_gb, self.timeout_min)

    @property
    def gpu_limit(self) -> int:
        return self.gpus_per_node if self.max_gpus_per_node is None else self.max_gpus_per_node

    def partition_for(self, resources: Resources) -> str:
        return self.cpu_partition if resources.gpus_per_node == 0 and self.cpu_partition else self.partition

    def sbatch_parameters(self, resources: Resources, job_name: str) -> dict[str, Any]:
        """submitit SlurmExecutor parameters (sbatch's names and units) of a job with `resources`."""
        parameters = {
            "job_name": job_name,
            "partition": self.partition_for(resources),
            "time": resources.timeout_min,
            "cpus_per_task": resources.cpus_per_task,
            "mem": f"{resources.mem_gb}GB",
            "signal_delay_s": self.signal_delay_s,
            "array_parallelism": self.array_parallelism,
            "setup": list(self.setup),
        }
        if resources.gpus_per_node:
            parameters["gpus_per_node"] = resources.gpus_per_node
        if resources.tasks_per_node > 1:
            parameters["ntasks_per_node"] = resources.tasks_per_node  # torch.distributed's rendezvous from SLURM
        optional = {"account": self.account, "qos": self.qos, "constraint": self.constraint}
        parameters.update({key: value for key, value in optional.items() if value is not None})
        return parameters


class PointJob(Checkpointable):
    """One sweep point as a submitit job: `run_point` of the experiment module, requeued on timeout."""

    def __init__(self, module_name: str) -> None:
        self.module_name = module_name

    def __call__(self, cfg: Any, point: Any) -> Path:
        return import_experiment(self.module_name).run_point(cfg, point)


@dataclass
class Launch:
    """One experiment to submit as one job array: its config, its pending points, and their resources."""

    name: str  # <paper>.<experiment>, or the module name
    module: type[Experiment]  # the experiment (its class)
    cfg: Any
    config_file: str | None
    overrides: list[str]
    resources: Resources | None  # None: the profile's defaults
    processes: int | None = None  # --processes: data-parallel tasks per job (None: the resources' tasks_per_node)
    points: list[Any] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)  # points this launch's jobs compute
    shared: list[Any] = field(default_factory=list)  # pending points whose run dir an earlier launch computes
    run_dirs: dict[str, str] = field(default_factory=dict)  # repr(point) -> run dir, where the module says

    def job_resources(self, profile: ClusterProfile | None) -> Resources:
        resources = self.resources or (profile.default_resources() if profile else Resources())
        return resources.with_processes(self.processes) if self.processes else resources

    @property
    def log_dir(self) -> Path:
        return Path(getattr(self.cfg, "results_dir", DEFAULT_RESULTS_DIR)) / "slurm_logs"


def import_experiment(name: str) -> type[Experiment]:
    """The experiment that module `name` registers (an `Experiment` subclass, one per module)."""
    try:
        return registered_in(name)
    except ConfigError as error:
        raise SubmitError(str(error)) from error


def module_name(experiment: type[Experiment]) -> str:
    """The module a job imports to find the experiment again."""
    return experiment.__module__


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


def slurm_partitions() -> list[str] | None:
    """The partitions the SLURM controller knows, or None where sinfo is not on PATH."""
    if shutil.which("sinfo") is None:
        return None
    done = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SubmitError(f"cannot reach the SLURM controller (sinfo: {done.stderr.strip()})")
    return sorted(set(done.stdout.split()))


def check_resources(launches: list[Launch], cluster: str, profile: ClusterProfile | None, dry_run: bool) -> None:
    """Refuse what the cluster cannot give: more GPUs than it allows, a partition it does not have."""
    for launch in launches:
        resources = launch.job_resources(profile) if launch.resources or launch.processes else None
        wanted = resources.gpus_per_node if resources else 0
        if profile is None:
            available = torch.cuda.device_count() if cluster == "local" else wanted
            if wanted > available:
                raise SubmitError(
                    f"experiment '{launch.name}' asks for {wanted} GPU(s) per job; this machine has {available}"
                )
        elif wanted > profile.gpu_limit:
            raise SubmitError(
                f"experiment '{launch.name}' asks for {wanted} GPU(s) per job; profile '{cluster}' allows at most "
                f"{profile.gpu_limit} (max_gpus_per_node)"
            )
    if profile is None:
        return
    try:
        known = slurm_partitions()
    except SubmitError:
        if not dry_run:
            raise
        print("warning: SLURM is not reachable from here; partitions not checked", file=sys.stderr)
        return
    if known is None:
        return
    for launch in launches:
        partition = profile.partition_for(launch.job_resources(profile))
        if partition not in known:
            raise SubmitError(
                f"partition '{partition}' of profile '{cluster}' does not exist on this cluster; "
                f"its partitions: {', '.join(known)}"
            )


def check_inputs(launches: list[Launch], profile: ClusterProfile | None) -> None:
    """Each experiment's check that its jobs' processes can share its batches, then its own check of its input data
    (``check_inputs(cfg)``), last since it reads files."""
    for launch in launches:
        check = getattr(launch.module, "check_inputs", None)
        try:
            launch.module.check_processes(launch.cfg, launch.job_resources(profile).tasks_per_node)
            if check is not None:
                check(launch.cfg)
        except ConfigError as error:
            raise ConfigError(f"experiment '{launch.name}': {error}") from None


def prepare(args: argparse.Namespace) -> list[Launch]:
    """Every launch the command line asks for, its config loaded and validated and its pending points found."""
    if args.paper is None:
        if args.module is None:
            raise SubmitError("name an experiment MODULE or a paper with --paper")
        if args.experiments is not None or args.variant is not None or args.gpu:
            raise SubmitError("--experiments, --variant and --gpu go with --paper, not with a MODULE")
        module = import_experiment(args.module)
        cfg = load_config(module.Config, args.config, args.overrides)
        launches = [Launch(args.module, module, cfg, args.config, list(args.overrides), None)]
    else:
        if args.module is not None or args.config is not None:
            raise SubmitError("--paper takes its experiments' configs from its manifest: drop MODULE and --config")
        names = None if args.experiments is None else [name for name in args.experiments.split(",") if name]
        variant = args.variant or "paper"
        launches = []
        for name, experiment in papers.select_experiments(args.paper, names).items():
            module = import_experiment(experiment.module)
            path = papers.config_path(args.paper, experiment, variant)
            try:
                cfg = load_config(module.Config, path, args.overrides)
            except ConfigError as error:
                raise ConfigError(f"experiment '{args.paper}.{name}': {error}") from None
            launches.append(
                Launch(
                    f"{args.paper}.{name}",
                    module,
                    cfg,
                    str(path),
                    list(args.overrides),
                    experiment.resources_for(args.gpu),
                )
            )
    # Experiments may share sweep points (the same fit drawn in two figures): each run dir is computed by one job.
    computed: set[str] = set()
    for launch in launches:
        launch.points = launch.module.sweep(launch.cfg)
        point_dir = getattr(launch.module, "point_dir", None)
        for point in launch.points:
            if launch.module.is_done(launch.cfg, point):
                continue
            run_dir = str(point_dir(launch.cfg, point)) if point_dir else None
            (launch.shared if run_dir in computed else launch.pending).append(point)
            if run_dir is not None:
                launch.run_dirs[repr(point)] = run_dir
                computed.add(run_dir)
    return launches


def sbatch_script(parameters: dict[str, Any], log_dir: Path, num_jobs: int) -> str:
    """The sbatch script submitit writes for a job array of `num_jobs` jobs with `parameters`."""
    folder = log_dir.absolute() / "%j"
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, map_count=num_jobs, **parameters)


def build_executor(cluster: str, launch: Launch, profile: ClusterProfile | None) -> submitit.Executor:
    """A submitit executor for `launch` on `cluster`, logging to <log_dir>/<job id>."""
    folder = launch.log_dir / "%j"
    if cluster == "debug":
        return submitit.DebugExecutor(folder)
    if cluster == "local":
        executor = submitit.LocalExecutor(folder)
        # Local jobs see this machine's GPUs (submitit hides all GPUs from a job that asks for none).
        executor.update_parameters(
            timeout_min=LOCAL_TIMEOUT_MIN, gpus_per_node=torch.cuda.device_count(),
            tasks_per_node=launch.job_resources(None).tasks_per_node,
        )  # fmt: skip
        return executor
    executor = submitit.SlurmExecutor(folder, max_num_timeout=profile.max_timeouts)
    executor.update_parameters(**profile.sbatch_parameters(launch.job_resources(profile), launch.name))
    return executor


def report(launch: Launch, job_ids: list[str], points: list[Any], error_of: Callable[[str], str]) -> int:
    """Print how each finished job ended; returns the number that failed (their point has no result)."""
    failed = 0
    for job_id, point in zip(job_ids, points, strict=True):
        if launch.module.is_done(launch.cfg, point):
            print(f"done   {point} (job {job_id})")
            continue
        failed += 1
        stderr = jobs.job_paths(launch.log_dir, job_id).stderr
        print(f"FAILED {point} (job {job_id}, log {stderr}):\n{error_of(job_id)}", file=sys.stderr)
    return failed


def wait_for_slurm(job_ids: list[str]) -> None:
    """Return when no job of `job_ids` is pending or running any more (polls squeue)."""
    while True:
        states = jobs.queue_states(job_ids)
        if states is None:
            raise SubmitError("--wait needs squeue, which is not reachable")
        if not any(jobs.is_active(states.get(job_id)) for job_id in job_ids):
            return
        time.sleep(WAIT_POLL_S)


def submit_arrays(
    launch: Launch, cluster: str, profile: ClusterProfile, job_of_run_dir: dict[str, str]
) -> list[jobs.Submission]:
    """Submit the pending points of `launch` to SLURM as job arrays of at most `max_array_size` jobs, and record
    each (the points that an earlier launch computes go into the first record)."""
    chunks = [
        launch.pending[i : i + profile.max_array_size] for i in range(0, len(launch.pending), profile.max_array_size)
    ]
    records = []
    for chunk in chunks or [[]]:
        record = jobs.Submission(
            experiment=launch.name,
            module=module_name(launch.module),
            config_file=launch.config_file and str(Path(launch.config_file).absolute()),
            overrides=launch.overrides,
            cluster=cluster,
            log_dir=str(launch.log_dir.absolute()),
            cwd=str(Path.cwd()),
        )
        if chunk:
            executor = build_executor(cluster, launch, profile)
            array = executor.map_array(PointJob(module_name(launch.module)), [launch.cfg] * len(chunk), chunk)
            for job, point in zip(array, chunk, strict=True):
                record.jobs[job.job_id] = repr(point)
                if repr(point) in launch.run_dirs:
                    job_of_run_dir[launch.run_dirs[repr(point)]] = job.job_id
            print(f"submitted {len(array)} jobs as array {record.array_id}; logs in {launch.log_dir}")
        records.append(record)
    for point in launch.shared:
        records[0].jobs[job_of_run_dir[launch.run_dirs[repr(point)]]] = repr(point)
    for record in records:
        record.write()
    return records


def run_here(launch: Launch, cluster: str, args: argparse.Namespace) -> int:
    """Run the pending points of `launch` on this machine (local: --parallel at a time); returns the failures."""
    executor = build_executor(cluster, launch, None)
    batch = args.parallel if cluster == "local" else len(launch.pending)
    failed = 0
    for start in range(0, len(launch.pending), batch):
        points = launch.pending[start : start + batch]
        submitted = executor.map_array(PointJob(module_name(launch.module)), [launch.cfg] * len(points), points)
        errors = {job.job_id: str(job.exception()) for job in submitted}
        failed += report(launch, list(errors), points, errors.get)
    print(f"{len(launch.pending) - failed} of {len(launch.pending)} jobs succeeded; logs in {launch.log_dir}")
    return failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The launcher's command line: the experiment's `[--config FILE] [key=value ...]` plus cluster flags."""
    parser = argparse.ArgumentParser(
        prog="python -m slurm.submit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("module", nargs="?", help="experiment module, e.g. sigmoid_attention.synthetic")
    add_config_arguments(parser)
    parser.add_argument("--paper", help=f"submit a paper's experiments: one of {', '.join(papers.PAPERS)}")
    parser.add_argument("--experiments", help="with --paper: comma-separated experiment names (default: all)")
    parser.add_argument("--variant", help="with --paper: paper (default) or smoke configs")
    parser.add_argument("--cluster", help="local, debug, or a profile in slurm/clusters/ (default: see above)")
    parser.add_argument("--parallel", type=int, default=1, help="local cluster: jobs that run at once (default 1)")
    parser.add_argument(
        "--gpu", action="store_true", help="with --paper: GPU jobs for the experiments whose manifest has gpu_resources"
    )
    parser.add_argument(
        "--processes", type=int, help="data-parallel processes of each job: K tasks, one GPU each where it uses GPUs"
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be submitted, submit nothing")
    parser.add_argument("--wait", action="store_true", help="SLURM: wait for the jobs and report how each ended")
    args = parser.parse_intermixed_args(argv)
    # A lone key=value is an override, not a module name.
    if args.module is not None and "=" in args.module:
        args.overrides.insert(0, args.module)
        args.module = None
    return args


def main(argv: list[str] | None = None) -> int:
    """Launch pending points; returns the exit code (0 ok, 1 a job failed, 2 bad input)."""
    args = parse_args(argv)
    try:
        if args.parallel < 1:
            raise SubmitError(f"--parallel = {args.parallel} is not allowed: a positive integer")
        if args.processes is not None and args.processes < 1:
            raise SubmitError(f"--processes = {args.processes} is not allowed: a positive integer")
        launches = prepare(args)
        for launch in launches:
            launch.processes = args.processes
        cluster = args.cluster or default_cluster()
        profile = load_profile(cluster)
        check_resources(launches, cluster, profile, args.dry_run)
        check_inputs(launches, profile)
    except (SubmitError, ConfigError) as error:
        print(f"slurm.submit: error: {error}", file=sys.stderr)
        return 2

    failed = 0
    submitted: list[tuple[Launch, jobs.Submission]] = []
    job_of_run_dir: dict[str, str] = {}
    for launch in launches:
        print(f"experiment: {launch.name} ({module_name(launch.module)}, config {launch.config_file})")
        print(f"cluster: {cluster}" + (f" ({args.parallel} job(s) at a time)" if cluster == "local" else ""))
        done = len(launch.points) - len(launch.pending) - len(launch.shared)
        shared = f", {len(launch.shared)} of them computed by an experiment above" if launch.shared else ""
        pending = len(launch.pending) + len(launch.shared)
        print(f"points: {len(launch.points)} in the sweep, {done} finished, {pending} pending{shared}")
        if args.dry_run:
            for point in launch.pending:
                print(f"  pending {point}")
            if profile is not None and launch.pending:
                parameters = profile.sbatch_parameters(launch.job_resources(profile), launch.name)
                size = min(len(launch.pending), profile.max_array_size)
                arrays = -(-len(launch.pending) // profile.max_array_size)
                print(f"submitted as {arrays} job array(s) of at most {profile.max_array_size} jobs")
                print(f"sbatch script of the first:\n{sbatch_script(parameters, launch.log_dir, size)}")
        elif profile is None:
            failed += run_here(launch, cluster, args) if launch.pending else 0
        elif launch.pending or launch.shared:
            try:
                for record in submit_arrays(launch, cluster, profile, job_of_run_dir):
                    submitted.append((launch, record))
            except submitit.core.utils.FailedSubmissionError as error:
                print(f"slurm.submit: error: {launch.name}: {error}", file=sys.stderr)
                return 2
    if args.dry_run:
        print("dry run: nothing submitted")
    elif args.wait and submitted:
        try:
            wait_for_slurm([job_id for _, record in submitted for job_id in record.jobs])
        except SubmitError as error:
            print(f"slurm.submit: error: {error}", file=sys.stderr)
            return 2
        for launch, record in submitted:
            points = {repr(point): point for point in launch.pending + launch.shared}
            job_ids = list(record.jobs)
            error_of = partial(jobs.job_error, launch.log_dir)
            failed += report(launch, job_ids, [points[record.jobs[j]] for j in job_ids], error_of)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
