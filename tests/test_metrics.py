import pytest

from ragtune.evaluation.metrics import (
    best_em,
    best_f1,
    exact_match,
    f1,
    normalize_answer,
    recall_at_k,
)


def test_normalization_drops_case_punctuation_and_articles():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"


def test_exact_match_after_normalization():
    assert exact_match("the Chief of Protocol.", "Chief of Protocol") == 1.0
    assert exact_match("Chief", "Chief of Protocol") == 0.0


def test_f1_hand_checked():
    # pred tokens {chief, protocol}; gold {chief, of, protocol}: P=1, R=2/3, F1=0.8
    assert f1("chief protocol", "Chief of Protocol") == pytest.approx(0.8)
    # no overlap
    assert f1("Paris", "London") == 0.0
    # repeated tokens count once per occurrence in both
    assert f1("new new york", "new york") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))


def test_hotpotqa_yes_no_rule():
    # "yes" vs "yes it is": token overlap would give F1 0.5; HotpotQA scores it 0.
    assert f1("yes it is", "yes") == 0.0
    assert f1("no", "no") == 1.0
    assert f1("noanswer", "Paris") == 0.0
    assert exact_match("Yes.", "yes") == 1.0


def test_max_over_possible_answers():
    answers = ["politician", "political leader", "political figure"]
    assert best_em("a political figure", answers) == 1.0
    assert best_f1("leader", answers) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert best_em("singer", answers) == 0.0
    assert best_em("anything", []) == 0.0


def test_recall_is_fraction_of_gold_titles_found():
    assert recall_at_k(["A", "B", "C"], ["A", "Z"]) == 0.5
    assert recall_at_k(["A", "A"], ["A"]) == 1.0
    assert recall_at_k(["B"], ["A"]) == 0.0
