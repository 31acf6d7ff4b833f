# Embeddings (one GPU job per shard) and the faiss index over all of them.


rule embed_corpus:
    input:
        chunks=LAYOUT.chunk_shard("{shard}"),
    output:
        LAYOUT.embedding_shard("{embedder}", "{shard}"),
    log:
        log_path("embed_corpus", CORPUS, "{embedder}", "{shard}"),
    benchmark:
        bench_path("embed_corpus", CORPUS, "{embedder}", "{shard}")
    conda:
        CONDA_ENV
    threads: job_threads("embed_corpus")
    resources:
        gpu=gpus("embed_corpus"),
    params:
        embedder=lambda wc: config["embedders"][wc.embedder],
        settings=ragtune_rule_settings.triggers(config, "embed_corpus"),
    script:
        "../workflow/scripts/embed_corpus.py"


rule build_index:
    input:
        shards=lambda wc: embedding_shards(wc.embedder),
        chunks=chunk_shards(),
    output:
        index=LAYOUT.index_file("{embedder}"),
        info=LAYOUT.index_info("{embedder}"),
        store=LAYOUT.store_manifest("{embedder}"),
    log:
        log_path("build_index", CORPUS, "{embedder}"),
    benchmark:
        bench_path("build_index", CORPUS, "{embedder}")
    conda:
        CONDA_ENV
    threads: job_threads("build_index")
    resources:
        gpu=gpus("build_index"),
    params:
        settings=ragtune_rule_settings.triggers(config, "build_index"),
        seed=config["seed"],
    script:
        "../workflow/scripts/build_index.py"
