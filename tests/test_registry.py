"""One table-driven test over every experiment the manifests list: each meets the Experiment contract on its smoke
config (a sweep of unique run directories, nothing computed twice, bad inputs refused before any work, jobs listed by
`slurm.submit --dry-run`)."""

import pytest

from common import manifest as papers
from common import runs
from common.config import ConfigError, load_config
from common.experiment import PAPERS, REGISTRY, Experiment
from slurm import submit

EXPERIMENTS = [(paper, name) for paper in PAPERS for name in papers.load_manifest(paper)]
# the config field that names each real experiment's input; the synthetic sweeps read nothing
INPUT_FIELD = {
    "quadratic_gating.timeseries": "csv_path",
    "quadratic_gating.language": "text_path",
    "quadratic_gating.vision": "data_root",
    "quadratic_gating.imagenet": "data_root",
    "quadratic_gating.pretrain": "shards_dir",  # with tokenizer=bytes: GPT-2's is on the hub, not here
    "quadratic_gating.wikitext": "data",
    "replora.vision": "data_root",
    "hyra.vision": "data_root",
    "replora.commonsense": "data_root",
    "hyra.commonsense": "data_root",
    "replora.text_classification": "train_csv",
    "replora.video": "data_root",
    "replora.vision_language": "annotations_dir",
}


def smoke(paper: str, name: str, tmp_path, *overrides) -> tuple[type[Experiment], object]:
    entry = papers.load_manifest(paper)[name]
    experiment = submit.import_experiment(entry.module)
    path = papers.config_path(paper, entry, "smoke")
    try:
        return experiment, load_config(experiment.Config, path, [f"results_dir={tmp_path}", *overrides])
    except ConfigError as error:  # the WordNet CSVs of the text configs (common.data.wordnet makes them)
        pytest.skip(f"the smoke config's inputs are not on this machine: {error}")


def test_every_manifest_module_registers_one_experiment_under_its_papers_name():
    for paper, name in EXPERIMENTS:
        experiment = submit.import_experiment(papers.load_manifest(paper)[name].module)
        assert REGISTRY[experiment.name] is experiment and experiment.name.startswith(f"{paper}.")
    assert set(INPUT_FIELD) <= set(REGISTRY)


@pytest.mark.parametrize(("paper", "name"), EXPERIMENTS)
def test_the_smoke_sweep_has_unique_run_directories_and_a_finished_sweep_computes_nothing(
    paper, name, tmp_path, monkeypatch
):
    experiment, cfg = smoke(paper, name, tmp_path)
    points = experiment.sweep(cfg)
    dirs = [experiment.point_dir(cfg, point) for point in points]
    assert points and len(set(dirs)) == len(dirs)
    while True:  # a staged sweep grows once its first stage is finished
        for point in points:
            finished = {"finished": True, "accuracy": 50.0, "val_accuracy": 50.0}  # what a staged grid selects on
            runs.write_run(experiment.point_dir(cfg, point), experiment.record(cfg, point), finished)
        grown = experiment.sweep(cfg)
        if len(grown) == len(points):
            break
        points = grown

    def refuse(*args, **kwargs):
        raise AssertionError(f"{experiment.name} computed a finished point")

    monkeypatch.setattr(experiment, "check_inputs", classmethod(lambda cls, cfg: None))
    monkeypatch.setattr(experiment, "compute", classmethod(refuse))
    monkeypatch.setattr("common.synthetic.sweep.fit_problems", refuse)  # the synthetic sweeps' own program
    experiment.main(cfg)
    assert all(experiment.is_done(cfg, point) for point in points)


@pytest.mark.parametrize(("paper", "name"), [e for e in EXPERIMENTS if not e[1].startswith(("fig", "minimax"))])
def test_a_missing_input_is_refused_before_any_work(paper, name, tmp_path):
    experiment = submit.import_experiment(papers.load_manifest(paper)[name].module)
    if experiment.name not in INPUT_FIELD:
        pytest.skip(f"{experiment.name} reads no input")
    field = INPUT_FIELD[experiment.name]
    missing = tmp_path / "nowhere"
    offline = ["tokenizer=bytes"] if experiment.name == "quadratic_gating.pretrain" else []
    entry = papers.load_manifest(paper)[name]
    overrides = [f"results_dir={tmp_path / 'results'}", f"{field}={missing}", *offline]
    with pytest.raises(ConfigError, match="nowhere|" + field):  # when the config is read, or its inputs
        experiment.check_inputs(load_config(experiment.Config, papers.config_path(paper, entry, "smoke"), overrides))
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("paper", "name"), EXPERIMENTS)
def test_the_launcher_lists_the_jobs_of_every_experiment(paper, name, tmp_path, monkeypatch, capsys):
    experiment, _ = smoke(paper, name, tmp_path)  # skips where the smoke config's inputs are absent
    monkeypatch.setattr(experiment, "check_inputs", classmethod(lambda cls, cfg: None))  # its data: not here
    profiles = tmp_path / "clusters"
    profiles.mkdir()
    (profiles / "gpus.yaml").write_text("partition: gpu\nmax_gpus_per_node: 8\n")
    monkeypatch.setattr(submit, "PROFILES_DIR", profiles)
    monkeypatch.setattr(submit, "slurm_partitions", lambda: None)  # a SLURM cluster here (CI) has no 'gpu' partition
    args = ["--paper", paper, "--experiments", name, "--variant", "smoke", "--cluster", "gpus", "--dry-run"]
    assert submit.main([*args, f"results_dir={tmp_path / 'r'}"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"experiment: {paper}.{name} ({experiment.__module__}" in out and "pending" in out
    assert "dry run: nothing submitted" in out


@pytest.mark.parametrize("paper", PAPERS)
def test_every_panel_of_a_figures_table_is_a_synthetic_experiment_of_the_manifest(paper):
    table, entries = papers.load_figures(paper), papers.load_manifest(paper)
    for name in [*table.panels, *table.optional, *([table.minimax] if table.minimax else [])]:
        experiment = submit.import_experiment(entries[name].module)
        assert experiment.run_name == "points", f"{paper}: panel {name} draws {experiment.name}, not a sweep"


def test_a_figures_table_naming_an_unknown_experiment_is_refused(tmp_path):
    path = tmp_path / papers.MANIFEST_FILE
    path.write_text(
        "experiments:\n  fig1a: {module: sigmoid_attention.synthetic, config: fig1a.yaml}\n"
        "figures: {panels: [fig1a, fig9], error_sd: 3.0}\n"
    )
    with pytest.raises(ConfigError, match=r"'figures' = \['fig9'\] is not allowed: experiments of the manifest: fig1a"):
        load_config(papers.Manifest, path)
    path.write_text("experiments: {}\nfigures: {panels: []}\n")
    with pytest.raises(ConfigError, match="figures.panels"):
        load_config(papers.Manifest, path)
    with pytest.raises(ConfigError, match="'paper' = 'nope' is not allowed"):
        papers.load_figures("nope")
