# The paper's tables and figures, the comparison with its published numbers, and the report
# (`snakemake --report results/report.html`). Captions live in workflow/report/.


rule tables:
    input:
        selections=all_selections(),
        # No Ft. needs no grid: listing it plainly lets it run before any grid is selected
        baseline=[
            metrics_file(d, p, "no_ft", "base", sp)
            for d in DATASETS
            for p in PIPELINES
            for sp in EVAL_SPLITS
        ],
        runs=table_inputs,
    output:
        **{
            t: report(
                f"{RESULTS}/tables/{t}.csv",
                caption=f"../workflow/report/table_{t}.rst",
                category="Tables",
            )
            for t in TABLES
        },
        markdown=[f"{RESULTS}/tables/{t}.md" for t in TABLES],
        latex=[f"{RESULTS}/tables/{t}.tex" for t in TABLES],
        jobs=f"{RESULTS}/tables/jobs.csv",
    log:
        log_path("tables", "tables"),
    benchmark:
        bench_path("tables", "tables")
    conda:
        CONDA_ENV
    params:
        rows=table_rows,
        caption=CONFIG_LABEL,
        setup=SETUP_LABEL,
        paper_matches=ragtune_rule_settings.canonical(PAPER_MATCHES),
        bootstrap=ragtune_rule_settings.canonical(config["evaluation"]["bootstrap"]),
        seed=config["seed"],
    script:
        "../workflow/scripts/tables.py"


rule figures:
    input:
        runs=f"{RESULTS}/tables/all_runs.csv",
        comparison=f"{RESULTS}/tables/paper_comparison.csv",
        selections=all_selections(),
        models=figure_inputs,
    output:
        **{
            f: report(
                f"{RESULTS}/figures/{f}.png",
                caption=f"../workflow/report/figure_{f}.rst",
                category="Figures",
            )
            for f in FIGURES
        },
        svg=[f"{RESULTS}/figures/{f}.svg" for f in FIGURES],
    log:
        log_path("figures", "figures"),
    benchmark:
        bench_path("figures", "figures")
    conda:
        CONDA_ENV
    params:
        selections=selections,
        curves=chosen_loss_curves,
        caption=CONFIG_LABEL,
        rows=table_rows,
        bootstrap=ragtune_rule_settings.canonical(config["evaluation"]["bootstrap"]),
        seed=config["seed"],
    script:
        "../workflow/scripts/figures.py"


rule report_config:
    output:
        report(
            f"{RESULTS}/report/config.yaml",
            caption="../workflow/report/config.rst",
            category="Configuration",
        ),
    log:
        log_path("report_config", "config"),
    benchmark:
        bench_path("report_config", "config")
    conda:
        CONDA_ENV
    params:
        config=ragtune_rule_settings.canonical(RESULT_CONFIG),
        files=CONFIG_LABEL,
        demo_source=ragtune_rule_settings.canonical(DEMO_SOURCE),
    script:
        "../workflow/scripts/report_config.py"


# The end-of-run summary on demand: `make run` asks for it after building the report, and it
# prints even when there was nothing to do (Snakemake runs no onsuccess hook then).
rule summary:
    log:
        log_path("summary", "summary"),
    run:
        print_summary(log[0])
