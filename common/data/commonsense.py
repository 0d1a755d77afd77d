"""Commonsense-reasoning data and evaluation of LLaMA-7B/13B fine-tuning (RepLoRA App. C / HyRA App. C.1, LLM-Adapters
protocol).

The eight tasks' training sets are merged into one file; the model is fine-tuned on Alpaca-style prompts and then
scored per task by exact match of the answer word (`answer2`, `true`, ...) in its generated response:

    from common.data.commonsense import TASKS, accuracy, generation_config, load_test, load_train, prompt
    from common.data.commonsense import tokenize_for_training

    train = load_train("data/commonsense/commonsense_170k.json")
    features = [tokenize_for_training(record, tokenizer, cutoff_len=256) for record in train]
    test = load_test("data/commonsense", "boolq")  # data/commonsense/boolq/test.json
    inputs = tokenizer([prompt(r, with_output=False) for r in test], return_tensors="pt", padding=True)
    texts = tokenizer.batch_decode(model.generate(**inputs, **generation_config()), skip_special_tokens=True)
    print(TASKS["boolq"], accuracy("boolq", texts, [r["answer"] for r in test]))  # RepLoRA 7B: 0.718 (Table 1)

Layouts (those of LLM-Adapters): the training file is a JSON list of records `{"instruction", "input", "output",
"answer"}` (`input` may be empty); each task's test set is `root/<task>/test.json` with the same keys, where
`answer` is one word of the task's answer vocabulary (`ANSWERS`). The readers check a whole file before it is used
and raise `ConfigError` naming the file, the record, the value and what is allowed.
"""

import re
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from common.config import ConfigError
from common.data.files import read_json

# Decoding defaults of LLM-Adapters' commonsense evaluation script (commonsense_evaluate.py, evaluate()).
NUM_BEAMS = 4
TEMPERATURE = 0.1
TOP_P = 0.75
TOP_K = 40
MAX_NEW_TOKENS = 32

TEST_FILE = "test.json"
RECORD_KEYS = ("instruction", "input", "output", "answer")
RESPONSE_MARKER = "### Response:"

# LLM-Adapters folder name -> name in the papers' tables (RepLoRA Table 1, HyRA Table 3), in the tables' order.
TASKS: dict[str, str] = {
    "boolq": "BoolQ",
    "piqa": "PIQA",
    "social_i_qa": "SIQA",
    "hellaswag": "HellaSwag",
    "winogrande": "WinoGrande",
    "ARC-Easy": "ARC-e",
    "ARC-Challenge": "ARC-c",
    "openbookqa": "OBQA",
}

# The words the answer extraction of each task can return. SIQA has three choices and OBQA four, but LLM-Adapters
# reads every multiple-choice task with one pattern, answer1..answer5; a test answer outside this set could
# never be matched, so the test reader rejects it.
_CHOICES = tuple(f"answer{k}" for k in range(1, 6))
ANSWERS: dict[str, tuple[str, ...]] = {
    "boolq": ("true", "false"),
    "piqa": ("solution1", "solution2"),
    "social_i_qa": _CHOICES,
    "hellaswag": tuple(f"ending{k}" for k in range(1, 5)),
    "winogrande": ("option1", "option2"),
    "ARC-Easy": _CHOICES,
    "ARC-Challenge": _CHOICES,
    "openbookqa": _CHOICES,
}

_ANSWER_PATTERNS = {task: re.compile("|".join(map(re.escape, words))) for task, words in ANSWERS.items()}

_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n" + RESPONSE_MARKER + "\n"
)
_PROMPT_WITHOUT_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n" + RESPONSE_MARKER + "\n"
)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError.invalid("task", task, f"one of {', '.join(TASKS)}")


def prompt(record: dict[str, str], with_output: bool) -> str:
    """The Alpaca prompt of a record: with its output for training, without it (ending at the response) to generate."""
    template = _PROMPT_WITH_INPUT if record["input"] else _PROMPT_WITHOUT_INPUT
    text = template.format(instruction=record["instruction"], input=record["input"])
    return text + record["output"] if with_output else text


def _token_ids(tokenizer: PreTrainedTokenizerBase, text: str, cutoff_len: int) -> list[int]:
    return list(tokenizer(text, truncation=True, max_length=cutoff_len, padding=False)["input_ids"])


def tokenize_for_training(
    record: dict[str, str], tokenizer: PreTrainedTokenizerBase, cutoff_len: int = 256, train_on_inputs: bool = True
) -> dict[str, list[int]]:
    """The causal-LM features of a training record: `input_ids`, `attention_mask` and `labels` (-100 = no loss).

    The prompt with its output is cut to `cutoff_len` tokens. EOS ends it only where it fits, so a truncated record
    teaches the model no false end of answer. With `train_on_inputs=False` the loss is on the response tokens only.
    """
    if isinstance(cutoff_len, bool) or not isinstance(cutoff_len, int) or cutoff_len < 1:
        raise ConfigError.invalid("cutoff_len", cutoff_len, "a positive integer")
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"tokenizer {type(tokenizer).__name__} has no EOS token; set tokenizer.eos_token")
    input_ids = _token_ids(tokenizer, prompt(record, with_output=True), cutoff_len)
    if input_ids[-1] != tokenizer.eos_token_id and len(input_ids) < cutoff_len:
        input_ids.append(tokenizer.eos_token_id)
    labels = list(input_ids)
    if not train_on_inputs:
        prompt_len = len(_token_ids(tokenizer, prompt(record, with_output=False), cutoff_len))
        labels = [-100 if position < prompt_len else token for position, token in enumerate(labels)]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def extract_answer(task: str, text: str) -> str:
    """The task's answer word that comes first in a generated response (lowercased), or "" when none does.

    `text` may be the whole decoded sequence: only what follows the first response marker is read, since the
    prompt itself lists every answer word ("Answer format: answer1/answer2/...").
    """
    _check_task(task)
    _, marker, response = text.partition(RESPONSE_MARKER)
    match = _ANSWER_PATTERNS[task].search((response if marker else text).lower())
    return match.group(0) if match else ""


def accuracy(task: str, generations: list[str], answers: list[str]) -> float:
    """The fraction of generations whose extracted answer equals the record's `answer` (exact match), in [0, 1]."""
    _check_task(task)
    if len(generations) != len(answers):
        raise ConfigError(
            f"accuracy of {task}: {len(generations)} generations but {len(answers)} answers; they must pair up"
        )
    if not answers:
        raise ConfigError(f"accuracy of {task}: no generations to score; at least one is needed")
    correct = sum(extract_answer(task, text) == answer for text, answer in zip(generations, answers, strict=True))
    return correct / len(answers)


def load_records(path: str | Path) -> list[dict[str, str]]:
    """The records of a JSON file in the LLM-Adapters format, each checked to have the four keys with text values."""
    data = read_json(path, "data file")
    if not isinstance(data, list) or not data:
        found = "an empty list" if data == [] else type(data).__name__
        raise ConfigError(f"data file '{path}' must hold a non-empty JSON list of records, got {found}")
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise ConfigError(f"data file '{path}': record {index} must be a JSON object, got {type(record).__name__}")
        for key in RECORD_KEYS:
            if key not in record:
                raise ConfigError(
                    f"data file '{path}': record {index} has no key '{key}'; every record needs "
                    f"{', '.join(RECORD_KEYS)}"
                )
            if not isinstance(record[key], str):
                raise ConfigError(f"data file '{path}': record {index} key '{key}' = {record[key]!r} must be a string")
    return data


def load_train(path: str | Path) -> list[dict[str, str]]:
    """The merged training set of the eight tasks (`commonsense_170k.json`).

    Its `answer` fields are not checked against a task's vocabulary: training learns from the prompt and `output`
    only, and a merged record does not say which task it comes from.
    """
    return load_records(path)


def load_test(root: str | Path, task: str) -> list[dict[str, str]]:
    """The test set of one task, `root/<task>/test.json`, each `answer` checked to be one extraction can return."""
    _check_task(task)
    path = Path(root) / task / TEST_FILE
    records = load_records(path)
    for index, record in enumerate(records):
        if record["answer"] not in ANSWERS[task]:
            raise ConfigError(
                f"data file '{path}': record {index} has answer {record['answer']!r}, which {task} cannot score; "
                f"allowed: {', '.join(ANSWERS[task])}"
            )
    return records


def generation_config() -> dict[str, Any]:
    """The decoding settings of the evaluation, as keyword arguments of `model.generate`.

    LLM-Adapters never sets `do_sample`, so decoding is deterministic beam search and the sampling settings
    (temperature, top-p, top-k) have no effect; they are kept to state the published protocol in full.
    """
    return {
        "num_beams": NUM_BEAMS,
        "do_sample": False,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "top_k": TOP_K,
        "max_new_tokens": MAX_NEW_TOKENS,
    }
