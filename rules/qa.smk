# QA splits with context labels, and the base embedder's top-k retrieval for every question.


rule prepare_qa:
    output:
        train=f"{RESULTS}/{{dataset}}/qa/train.jsonl",
        validation=f"{RESULTS}/{{dataset}}/qa/validation.jsonl",
        test=f"{RESULTS}/{{dataset}}/qa/test.jsonl",
        sizes=f"{RESULTS}/{{dataset}}/qa/sizes.json",
    log:
        log_path("prepare_qa", "{dataset}"),
    benchmark:
        bench_path("prepare_qa", "{dataset}")
    conda:
        CONDA_ENV
    params:
        dataset=lambda wc: config["datasets"][wc.dataset],
        seed=config["seed"],
    script:
        "../workflow/scripts/prepare_qa.py"


rule retrieve:
    input:
        questions=f"{RESULTS}/{{dataset}}/qa/{{split}}.jsonl",
        index=lambda wc: index_file(wc.embedder),
        store=lambda wc: store_manifest(wc.embedder),
        # A tuned query encoder searches the same index: only the query side was trained.
        query_encoder=query_embedder_input,
    output:
        f"{RESULTS}/{{dataset}}/retrieval/{{embedder}}/{{variant}}/{{split}}.jsonl",
    log:
        log_path("retrieve", "{dataset}", "{embedder}", "{variant}", "{split}"),
    benchmark:
        bench_path("retrieve", "{dataset}", "{embedder}", "{variant}", "{split}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpus("retrieve"),
    params:
        embedder=query_embedder_spec,
        retrieval=config["retrieval"],
    script:
        "../workflow/scripts/retrieve.py"
