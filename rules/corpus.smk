# The retrieval corpus: each shard is downloaded, then chunked, by jobs of its own. A shard
# written is finished, so an interrupted download resumes at the shards still missing.


rule download_corpus:
    input:
        # Only a focused corpus (corpus.focus) depends on the questions.
        qa=focus_qa_inputs(),
    output:
        docs=LAYOUT.doc_shard("{shard}"),
    log:
        log_path("download_corpus", CORPUS, "{shard}"),
    benchmark:
        bench_path("download_corpus", CORPUS, "{shard}")
    conda:
        CONDA_ENV
    params:
        # chunking is chunk_corpus's: editing it does not download again
        corpus=ragtune_rule_settings.canonical(
            {k: v for k, v in config["corpus"].items() if k != "chunking"}
        ),
        shards=len(SHARDS),
        seed=config["seed"],
    script:
        "../workflow/scripts/download_corpus.py"


rule chunk_corpus:
    input:
        docs=LAYOUT.doc_shard("{shard}"),
    output:
        chunks=LAYOUT.chunk_shard("{shard}"),
        offsets=LAYOUT.chunk_offsets("{shard}"),
    log:
        log_path("chunk_corpus", CORPUS, "{shard}"),
    benchmark:
        bench_path("chunk_corpus", CORPUS, "{shard}")
    conda:
        CONDA_ENV
    params:
        chunking=ragtune_rule_settings.canonical(config["corpus"]["chunking"]),
    script:
        "../workflow/scripts/chunk_corpus.py"
