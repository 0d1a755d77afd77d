"""Nothing computed is orphaned: every committed record keeps the hash that names its directory, and every shipped
config's sweep keeps its run directories (tests/golden_run_dirs.json, written before the entry points were
refactored).

    python -m tests.test_golden_hashes   # rewrite the golden file: only when a change of hashes is intended
"""

import json
from pathlib import Path

import pytest
import yaml

from common.config import config_hash, load_config
from slurm import papers, submit

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden_run_dirs.json")


def shipped_run_dirs() -> dict[str, list[str]]:
    """'<paper>.<experiment>:<variant>' -> the run directories of its sweep, relative to its results_dir."""
    out = {}
    for paper in papers.PAPERS:
        for name, experiment in papers.load_manifest(paper).items():
            module = submit.import_experiment(experiment.module)
            for variant in papers.VARIANTS:
                cfg = load_config(module.Config, papers.config_path(paper, experiment, variant))
                root = Path(cfg.results_dir)
                dirs = [module.point_dir(cfg, point) for point in module.sweep(cfg)]
                out[f"{paper}.{name}:{variant}"] = [str(Path(d).relative_to(root)) for d in dirs]
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
    golden = json.loads(GOLDEN.read_text())[key]
    paper, rest = key.split(".", 1)
    name, variant = rest.split(":")
    experiment = papers.load_manifest(paper)[name]
    module = submit.import_experiment(experiment.module)
    cfg = load_config(module.Config, papers.config_path(paper, experiment, variant))
    dirs = [str(Path(module.point_dir(cfg, point)).relative_to(Path(cfg.results_dir))) for point in module.sweep(cfg)]
    assert sorted(dirs) == sorted(golden)  # the order of a sweep is not part of what it computes


def test_the_golden_file_covers_every_shipped_experiment():
    golden = json.loads(GOLDEN.read_text())
    manifests = {f"{p}.{n}:{v}" for p in papers.PAPERS for n in papers.load_manifest(p) for v in papers.VARIANTS}
    assert set(golden) == manifests


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(shipped_run_dirs(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
