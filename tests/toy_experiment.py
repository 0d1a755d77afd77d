"""A toy experiment, an Experiment subclass, for tests of slurm.submit and the contract: it squares numbers.

python -m tests.toy_experiment values=[1,2,3] results_dir=/tmp/toy
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.config import ConfigError
from common.experiment import Experiment, register


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


@register("toy.squares")
class Squares(Experiment):
    """Squares each number of ``values`` (an Experiment subclass: the contract slurm.submit launches)."""

    Config = Config
    Point = Point
    axes = ("values",)
    run_name = "toy"

    @classmethod
    def record(cls, cfg: Config, point: Point) -> dict:
        """The point alone: failing on purpose and the inputs folder are how a test runs it, not what it computes."""
        return asdict(point)

    @classmethod
    def compute(cls, cfg: Config, point: Point, run_dir: Path, device) -> tuple[dict, None]:
        if point.value == cfg.fail_on:
            raise RuntimeError(f"toy failure on purpose at value {point.value}")
        offset = 0.0
        if cfg.inputs_dir is not None:
            input_file = Path(cfg.inputs_dir) / f"{point.value}.txt"
            if not input_file.is_file():
                raise FileNotFoundError(f"input file {input_file} of point {point} does not exist")
            offset = float(input_file.read_text())
        return {"square": point.value**2 + offset}, None


if __name__ == "__main__":
    Squares.cli()
