"""Image-text and video-text tasks of the vision-language experiments (RepLoRA Tables 5, 6, 15, 16; VL-Adapter's
protocol): annotation readers in the official releases' formats, one `Example` per model input.

    from common.data.features import FeatureStore, check_media
    from common.data.vision_language import read_task, split_names

    train = read_task("vqa", "data/vqa", "train")  # data/vqa/v2_OpenEnded_mscoco_train2014_questions.json + ...
    train[0].text, train[0].media, train[0].answers  # 'What is ...?', ('coco_458752',), {'net': 1.0, 'mesh': 0.3}
    store = FeatureStore("data/features/coco_clip.h5")  # python -m common.data.clip_features source=images ...
    check_media(train, store)  # every example's features are there, before any training step
    grid = store[train[0].media[0]]  # (49, 768) float32: CLIP ViT-B/32 patch tokens of the image

An `Example` names the features it reads by their feature-store keys (`media`): `<prefix><image or video id>` with
the prefix of `MEDIA_PREFIXES` (VQA and COCO captioning share the COCO images' `coco_` keys). The readers never
open an image, a video or a feature file.

Layouts, each file directly under `annotations_dir` (the official releases):

- VQA v2 (splits `train`, `val` = the train2014 / val2014 files):
  `v2_OpenEnded_mscoco_{train2014,val2014}_questions.json`, `{"questions": [{"image_id", "question",
  "question_id"}, ...]}`, and `v2_mscoco_{train2014,val2014}_annotations.json`, `{"annotations": [{"question_id",
  "image_id", "answers": [{"answer", "answer_confidence", "answer_id"} x 10], "multiple_choice_answer",
  "answer_type", "question_type"}, ...]}`. Media `coco_<image_id>` (the integer, no zero padding). `answers` maps
  each distinct normalised human answer to its soft score (`vqa_soft_scores`); `targets` are those answers, best
  scored first.
- GQA balanced (splits `train`, `val`, `testdev`): `{train,val,testdev}_balanced_questions.json`, a JSON object
  question id -> `{"imageId", "question", "answer", "fullAnswer", ...}`. Media `gqa_<imageId>`; the short
  `answer` is the target, scored by exact match.
- NLVR2 (splits `train`, `dev`, `test1`): `{train,dev,test1}.json`, JSON lines `{"identifier": "dev-850-0-0",
  "sentence", "label": "True" | "False", ...}`. The identifier `<split>-<a>-<b>-<c>` is sentence c about the image
  pair `<split>-<a>-<b>`, whose images are `<split>-<a>-<b>-img0.png` and `-img1.png`: media
  `nlvr2_<split>-<a>-<b>-img0` and `nlvr2_<split>-<a>-<b>-img1` (left, right). Target "true" or "false".
- COCO captioning, Karpathy split (splits `train` = Karpathy's train + restval, `val`, `test`): `dataset_coco.json`,
  `{"images": [{"filepath", "filename", "cocoid", "split": "train" | "restval" | "val" | "test", "sentences":
  [{"raw", "tokens", ...}, ...]}, ...]}`. One example per image (id = its cocoid), media `coco_<cocoid>`, empty
  text, every raw sentence (stripped) a target.
- TVQA, VALUE release (splits `train`, `val`, `test_public`): `tvqa_{train,val,test_public}_release.jsonl`, lines
  `{"qid", "q", "a0", ..., "a4", "answer_idx", "vid_name", "ts": "12.3-20.1", "show_name"}` (test_public has no
  answer_idx: label None, no targets); media `tvqa_<vid_name>`; span from ts ("NaN-NaN": None). The optional
  `tvqa_subtitles.jsonl`, lines `{"vid_name", "sub": [{"start", "end", "text"}, ...]}`, is not read for TVQA (the
  text is the question).
- How2QA, VALUE release (splits `train`, `val`, `test_public`): `how2qa_{train,val,test_public}_release.jsonl`,
  lines `{"qid", "q", "a0", ..., "a3", "answer_idx", "vid_name", "ts": "34.5-50.0"}`, read as TVQA; media
  `how2qa_<vid_name>`.
- TVC, VALUE release (splits `train`, `val`): `tvc_{train,val}_release.jsonl`, lines `{"vid_name", "clip_id", "ts":
  [start, end], "duration", "descs": [{"desc", "type", "desc_id"}, ...]}`. One example per clip (id = clip_id),
  media `tvc_<vid_name>`, span ts, every desc a target. Its text is the subtitles of the clip's TVQA video that
  overlap the span, from `tvqa_subtitles.jsonl` where that file lists the video, else "".
- YC2C, VALUE release (splits `train`, `val`): `yc2c_{train,val}_release.jsonl`, lines `{"vid_name", "clip_id",
  "ts": [start, end], "duration", "descs": [{"desc"}, ...]}`, read as TVC without subtitles; media
  `yc2c_<vid_name>`.

`read_task` checks the whole split (task and split names, that the files exist and parse, that every record has the
fields the reader uses with the right types, that VQA questions and annotations pair up, answer indices, that ids are
unique) and raises `ConfigError` naming the file, the record, the field and what is allowed, so that a bad file
fails at start-up rather than hours into a run. Fields the reader does not use ("fullAnswer", "duration", ...) are
not required.
"""

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import ConfigError
from common.data.files import existing_file, read_json

IMAGE_TASKS = ("vqa", "gqa", "nlvr2", "caption")
VIDEO_TASKS = ("tvqa", "how2qa", "tvc", "yc2c")
TASKS = IMAGE_TASKS + VIDEO_TASKS

SPLITS: dict[str, tuple[str, ...]] = {
    "vqa": ("train", "val"),
    "gqa": ("train", "val", "testdev"),
    "nlvr2": ("train", "dev", "test1"),
    "caption": ("train", "val", "test"),
    "tvqa": ("train", "val", "test_public"),
    "how2qa": ("train", "val", "test_public"),
    "tvc": ("train", "val"),
    "yc2c": ("train", "val"),
}

# The start of every feature-store key a task's examples read; the rest is the image or video id.
MEDIA_PREFIXES: dict[str, str] = {
    "vqa": "coco_",
    "gqa": "gqa_",
    "nlvr2": "nlvr2_",
    "caption": "coco_",
    "tvqa": "tvqa_",
    "how2qa": "how2qa_",
    "tvc": "tvc_",
    "yc2c": "yc2c_",
}

NUM_CHOICES = {"tvqa": 5, "how2qa": 4}  # answers a0 .. a<k-1> of the multiple-choice video QA tasks
UNLABELLED_SPLITS = ("test_public",)  # VALUE's public test files hold no answer_idx
KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}
NLVR2_LABELS = {"True": "true", "False": "false"}
TVQA_SUBTITLES = "tvqa_subtitles.jsonl"


@dataclass(frozen=True)
class Example:
    """One model input of a vision-language task and what it is trained towards and scored against."""

    task: str
    id: str  # unique within (task, split): question id, NLVR2 identifier, COCO image id, clip id, ...
    media: tuple[str, ...]  # feature-store keys: one image; NLVR2 two (left, right); one video
    text: str  # the text input without the task prefix: question, NLVR2 sentence, TVC subtitles, "" for captions
    targets: tuple[str, ...]  # training targets: VQA's answers, GQA's answer, "true"/"false", every caption
    answers: dict[str, float]  # scoring: answer -> score (VQA soft score, 1.0 elsewhere); {} for captioning
    choices: tuple[str, ...] = ()  # TVQA a0..a4, How2QA a0..a3; () elsewhere
    label: int | None = None  # index of the correct choice (TVQA / How2QA, not test_public), None elsewhere
    span: tuple[float, float] | None = None  # seconds of the video the example is about, where the release says


def split_names(task: str) -> tuple[str, ...]:
    """The splits `read_task` reads for `task`."""
    if task not in SPLITS:
        raise ConfigError.invalid("task", task, f"one of the vision-language tasks {', '.join(TASKS)}")
    return SPLITS[task]


def read_task(task: str, annotations_dir: str | Path, split: str) -> list[Example]:
    """Every example of one split of `task`, read from the release's files in `annotations_dir` (module docstring)
    and checked whole; no image, video or feature is opened."""
    splits = split_names(task)
    if split not in splits:
        raise ConfigError.invalid("split", split, f"one of the {task} splits {', '.join(splits)}")
    folder = Path(annotations_dir).absolute()
    if not folder.is_dir():
        raise ConfigError.invalid("annotations_dir", str(folder), f"an existing folder of the {task} annotation files")
    if task == "vqa":
        return _read_vqa(folder, split)
    if task == "gqa":
        return _read_gqa(folder, split)
    if task == "nlvr2":
        return _read_nlvr2(folder, split)
    if task == "caption":
        return _read_karpathy(folder, split)
    if task in NUM_CHOICES:
        return _read_video_qa(task, folder, split)
    return _read_video_captions(task, folder, split)


# --- VQA answer normalisation and soft scores ------------------------------------------------------------------
#
# The rules of the official VQA evaluation (vqaEval.py: processPunctuation, then processDigitArticle), restated:
# 1. newlines and tabs become spaces, the ends are stripped;
# 2. each mark of _PUNCTUATION is deleted when the text has a mark next to a space (on either side) or a digit group
#    separator ("1,000"), else it becomes a space ("yes/no" -> "yes no"); apostrophes, colons and periods are not
#    among the marks;
# 3. a period is deleted unless a digit follows it ("3.5" stays). The official pattern means "not between digits"
#    but writes its look-behind as a look-ahead, so in effect it tests only the next character; we do the same so
#    that our scores are the official ones;
# 4. the text is lower-cased and split into words; number words none/zero..ten become digits, the articles a, an,
#    the are dropped, and a contraction written without one of its apostrophes gets it back ("dont" -> "don't");
#    the words are joined by single spaces.
_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_DIGIT_GROUPS = re.compile(r"\d,\d")
_PERIOD = re.compile(r"\.(?!\d)")
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
_NUMBER_WORDS |= {"six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = ("a", "an", "the")
# The contractions of the official table. Its entries are a contraction with one apostrophe missing, mapped to the
# full form; contractions whose apostrophe-less form is an ordinary word ("we're" / "were", "it's" / "its", "he'll"
# / "hell") are not in it, nor are those of "I" (its entries are capitalised and never match lower-cased text).
_CONTRACTED = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd "
    "he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't must've "
    "needn't not've o'clock oughtn't 'ow's'at shan't she'd've should've shouldn't shouldn't've somebody'd "
    "somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's something'd something'd've "
    "something'll that's there'd there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't "
    "we'd've we've weren't what'll what're what's what've when's where'd where's where've who'd who'd've who'll "
    "who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've "
    "you'll you're you've"
).split()
_CONTRACTIONS = {word[:i] + word[i + 1 :]: word for word in _CONTRACTED for i, char in enumerate(word) if char == "'"}


def vqa_normalize(answer: str) -> str:
    """An answer as the official VQA evaluation compares it (the rules above): "Two dogs!" -> "2 dogs"."""
    original = answer.replace("\n", " ").replace("\t", " ").strip()
    delete = _DIGIT_GROUPS.search(original) is not None
    text = original
    for mark in _PUNCTUATION:
        # The test reads the text as it came, not as the marks before this one left it.
        gone = delete or f"{mark} " in original or f" {mark}" in original
        text = text.replace(mark, "" if gone else " ")
    text = _PERIOD.sub("", text)
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_soft_scores(answers: list[str]) -> dict[str, float]:
    """Each distinct normalised human answer -> the official VQA accuracy of predicting it: the mean, over the
    leave-one-out subsets of the humans, of min(1, matches among the others / 3). With 10 humans an answer given by
    1, 2, 3, >= 4 of them scores 0.3, 0.6, 0.9, 1.0. Best scored first (ties: first given first)."""
    counts = Counter(vqa_normalize(answer) for answer in answers)
    total = len(answers)
    # Of the `total` subsets, `count` leave out one who gave the answer (count - 1 matches left), the rest count.
    scores = {
        answer: (count * min(1.0, (count - 1) / 3) + (total - count) * min(1.0, count / 3)) / total
        for answer, count in counts.items()
    }
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


# --- checked access to records -----------------------------------------------------------------------------------

_ID = "an integer or a string"


def _field(record: Any, name: str, where: str, kind: type | tuple[type, ...], kind_name: str) -> Any:
    """`record[name]`, which must exist and be of `kind` (never a bool: JSON true/false load as int's subclass)."""
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: {record!r} is not a JSON object")
    if name not in record:
        raise ConfigError(f"{where}: field {name!r} is missing")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: field {name!r} = {value!r} is not {kind_name}")
    return value


def _text(record: Any, name: str, where: str) -> str:
    return _field(record, name, where, str, "a string")


def _id(record: Any, name: str, where: str) -> str:
    return str(_field(record, name, where, (int, str), _ID))


def _read_json_lines(path: Path, kind: str) -> list[tuple[str, dict]]:
    """(where, record) of every non-blank line of a JSON-lines file; `where` names the file and the line."""
    path = existing_file(path, kind)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{kind} '{path}', line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: {record!r} is not a JSON object")
        records.append((where, record))
    return records


def _json_list(path: Path, kind: str, key: str) -> list:
    """The list `key` of a JSON file holding an object `{key: [...]}`."""
    content = read_json(path, kind)
    if not isinstance(content, dict) or not isinstance(content.get(key), list):
        raise ConfigError(f"{kind} '{path}' must hold a JSON object with a list {key!r}")
    return content[key]


def _checked(examples: list[Example], path: Path, kind: str) -> list[Example]:
    """`examples`, once they are known to be some and to have distinct ids."""
    if not examples:
        raise ConfigError(f"{kind} '{path}' has no examples")
    repeated = [name for name, count in Counter(example.id for example in examples).items() if count > 1]
    if repeated:
        raise ConfigError(f"{kind} '{path}': id {repeated[0]!r} is given to more than one example")
    return examples


# --- image-text tasks --------------------------------------------------------------------------------------------


def _read_vqa(folder: Path, split: str) -> list[Example]:
    year = {"train": "train2014", "val": "val2014"}[split]
    questions_path = folder / f"v2_OpenEnded_mscoco_{year}_questions.json"
    annotations_path = folder / f"v2_mscoco_{year}_annotations.json"
    questions = _json_list(questions_path, "VQA questions file", "questions")
    annotations = _json_list(annotations_path, "VQA annotations file", "annotations")
    annotated = {}  # question id -> (image id, human answers)
    for number, annotation in enumerate(annotations):
        where = f"VQA annotations file '{annotations_path}', annotation {number}"
        question_id = _id(annotation, "question_id", where)
        where += f" (question {question_id})"
        image_id = _field(annotation, "image_id", where, int, "an integer")
        answers = _field(annotation, "answers", where, list, "a list of answers")
        if not answers:
            raise ConfigError(f"{where}: field 'answers' is empty")
        annotated[question_id] = image_id, [_text(a, "answer", f"{where}, answer {k}") for k, a in enumerate(answers)]
    examples = []
    for number, question in enumerate(questions):
        where = f"VQA questions file '{questions_path}', question {number}"
        question_id = _id(question, "question_id", where)
        where += f" (question {question_id})"
        text = _text(question, "question", where)
        image_id = _field(question, "image_id", where, int, "an integer")
        if question_id not in annotated:
            raise ConfigError(f"{where}: question {question_id} has no annotation in '{annotations_path}'")
        if annotated[question_id][0] != image_id:
            raise ConfigError(
                f"{where}: image_id {image_id} differs from the image_id {annotated[question_id][0]} of its "
                f"annotation in '{annotations_path}'"
            )
        scores = vqa_soft_scores(annotated.pop(question_id)[1])
        examples.append(Example("vqa", question_id, (f"coco_{image_id}",), text, tuple(scores), scores))
    if annotated:
        raise ConfigError(
            f"VQA annotations file '{annotations_path}': {len(annotated)} annotations have no question in "
            f"'{questions_path}', the first is question {next(iter(annotated))}"
        )
    return _checked(examples, questions_path, "VQA questions file")


def _read_gqa(folder: Path, split: str) -> list[Example]:
    path = folder / f"{split}_balanced_questions.json"
    questions = read_json(path, "GQA questions file")
    if not isinstance(questions, dict):
        raise ConfigError(f"GQA questions file '{path}' must hold a JSON object mapping question id to question")
    examples = []
    for question_id, question in questions.items():
        where = f"GQA questions file '{path}', question {question_id}"
        image_id = _text(question, "imageId", where)
        answer = _text(question, "answer", where)
        text = _text(question, "question", where)
        examples.append(Example("gqa", question_id, (f"gqa_{image_id}",), text, (answer,), {answer: 1.0}))
    return _checked(examples, path, "GQA questions file")


_NLVR2_IDENTIFIER = re.compile(r"(?P<pair>[^-\s]+-\d+-\d+)-\d+")


def _read_nlvr2(folder: Path, split: str) -> list[Example]:
    path = folder / f"{split}.json"
    examples = []
    for where, record in _read_json_lines(path, "NLVR2 file"):
        identifier = _text(record, "identifier", where)
        match = _NLVR2_IDENTIFIER.fullmatch(identifier)
        if match is None:
            raise ConfigError(f"{where}: identifier {identifier!r} is not '<split>-<a>-<b>-<c>' (e.g. 'dev-850-0-0')")
        where += f" ({identifier})"
        sentence = _text(record, "sentence", where)
        label = _text(record, "label", where)
        if label not in NLVR2_LABELS:
            raise ConfigError(f"{where}: label {label!r} is not one of {', '.join(map(repr, NLVR2_LABELS))}")
        label = NLVR2_LABELS[label]
        media = tuple(f"nlvr2_{match['pair']}-img{side}" for side in (0, 1))
        examples.append(Example("nlvr2", identifier, media, sentence, (label,), {label: 1.0}))
    return _checked(examples, path, "NLVR2 file")


def _read_karpathy(folder: Path, split: str) -> list[Example]:
    path = folder / "dataset_coco.json"
    images = _json_list(path, "Karpathy split file", "images")
    labels = sum(KARPATHY_SPLITS.values(), ())
    examples = []
    for number, image in enumerate(images):
        where = f"Karpathy split file '{path}', image {number}"
        cocoid = _field(image, "cocoid", where, int, "an integer")
        where += f" (cocoid {cocoid})"
        label = _text(image, "split", where)
        if label not in labels:
            raise ConfigError(f"{where}: split {label!r} is not one of {', '.join(labels)}")
        sentences = _field(image, "sentences", where, list, "a list of sentences")
        if not sentences:
            raise ConfigError(f"{where}: field 'sentences' is empty")
        captions = tuple(_text(s, "raw", f"{where}, sentence {k}").strip() for k, s in enumerate(sentences))
        if label in KARPATHY_SPLITS[split]:
            examples.append(Example("caption", str(cocoid), (f"coco_{cocoid}",), "", captions, {}))
    return _checked(examples, path, f"Karpathy split file (split {split})")


# --- video-text tasks (VALUE) ------------------------------------------------------------------------------------


def _span(start: float, end: float) -> tuple[float, float] | None:
    """(start, end) in seconds; None where the release marks the moment unknown (NaN)."""
    return None if math.isnan(start) or math.isnan(end) else (float(start), float(end))


def _span_text(record: dict, where: str) -> tuple[float, float] | None:
    """The span of a "ts": "12.3-20.1" field ("NaN-NaN": None)."""
    ts = _text(record, "ts", where)
    start, sep, end = ts.partition("-")
    try:
        if not sep:
            raise ValueError
        return _span(float(start), float(end))
    except ValueError:
        raise ConfigError(f"{where}: field 'ts' = {ts!r} is not '<start>-<end>' in seconds (or 'NaN-NaN')") from None


def _span_list(record: dict, where: str) -> tuple[float, float] | None:
    """The span of a "ts": [start, end] field."""
    ts = _field(record, "ts", where, list, "a list [start, end]")
    if len(ts) != 2 or any(isinstance(t, bool) or not isinstance(t, int | float) for t in ts):
        raise ConfigError(f"{where}: field 'ts' = {ts!r} is not [start, end] in seconds")
    return _span(*ts)


def _read_video_qa(task: str, folder: Path, split: str) -> list[Example]:
    path = folder / f"{task}_{split}_release.jsonl"
    kind = f"{task} file"
    examples = []
    for where, record in _read_json_lines(path, kind):
        qid = _id(record, "qid", where)
        where += f" (qid {qid})"
        question = _text(record, "q", where)
        choices = tuple(_text(record, f"a{k}", where) for k in range(NUM_CHOICES[task]))
        media = (f"{MEDIA_PREFIXES[task]}{_text(record, 'vid_name', where)}",)
        span = _span_text(record, where)
        if split in UNLABELLED_SPLITS:
            examples.append(Example(task, qid, media, question, (), {}, choices, None, span))
            continue
        label = _field(record, "answer_idx", where, int, "an integer")
        if not 0 <= label < len(choices):
            raise ConfigError(f"{where}: field 'answer_idx' = {label} is not in 0 .. {len(choices) - 1}")
        answer = choices[label]
        examples.append(Example(task, qid, media, question, (answer,), {answer: 1.0}, choices, label, span))
    return _checked(examples, path, kind)


def _read_subtitles(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """vid_name -> its subtitle lines (start, end, text) from a `tvqa_subtitles.jsonl`; {} where there is none."""
    if not path.is_file():
        return {}
    subtitles = {}
    for where, record in _read_json_lines(path, "TVQA subtitles file"):
        name = _text(record, "vid_name", where)
        lines = _field(record, "sub", f"{where} ({name})", list, "a list of subtitle lines")
        subtitles[name] = []
        for k, line in enumerate(lines):
            at = f"{where} ({name}), subtitle {k}"
            times = [_field(line, key, at, int | float, "a number of seconds") for key in ("start", "end")]
            subtitles[name].append((*times, _text(line, "text", at)))
    return subtitles


def _read_video_captions(task: str, folder: Path, split: str) -> list[Example]:
    path = folder / f"{task}_{split}_release.jsonl"
    kind = f"{task} file"
    subtitles = _read_subtitles(folder / TVQA_SUBTITLES) if task == "tvc" else {}
    examples = []
    for where, record in _read_json_lines(path, kind):
        clip_id = _id(record, "clip_id", where)
        where += f" (clip {clip_id})"
        name = _text(record, "vid_name", where)
        span = _span_list(record, where)
        descs = _field(record, "descs", where, list, "a list of descriptions")
        if not descs:
            raise ConfigError(f"{where}: field 'descs' is empty")
        targets = tuple(_text(desc, "desc", f"{where}, desc {k}").strip() for k, desc in enumerate(descs))
        # The subtitle lines that overlap the clip's moment (all of them where the moment is unknown).
        lines = [t for start, end, t in subtitles.get(name, ()) if span is None or (start < span[1] and end > span[0])]
        text = " ".join(line.strip() for line in lines)
        examples.append(Example(task, clip_id, (f"{MEDIA_PREFIXES[task]}{name}",), text, targets, {}, span=span))
    return _checked(examples, path, kind)
