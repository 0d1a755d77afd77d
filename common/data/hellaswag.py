"""HellaSwag evaluation by completion likelihood (the protocol of quadratic-gating Table 3).

    examples = load_hellaswag("data/hellaswag/hellaswag_val.jsonl")
    accuracy = hellaswag_accuracy(model, encode, examples)     # encode: text -> list of token ids

Each example is a context and four endings, one of them right (`label`). The model reads context + ending for each
of the four; the prediction is the ending whose tokens have the lowest mean cross-entropy given what precedes them
(the likelihood normalised by ending length, so that long endings are not penalised for their length). Endings are
scored with a leading space, as the text continues the context. The file format is the released one: one JSON object
per line with `ctx`, `endings` (4 strings) and `label`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from common.config import ConfigError
from common.data.files import existing_file


def load_hellaswag(path: str | Path) -> list[dict]:
    """The examples of a HellaSwag jsonl file, each checked to have a context, four endings and a label 0-3."""
    path = existing_file(path, "HellaSwag file")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"HellaSwag file '{path}', line {number}: not JSON ({error})") from None
        endings, label = record.get("endings"), record.get("label")
        if not isinstance(record.get("ctx"), str) or not isinstance(endings, list) or len(endings) != 4:
            raise ConfigError(f"HellaSwag file '{path}', line {number}: needs 'ctx' (text) and 4 'endings'")
        if str(label) not in ("0", "1", "2", "3"):
            raise ConfigError(f"HellaSwag file '{path}', line {number}: label {label!r} is not 0, 1, 2 or 3")
        examples.append({"ctx": record["ctx"], "endings": endings, "label": int(label)})
    if not examples:
        raise ConfigError(f"HellaSwag file '{path}' has no examples")
    return examples


@torch.no_grad()
def ending_losses(
    model: nn.Module, encode: Callable[[str], list[int]], example: dict, max_tokens: int | None = None
) -> torch.Tensor:
    """The mean cross-entropy of each ending's tokens given the context (4,), one padded batch of 4 rows. With
    `max_tokens` (the model's context length), the context loses its first tokens so that every row fits."""
    context = encode(example["ctx"])
    endings = [encode(" " + ending) for ending in example["endings"]]
    if max_tokens is not None:
        longest = max(len(ending) for ending in endings)
        if longest >= max_tokens:
            raise ConfigError(f"a HellaSwag ending of {longest} tokens does not fit the model's {max_tokens}")
        context = context[max(0, len(context) + longest - max_tokens) :]
    rows = [context + ending for ending in endings]
    width = max(len(row) for row in rows)
    ids = torch.zeros(4, width, dtype=torch.long)
    mask = torch.zeros(4, width)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, len(context) : len(row)] = 1  # the ending's tokens
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device)).logits.float().cpu()  # (4, width, vocabulary)
    losses = nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (4, w - 1)
    weights = mask[:, 1:]
    return (losses * weights).sum(1) / weights.sum(1)


def hellaswag_accuracy(
    model: nn.Module, encode: Callable[[str], list[int]], examples: list[dict], max_tokens: int | None = None
) -> float:
    """Accuracy (%) of the lowest-mean-loss ending over `examples`."""
    model.eval()
    correct = sum(
        int(ending_losses(model, encode, example, max_tokens).argmin()) == example["label"] for example in examples
    )
    return 100.0 * correct / len(examples)
