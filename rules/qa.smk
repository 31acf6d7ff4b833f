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
        embeddings=lambda wc: embedding_shards(wc.embedder),
        chunks=chunk_shards(),
    output:
        f"{RESULTS}/{{dataset}}/retrieval/{{embedder}}/base/{{split}}.jsonl",
    log:
        log_path("retrieve", "{dataset}", "{embedder}", "base", "{split}"),
    benchmark:
        bench_path("retrieve", "{dataset}", "{embedder}", "base", "{split}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpus("retrieve"),
    params:
        embedder=lambda wc: config["embedders"][wc.embedder],
        retrieval=config["retrieval"],
    script:
        "../workflow/scripts/retrieve.py"
