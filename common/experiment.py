"""The contract every experiment entry point meets, stated once: an ``Experiment`` subclass, registered by name.

An experiment is a config (a validated dataclass), a point type (one run of its sweep) and ``compute``; the base
class owns everything else, the same way for every entry point:

    @register("toy.squares")
    class Squares(Experiment):
        Config = SquaresConfig      # a dataclass with validate(); its RunSettings fields are never hashed
        Point = SquarePoint         # a frozen dataclass: one run of the sweep
        axes = ("values",)          # config fields whose product is the sweep (Point's fields, in order)
        run_name = "squares"        # runs live in <results_dir>/<run_name>/<hash of the record>

        @classmethod
        def compute(cls, cfg, point, run_dir, device):
            return {"square": point.value**2}, None   # results (json), arrays (npz) or None

    if __name__ == "__main__":
        Squares.cli()

What the base class gives every experiment: ``sweep`` (the product of ``axes``), ``record`` (the point, then the
config without its run settings and axes: the hashed record, overridable where an older record must keep its
hash; ``paths`` fields as absolute paths), ``point_dir``, ``is_done``, ``run_point`` (skip if done; threads; seed;
time; ``compute``; write the record,
results last; drop the checkpoint), ``main`` and ``cli``; optional ``check_inputs`` (read by ``slurm.submit``
before it submits anything) and ``summary`` (one line per computed point). ``slurm.submit`` launches the experiment
a module registers (one per module) exactly as it launches the older module contract.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch

from common import runs
from common.config import ConfigError, cli_config, config_to_dict
from common.training import distributed
from common.training.monitor import Monitor, Progress
from common.training.sweeps import device_of

REGISTRY: dict[str, type[Experiment]] = {}
REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_FILE = "experiments.yaml"  # <paper>/configs/experiments.yaml: what slurm.submit --paper submits
VARIANTS = ("paper", "smoke")  # a config <stem>.yaml and its small <stem>_smoke.yaml


def papers() -> tuple[str, ...]:
    """The papers: the folders of the repository with an experiment manifest, in alphabetical order. The launcher,
    the Makefile, the smoke tests and the benchmarks read the list here."""
    return tuple(sorted(path.parent.parent.name for path in REPO_ROOT.glob(f"*/configs/{MANIFEST_FILE}")))


PAPERS = papers()


@dataclass
class RunSettings:
    """How and where runs execute, never what they compute: no field of these enters a run's hash. A config
    that has any of them (by these names) keeps them out of its record."""

    results_dir: str = "results"
    device: str = "auto"  # auto: the first GPU when one is visible
    threads: int = 0  # torch CPU threads (0: torch's default)
    num_workers: int = 0  # data-loading processes (torch.utils.data.DataLoader's name)
    eval_batch_size: int | None = None
    checkpoint_every: int | None = None  # training steps between checkpoints
    # a training entry point's (common.training.monitor.Monitoring): progress bar or lines, curves' tracker
    progress: bool = True
    progress_seconds: float = 30.0
    tracker: str = "tensorboard"


RUN_SETTINGS = tuple(f.name for f in fields(RunSettings))


def register(name: str):
    """Class decorator: register an Experiment subclass as ``<paper>.<name>``."""
    paper, _, short = name.partition(".")
    if not paper or not short or not all(part.isidentifier() for part in (paper, short)):
        raise ValueError(f"experiment name {name!r} is not allowed: '<paper>.<name>', both identifiers")

    def decorate(cls: type[Experiment]) -> type[Experiment]:
        if not (isinstance(cls, type) and issubclass(cls, Experiment)):
            raise TypeError(f"@register({name!r}) decorates Experiment subclasses, not {cls!r}")
        known = REGISTRY.get(name)
        # the same class again is fine: a module run as __main__ and imported by its name, or reloaded
        modules = {known.__module__, cls.__module__} - {"__main__"} if known is not None else set()
        if known is not None and (len(modules) > 1 or known.__qualname__ != cls.__qualname__):
            raise ValueError(f"experiment {name!r} is registered twice: {known.__module__} and {cls.__module__}")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return decorate


def registered_in(module_name: str) -> type[Experiment]:
    """The experiment that module ``module_name`` registers (one per launchable module), importing it."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"experiment module '{module_name}' cannot be imported: {error}") from error
    registered = [cls for cls in REGISTRY.values() if cls.__module__ == module.__name__]
    if len(registered) != 1:
        found = ", ".join(cls.name for cls in registered) or "none"
        raise ConfigError(
            f"experiment module '{module_name}' registers {found}: a launchable module registers one Experiment "
            "subclass (common.experiment: @register('<paper>.<name>'))"
        )
    return registered[0]


class Experiment:
    """An entry point: ``Config``, ``Point``, ``axes``, ``run_name`` and ``compute``; the rest is shared."""

    name: ClassVar[str] = ""  # set by @register
    Config: ClassVar[type]
    Point: ClassVar[type]
    axes: ClassVar[tuple[str, ...]] = ()
    run_name: ClassVar[str] = "runs"
    paths: ClassVar[tuple[str, ...]] = ()  # config fields holding input paths: recorded as absolute paths

    # --- what a subclass states --------------------------------------------------------------------
    @classmethod
    def compute(cls, cfg: Any, point: Any, run_dir: Path, device: torch.device) -> tuple[dict, dict | None]:
        """One point's results (json-able) and arrays (numpy, or None). ``run_dir`` exists, for checkpoints."""
        raise NotImplementedError(f"{cls.__qualname__} does not define compute")

    # reads and checks a config's inputs (data, models) and returns them: a staticmethod; None: no inputs
    load_inputs: ClassVar[Any] = None
    # trains through common.training.fit with nothing else written per process: runs as K data-parallel processes
    # (torchrun, or slurm.submit's tasks_per_node); its config's ``optimization`` holds the global batch
    data_parallel: ClassVar[bool] = False

    @classmethod
    def check_processes(cls, cfg: Any, processes: int) -> None:
        """Raise ConfigError, before any work, where ``processes`` data-parallel processes cannot run ``cfg``."""
        if processes <= 1:
            return
        if not cls.data_parallel:
            raise ConfigError(
                f"{cls.name or cls.__qualname__} runs in one process, not {processes}: launch it without torchrun, "
                "--processes or tasks_per_node"
            )
        schedule = cfg.optimization
        distributed.check_batches(0, schedule.batch_size, schedule.micro_batch_size, processes)

    @classmethod
    def check_inputs(cls, cfg: Any) -> None:
        """Raise ConfigError naming a missing or unreadable input; called before any work or submission. By default,
        ``load_inputs`` read once."""
        if cls.load_inputs is not None:
            cls.load_inputs(cfg)

    @classmethod
    def summary(cls, point: Any, results: dict) -> str:
        """One line about a computed point."""
        shown = ", ".join(f"{k}={v:.4g}" for k, v in results.items() if isinstance(v, float) and k != "seconds")
        return f"{point}: {shown}"

    # --- the shared contract -----------------------------------------------------------------------
    @classmethod
    def sweep(cls, cfg: Any) -> list:
        """Every point: the product of the ``axes`` fields of the config, in order."""
        return [cls.Point(*values) for values in itertools.product(*(getattr(cfg, axis) for axis in cls.axes))]

    @classmethod
    def record(cls, cfg: Any, point: Any) -> dict:
        """The hashed record of a point: the point, then the config without its run settings and axes."""
        config = {k: v for k, v in config_to_dict(cfg).items() if k not in RUN_SETTINGS and k not in cls.axes}
        config.update({name: str(Path(getattr(cfg, name)).absolute()) for name in cls.paths})
        return {**asdict(point), **config}

    @classmethod
    def monitor(cls, cfg: Any, point: Any, run_dir: Path) -> Monitor:
        """The progress and tracker of one point's training, as the config's run settings ask (``fit`` and
        ``predictions`` take it; close it after the last metric)."""
        if not distributed.is_main():
            return Monitor()  # the other processes of a data-parallel run show and write nothing
        label = " ".join(f"{k}={v}" for k, v in asdict(point).items())
        return Monitor.of(cfg, run_dir, cls.record(cfg, point), name=label)

    @classmethod
    def point_dir(cls, cfg: Any, point: Any) -> Path:
        return runs.run_dir(cfg.results_dir, cls.run_name, cls.record(cfg, point))

    @classmethod
    def is_done(cls, cfg: Any, point: Any) -> bool:
        return runs.is_done(cls.point_dir(cfg, point))

    @classmethod
    def run_point(cls, cfg: Any, point: Any) -> Path:
        """Compute one point and write its record, results last (nothing if it is done); returns its run dir."""
        path = cls.point_dir(cfg, point)
        if runs.is_done(path):
            return path
        seed = getattr(point, "seed", getattr(cfg, "seed", None))
        if seed is not None:
            torch.manual_seed(seed)
        if getattr(cfg, "threads", 0):
            torch.set_num_threads(cfg.threads)
        device = distributed.setup(device_of(getattr(cfg, "device", "cpu")))  # several processes: join them
        path.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        results, arrays = cls.compute(cfg, point, path, device)
        results = {**results, "seconds": time.perf_counter() - start}
        if distributed.is_main():
            extra = {"processes": distributed.world_size()} if distributed.active() else {}
            runs.write_run(path, cls.record(cfg, point), {**results, **extra}, arrays, seed=seed, device=str(device))
            (path / runs.CHECKPOINT_FILE).unlink(missing_ok=True)
        distributed.barrier()  # every process sees the point done before it goes on
        return path

    @classmethod
    def main(cls, cfg: Any) -> None:
        """Check the inputs, then compute every point not done yet, one line each; again while the sweep grows (a
        staged sweep adds points once the ones it selects from are done)."""
        cls.check_processes(cfg, distributed.world_size())
        cls.check_inputs(cfg)
        while True:
            points = cls.sweep(cfg)
            pending = [i for i, point in enumerate(points, start=1) if not cls.is_done(cfg, point)]
            main_process = distributed.is_main()
            progress = Progress(
                len(points), cls.name or cls.__qualname__, initial=len(points) - len(pending), unit="point",
                enabled=getattr(cfg, "progress", True) and main_process, every=1,
                seconds=getattr(cfg, "progress_seconds", 30.0),
            )  # fmt: skip
            for left, i in enumerate(pending):
                point = points[i - 1]
                done = len(points) - len(pending) + left
                progress.write(f"[{i}/{len(points)}] running {point} ({done} done, {len(pending) - left} pending)")
                path = cls.run_point(cfg, point)
                if main_process:
                    summary = cls.summary(point, runs.read_run(path)["results"])
                    print(f"[{i}/{len(points)}] {summary} ({path})", flush=True)
                progress.update()
            progress.close()
            if len(cls.sweep(cfg)) == len(points):
                return

    @classmethod
    def cli(cls, argv=None) -> None:
        """``python -m <module> [--config FILE] [key=value ...]``: the config from the command line, then main."""
        description = getattr(sys.modules.get(cls.__module__), "__doc__", None) or cls.__doc__
        cls.main(cli_config(cls.Config, argv, description=description))
