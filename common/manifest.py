"""Each paper's experiments and the resources of their jobs, read from ``<paper>/configs/experiments.yaml``.

A manifest lists, under ``experiments:``, every experiment that ``python -m slurm.submit --paper <paper>`` submits:
the entry point module, its config file in the same folder (the smoke variant is ``<stem>_smoke.yaml`` beside it),
and what one job of its job array (one sweep point) needs:

    experiments:
      fig1a:
        module: sigmoid_attention.synthetic
        config: fig1a.yaml
        resources: {gpus_per_node: 0, cpus_per_task: 2, mem_gb: 8, timeout_min: 120}
        gpu_resources: {gpus_per_node: 1, cpus_per_task: 4, mem_gb: 16, timeout_min: 30}

``tasks_per_node`` (default 1): the data-parallel processes of one job (the entry points that train through
``common.training.fit``: one process per GPU, the global batch shared; ``slurm.submit --processes K`` changes it).
``gpu_resources`` (optional): what one job needs on a GPU, for an experiment that runs on either (the synthetic
sweeps: their ``device: auto`` takes the GPU a job is given). ``slurm.submit --gpu`` asks for them.

Under ``figures:``, the paper's panel table: which synthetic experiments ``python -m common.synthetic.figures
paper=<paper>`` draws (each panel is an experiment above, its points read from that experiment's config), the
error bars, and the experiment of the minimax envelope where the paper has one:

    figures:
      panels: [fig1a, fig1b, fig2a, fig2b]
      optional: [demo]  # drawn only when named (panels=[demo])
      error_sd: 3.0     # error bars of +-3 standard deviations (SG Sec. 5)
      minimax: minimax  # omitted: no minimax envelope
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

from common.config import ConfigError, load_config
from common.experiment import MANIFEST_FILE, PAPERS, REPO_ROOT, VARIANTS  # noqa: F401  (read from here too)


@dataclass
class Resources:
    """What one job needs: GPUs, CPU cores, memory and a wall-clock limit."""

    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: int = 4
    timeout_min: int = 60
    tasks_per_node: int = 1  # > 1: data-parallel processes of one job (one GPU each where it has GPUs)

    def validate(self) -> None:
        for name in ("cpus_per_task", "mem_gb", "timeout_min", "tasks_per_node"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if self.gpus_per_node < 0:
            raise ConfigError.invalid("gpus_per_node", self.gpus_per_node, "an integer >= 0")
        if self.gpus_per_node and self.tasks_per_node > self.gpus_per_node:
            raise ConfigError.invalid(
                "tasks_per_node", self.tasks_per_node, f"at most gpus_per_node = {self.gpus_per_node}: one GPU each"
            )

    def with_processes(self, processes: int) -> "Resources":
        """These resources for ``processes`` data-parallel tasks: one GPU each where the job uses GPUs."""
        gpus = processes if self.gpus_per_node else 0
        resources = replace(self, tasks_per_node=processes, gpus_per_node=gpus)
        resources.validate()
        return resources


@dataclass
class Experiment:
    """One experiment of a paper: its entry point, its config file, and the resources of one job."""

    module: str
    config: str  # a file in the paper's configs/ folder
    resources: Resources = field(default_factory=Resources)
    gpu_resources: Resources | None = None  # what one job needs on a GPU, where it can run on either

    def resources_for(self, gpu: bool) -> Resources:
        """The job resources: ``gpu_resources`` when a GPU is asked for and the experiment has them."""
        return self.gpu_resources if gpu and self.gpu_resources is not None else self.resources


@dataclass
class Figures:
    """A paper's synthetic panels: experiments of its manifest, drawn by ``common.synthetic.figures``."""

    panels: list[str] = field(default_factory=list)  # drawn by default, in this order
    optional: list[str] = field(default_factory=list)  # drawn only when asked for by name
    error_sd: float = 2.0  # error bars of +-error_sd standard deviations
    minimax: str | None = None  # the experiment whose points draw the minimax envelope

    def validate(self) -> None:
        if not self.panels:
            raise ConfigError.invalid("figures.panels", self.panels, "a non-empty list of experiment names")
        if not self.error_sd > 0:
            raise ConfigError.invalid("figures.error_sd", self.error_sd, "a positive number")


@dataclass
class Manifest:
    experiments: dict[str, Experiment] = field(default_factory=dict)
    figures: Figures | None = None  # the paper's synthetic panels, where it has any

    def validate(self) -> None:
        if self.figures is None:
            return
        figures = self.figures
        named = [*figures.panels, *figures.optional, *([figures.minimax] if figures.minimax else [])]
        unknown = [name for name in named if name not in self.experiments]
        if unknown:
            raise ConfigError.invalid("figures", unknown, f"experiments of the manifest: {', '.join(self.experiments)}")


def config_dir(paper: str) -> Path:
    return REPO_ROOT / paper / "configs"


def load_manifest(paper: str) -> dict[str, Experiment]:
    """The experiments of `paper`, in the manifest's order."""
    return read_manifest(paper).experiments


def load_figures(paper: str) -> Figures:
    """The panel table of `paper` (its manifest's ``figures:``); an error naming the papers that have one."""
    figures = read_manifest(paper).figures if paper in PAPERS else None
    if figures is None:
        with_figures = [p for p in PAPERS if read_manifest(p).figures is not None]
        raise ConfigError.invalid("paper", paper, f"a paper with synthetic figures: {', '.join(with_figures)}")
    return figures


def read_manifest(paper: str) -> Manifest:
    if paper not in PAPERS:
        raise ConfigError(f"unknown paper '{paper}'; available: {', '.join(PAPERS)}")
    path = config_dir(paper) / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"paper '{paper}' has no experiment manifest {path}")
    try:
        return load_config(Manifest, path)
    except ConfigError as error:
        raise ConfigError(f"experiment manifest {path}: {error}") from None


def select_experiments(paper: str, names: list[str] | None) -> dict[str, Experiment]:
    """The experiments `names` of `paper` (all of them for None), each checked to exist."""
    experiments = load_manifest(paper)
    if names is None:
        return experiments
    unknown = [name for name in names if name not in experiments]
    if unknown:
        raise ConfigError(
            f"paper '{paper}' has no experiment {', '.join(repr(n) for n in unknown)}; "
            f"available: {', '.join(experiments)}"
        )
    return {name: experiments[name] for name in names}


def config_path(paper: str, experiment: Experiment, variant: str) -> Path:
    """The config file of `experiment` for `variant` (paper or smoke), checked to exist."""
    if variant not in VARIANTS:
        raise ConfigError(f"--variant = {variant!r} is not allowed: one of {', '.join(VARIANTS)}")
    path = config_dir(paper) / experiment.config
    if variant == "smoke":
        path = path.with_name(f"{path.stem}_smoke{path.suffix}")
    if not path.is_file():
        raise ConfigError(f"config file {path} of paper '{paper}' ({variant} variant) does not exist")
    return path
