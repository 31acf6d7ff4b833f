# Generate answers from the retrieved chunks and score them.


rule evaluate:
    input:
        questions=f"{RESULTS}/{{dataset}}/qa/{{split}}.jsonl",
        retrieved=retrieval_input,
        chunks=chunk_shards(),
        generator=generator_input,
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{pipeline}}/{{strategy}}/{{lrs}}/{{split}}/metrics.json",
        predictions=f"{RESULTS}/{{dataset}}/{{pipeline}}/{{strategy}}/{{lrs}}/{{split}}/predictions.jsonl",
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
    threads: config["threads"]
    resources:
        gpu=gpus("evaluate"),
    params:
        generator=generator_spec,
        generation=config["generation"],
    script:
        "../workflow/scripts/evaluate.py"
