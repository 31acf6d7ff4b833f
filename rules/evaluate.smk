# Generate answers from the retrieved chunks and score them.


rule evaluate:
    input:
        questions=LAYOUT.qa_split("{dataset}", "{split}"),
        retrieved=retrieval_input,
        store=lambda wc: store_manifest(embedder_of(wc.pipeline)),
        generator=generator_input,
    output:
        metrics=LAYOUT.metrics(*RUN_WILDCARDS, "{split}"),
        predictions=LAYOUT.predictions(*RUN_WILDCARDS, "{split}"),
    log:
        log_path(
            "evaluate", "{dataset}", "{pipeline}", "{strategy}", "{lrs}", "{split}"
        ),
    benchmark:
        bench_path(
            "evaluate", "{dataset}", "{pipeline}", "{strategy}", "{lrs}", "{split}"
        )
    conda:
        CONDA_ENV
    threads: job_threads("evaluate")
    resources:
        gpu=gpus("evaluate"),
    params:
        generator=generator_spec,
        settings=ragtune_rule_settings.triggers(config, "evaluate"),
    script:
        "../workflow/scripts/evaluate.py"


checkpoint select_lr:
    input:
        metrics=grid_validation_metrics,
    output:
        LAYOUT.selected("{dataset}", "{pipeline}", "{strategy}"),
    log:
        log_path("select_lr", "{dataset}", "{pipeline}", "{strategy}"),
    benchmark:
        bench_path("select_lr", "{dataset}", "{pipeline}", "{strategy}")
    conda:
        CONDA_ENV
    params:
        grid=grid_lrs,
        metric=config["selection"]["metric"],
        pipelines=lambda wc: PLAN.selection_pipelines(wc.pipeline, wc.strategy),
    script:
        "../workflow/scripts/select_lr.py"
