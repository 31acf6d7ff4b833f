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

from ragtune.io import write_json


class CorruptArtifactError(ValueError):
    """An artifact on disk is not what its rule wrote: truncated, overwritten, not finite."""


def load_shard(path: str | Path) -> np.ndarray:
    """A memory-mapped embedding shard, or an error that names it and the rule to re-run."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        raise CorruptArtifactError(
            f"{path} is not a readable embedding shard ({err}): it was cut short or "
            "overwritten. Delete it and run snakemake again, which re-runs the embed_corpus "
            "job that writes it"
        ) from err


def check_vectors(vectors: np.ndarray, where: str, first_row: int = 0, tol: float = 0.01):
    """Every vector finite and of unit norm (ragtune stores normalised embeddings): NaN or inf
    vectors would be indexed and retrieved as if they were real. ``where`` names the file."""
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], vectors, 0).astype(np.float32), axis=1)
    bad = np.flatnonzero(~finite | (np.abs(norms - 1) > tol))
    if len(bad):
        row = int(bad[0])
        what = "not finite" if not finite[row] else f"of norm {norms[row]:.3f}, not 1"
        raise CorruptArtifactError(
            f"{where}: {len(bad)} broken vector(s) in rows {first_row}-"
            f"{first_row + len(vectors) - 1} (row {first_row + row} is {what}; "
            f"{int((~finite).sum())} not finite). Delete the file and run snakemake again, "
            "which re-runs the embed_corpus job that writes it"
        )


class EmbeddingStore:
    """Memory-mapped float16 ``.npy`` shards seen as one matrix."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(p) for p in paths]
        self.shards = [load_shard(p) for p in paths]
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


def write_manifest(path: str | Path, chunk_shards: Sequence[str], embedding_shards: Sequence[str]):
    """The store as one small file: its shard pairs and their row counts.

    Downstream rules take this manifest as input instead of every shard: on the paper's 64
    shards that is 2 input files per job instead of 128, which keeps the DAG's planning fast.
    The shards stay inputs of ``build_index``, so a changed shard still re-runs everything
    downstream through the manifest. Shard row counts are checked here, once, with the file
    to re-make named.
    """
    if len(chunk_shards) != len(embedding_shards):
        raise ValueError(
            f"{len(chunk_shards)} chunk shards but {len(embedding_shards)} embedding shards"
        )
    shards = []
    for chunk_path, npy_path in zip(chunk_shards, embedding_shards, strict=True):
        n_chunks = len(np.load(offsets_path(chunk_path), mmap_mode="r"))
        n_vectors = len(load_shard(npy_path))  # a truncated shard names itself
        if n_chunks != n_vectors:
            raise ValueError(
                f"{npy_path} holds {n_vectors} vectors but {chunk_path} holds {n_chunks} chunks: "
                f"delete {npy_path} and re-run embed_corpus"
            )
        shards.append({"chunks": str(chunk_path), "embeddings": str(npy_path), "rows": n_chunks})
    write_json(path, {"rows": sum(s["rows"] for s in shards), "shards": shards})


def read_manifest(path: str | Path) -> tuple[list[str], list[str]]:
    """(embedding shards, chunk shards) of a manifest written by :func:`write_manifest`."""
    shards = json.loads(Path(path).read_text())["shards"]
    for shard in shards:
        for key in ("chunks", "embeddings"):
            if not Path(shard[key]).exists():
                raise FileNotFoundError(
                    f"{path} lists {shard[key]}, which is missing: re-run its rule, then "
                    "build_index (snakemake --forcerun build_index)"
                )
    return [s["embeddings"] for s in shards], [s["chunks"] for s in shards]
