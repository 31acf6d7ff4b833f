"""The corpus-embedding rule's step against a bare ``SentenceTransformer.encode``.

Both embed the same chunks with the same model and batch size in one process; ours also reads
the chunk shard and writes the float16 ``.npy`` atomically, as the rule does. Runs alternate
to even out drift. Target: throughput >= 0.95x the bare call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import MINILM, MIRROR, report, timed
from ragtune import models, runtime
from ragtune.io import read_jsonl
from ragtune.retrieval.embed import passage_text
from ragtune.steps.index import embed_shard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "shard-000.jsonl"
        chunks = []
        for rec in read_jsonl(MIRROR / "wikipedia/chunks.jsonl.gz"):
            chunks.append({"id": rec["id"], "title": rec["title"], "text": rec["content"]})
            if len(chunks) == args.chunks:
                break
        shard.write_text("".join(json.dumps(c) + "\n" for c in chunks))
        texts = [passage_text(c) for c in chunks]
        model = models.load_embedder(MINILM, device=runtime.device())
        model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
        bare, ours = [], []
        for _ in range(args.repeats):
            _, t = timed(model.encode, texts, batch_size=args.batch_size, normalize_embeddings=True)
            bare.append(t)
            _, t = timed(
                embed_shard, str(shard), f"{tmp}/e.npy", MINILM, {"batch_size": args.batch_size}
            )
            ours.append(t)
        saved = np.load(f"{tmp}/e.npy")
    bare_rate, our_rate = len(texts) / min(bare), len(texts) / min(ours)
    report(
        "embedding",
        {
            "chunks": len(texts),
            "batch_size": args.batch_size,
            "bare_encode_chunks_per_s": round(bare_rate, 1),
            "rule_chunks_per_s": round(our_rate, 1),
            "ratio": round(our_rate / bare_rate, 3),
            "stored_dtype": str(saved.dtype),
        },
    )


if __name__ == "__main__":
    main()
