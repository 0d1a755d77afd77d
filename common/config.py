"""Typed experiment configs: a dataclass schema, a YAML file of differences, dotted command-line overrides.

An experiment declares its config as a dataclass with defaults; a run builds it with

    cfg = load_config(Config, "sigmoid_attention/configs/fig1a.yaml", ["sample_sizes=[100,200]"])

or, in an entry point, `cfg = cli_config(Config)`, which reads `--config FILE key=value ...` from the
command line. The schema is an OmegaConf structured config: unknown keys and values of the wrong type are
errors that name the dotted key, the value and what is allowed. Allowed values beyond the type (a string
from a fixed set, a positive number) are checked by an optional `validate(self)` method of the dataclass
or of any dataclass nested in it, which raises `ConfigError.invalid(...)`.
"""

import argparse
import dataclasses
import hashlib
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that cannot be built: missing file, unknown key, wrong type or a value validate() rejects."""

    @classmethod
    def invalid(cls, field: str, value: Any, allowed: str) -> "ConfigError":
        """The error for a field whose value has the right type but is not allowed (raised in validate())."""
        return cls(f"config field '{field}' = {value!r} is not allowed: {allowed}")


def _type_name(annotation: Any) -> str:
    """Readable name of a field annotation: `int`, `list[float]`, `str | None`, `Fit`."""
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if not args:
        return getattr(annotation, "__name__", str(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    return f"{typing.get_origin(annotation).__name__}[{', '.join(_type_name(arg) for arg in args)}]"


def _expected_type(node: DictConfig, key: str) -> str:
    """The annotated type of field `key` of a structured config node, as text."""
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        return _type_name(typing.get_type_hints(schema)[key])
    return "a value OmegaConf accepts for this field"


def _first_line(error: Exception) -> str:
    return str(error).split("\n", 1)[0]


def _is_open_mapping(node: DictConfig) -> bool:
    """Whether `node` is a field that takes entries of any name: dict[str, Dataclass] (named entries of one schema)
    or a free-form dict[str, Any] / dict[str, dict[...]] (keyword arguments handed on). Other dict fields keep the
    keys of their defaults, e.g. per-block settings, and refuse unknown ones."""
    if OmegaConf.get_type(node) is not dict:
        return False
    element = node._metadata.element_type
    return dataclasses.is_dataclass(element) or element is Any or typing.get_origin(element) is dict


def _merge(node: DictConfig, data: Mapping, prefix: str, source: str) -> None:
    """Merge nested `data` into the structured config `node` key by key: each error names its dotted key."""
    for key, value in data.items():
        full_key = f"{prefix}{key}"
        known = [str(k) for k in node.keys()]
        if key not in known and _is_open_mapping(node):
            element = node._metadata.element_type
            if not dataclasses.is_dataclass(element):  # free-form: the value as written
                node[key] = value
                continue
            # A dict[str, Dataclass] field takes new keys, each from the dataclass defaults (required fields MISSING).
            node[key] = OmegaConf.structured(element)
        elif key not in known:
            level = f"of '{prefix[:-1]}'" if prefix else "at the top level"
            raise ConfigError(
                f"unknown config key '{full_key}' (= {value!r}) in {source}; known keys {level}: {', '.join(known)}"
            )
        child = None if OmegaConf.is_missing(node, key) else node[key]
        if isinstance(value, Mapping) and isinstance(child, DictConfig):
            _merge(child, value, f"{full_key}.", source)
            continue
        try:
            OmegaConf.update(node, key, value, merge=True)
        except OmegaConfBaseException as error:
            raise ConfigError(
                f"config field '{full_key}' = {value!r} in {source} has the wrong type: expected "
                f"{_expected_type(node, key)} ({_first_line(error)})"
            ) from error


def _read_yaml(path: Path) -> Mapping:
    """The mapping written in a YAML config file."""
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (yaml.YAMLError, OmegaConfBaseException) as error:
        raise ConfigError(f"config file '{path}' is not valid YAML: {error}") from error
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def _parse_override(override: str) -> Mapping:
    """`fit.max_iter=50` -> {"fit": {"max_iter": 50}}; the value is parsed as YAML."""
    key, sep, _ = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{override}' is not of the form dotted.key=value")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([override]), resolve=False)
    except (yaml.YAMLError, OmegaConfBaseException) as error:
        raise ConfigError(f"override '{override}' has a value that is not valid YAML: {error}") from error


def _validate(obj: Any) -> None:
    """Call validate() on every dataclass in the config tree, innermost first."""
    if dataclasses.is_dataclass(obj):
        for field in dataclasses.fields(obj):
            _validate(getattr(obj, field.name))
        if callable(getattr(obj, "validate", None)):
            obj.validate()
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _validate(item)
    elif isinstance(obj, Mapping):
        for item in obj.values():
            _validate(item)


def load_config(schema: type[T], config_file: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build and validate a `schema` instance: dataclass defaults <- YAML file <- `key=value` overrides."""
    cfg = OmegaConf.structured(schema)
    if config_file is not None:
        _merge(cfg, _read_yaml(Path(config_file)), "", f"config file '{config_file}'")
    for override in overrides:
        _merge(cfg, _parse_override(override), "", f"override '{override}'")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"config fields {', '.join(repr(k) for k in missing)} have no default and were not set; "
            "set them in the config file or as key=value overrides"
        )
    try:
        instance = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(f"config of {schema.__name__} cannot be built: {_first_line(error)}") from error
    _validate(instance)
    return instance


def config_to_dict(cfg: Any) -> Any:
    """The config as plain nested Python data: dataclasses -> dicts, tuples -> lists (what YAML/JSON hold)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {field.name: config_to_dict(getattr(cfg, field.name)) for field in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(key): config_to_dict(value) for key, value in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(item) for item in cfg]
    return cfg


def flatten(values: Mapping, separator: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level: {"a": {"b": 1}} -> {"a.b": 1} (leaves as they are; empty mappings vanish)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, separator, f"{name}{separator}")
        else:
            out[name] = value
    return out


def config_hash(cfg: Any) -> str:
    """12 hex characters of the sha256 of the config's canonical JSON (sorted keys)."""
    canonical = json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every entry point's config arguments, `[--config FILE] [key=value ...]`, to `parser`."""
    parser.add_argument("--config", metavar="FILE", help="YAML file of values that differ from the defaults")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides applied after the file, e.g. fit.max_iter=50",
    )


def cli_config(schema: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """An entry point's config from its command line `[--config FILE] [key=value ...]`; exits 2 if invalid."""
    main_spec = getattr(sys.modules["__main__"], "__spec__", None)  # set when run as `python -m module`
    parser = argparse.ArgumentParser(
        prog=f"python -m {main_spec.name}" if main_spec else None,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    try:
        return load_config(schema, args.config, args.overrides)
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
