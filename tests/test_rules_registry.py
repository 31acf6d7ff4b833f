"""ragtune.rules.RULES is the one place per rule: the workflow's rules, their settings and their
Hub sources all come from it, and it names no rule the workflow lacks."""

import re

from helpers import REPO
from ragtune import hub, rule_settings
from ragtune.rules import RULES


def workflow_rules() -> set[str]:
    text = "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    return set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M))


def test_every_registered_rule_is_a_workflow_rule():
    assert set(RULES) <= workflow_rules()


def test_the_rules_that_take_settings_are_the_registered_ones():
    text = "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    used = set(re.findall(r'rule_settings\.triggers\(config, "(\w+)"\)', text))
    assert used == set(rule_settings.TRIGGERS)
    assert set(rule_settings.TRIGGERS) == {n for n, r in RULES.items() if r.triggers}


def test_hub_readers_come_from_the_registry():
    assert hub.READERS["generators."] == {
        "convert_generator", "train_generator", "train_joint", "evaluate"
    }  # fmt: skip
    assert hub.READERS["datasets."] == {"prepare_qa"}
    for prefix, names in hub.READERS.items():
        assert all(prefix in RULES[n].hub for n in names)
