# QA splits with context labels, and the base embedder's top-k retrieval for every question.


rule prepare_qa:
    output:
        train=LAYOUT.qa_split("{dataset}", "train"),
        validation=LAYOUT.qa_split("{dataset}", "validation"),
        test=LAYOUT.qa_split("{dataset}", "test"),
        sizes=LAYOUT.qa_sizes("{dataset}"),
    log:
        log_path("prepare_qa", "{dataset}"),
    benchmark:
        bench_path("prepare_qa", "{dataset}")
    conda:
        CONDA_ENV
    params:
        dataset=lambda wc: ragtune_rule_settings.canonical(
            config["datasets"][wc.dataset]
        ),
        seed=config["seed"],
    script:
        "../workflow/scripts/prepare_qa.py"


rule retrieve:
    # The base embedder's top-k for every split: training reads train, No Ft. and Ft. Gen. are
    # evaluated on the others. One job per dataset loads the model and the index once.
    input:
        questions=[qa_split("{dataset}", split) for split in BASE_RETRIEVAL_SPLITS],
        index=lambda wc: index_file(wc.embedder),
        store=lambda wc: store_manifest(wc.embedder),
    output:
        [
            retrieval_file("{dataset}", "{embedder}", "base", s)
            for s in BASE_RETRIEVAL_SPLITS
        ],
    log:
        log_path("retrieve", "{dataset}", "{embedder}", "base"),
    benchmark:
        bench_path("retrieve", "{dataset}", "{embedder}", "base")
    conda:
        CONDA_ENV
    threads: job_threads("retrieve")
    resources:
        gpu=gpus("retrieve"),
    params:
        embedder=lambda wc: config["embedders"][wc.embedder],
        settings=ragtune_rule_settings.triggers(config, "retrieve"),
    script:
        "../workflow/scripts/retrieve.py"


rule retrieve_tuned:
    # A tuned query encoder's top-k for the evaluation splits, from the base index where only
    # the query side was trained. Test is retrieved even for a grid point that will not win: it
    # costs one more batch of queries, against a second job's start-up for the winner.
    input:
        questions=[qa_split("{dataset}", split) for split in EVAL_SPLITS],
        # The base index, or the run's own where it trained its document encoder.
        index=lambda wc: PLAN.search_index(wc.dataset, wc.embedder, wc.variant)["index"],
        store=lambda wc: PLAN.search_index(wc.dataset, wc.embedder, wc.variant)["store"],
        query_encoder=query_embedder_input,
    output:
        [retrieval_file("{dataset}", "{embedder}", "{variant}", s) for s in EVAL_SPLITS],
    log:
        log_path("retrieve_tuned", "{dataset}", "{embedder}", "{variant}"),
    benchmark:
        bench_path("retrieve_tuned", "{dataset}", "{embedder}", "{variant}")
    wildcard_constraints:
        variant=ragtune_plan.TUNED_VARIANT_RE,
    conda:
        CONDA_ENV
    threads: job_threads("retrieve")
    resources:
        gpu=gpus("retrieve"),
    params:
        embedder=query_embedder_spec,
        settings=ragtune_rule_settings.triggers(config, "retrieve_tuned"),
    script:
        "../workflow/scripts/retrieve.py"
