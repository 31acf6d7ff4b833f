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


# Document-side training (training.embedder.train_documents): a run's tuned encoder re-embeds
# the corpus and builds the run's own index, as ordinary jobs, before its retrieval. The plan
# asks for them only for such runs (ragtune.plan.Plan.search_index).
rule embed_corpus_refreshed:
    input:
        chunks=LAYOUT.chunk_shard("{shard}"),
        encoder=query_embedder_input,
    output:
        vectors=LAYOUT.refreshed_shard(
            "{dataset}", "{embedder}", "{variant}", "{shard}"
        ),
        info=LAYOUT.refreshed_shard_record(
            "{dataset}", "{embedder}", "{variant}", "{shard}"
        ),
    log:
        log_path(
            "embed_corpus_refreshed", "{dataset}", "{embedder}", "{variant}", "{shard}"
        ),
    benchmark:
        bench_path(
            "embed_corpus_refreshed", "{dataset}", "{embedder}", "{variant}", "{shard}"
        )
    wildcard_constraints:
        variant=ragtune_plan.TUNED_VARIANT_RE,
    conda:
        CONDA_ENV
    threads: job_threads("embed_corpus")
    resources:
        gpu=gpus("embed_corpus"),
    params:
        embedder=query_embedder_spec,
        settings=ragtune_rule_settings.triggers(config, "embed_corpus_refreshed"),
    script:
        "../workflow/scripts/embed_corpus.py"


rule build_index_refreshed:
    input:
        shards=lambda wc: refreshed_shards(wc.dataset, wc.embedder, wc.variant),
        chunks=chunk_shards(),
    output:
        index=LAYOUT.refreshed_index_file("{dataset}", "{embedder}", "{variant}"),
        info=LAYOUT.refreshed_index_info("{dataset}", "{embedder}", "{variant}"),
        store=LAYOUT.refreshed_store("{dataset}", "{embedder}", "{variant}"),
    log:
        log_path("build_index_refreshed", "{dataset}", "{embedder}", "{variant}"),
    benchmark:
        bench_path("build_index_refreshed", "{dataset}", "{embedder}", "{variant}")
    wildcard_constraints:
        variant=ragtune_plan.TUNED_VARIANT_RE,
    conda:
        CONDA_ENV
    threads: job_threads("build_index")
    resources:
        gpu=gpus("build_index"),
    params:
        settings=ragtune_rule_settings.triggers(config, "build_index_refreshed"),
        seed=config["seed"],
    script:
        "../workflow/scripts/build_index.py"
