"""QA datasets: normalise HotpotQA and PopQA records and carve train/validation/test splits.

Every split is written as JSONL ``{id, question, answers: [...], gold_titles: [...]}``. The gold
titles are the context labels: a retrieved chunk counts as gold when its title is one of them.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterable, Iterator
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
    # Through iter_records: a corrupt file or a bad first line names the file and the row.
    return next(iter_records(path), (0, {}))[1]


def iter_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, record) of every record of a local JSONL(.gz) or parquet file. A
    corrupt or truncated file raises a ValueError that names it and the row it broke at."""
    import zlib

    path = Path(path)
    if ".parquet" in path.suffixes:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
            raise ValueError(f"{path}: not a readable parquet file ({err})") from err
        yield from enumerate(table.to_pylist(), 1)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    row = 0
    try:
        # Bytes, decoded line by line: a text stream decodes ahead in blocks, so a bad byte
        # would be blamed on a row many lines before its own.
        with opener(path, "rb") as fh:
            for row, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ValueError(
                        f"{path}:{row}: not UTF-8 ({err.reason} at byte {err.start} of the "
                        "line); re-encode the file as UTF-8"
                    ) from err
                if line.strip():
                    try:
                        yield row, json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{row}: not valid JSON ({err.msg})") from err
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: corrupt or truncated after row {row} ({type(err).__name__}: {err}); "
            "download or copy the file again"
        ) from err


# What each field of a format must hold: a test of the value and what it should be.
def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _id(value) -> bool:
    return isinstance(value, (str, int)) and str(value).strip() != ""


def _titles(value) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("title"), list)
        and bool(value["title"])
        and all(_text(t) for t in value["title"])
    )


def _answers(value) -> bool:
    try:
        answers = _json_list(value)
    except (ValueError, TypeError):
        return False
    # [""] trains on an empty answer as surely as [] has none
    return bool(answers) and all(isinstance(a, str) and a.strip() for a in answers)


FIELD_RULES = {
    "hotpotqa": {"id": (_id, "an id"), "question": (_text, "non-empty text"),
                 "answer": (_text, "non-empty text"),
                 "supporting_facts": (_titles, "a {title: [...]} with at least one title")},
    "popqa": {"id": (_id, "an id"), "question": (_text, "non-empty text"),
              "possible_answers": (_answers, "a non-empty list of answers (or its JSON)"),
              "s_wiki_title": (_text, "non-empty text")},
}  # fmt: skip


def record_problems(rec: dict[str, Any], rules: dict) -> list[str]:
    """The fields of one record that are missing, null, of the wrong type or empty."""
    out = []
    for field, (ok, what) in rules.items():
        if field not in rec:
            out.append(f"'{field}' is missing")
        elif rec[field] is None:
            out.append(f"'{field}' is null")
        elif not ok(rec[field]):
            out.append(f"'{field}' is {type(rec[field]).__name__} {str(rec[field])[:40]!r}, "
                       f"not {what}")  # fmt: skip
    return out


def validate_file(path: str | Path, rules: dict, limit: int = 3) -> tuple[int, list[str], set[str]]:
    """(records in the file, up to ``limit`` messages naming a bad row and its field, the
    file's ids). A repeated id is a bad row: the carve could put one question in train and in
    test, and the intervals would count it twice."""
    count, problems = 0, []
    rows_of: dict[str, list[int]] = {}
    for row, rec in iter_records(path):
        count += 1
        if len(problems) < limit and (bad := record_problems(rec, rules)):
            problems.append(f"row {row}: {'; '.join(bad)}")
        rows_of.setdefault(str(rec.get("id")), []).append(row)
    repeated = [(i, rows) for i, rows in rows_of.items() if len(rows) > 1]
    for i, rows in repeated[:limit]:
        problems.append(f"id '{i}' is on rows {', '.join(map(str, rows))}: ids must be unique")
    if len(repeated) > limit:
        problems.append(f"{len(repeated)} ids repeat in all")
    return count, problems, set(rows_of)


def drop_duplicate_ids(pools: dict[str, list[dict[str, Any]]]) -> int:
    """Keep each id's first record, in source-split order then row order; returns how many
    were dropped. Local files with repeated ids are refused at planning; this is the stated
    rule for Hub data, which no one can fix at its source."""
    seen: set[str] = set()
    dropped = 0
    for name in sorted(pools):
        kept = []
        for rec in pools[name]:
            if str(rec["id"]) in seen:
                dropped += 1
                continue
            seen.add(str(rec["id"]))
            kept.append(rec)
        pools[name] = kept
    return dropped


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

    ``plan`` maps each of our splits to ``{from: source split, size: n}`` or ``{from: source
    split, ids: [...]}``. A split with ``ids`` holds exactly those questions, in that order, so
    it is the same wherever the source file came from (the demo's questions, fetched or read
    from the mirror). Each source pool, less the pinned questions, is shuffled once with
    ``seed``; our sized splits that draw from the same pool take consecutive, disjoint slices
    of it in train, validation, test order, so no question leaks across splits.
    """
    pinned = {name: set() for name in pools}
    for spec in plan.values():
        pinned[spec["from"]].update(str(i) for i in spec.get("ids", ()))
    shuffled = {}
    for name, pool in pools.items():
        order = [rec for rec in pool if rec["id"] not in pinned[name]]
        random.Random(f"{seed}:{name}").shuffle(order)
        shuffled[name] = order
    taken = {name: 0 for name in pools}
    out = {}
    for split in ("train", "validation", "test"):
        source = plan[split]["from"]
        if "ids" in plan[split]:
            out[split] = pick_ids(pools[source], plan[split]["ids"], f"{split} (from {source})")
            continue
        size, start = plan[split]["size"], taken[source]
        if start + size > len(shuffled[source]):
            users = [s for s in plan if plan[s]["from"] == source and "size" in plan[s]]
            raise ValueError(
                f"splits {users} ask for {sum(plan[s]['size'] for s in users)} questions from "
                f"source split '{source}', which has only {len(shuffled[source])}; lower their "
                "sizes"
            )
        out[split] = shuffled[source][start : start + size]
        taken[source] = start + size
    return out


def pick_ids(pool: list[dict[str, Any]], ids: list, where: str) -> list[dict[str, Any]]:
    """The records of ``ids``, in their order; every id must be in the pool."""
    by_id = {rec["id"]: rec for rec in pool}
    missing = [str(i) for i in ids if str(i) not in by_id]
    if missing:
        raise ValueError(
            f"split {where}: {len(missing)} of its ids are not in the source "
            f"(first: {', '.join(missing[:3])}); fix the ids or the source file"
        )
    return [by_id[str(i)] for i in ids]
