"""A toy experiment following the launcher's module contract, for tests of slurm.submit: it squares numbers.

python -m tests.toy_experiment values=[1,2,3] results_dir=/tmp/toy
"""

from dataclasses import dataclass, field
from pathlib import Path

from common import runs
from common.config import ConfigError, cli_config


@dataclass
class Config:
    """The numbers to square, where to write them, and a number whose job fails on purpose (None: none).

    With `inputs_dir`, each point adds the number in <inputs_dir>/<value>.txt to its square: a point whose file
    is missing fails when it runs (a bad data path that only its job meets)."""

    results_dir: str = "results"
    values: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])
    fail_on: float | None = None
    inputs_dir: str | None = None

    def validate(self) -> None:
        if any(value < 0 for value in self.values):
            raise ConfigError.invalid("values", self.values, "non-negative numbers")
        if self.inputs_dir is not None and not Path(self.inputs_dir).is_dir():
            raise ConfigError.invalid("inputs_dir", self.inputs_dir, "an existing directory")


@dataclass(frozen=True)
class Point:
    """One sweep point: the number to square."""

    value: float


def sweep(cfg: Config) -> list[Point]:
    return [Point(value) for value in cfg.values]


def point_dir(cfg: Config, point: Point) -> Path:
    return runs.run_dir(cfg.results_dir, "toy", point)


def is_done(cfg: Config, point: Point) -> bool:
    return runs.is_done(point_dir(cfg, point))


def run_point(cfg: Config, point: Point) -> Path:
    path = point_dir(cfg, point)
    if runs.is_done(path):
        return path
    if point.value == cfg.fail_on:
        raise RuntimeError(f"toy failure on purpose at value {point.value}")
    offset = 0.0
    if cfg.inputs_dir is not None:
        input_file = Path(cfg.inputs_dir) / f"{point.value}.txt"
        if not input_file.is_file():
            raise FileNotFoundError(f"input file {input_file} of point {point} does not exist")
        offset = float(input_file.read_text())
    return runs.write_run(path, point, {"square": point.value**2 + offset})


def main(cfg: Config) -> None:
    for point in sweep(cfg):
        if not is_done(cfg, point):
            run_point(cfg, point)


if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
