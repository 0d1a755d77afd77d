"""Nothing computed is orphaned: every committed record keeps the hash that names its directory, and every shipped
config's sweep keeps its run directories (tests/golden_run_dirs.json, written before the entry points were
refactored).

    python -m tests.test_golden_hashes   # rewrite the golden file: only when a change of hashes is intended
"""

import contextlib
import json
from pathlib import Path

import pytest
import yaml

from common import manifest as papers
from common.config import ConfigError, config_hash, load_config
from slurm import submit

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden_run_dirs.json")
CHECKOUT = Path("/checkout")  # where relative input paths are taken to be, so that hashes do not depend on the clone


@contextlib.contextmanager
def checkout_independent_paths():
    """Records hash input paths made absolute (a config's data_root, csv_path, ...): read here, a relative path is
    made absolute against CHECKOUT instead of the working directory, the same in every clone."""
    absolute = Path.absolute
    Path.absolute = lambda self: self if self.is_absolute() else CHECKOUT / self
    try:
        yield
    finally:
        Path.absolute = absolute


def shipped(paper: str, name: str, variant: str):
    """(experiment, config) of a shipped config, its results under records/<paper>: a staged sweep (grid_at) grows
    from the points it finds done, so it is read against the committed records, the same everywhere."""
    experiment = papers.load_manifest(paper)[name]
    module = submit.import_experiment(experiment.module)
    path = papers.config_path(paper, experiment, variant)
    return module, load_config(module.Config, path, [f"results_dir={ROOT / 'records' / paper}"])


def run_dirs(module, cfg) -> list[str]:
    with checkout_independent_paths():
        dirs = [Path(module.point_dir(cfg, p)) for p in module.sweep(cfg)]
    return sorted(str(d.relative_to(cfg.results_dir)) for d in dirs)


def shipped_run_dirs() -> dict[str, list[str]]:
    """'<paper>.<experiment>:<variant>' -> the run directories of its sweep, relative to its results_dir (configs
    whose inputs are not on this machine are left out: their records hash the inputs' contents)."""
    out = {}
    for paper in papers.PAPERS:
        for name in papers.load_manifest(paper):
            for variant in papers.VARIANTS:
                try:
                    out[f"{paper}.{name}:{variant}"] = run_dirs(*shipped(paper, name, variant))
                except ConfigError as error:
                    print(f"left out {paper}.{name}:{variant}: {error}")
    return out


# Fields a run writes beside its hashed record (the record of text classification names the model directory it
# read, which its hash replaces by the model's content)
WRITTEN_BESIDE = {"text_classification": ("model_dir",)}


def test_every_committed_record_is_named_by_the_hash_of_its_config():
    configs = sorted((ROOT / "records").rglob("config.yaml"))
    assert len(configs) > 1000
    wrong = []
    for path in configs:
        record = yaml.safe_load(path.read_text())
        for field in WRITTEN_BESIDE.get(path.parent.parent.name, ()):
            record.pop(field)
        if config_hash(record) != path.parent.name:
            wrong.append(str(path))
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("key", sorted(json.loads(GOLDEN.read_text())) if GOLDEN.exists() else [])
def test_every_shipped_config_keeps_its_run_directories(key):
    paper, rest = key.split(".", 1)
    name, variant = rest.split(":")
    try:
        module, cfg = shipped(paper, name, variant)
    except ConfigError as error:  # e.g. the WordNet CSVs of the text configs, made by common.data.wordnet
        pytest.skip(f"the config's inputs are not on this machine: {error}")
    assert run_dirs(module, cfg) == json.loads(GOLDEN.read_text())[key]  # a sweep's order is not what it computes


def test_the_golden_file_covers_every_shipped_experiment():
    golden = json.loads(GOLDEN.read_text())
    manifests = {f"{p}.{n}:{v}" for p in papers.PAPERS for n in papers.load_manifest(p) for v in papers.VARIANTS}
    assert set(golden) == manifests, sorted(manifests - set(golden))


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(shipped_run_dirs(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
