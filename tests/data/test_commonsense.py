"""The commonsense-reasoning protocol of LLM-Adapters: prompts, training features, answer extraction, accuracy and
the readers' checks, on small files in the real formats and a byte-level tokenizer built in the test."""

import json
from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.generation import GenerationMode

from common.config import ConfigError
from common.data.commonsense import (
    accuracy,
    extract_answer,
    generation_config,
    load_records,
    load_test,
    load_train,
    prompt,
    tokenize_for_training,
)
from tests.fixtures import byte_tokenizer

# A few records per task, written as LLM-Adapters writes them (the answer format is spelled out in the instruction).
TEST_RECORDS: dict[str, list[dict[str, str]]] = {
    "boolq": [
        {
            "instruction": "Please answer the following question with true or false, question: is the sun a star?"
            "\n\nAnswer format: true/false",
            "input": "",
            "output": "the correct answer is true",
            "answer": "true",
        },
        {
            "instruction": "Please answer the following question with true or false, question: is ice hot?"
            "\n\nAnswer format: true/false",
            "input": "",
            "output": "the correct answer is false",
            "answer": "false",
        },
    ],
    "piqa": [
        {
            "instruction": "Please choose the correct solution to the question: To boil water\n\n"
            "Solution1: heat it in a pot\n\nSolution2: put it in the freezer\n\nAnswer format: solution1/solution2",
            "input": "",
            "output": "the correct answer is solution1",
            "answer": "solution1",
        },
    ],
    "social_i_qa": [
        {
            "instruction": "Please choose the correct answer to the question: Sam helped a friend move. How would "
            "the friend feel?\n\nAnswer1: grateful Answer2: angry Answer3: bored\n\n"
            "Answer format: answer1/answer2/answer3",
            "input": "",
            "output": "the correct answer is answer1",
            "answer": "answer1",
        },
    ],
    "hellaswag": [
        {
            "instruction": "Please choose the correct ending to complete the given sentence: A man is mowing the "
            "lawn. He\n\nEnding1: flies away. Ending2: eats the mower. Ending3: sings opera. Ending4: pushes the "
            "mower to the end of the row.\n\nAnswer format: ending1/ending2/ending3/ending4",
            "input": "",
            "output": "the correct answer is ending4",
            "answer": "ending4",
        },
    ],
    "winogrande": [
        {
            "instruction": "Please choose the correct answer to fill in the blank to complete the given sentence: "
            "The cup did not fit in the bag because _ was too big.\n\nOption1: cup Option2: bag\n\n"
            "Answer format: option1/option2",
            "input": "",
            "output": "the correct answer is option1",
            "answer": "option1",
        },
    ],
    "ARC-Easy": [
        {
            "instruction": "Please choose the correct answer to the question: Which is a liquid at room "
            "temperature?\n\nAnswer1: iron Answer2: water Answer3: salt Answer4: wood\n\n"
            "Answer format: answer1/answer2/answer3/answer4",
            "input": "",
            "output": "the correct answer is answer2",
            "answer": "answer2",
        },
    ],
    "ARC-Challenge": [
        {
            "instruction": "Please choose the correct answer to the question: Which process moves water from "
            "leaves to air?\n\nAnswer1: melting Answer2: erosion Answer3: transpiration Answer4: condensation "
            "Answer5: freezing\n\nAnswer format: answer1/answer2/answer3/answer4/answer5",
            "input": "",
            "output": "the correct answer is answer3",
            "answer": "answer3",
        },
    ],
    "openbookqa": [
        {
            "instruction": "Please choose the correct answer to the question: A magnet attracts\n\n"
            "Answer1: wood Answer2: glass Answer3: plastic Answer4: iron nails\n\n"
            "Answer format: answer1/answer2/answer3/answer4",
            "input": "",
            "output": "the correct answer is answer4",
            "answer": "answer4",
        },
    ],
}

TRAIN_RECORDS = [record for records in TEST_RECORDS.values() for record in records] + [
    {
        "instruction": "Answer the question about the passage with true or false.",
        "input": "Passage: Water boils at 100 degrees Celsius at sea level. Question: does water boil at 100 C?",
        "output": "the correct answer is true",
        "answer": "true",
    }
]


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, data) -> Path:
    return write_text(path, json.dumps(data))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """`commonsense_170k.json` and `<task>/test.json` for all eight tasks, as in LLM-Adapters' dataset folder."""
    write_json(tmp_path / "commonsense_170k.json", TRAIN_RECORDS)
    for task, records in TEST_RECORDS.items():
        write_json(tmp_path / task / "test.json", records)
    return tmp_path


def n_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


# --- prompts ---------------------------------------------------------------------------------------------------------


def test_prompt_without_input_is_the_alpaca_form():
    record = {"instruction": "Is the sky blue?", "input": "", "output": "the correct answer is true", "answer": "true"}
    head = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nIs the sky blue?\n\n### Response:\n"
    )
    assert prompt(record, with_output=False) == head
    assert prompt(record, with_output=True) == head + "the correct answer is true"


def test_prompt_with_input_is_the_alpaca_form():
    record = {"instruction": "Answer true or false.", "input": "Sky: blue?", "output": "true", "answer": "true"}
    head = (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request."
        "\n\n### Instruction:\nAnswer true or false.\n\n### Input:\nSky: blue?\n\n### Response:\n"
    )
    assert prompt(record, with_output=False) == head
    assert prompt(record, with_output=True) == head + "true"


# --- training features -----------------------------------------------------------------------------------------------

RECORD = TRAIN_RECORDS[-1]
FULL = prompt(RECORD, with_output=True)
HEAD = prompt(RECORD, with_output=False)


def test_a_record_that_fits_ends_with_eos_and_is_all_labelled():
    features = tokenize_for_training(RECORD, byte_tokenizer(), cutoff_len=1024)
    assert features["input_ids"] == list(FULL.encode("utf-8")) + [256]
    assert features["labels"] == features["input_ids"]
    assert features["attention_mask"] == [1] * (n_bytes(FULL) + 1)


def test_a_truncated_record_is_cut_to_cutoff_len_without_eos():
    features = tokenize_for_training(RECORD, byte_tokenizer(), cutoff_len=50)
    assert features["input_ids"] == list(FULL.encode("utf-8"))[:50]
    assert len(features["attention_mask"]) == len(features["labels"]) == 50


@pytest.mark.parametrize(
    "room, eos_appended",
    [(1, True), (0, False)],
    ids=["one-token-of-room-takes-eos", "exact-fit-has-no-room-for-eos"],
)
def test_eos_is_appended_only_where_it_fits(room, eos_appended):
    cutoff_len = n_bytes(FULL) + room
    input_ids = tokenize_for_training(RECORD, byte_tokenizer(), cutoff_len=cutoff_len)["input_ids"]
    assert len(input_ids) <= cutoff_len
    assert (input_ids[-1] == 256) is eos_appended


def test_eos_already_added_by_the_tokenizer_is_not_doubled():
    input_ids = tokenize_for_training(RECORD, byte_tokenizer(eos_at_end=True), cutoff_len=1024)["input_ids"]
    assert input_ids == list(FULL.encode("utf-8")) + [256]


def test_without_train_on_inputs_only_the_response_is_labelled():
    features = tokenize_for_training(RECORD, byte_tokenizer(), cutoff_len=1024, train_on_inputs=False)
    head = n_bytes(HEAD)
    assert features["labels"][:head] == [-100] * head
    assert features["labels"][head:] == list(RECORD["output"].encode("utf-8")) + [256]
    assert features["input_ids"] == list(FULL.encode("utf-8")) + [256]


def test_without_train_on_inputs_a_prompt_cut_by_cutoff_len_leaves_nothing_labelled():
    features = tokenize_for_training(RECORD, byte_tokenizer(), cutoff_len=40, train_on_inputs=False)
    assert features["labels"] == [-100] * 40


# --- answer extraction -----------------------------------------------------------------------------------------------


def sequence(task: str, response: str) -> str:
    """A decoded prompt + generation: the prompt lists every answer word ("Answer format: ...")."""
    return prompt(TEST_RECORDS[task][0], with_output=False) + response


EXTRACTIONS = [
    # (task, generated text, extracted answer)
    ("boolq", sequence("boolq", "the correct answer is false"), "false"),
    ("boolq", "false, not true", "false"),
    ("boolq", "The correct answer is TRUE", "true"),
    ("boolq", "the correct answer is answer1", ""),
    ("piqa", sequence("piqa", "the correct answer is solution2"), "solution2"),
    ("piqa", "solution2 rather than solution1", "solution2"),
    ("piqa", "Solution1", "solution1"),
    ("piqa", "solution3", ""),
    ("social_i_qa", sequence("social_i_qa", "the correct answer is answer3"), "answer3"),
    ("social_i_qa", "answer2, then answer1", "answer2"),
    ("social_i_qa", "ANSWER3", "answer3"),
    ("social_i_qa", "answer6", ""),
    ("hellaswag", sequence("hellaswag", "the correct answer is ending2"), "ending2"),
    ("hellaswag", "ending4 before ending1", "ending4"),
    ("hellaswag", "Ending3.", "ending3"),
    ("hellaswag", "ending5", ""),
    ("winogrande", sequence("winogrande", "the correct answer is option2"), "option2"),
    ("winogrande", "option2 or option1", "option2"),
    ("winogrande", "Option1", "option1"),
    ("winogrande", "the correct answer is answer1", ""),
    ("ARC-Easy", sequence("ARC-Easy", "the correct answer is answer4"), "answer4"),
    ("ARC-Easy", "answer5 answer1", "answer5"),
    ("ARC-Easy", "Answer2", "answer2"),
    ("ARC-Easy", "I am not sure", ""),
    ("ARC-Challenge", sequence("ARC-Challenge", "the correct answer is answer5"), "answer5"),
    ("ARC-Challenge", "answer3 and answer2", "answer3"),
    ("ARC-Challenge", "The correct answer is Answer1", "answer1"),
    ("ARC-Challenge", "ending1", ""),
    ("openbookqa", sequence("openbookqa", "the correct answer is answer2"), "answer2"),
    ("openbookqa", "answer1 answer4", "answer1"),
    ("openbookqa", "ANSWER4", "answer4"),
    ("openbookqa", sequence("openbookqa", "I cannot tell"), ""),
]


@pytest.mark.parametrize("task, text, expected", EXTRACTIONS)
def test_extract_answer_takes_the_first_answer_word_of_the_response(task, text, expected):
    assert extract_answer(task, text) == expected


def test_accuracy_is_the_share_of_exact_matches():
    generations = [
        sequence("ARC-Easy", "the correct answer is answer2"),
        "the correct answer is answer3",
        "Answer2",
        "no idea",
    ]
    assert accuracy("ARC-Easy", generations, ["answer2", "answer2", "answer2", "answer2"]) == 0.5


# --- readers ---------------------------------------------------------------------------------------------------------


def test_readers_return_the_records_as_written(data_root):
    assert load_train(data_root / "commonsense_170k.json") == TRAIN_RECORDS
    for task, records in TEST_RECORDS.items():
        assert load_test(data_root, task) == records


def test_generation_config_is_beam_search_that_generate_accepts():
    settings = generation_config()
    assert GenerationConfig(**settings).get_generation_mode() == GenerationMode.BEAM_SEARCH
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=257,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        eos_token_id=256,
        pad_token_id=256,
    )
    model = LlamaForCausalLM(config).eval()
    prompt_ids = torch.tensor([list(b"### Response:\n")])
    with torch.no_grad():
        output = model.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids), **settings)
    assert prompt_ids.shape[1] < output.shape[1] <= prompt_ids.shape[1] + settings["max_new_tokens"]


# --- bad input -------------------------------------------------------------------------------------------------------

GOOD = TEST_RECORDS["boolq"][0]
WITHOUT_ANSWER = {key: value for key, value in GOOD.items() if key != "answer"}

BAD_INPUT = [
    # (id, call on the data root, fragments the message must hold)
    ("unknown-task-test", lambda root: load_test(root, "siqa"), ["'siqa'", "social_i_qa", "ARC-Easy", "openbookqa"]),
    ("unknown-task-extract", lambda root: extract_answer("BoolQ", "true"), ["'BoolQ'", "boolq", "winogrande"]),
    ("unknown-task-accuracy", lambda root: accuracy("arc", ["answer1"], ["answer1"]), ["'arc'", "ARC-Challenge"]),
    ("missing-train-file", lambda root: load_train(root / "nowhere.json"), ["nowhere.json", "does not exist"]),
    ("missing-test-file", lambda root: load_test(root / "absent", "piqa"), [str(Path("absent/piqa/test.json"))]),
    ("not-json", lambda root: load_records(write_text(root / "bad.json", "[{")), ["bad.json", "not valid JSON"]),
    (
        "an-object-not-a-list",
        lambda root: load_records(write_json(root / "obj.json", GOOD)),
        ["obj.json", "list of records", "dict"],
    ),
    ("empty-list", lambda root: load_records(write_json(root / "empty.json", [])), ["empty.json", "empty list"]),
    (
        "a-record-that-is-not-an-object",
        lambda root: load_records(write_json(root / "mixed.json", [GOOD, "true"])),
        ["mixed.json", "record 1", "JSON object", "str"],
    ),
    (
        "a-record-without-answer",
        lambda root: load_train(write_json(root / "train.json", [GOOD, GOOD, WITHOUT_ANSWER])),
        ["train.json", "record 2", "'answer'", "instruction, input, output, answer"],
    ),
    (
        "a-value-that-is-not-text",
        lambda root: load_records(write_json(root / "typed.json", [{**GOOD, "input": None}])),
        ["typed.json", "record 0", "'input'", "None", "string"],
    ),
    (
        "an-answer-outside-the-task-vocabulary",
        lambda root: load_test(
            write_json(root / "boolq" / "test.json", [GOOD, {**GOOD, "answer": "yes"}]).parents[1], "boolq"
        ),
        [str(Path("boolq/test.json")), "record 1", "'yes'", "true, false"],
    ),
    (
        "an-siqa-answer-extraction-cannot-return",
        lambda root: load_test(
            write_json(root / "social_i_qa" / "test.json", [{**GOOD, "answer": "answer6"}]).parents[1], "social_i_qa"
        ),
        ["record 0", "'answer6'", "answer1, answer2, answer3, answer4, answer5"],
    ),
    ("unpaired-accuracy", lambda root: accuracy("piqa", ["solution1"], []), ["1 generations", "0 answers"]),
    ("empty-accuracy", lambda root: accuracy("piqa", [], []), ["no generations"]),
    (
        "cutoff-len-not-positive",
        lambda root: tokenize_for_training(GOOD, byte_tokenizer(), cutoff_len=0),
        ["cutoff_len", "0", "positive integer"],
    ),
]


@pytest.mark.parametrize("call, fragments", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_refused_with_a_message_naming_it(tmp_path, call, fragments):
    with pytest.raises(ConfigError) as error:
        call(tmp_path)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_a_tokenizer_without_eos_is_refused():
    tokenizer = byte_tokenizer()
    tokenizer.eos_token = None
    with pytest.raises(ConfigError, match="no EOS token"):
        tokenize_for_training(GOOD, tokenizer)
