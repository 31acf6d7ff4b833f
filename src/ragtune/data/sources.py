"""One loader path for Hub datasets and local files that follow a Hub dataset's schema.

``datasets.load_dataset`` reads both: a Hub id when the user is online, and the ``json`` /
``parquet`` builders for local files. Nothing else in ragtune opens a dataset file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _builder(path: str) -> str:
    suffixes = Path(path).suffixes
    return "parquet" if ".parquet" in suffixes else "json"


def load_split(source: dict[str, Any], split: str, *, streaming: bool = False):
    """Load one split of a dataset described by a config ``source`` block."""
    import datasets

    if "files" in source:
        files = source["files"]
        paths = files[split] if isinstance(files, dict) else files
        paths = [paths] if isinstance(paths, str) else list(paths)
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"dataset file(s) not found: {missing}")
        return datasets.load_dataset(
            _builder(paths[0]), data_files=paths, split="train", streaming=streaming
        )
    return datasets.load_dataset(
        source["hub"],
        source.get("config"),
        split=split,
        revision=source.get("revision"),
        streaming=streaming,
    )
