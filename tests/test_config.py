"""Tests of common.config: defaults, YAML merge, overrides, errors naming key/value/allowed, hashing."""

from dataclasses import dataclass, field
from typing import Any

import pytest

from common.config import ConfigError, cli_config, config_hash, config_to_dict, load_config


@dataclass
class Fit:
    max_iter: int = 100
    tolerance: float = 1e-6


@dataclass
class Expert:
    activation: str = "relu"
    width: int = 2


@dataclass
class Schema:
    seed: int = 0
    name: str | None = None
    normalizer: str = "sigmoid"
    sample_sizes: list[int] = field(default_factory=lambda: [100, 1000])
    learning_rates: list[float] = field(default_factory=lambda: [0.1])
    tags: list[str] = field(default_factory=list)
    use_bias: bool = True
    fit: Fit = field(default_factory=Fit)
    experts: list[Expert] = field(default_factory=lambda: [Expert()])

    def validate(self) -> None:
        if self.normalizer not in ("softmax", "sigmoid"):
            raise ConfigError.invalid("normalizer", self.normalizer, "one of softmax, sigmoid")


@pytest.fixture
def yaml_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("seed: 3\nfit:\n  max_iter: 7\nexperts:\n  - {activation: linear, width: 5}\n  - {}\n")
    return path


def test_defaults_build_a_real_dataclass():
    cfg = load_config(Schema)
    assert isinstance(cfg, Schema) and isinstance(cfg.fit, Fit) and isinstance(cfg.experts[0], Expert)
    assert cfg == Schema()


def test_yaml_file_changes_only_what_it_names(yaml_file):
    cfg = load_config(Schema, yaml_file)
    assert cfg.seed == 3 and cfg.fit.max_iter == 7
    assert cfg.fit.tolerance == 1e-6 and cfg.sample_sizes == [100, 1000]
    assert cfg.experts == [Expert("linear", 5), Expert()]


def test_overrides_apply_after_the_file(yaml_file):
    overrides = [
        "fit.max_iter=50",
        "fit.tolerance=1e-3",
        "sample_sizes=[10,20,30]",
        "learning_rates=[0.5, 1]",
        "tags=[a,b]",
        "name=null",
        "use_bias=false",
        "seed=9",
    ]
    cfg = load_config(Schema, yaml_file, overrides)
    assert cfg.fit == Fit(max_iter=50, tolerance=1e-3)
    assert cfg.sample_sizes == [10, 20, 30] and cfg.learning_rates == [0.5, 1.0] and cfg.tags == ["a", "b"]
    assert cfg.name is None and cfg.use_bias is False and cfg.seed == 9
    assert cfg.experts[0] == Expert("linear", 5)


def test_list_of_dataclasses_from_an_override():
    cfg = load_config(Schema, overrides=["experts=[{width: 3}, {activation: linear}]"])
    assert cfg.experts == [Expert("relu", 3), Expert("linear", 2)]


@pytest.mark.parametrize(
    "override, named",
    [
        ("bogus=1", ["'bogus'", "seed", "fit", "experts"]),
        ("fit.bogus=1", ["'fit.bogus'", "max_iter", "tolerance"]),
    ],
)
def test_unknown_key_names_the_key_and_the_known_keys(override, named):
    with pytest.raises(ConfigError) as error:
        load_config(Schema, overrides=[override])
    for text in named:
        assert text in str(error.value)


def test_unknown_key_in_the_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("fit:\n  max_itr: 3\n")
    with pytest.raises(ConfigError, match=r"'fit\.max_itr'.*bad\.yaml.*max_iter, tolerance"):
        load_config(Schema, path)


@pytest.mark.parametrize(
    "override, named",
    [
        ("fit.max_iter=abc", ["'fit.max_iter'", "'abc'", "expected int"]),
        ("sample_sizes=[1,x]", ["'sample_sizes'", "'x'", "expected list[int]"]),
        ("seed=null", ["'seed'", "None", "expected int"]),
        ("fit=3", ["'fit'", "3", "expected Fit"]),
        ("experts=[{depth: 1}]", ["'experts'", "depth", "expected list[Expert]"]),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(override, named):
    with pytest.raises(ConfigError) as error:
        load_config(Schema, overrides=[override])
    for text in named:
        assert text in str(error.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(Schema, tmp_path / "nope.yaml")


@pytest.mark.parametrize("override", ["seed", "=3", "fit..max_iter=2"])
def test_malformed_override(override):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Schema, overrides=[override])


def test_validate_is_called():
    with pytest.raises(ConfigError, match=r"config field 'normalizer' = 'tanh' is not allowed: one of softmax"):
        load_config(Schema, overrides=["normalizer=tanh"])


def test_validate_of_a_nested_dataclass_is_called():
    @dataclass
    class Inner:
        width: int = 1

        def validate(self) -> None:
            if self.width < 1:
                raise ConfigError.invalid("inner.width", self.width, "a positive integer")

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=Inner)

    with pytest.raises(ConfigError, match="'inner.width' = 0"):
        load_config(Outer, overrides=["inner.width=0"])


def test_config_to_dict_is_plain():
    @dataclass
    class WithTuple:
        pair: tuple = (1, 2)

    assert config_to_dict(WithTuple()) == {"pair": [1, 2]}
    plain = config_to_dict(Schema())
    assert plain["fit"] == {"max_iter": 100, "tolerance": 1e-6}
    assert plain["experts"] == [{"activation": "relu", "width": 2}]


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(Schema()) == config_hash(Schema())
    assert config_hash(Schema()) == config_hash(config_to_dict(Schema()))
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash(Schema()) != config_hash(Schema(fit=Fit(max_iter=101)))
    assert len(config_hash(Schema())) == 12 and int(config_hash(Schema()), 16) >= 0
    # Fixed value: the hash must not change between versions, or finished runs would be recomputed.
    assert config_hash({"value": 1.0}) == "3a7d647740ec"  # sha256 of {"value":1.0}


def test_cli_config_reads_file_and_overrides(yaml_file):
    cfg = cli_config(Schema, ["--config", str(yaml_file), "fit.max_iter=11", "seed=4"])
    assert cfg.fit.max_iter == 11 and cfg.seed == 4 and cfg.experts[0].width == 5


def test_cli_config_exits_2_with_the_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_config(Schema, ["fit.bogus=1"])
    assert exit_info.value.code == 2
    assert "'fit.bogus'" in capsys.readouterr().err


@dataclass
class Named:
    module: str
    expert: Expert = field(default_factory=Expert)

    def validate(self) -> None:
        if not self.module:
            raise ConfigError.invalid("module", self.module, "a module name")


@dataclass
class Registry:
    entries: dict[str, Named] = field(default_factory=dict)


def test_a_dict_of_dataclasses_takes_new_keys_and_checks_each_entry(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("entries:\n  a: {module: x}\n  b: {module: y, expert: {width: 4}}\n")
    registry = load_config(Registry, path)
    assert registry.entries == {"a": Named("x"), "b": Named("y", Expert(width=4))}

    path.write_text("entries:\n  a: {module: x, expert: {depth: 4}}\n")
    with pytest.raises(ConfigError, match="unknown config key 'entries.a.expert.depth'.*activation, width"):
        load_config(Registry, path)
    path.write_text("entries:\n  a: {expert: {width: 4}}\n")
    with pytest.raises(ConfigError, match="'entries.a.module' have no default"):
        load_config(Registry, path)
    path.write_text("entries:\n  a: {module: ''}\n")
    with pytest.raises(ConfigError, match="'module' = '' is not allowed"):  # validate() reaches dict values
        load_config(Registry, path)


@dataclass
class Kwargs:
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    variances: dict[str, float] = field(default_factory=lambda: {"a": 1.0})


def test_free_form_dicts_take_any_keys_and_typed_dicts_keep_theirs(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_kwargs: {depth: 2, act: gelu}\noptions: {hyra: {hidden_dim: 16}}\n")
    cfg = load_config(Kwargs, path, ["options.hyra.embedding_dim=32", "model_kwargs.img_size=32"])
    assert cfg.model_kwargs == {"depth": 2, "act": "gelu", "img_size": 32}
    assert cfg.options == {"hyra": {"hidden_dim": 16, "embedding_dim": 32}}
    with pytest.raises(ConfigError, match="variances.b"):
        load_config(Kwargs, None, ["variances.b=2.0"])
