"""Opening the files of a dataset: a missing file or broken JSON is a ConfigError that names the file."""

import json
from pathlib import Path
from typing import Any

from common.config import ConfigError


def existing_file(path: str | Path, kind: str) -> Path:
    """`path`, which must be a file; `kind` says what it is in the error ("split file", "data file", ...)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{kind} '{path}' does not exist")
    return path


def read_json(path: str | Path, kind: str) -> Any:
    """The parsed content of the JSON file `path`, which must exist and be valid JSON."""
    path = existing_file(path, kind)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{kind} '{path}' is not valid JSON: {error}") from error
