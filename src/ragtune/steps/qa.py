"""Step of rules/qa.smk's prepare_qa: carve the QA splits.

Retrieval is in ``ragtune.steps.retrieve``: this job needs neither torch nor faiss, and
importing them would be most of its time."""

from __future__ import annotations

import logging

from ragtune.data.qa import carve, drop_duplicate_ids, normalise
from ragtune.data.sources import load_split
from ragtune.io import write_json, write_jsonl

log = logging.getLogger(__name__)


def prepare_qa(dataset: dict, outputs: dict[str, str], sizes_path: str, seed: int) -> None:
    """Write train / validation / test JSONL and a record of where each came from."""
    source = dataset["source"]
    plan = dataset["splits"]
    pools = {}
    for name in sorted({spec["from"] for spec in plan.values()}):
        origin = source["files"][name] if "files" in source else f"{source['hub']}:{name}"
        pools[name] = normalise(load_split(source, name), dataset["format"], origin)
    dropped = drop_duplicate_ids(pools)
    if dropped:
        log.warning("%d record(s) repeat an earlier id: kept each id's first record", dropped)
    splits = carve(pools, plan, seed)
    for split, records in splits.items():
        write_jsonl(outputs[split], records)
    write_json(
        sizes_path,
        {
            "seed": seed,
            "duplicate_ids_dropped": dropped,
            "source_sizes": {k: len(v) for k, v in pools.items()},
            "splits": {s: {"from": plan[s]["from"], "size": len(splits[s])} for s in splits},
        },
    )
