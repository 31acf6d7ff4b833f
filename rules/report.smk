# The result tables, from every chosen run's metrics.


rule tables:
    input:
        metrics=[metrics_file(*run) for run in chosen_runs()],
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
        runs=chosen_runs(),
    script:
        "../workflow/scripts/tables.py"
