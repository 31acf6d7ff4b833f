import numpy as np
import pytest

from ragtune.retrieval import index as faiss_index
from ragtune.retrieval.store import ChunkStore, EmbeddingStore, line_offsets, offsets_path


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 600, 32)
    paths = []
    for i, part in enumerate(np.array_split(vecs, 3)):
        p = tmp_path / f"shard-{i:03d}.npy"
        np.save(p, part.astype(np.float16))
        paths.append(p)
    return EmbeddingStore(paths), vecs.astype(np.float16).astype(np.float32)


def test_store_reads_rows_across_shards(store):
    s, full = store
    rows = np.array([[0, 599], [200, 201]])
    np.testing.assert_array_equal(s.vectors(rows), full[rows])
    assert len(s) == 600 and s.dim == 32


@pytest.mark.parametrize(("factory", "rescore"), [("Flat", 1), ("HNSW16", 4), ("IVF8,Flat", 4)])
def test_search_matches_brute_force(store, factory, rescore):
    s, full = store
    queries = _unit(np.random.default_rng(1), 20, 32)
    index = faiss_index.build(s, factory, train_size=600, add_batch_size=128)
    faiss_index.set_search_params(index, nprobe=8, ef_search=64)
    rows, scores = faiss_index.search(index, s, queries, 5, rescore_factor=rescore)
    brute = queries @ full.T
    expected = np.argsort(-brute, axis=1)[:, :5]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, 1), rtol=1e-5)


def test_build_runs_on_the_gpus_when_faiss_has_them(store, monkeypatch):
    """faiss-gpu's calls, faked on this CPU host: the index is cloned to the GPUs before
    training, filled there, and comes back to the CPU, equal to a CPU build; an index type
    without a GPU version is built on the CPU."""
    import faiss

    s, _ = store
    cpu = faiss_index.build(s, "IVF8,Flat", train_size=600, add_batch_size=128)
    calls = []

    def to_gpu(index, options):
        calls.append(("to_gpu", index.is_trained, index.ntotal, options.useFloat16))
        return index

    def to_cpu(index):
        calls.append(("to_cpu", index.is_trained, index.ntotal))
        return index

    # faiss-cpu has none of the GPU names: they are added for the test.
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", type("Opts", (), {}), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpu, raising=False)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", to_cpu, raising=False)
    built = faiss_index.build(s, "IVF8,Flat", train_size=600, add_batch_size=128)
    assert calls == [("to_gpu", False, 0, True), ("to_cpu", True, 600)]
    queries = _unit(np.random.default_rng(1), 5, 32)
    assert (built.search(queries, 5)[1] == cpu.search(queries, 5)[1]).all()

    def no_gpu_version(index, options):
        raise RuntimeError("not implemented for this type of index")

    calls.clear()
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", no_gpu_version, raising=False)
    built = faiss_index.build(s, "HNSW16", train_size=600, add_batch_size=128)
    assert built.ntotal == 600 and calls == []


def test_chunk_store_random_access(tmp_path):
    import json

    paths = []
    for shard in range(2):
        p = tmp_path / f"shard-{shard:03d}.jsonl"
        p.write_text(
            "".join(json.dumps({"id": f"{shard}-{i}", "title": "é"}) + "\n" for i in range(3)),
            encoding="utf-8",
        )
        np.save(offsets_path(p), line_offsets(p))
        paths.append(p)
    cs = ChunkStore(paths)
    assert len(cs) == 6
    assert [c["id"] for c in cs.get_many([5, 0, 3])] == ["1-2", "0-0", "1-0"]
    with pytest.raises(IndexError):
        cs[6]


def test_store_manifest_pairs_the_shards_and_names_a_mismatch(tmp_path):
    import json

    from ragtune.retrieval.store import read_manifest, write_manifest

    chunks, vectors = [], []
    for shard, rows in enumerate([3, 2]):
        p = tmp_path / f"shard-{shard:03d}.jsonl"
        p.write_text("".join(json.dumps({"id": f"{shard}-{i}"}) + "\n" for i in range(rows)))
        np.save(offsets_path(p), line_offsets(p))
        npy = tmp_path / f"shard-{shard:03d}.npy"
        np.save(npy, np.zeros((rows, 4), dtype=np.float16))
        chunks.append(str(p))
        vectors.append(str(npy))
    manifest = tmp_path / "store.json"
    write_manifest(manifest, chunks, vectors)
    assert json.loads(manifest.read_text())["rows"] == 5
    assert read_manifest(manifest) == (vectors, chunks)

    np.save(vectors[1], np.zeros((3, 4), dtype=np.float16))  # a stale embedding shard
    with pytest.raises(ValueError, match="shard-001.npy holds 3 vectors.*re-run embed_corpus"):
        write_manifest(manifest, chunks, vectors)
    (tmp_path / "shard-000.npy").unlink()
    with pytest.raises(FileNotFoundError, match="shard-000.npy, which is missing"):
        read_manifest(manifest)


def test_the_index_build_logs_which_faiss_it_uses(store, caplog):
    import logging

    import faiss

    s, _ = store
    with caplog.at_level(logging.INFO, logger="ragtune.retrieval.index"):
        faiss_index.build(s, "Flat", train_size=600, add_batch_size=128)
    build = faiss_index.faiss_build()
    assert build["faiss_version"] == faiss.__version__
    assert build["faiss_package"].startswith("faiss-cpu==") and build["faiss_gpus"] == 0
    text = caplog.text
    assert f"faiss {faiss.__version__} from faiss-cpu==" in text and "on the CPU" in text


def test_broken_vectors_never_reach_the_index(tmp_path):
    """An embedding shard overwritten with same-size garbage: NaN / inf / unnormalised vectors
    fail the build with the file and the rule to re-run."""
    from ragtune.retrieval.store import CorruptArtifactError

    good = _unit(np.random.default_rng(0), 50, 8).astype(np.float16)
    bad = good.copy()
    bad[7, 2] = np.nan
    bad[9] = np.inf
    np.save(tmp_path / "ok.npy", good)
    np.save(tmp_path / "bad.npy", bad)
    store = EmbeddingStore([tmp_path / "ok.npy", tmp_path / "bad.npy"])
    with pytest.raises(
        CorruptArtifactError, match=r"bad\.npy: 2 broken vector.*row 7 is not finite.*embed_corpus"
    ):
        faiss_index.build(store, "Flat", train_size=100, add_batch_size=16)
    np.save(tmp_path / "bad.npy", good * 3)  # finite, but not the normalised vectors we store
    with pytest.raises(CorruptArtifactError, match=r"of norm 3\.0\d+, not 1"):
        faiss_index.build(
            EmbeddingStore([tmp_path / "bad.npy"]), "Flat", train_size=100, add_batch_size=16
        )


def test_truncated_shards_and_indexes_name_the_file_and_the_rule(tmp_path):
    import faiss

    from ragtune.retrieval.store import CorruptArtifactError

    np.save(tmp_path / "emb.npy", np.zeros((100, 8), dtype=np.float16))
    data = (tmp_path / "emb.npy").read_bytes()
    (tmp_path / "emb.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptArtifactError, match=r"emb\.npy is not a readable.*embed_corpus"):
        EmbeddingStore([tmp_path / "emb.npy"])
    index = faiss.IndexFlatIP(8)
    index.add(np.eye(8, dtype=np.float32))
    faiss.write_index(index, str(tmp_path / "index.faiss"))
    data = (tmp_path / "index.faiss").read_bytes()
    (tmp_path / "index.faiss").write_bytes(data[:40])
    with pytest.raises(ValueError, match=r"index\.faiss is not a readable.*build_index"):
        faiss_index.read_index(tmp_path / "index.faiss")


def test_k_above_the_corpus_size_is_refused():
    with pytest.raises(ValueError, match="retrieval.k is 100000, but the corpus holds only 1375"):
        faiss_index.check_k(100000, 1375, "the corpus")
    faiss_index.check_k(5, 1375, "the corpus")


def test_embedding_a_shard_refuses_to_write_broken_vectors(tmp_path, monkeypatch):
    from ragtune.retrieval.store import CorruptArtifactError
    from ragtune.steps import index as step

    (tmp_path / "chunks.jsonl").write_text('{"id": "a", "title": "T", "text": "x"}\n')
    monkeypatch.setattr(step.models, "load_embedder", lambda *a, **k: object())
    monkeypatch.setattr(step, "encode", lambda *a, **k: np.full((1, 8), np.nan, np.float32))
    with pytest.raises(CorruptArtifactError, match="not finite"):
        step.embed_shard(
            str(tmp_path / "chunks.jsonl"),
            str(tmp_path / "e.npy"),
            "m",
            {"batch_size": 4, "max_seq_length": None},
        )
    assert not (tmp_path / "e.npy").exists()


def test_a_truncated_shard_in_the_manifest_names_the_file_and_the_rule(tmp_path):
    from ragtune.retrieval.store import CorruptArtifactError, write_manifest

    chunks = tmp_path / "shard-000.jsonl"
    chunks.write_text('{"id": "a"}\n{"id": "b"}\n')
    np.save(offsets_path(chunks), line_offsets(chunks))
    npy = tmp_path / "shard-000.npy"
    np.save(npy, np.zeros((2, 64), dtype=np.float16))
    npy.write_bytes(npy.read_bytes()[:100])
    with pytest.raises(
        CorruptArtifactError, match=r"shard-000\.npy is not a readable.*embed_corpus"
    ):
        write_manifest(tmp_path / "store.json", [str(chunks)], [str(npy)])


def test_an_empty_shard_embeds_to_an_empty_matrix(tmp_path, minilm_spec):
    """A one-document corpus over 2 shards leaves one shard empty: it embeds to (0, dim), so
    the k check can speak instead of a numpy AxisError."""
    from ragtune.steps import index as step

    (tmp_path / "chunks.jsonl").write_text("")
    step.embed_shard(
        str(tmp_path / "chunks.jsonl"), str(tmp_path / "e.npy"), minilm_spec,
        {"batch_size": 4, "max_seq_length": None},
    )  # fmt: skip
    assert np.load(tmp_path / "e.npy").shape == (0, 384)
