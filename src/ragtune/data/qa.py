"""QA datasets: normalise HotpotQA and PopQA records and carve train/validation/test splits.

Every split is written as JSONL ``{id, question, answers: [...], gold_titles: [...]}``. The gold
titles are the context labels: a retrieved chunk counts as gold when its title is one of them.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Format:
    hub_id: str
    required_columns: tuple[str, ...]
    normalise: Callable[[dict[str, Any]], dict[str, Any]]


def _hotpotqa(rec: dict[str, Any]) -> dict[str, Any]:
    titles = list(dict.fromkeys(rec["supporting_facts"]["title"]))  # unique, in order
    return {
        "id": str(rec["id"]),
        "question": rec["question"],
        "answers": [rec["answer"]],
        "gold_titles": titles,
    }


def _json_list(value: Any) -> list[str]:
    # On the Hub, PopQA keeps list columns as JSON-encoded strings.
    return json.loads(value) if isinstance(value, str) else list(value)


def _popqa(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(rec["id"]),
        "question": rec["question"],
        "answers": _json_list(rec["possible_answers"]),
        "gold_titles": [rec["s_wiki_title"]],
    }


FORMATS: dict[str, Format] = {
    "hotpotqa": Format(
        "hotpotqa/hotpot_qa", ("id", "question", "answer", "supporting_facts"), _hotpotqa
    ),
    "popqa": Format(
        "akariasai/PopQA", ("id", "question", "possible_answers", "s_wiki_title"), _popqa
    ),
}


def first_record(path: str | Path) -> dict[str, Any]:
    """The first record of a local JSONL(.gz) or parquet file, read cheaply."""
    path = Path(path)
    if ".parquet" in path.suffixes:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read_row_group(0).slice(0, 1)
        return table.to_pylist()[0] if table.num_rows else {}
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                return json.loads(line)
    return {}


def normalise(records: Iterable[dict[str, Any]], fmt: str, origin: str) -> list[dict[str, Any]]:
    spec = FORMATS[fmt]
    out = []
    for i, rec in enumerate(records):
        missing = [c for c in spec.required_columns if c not in rec]
        if missing:
            raise ValueError(
                f"{origin}: record {i} lacks column(s) {missing} of the {spec.hub_id} schema"
            )
        out.append(spec.normalise(rec))
    return out


def carve(
    pools: dict[str, list[dict[str, Any]]],
    plan: dict[str, dict[str, Any]],
    seed: int,
) -> dict[str, list[dict[str, Any]]]:
    """Carve our splits out of the source splits.

    ``plan`` maps each of our splits to ``{from: source split, size: n}``. Each source pool is
    shuffled once with ``seed``; our splits that draw from the same pool take consecutive,
    disjoint slices of it in train, validation, test order, so no question leaks across splits.
    """
    shuffled = {}
    for name, pool in pools.items():
        order = list(pool)
        random.Random(f"{seed}:{name}").shuffle(order)
        shuffled[name] = order
    taken = {name: 0 for name in pools}
    out = {}
    for split in ("train", "validation", "test"):
        source, size = plan[split]["from"], plan[split]["size"]
        start = taken[source]
        if start + size > len(shuffled[source]):
            users = [s for s in plan if plan[s]["from"] == source]
            raise ValueError(
                f"splits {users} ask for {sum(plan[s]['size'] for s in users)} questions from "
                f"source split '{source}', which has only {len(shuffled[source])}; lower their "
                "sizes"
            )
        out[split] = shuffled[source][start : start + size]
        taken[source] = start + size
    return out
