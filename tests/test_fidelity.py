"""docs/fidelity.md cannot drift: every config key its ledger names is in the schema, with the
value config/paper.yaml runs with (or the schema's default where paper.yaml does not set it)."""

import re

import yaml

from helpers import REPO

ROW_KEY = re.compile(r"`([a-z_0-9.-]+)` = `([^`]+)`")


def _schema_node(schema, key):
    node = schema
    for part in key.split("."):
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].split("/")[-1]]
    return node


def _paper_value(paper, key):
    node = paper
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


def ledger_rows(text=None):
    text = text or (REPO / "docs/fidelity.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    return rows[1:]  # the header


def drift(text=None) -> list[str]:
    """Every named key that the schema lacks or whose value is not the one stated."""
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    problems = []
    for row in ledger_rows(text):
        for match in ROW_KEY.finditer(row):
            key, stated = match.group(1), yaml.safe_load(match.group(2))
            node = _schema_node(schema, key)
            if node is None:
                problems.append(f"docs/fidelity.md names {key}, which the schema lacks")
                continue
            value = _paper_value(paper, key)
            if value is KeyError:
                value = node.get("default", KeyError)
            if value != stated:
                problems.append(f"docs/fidelity.md says {key} = {stated!r}; it is {value!r}")
    return problems


def test_every_ledger_key_is_in_the_schema_with_the_stated_value():
    rows = ledger_rows()
    named = [m for row in rows for m in ROW_KEY.finditer(row)]
    assert len(rows) >= 40 and len(named) >= 30, (len(rows), len(named))
    assert drift() == []


def test_every_row_names_its_basis():
    for row in ledger_rows():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip("|"))]
        assert len(cells) == 5, row
        assert cells[4].split(":")[0].split(" (")[0] in {"stated", "inferred", "ours"}, row


def test_the_ledger_check_can_fail():
    text = (REPO / "docs/fidelity.md").read_text()
    wrong = text.replace("`training.lora_dropout` = `0.05`", "`training.lora_dropout` = `0.1`")
    wrong = wrong.replace("`retrieval.k` = `5`", "`retrieval.top_k` = `5`")
    assert sorted(drift(wrong)) == [
        "docs/fidelity.md names retrieval.top_k, which the schema lacks",
        "docs/fidelity.md says training.lora_dropout = 0.1; it is 0.05",
    ]
