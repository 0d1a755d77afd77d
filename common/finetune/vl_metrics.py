"""The vision-language tasks' metrics, as their standard implementations compute them.

- VQA v2: the official accuracy. A prediction scores the soft score of its normalised form among the ten human
  answers (``common.data.vision_language.vqa_soft_scores``: min(1, humans / 3), averaged over the ten leave-one-out
  subsets), 0 when no human gave it.
- GQA, NLVR2: exact match of the normalised prediction with the answer (GQA's official "accuracy"; NLVR2's
  true / false).
- TVQA, How2QA: the accuracy of the chosen candidate (multiple choice).
- COCO captioning, TVC, YC2C: CIDEr-D from ``pycocoevalcap`` (the COCO caption evaluation's code, not re-implemented),
  after its PTB tokenizer (Stanford CoreNLP's, which needs Java: ``java`` on PATH).

Every score is in percent (CIDEr x 100, as the papers print it).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import numpy as np

from common.config import ConfigError
from common.data.vision_language import Example, vqa_normalize

CAPTION_TASKS = ("caption", "tvc", "yc2c")
CHOICE_TASKS = ("tvqa", "how2qa")


def vqa_accuracy(predictions: Sequence[str], examples: Sequence[Example]) -> float:
    """The official VQA accuracy (%): each prediction's soft score among its question's human answers."""
    scores = [example.answers.get(vqa_normalize(p), 0.0) for p, example in zip(predictions, examples, strict=True)]
    return 100.0 * float(np.mean(scores)) if scores else float("nan")


def exact_match(predictions: Sequence[str], examples: Sequence[Example]) -> float:
    """Accuracy (%) of predictions equal, after normalisation, to an answer with full credit."""
    hits = [
        any(vqa_normalize(p) == vqa_normalize(a) and s >= 1.0 for a, s in example.answers.items())
        for p, example in zip(predictions, examples, strict=True)
    ]
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


def choice_accuracy(chosen: Sequence[int], examples: Sequence[Example]) -> float:
    """Accuracy (%) of the chosen candidates of multiple-choice questions."""
    hits = [c == example.label for c, example in zip(chosen, examples, strict=True)]
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


def cider(predictions: Sequence[str], examples: Sequence[Example]) -> float:
    """CIDEr-D (x 100) of the predicted captions against each example's references, by pycocoevalcap."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if shutil.which("java") is None:
        raise ConfigError("CIDEr needs Java for pycocoevalcap's PTB tokenizer: install a JRE (Debian: default-jre)")
    references = {str(i): [{"caption": t} for t in example.targets] for i, example in enumerate(examples)}
    candidates = {str(i): [{"caption": p}] for i, p in enumerate(predictions)}
    tokenizer = PTBTokenizer()
    score, _ = Cider().compute_score(tokenizer.tokenize(references), tokenizer.tokenize(candidates))
    return 100.0 * float(score)


def score(task: str, outputs: Sequence, examples: Sequence[Example]) -> float:
    """The task's metric (%) of ``outputs``: generated texts, or chosen indices for the multiple-choice tasks."""
    if task == "vqa":
        return vqa_accuracy(outputs, examples)
    if task in CHOICE_TASKS:
        return choice_accuracy(outputs, examples)
    if task in CAPTION_TASKS:
        return cider(outputs, examples)
    return exact_match(outputs, examples)
