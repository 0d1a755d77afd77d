"""A real labelled text corpus that installs offline: WordNet noun definitions labelled by their supersense.

    python -m common.data.wordnet --wordnet-dir /usr/share/wordnet --out data/wordnet_supersenses

Princeton WordNet 3.0 (Debian/Ubuntu package `wordnet-base`, installed to /usr/share/wordnet; licence: the WordNet
3.0 licence, free to use and redistribute with its notice) files every noun synset under one of 26 lexicographer
files, its *supersense* (noun.animal, noun.food, ...), and gives it a definition written by a lexicographer. The
task: read the definition ("a large carnivorous feline of Africa") and name the supersense (animal). The command
draws a balanced train/test split of ten supersenses and writes `train.csv` and `test.csv` with the columns
`text` and `label`, the input of `python -m replora.text_classification`.

`data.noun` format (wndb(5WN)): one synset per line, `offset lex_filenum ss_type w_cnt word lex_id ... | gloss`,
where the gloss is the definition followed by `; "example"` sentences. Lines that start with two spaces are the
licence header. Only the definition is kept: examples often contain the word itself.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import ConfigError
from common.data.files import existing_file
from common.runs import atomic_open

# lexicographer file number -> supersense of the noun files (lexnames(5WN): numbers 3-28)
NOUN_SUPERSENSES = {
    3: "Tops", 4: "act", 5: "animal", 6: "artifact", 7: "attribute", 8: "body", 9: "cognition", 10: "communication",
    11: "event", 12: "feeling", 13: "food", 14: "group", 15: "location", 16: "motive", 17: "object", 18: "person",
    19: "phenomenon", 20: "plant", 21: "possession", 22: "process", 23: "quantity", 24: "relation", 25: "shape",
    26: "state", 27: "substance", 28: "time",
}  # fmt: skip
DEFAULT_CLASSES = (
    "act",
    "animal",
    "artifact",
    "body",
    "communication",
    "food",
    "location",
    "person",
    "plant",
    "substance",
)


@dataclass(frozen=True)
class Gloss:
    offset: str  # the synset's byte offset in data.noun (its id)
    supersense: str
    definition: str


def read_noun_glosses(path: str | Path) -> list[Gloss]:
    """Every noun synset of a WordNet `data.noun` file: its offset, supersense and definition."""
    path = existing_file(path, "WordNet data.noun file")
    glosses = []
    with open(path, encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, start=1):
            if line.startswith("  ") or not line.strip():
                continue
            fields, bar, gloss = line.partition(" | ")
            parts = fields.split()
            if not bar or len(parts) < 3 or parts[2] != "n" or not parts[1].isdigit():
                raise ConfigError(
                    f"{path}, line {number}: not a WordNet noun synset line ('offset lex_filenum n ... | gloss')"
                )
            lexfile = int(parts[1])
            if lexfile not in NOUN_SUPERSENSES:
                raise ConfigError(f"{path}, line {number}: lexicographer file {lexfile} is not a noun file (3-28)")
            definition = gloss.split('; "')[0].strip().rstrip(";").strip()
            glosses.append(Gloss(parts[0], NOUN_SUPERSENSES[lexfile], definition))
    if not glosses:
        raise ConfigError(f"{path} holds no synset lines; is it WordNet's data.noun?")
    return glosses


def supersense_split(
    glosses: list[Gloss], classes: tuple[str, ...], train_per_class: int, test_per_class: int, seed: int
) -> tuple[list[Gloss], list[Gloss]]:
    """A balanced (train, test) split: per class, distinct definitions drawn without replacement."""
    unknown = [c for c in classes if c not in NOUN_SUPERSENSES.values()]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError.invalid("classes", list(classes), f"two or more of {', '.join(NOUN_SUPERSENSES.values())}")
    generator = np.random.default_rng(seed)
    train, test = [], []
    for label in classes:
        seen, members = set(), []
        for gloss in glosses:  # one synset per definition text: no duplicate across train and test
            if gloss.supersense == label and gloss.definition and gloss.definition not in seen:
                seen.add(gloss.definition)
                members.append(gloss)
        needed = train_per_class + test_per_class
        if len(members) < needed:
            raise ConfigError(f"supersense {label!r} has {len(members)} distinct definitions, fewer than {needed}")
        chosen = [members[i] for i in generator.choice(len(members), size=needed, replace=False)]
        train += chosen[:train_per_class]
        test += chosen[train_per_class:]
    return train, test


def write_csv(path: Path, glosses: list[Gloss]) -> None:
    with atomic_open(path, "w") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label", "synset"])
        for gloss in glosses:
            writer.writerow([gloss.definition, gloss.supersense, gloss.offset])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.data.wordnet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet-dir", default="/usr/share/wordnet", help="folder holding WordNet's data.noun")
    parser.add_argument("--out", required=True, help="folder to write train.csv and test.csv to")
    parser.add_argument("--classes", default=",".join(DEFAULT_CLASSES), help="comma-separated supersenses")
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        glosses = read_noun_glosses(Path(args.wordnet_dir) / "data.noun")
        train, test = supersense_split(
            glosses, tuple(args.classes.split(",")), args.train_per_class, args.test_per_class, args.seed
        )
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train.csv", train)
    write_csv(out / "test.csv", test)
    print(
        f"wrote {len(train)} train and {len(test)} test definitions of {len(set(g.supersense for g in train))} "
        f"supersenses to {out}"
    )


if __name__ == "__main__":
    main()
