"""Labelled text from a CSV file: any file with a text column and a label column.

    train = read_labelled_csv("data/train.csv")                      # columns `text` and `label`
    test = read_labelled_csv("data/test.csv", classes=train.classes)  # same label numbering as train

Labels may be names or integers; the classes are the sorted distinct labels of the training file (integers in
numeric order), numbered 0, 1, ... A test label that the training file does not have is an error naming the file,
the row and the label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from common.config import ConfigError
from common.data.files import existing_file


@dataclass
class LabelledText:
    texts: list[str]
    labels: list[int]  # class ids: positions in `classes`
    classes: list[str]


def csv_columns(path: str | Path) -> list[str]:
    """The header of a CSV file."""
    path = existing_file(path, "CSV file")
    with open(path, newline="", encoding="utf-8") as file:
        return next(csv.reader(file), [])


def check_columns(path: str | Path, columns: dict[str, str]) -> None:
    """Raise unless the CSV at `path` has every column named in `columns` (config field -> column name)."""
    header = csv_columns(path)
    for field_name, column in columns.items():
        if column not in header:
            raise ConfigError(
                f"config field '{field_name}' = {column!r}: CSV file '{path}' has no such column; it has {header}"
            )


def _sorted_classes(labels: set[str]) -> list[str]:
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def read_labelled_csv(
    path: str | Path, text_column: str = "text", label_column: str = "label", classes: list[str] | None = None
) -> LabelledText:
    """The rows of a CSV file as texts and class ids; `classes` fixes the numbering (else: the file's labels)."""
    check_columns(path, {"text_column": text_column, "label_column": label_column})
    texts, raw = [], []
    with open(path, newline="", encoding="utf-8") as file:
        for row_number, row in enumerate(csv.DictReader(file), start=2):
            text, label = (row[text_column] or "").strip(), (row[label_column] or "").strip()
            if not text or not label:
                empty = text_column if not text else label_column
                raise ConfigError(f"CSV file '{path}', row {row_number}: column {empty!r} is empty")
            texts.append(text)
            raw.append(label)
    if not texts:
        raise ConfigError(f"CSV file '{path}' has a header but no rows")
    if classes is None:
        classes = _sorted_classes(set(raw))
    index = {name: i for i, name in enumerate(classes)}
    labels = []
    for row_number, label in enumerate(raw, start=2):
        if label not in index:
            raise ConfigError(
                f"CSV file '{path}', row {row_number}: label {label!r} is not a class of the training data; "
                f"classes: {', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}"
            )
        labels.append(index[label])
    return LabelledText(texts, labels, list(classes))
