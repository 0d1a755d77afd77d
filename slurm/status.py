"""What became of submitted experiments: per paper and experiment, the points done, pending, running and failed.

    python -m slurm.status [--paper PAPER] [--results-root DIR] [--lines N]

Reads the submission records that `python -m slurm.submit` writes under DIR (default `results`), the run
directories (a point with results.json is done, whatever its job did), the SLURM queue (pending, running,
requeued ...) and submitit's result files and logs (a failed job's error and the last N lines of its log).
Exit code 0, or 1 when a point failed (its job ended without writing the result).
"""

import argparse
import contextlib
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from common import manifest as papers
from common.config import ConfigError, load_config
from slurm import jobs
from slurm.submit import SubmitError, import_experiment

OTHER = "other"  # submissions of modules outside the papers (tests, your own)


@dataclass
class PointState:
    point: str
    state: str  # done | pending | running | ... (SLURM's state, lower case) | failed | not submitted | unknown
    job_id: str | None = None
    log_dir: str | None = None  # where the job's submitit files are
    error: str = ""


def paper_of(submission: jobs.Submission) -> str:
    paper = submission.module.split(".")[0]
    return paper if paper in papers.PAPERS else OTHER


def point_states(submissions: list[jobs.Submission]) -> list[PointState]:
    """The state of every point of the sweep that `submissions` (one experiment and config, oldest first) ran."""
    latest = submissions[-1]
    with contextlib.chdir(latest.cwd):  # the config's relative paths are relative to where it was submitted
        return _point_states(submissions, latest)


def _point_states(submissions: list[jobs.Submission], latest: jobs.Submission) -> list[PointState]:
    module = import_experiment(latest.module)
    cfg = load_config(module.Config, latest.config_file, latest.overrides)
    job_of = {point: job_id for submission in submissions for job_id, point in submission.jobs.items()}
    log_dir_of = {job_id: submission.log_dir for submission in submissions for job_id in submission.jobs}
    states = []
    for point in module.sweep(cfg):
        key = repr(point)
        job_id = job_of.get(key)
        state = "done" if module.is_done(cfg, point) else "" if job_id else "not submitted"
        states.append(PointState(key, state, job_id, log_dir_of.get(job_id)))
    waiting = [state for state in states if not state.state]
    queue = jobs.queue_states([state.job_id for state in waiting])
    for state in waiting:
        slurm_state = None if queue is None else queue.get(state.job_id)
        if jobs.is_active(slurm_state):
            state.state = slurm_state.lower()
        elif queue is None and jobs.job_result(state.log_dir, state.job_id) is None:
            state.state = "unknown"  # no squeue here, and no result yet
        else:
            state.state = "failed"
            state.error = jobs.job_error(state.log_dir, state.job_id, slurm_state).strip().splitlines()[-1]
    return states


def print_experiment(name: str, submissions: list[jobs.Submission], lines: int) -> int:
    """Print one experiment's summary and its failures; returns the number of failed points."""
    latest = submissions[-1]
    source = latest.config_file or "defaults"
    if latest.overrides:
        source += " " + " ".join(latest.overrides)
    try:
        states = point_states(submissions)
    except (SubmitError, ConfigError) as error:
        print(f"  {name} ({source}): cannot read its sweep: {error}")
        return 0
    counts = Counter(state.state for state in states)
    summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    print(f"  {name} ({source}; last submitted {latest.time_utc} to {latest.cluster}): {len(states)} points: {summary}")
    failed = [state for state in states if state.state == "failed"]
    for state in failed:
        print(f"    FAILED {state.point} (job {state.job_id}): {state.error}")
        tail = jobs.log_tail(state.log_dir, state.job_id, lines)
        print(f"      log {jobs.job_paths(state.log_dir, state.job_id).stderr}" + (":" if tail else " (empty or none)"))
        for line in tail.splitlines():
            print(f"      | {line}")
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slurm.status", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--paper", help=f"one of {', '.join(papers.PAPERS)} (default: every submission)")
    parser.add_argument("--results-root", default="results", help="where the results are (default: results)")
    parser.add_argument("--lines", type=int, default=20, help="log lines shown per failed job (default 20)")
    args = parser.parse_args(argv)
    error = None
    if args.paper is not None and args.paper not in papers.PAPERS:
        error = f"unknown paper '{args.paper}'; available: {', '.join(papers.PAPERS)}"
    elif not Path(args.results_root).is_dir():
        error = f"--results-root '{args.results_root}' is not a directory"
    if error:
        print(f"slurm.status: error: {error}", file=sys.stderr)
        return 2

    # One experiment = one experiment name with one config: its submissions, oldest first.
    experiments: dict[str, dict[tuple, list[jobs.Submission]]] = defaultdict(dict)
    for submission in jobs.read_submissions(args.results_root):
        key = (submission.experiment, submission.config_file, tuple(submission.overrides))
        experiments[paper_of(submission)].setdefault(key, []).append(submission)
    shown = [args.paper] if args.paper else sorted(experiments)
    failed = 0
    for paper in shown:
        print(paper)
        manifest = [] if paper == OTHER else [f"{paper}.{name}" for name in papers.load_manifest(paper)]
        order = {name: index for index, name in enumerate(manifest)}
        for (name, _, _), submissions in sorted(
            experiments[paper].items(), key=lambda item: order.get(item[0][0], len(order))
        ):
            failed += print_experiment(name, submissions, args.lines)
        submitted = {name for name, _, _ in experiments[paper]}
        for name in manifest:
            if name not in submitted:
                print(f"  {name}: no submission recorded under {args.results_root}")
    if not shown:
        print(f"no submission recorded under {args.results_root}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
