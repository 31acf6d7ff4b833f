# The result tables, from every chosen run's metrics.


rule tables:
    input:
        selections=all_selections(),
        baseline=[
            metrics_file(d, p, "no_ft", "base", sp)
            for d in DATASETS
            for p in PIPELINES
            for sp in EVAL_SPLITS
        ],
        runs=table_inputs,
    output:
        csv=f"{RESULTS}/tables/main.csv",
        md=f"{RESULTS}/tables/main.md",
    log:
        log_path("tables", "main"),
    benchmark:
        bench_path("tables", "main")
    conda:
        CONDA_ENV
    params:
        rows=table_rows,
    script:
        "../workflow/scripts/tables.py"
