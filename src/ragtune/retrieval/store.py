"""Random access to the corpus by index row: float16 vectors and chunk records.

The index's row ``r`` is the ``r``-th chunk of the shards taken in order. Both stores keep that
numbering, so nothing ever needs an id->row dictionary of 30M strings or the whole float32
matrix in RAM: vectors are memory-mapped, chunk text is read with one seek per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class EmbeddingStore:
    """Memory-mapped float16 ``.npy`` shards seen as one matrix."""

    def __init__(self, paths: Sequence[str | Path]):
        self.shards = [np.load(p, mmap_mode="r") for p in paths]
        if not self.shards:
            raise ValueError("an embedding store needs at least one shard")
        dims = {s.shape[1] for s in self.shards}
        if len(dims) != 1:
            raise ValueError(f"embedding shards disagree on the dimension: {sorted(dims)}")
        self.dim = dims.pop()
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def vectors(self, rows) -> np.ndarray:
        """float32 vectors of the given global rows, in their order (any shape of ``rows``)."""
        rows = np.asarray(rows, dtype=np.int64)
        flat = rows.reshape(-1)
        out = np.empty((len(flat), self.dim), dtype=np.float32)
        shard_of = np.searchsorted(self.starts, flat, side="right") - 1
        for s in np.unique(shard_of):
            mask = shard_of == s
            out[mask] = self.shards[s][flat[mask] - self.starts[s]]
        return out.reshape(*rows.shape, self.dim)

    def iter_batches(self, batch_size: int):
        """Consecutive float32 batches over all rows, for index building."""
        for shard in self.shards:
            for a in range(0, len(shard), batch_size):
                yield np.asarray(shard[a : a + batch_size], dtype=np.float32)


def line_offsets(path: str | Path) -> np.ndarray:
    """Byte offset of every line of a JSONL file."""
    offsets = []
    pos = 0
    with open(path, "rb") as fh:
        for line in fh:
            offsets.append(pos)
            pos += len(line)
    return np.asarray(offsets, dtype=np.int64)


class ChunkStore:
    """Chunk records by global row, from JSONL shards and their ``.offsets.npy`` files."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]
        self.offsets = [np.load(offsets_path(p), mmap_mode="r") for p in self.paths]
        self.starts = np.cumsum([0] + [len(o) for o in self.offsets])
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, row: int) -> dict:
        s = int(np.searchsorted(self.starts, row, side="right") - 1)
        if s < 0 or row >= len(self):
            raise IndexError(row)
        fh = self._handles.get(s)
        if fh is None:
            fh = self._handles[s] = open(self.paths[s], "rb")  # noqa: SIM115 (cached)
        fh.seek(int(self.offsets[s][row - self.starts[s]]))
        return json.loads(fh.readline())

    def get_many(self, rows) -> list[dict]:
        return [self[int(r)] for r in rows]


def offsets_path(chunks_path: str | Path) -> Path:
    p = Path(chunks_path)
    return p.with_name(p.name.removesuffix(".jsonl") + ".offsets.npy")
