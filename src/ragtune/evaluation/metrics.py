"""EM, F1 and Recall@k.

EM and F1 follow the SQuAD v1.1 script (normalisation: lower case, no punctuation, no
articles, single spaces) with HotpotQA's rule that a yes / no / noanswer prediction or gold
answer scores F1 only on an exact match. Each question takes the max over its gold answers,
which covers PopQA's ``possible_answers``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCT = set(string.punctuation)
_SPECIAL = {"yes", "no", "noanswer"}


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_toks, ref_toks = pred.split(), ref.split()
    common = Counter(pred_toks) & Counter(ref_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(ref_toks)
    return 2 * precision * recall / (precision + recall)


def best_em(prediction: str, answers: Sequence[str]) -> float:
    return max((exact_match(prediction, a) for a in answers), default=0.0)


def best_f1(prediction: str, answers: Sequence[str]) -> float:
    return max((f1(prediction, a) for a in answers), default=0.0)


def recall_at_k(retrieved_titles: Sequence[str], gold_titles: Sequence[str]) -> float:
    """Fraction of a question's gold titles among the titles of its top-k chunks."""
    gold = set(gold_titles)
    if not gold:
        return 0.0
    return len(gold & set(retrieved_titles)) / len(gold)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
