# The paper's tables and figures, the comparison with its published numbers, and the report
# (`snakemake --report results/report.html`). Captions live in workflow/report/.


rule tables:
    input:
        selections=[s["path"] for s in PLAN.selections()],
        # No Ft. needs no grid: listing it plainly lets it run before any grid is selected
        baseline=[
            LAYOUT.metrics(d, p, "no_ft", "base", sp)
            for d in DATASETS
            for p in PIPELINES
            for sp in EVAL_SPLITS
        ],
        runs=lambda wc: PLAN.table_inputs(),
    output:
        **{
            t: report(
                LAYOUT.table(t),
                caption=f"../workflow/report/table_{t}.rst",
                category="Tables",
            )
            for t in TABLES
        },
        markdown=[LAYOUT.table(t, "md") for t in TABLES],
        latex=[LAYOUT.table(t, "tex") for t in TABLES],
        jobs=LAYOUT.table("jobs"),
    log:
        log_path("tables", "tables"),
    benchmark:
        bench_path("tables", "tables")
    conda:
        CONDA_ENV
    params:
        rows=lambda wc: PLAN.table_rows(),
        caption=CONFIG_LABEL,
        setup=ragtune_labels.setup_label(config),
        paper_matches=ragtune_rule_settings.canonical(
            ragtune_labels.paper_matches(config)
        ),
        bootstrap=ragtune_rule_settings.canonical(config["evaluation"]["bootstrap"]),
        seed=config["seed"],
    script:
        "../workflow/scripts/tables.py"


rule figures:
    input:
        runs=LAYOUT.table("all_runs"),
        comparison=LAYOUT.table("paper_comparison"),
        selections=[s["path"] for s in PLAN.selections()],
        models=lambda wc: sorted({c["folder"] for c in PLAN.loss_curves()}),
    output:
        **{
            f: report(
                LAYOUT.figure(f),
                caption=f"../workflow/report/figure_{f}.rst",
                category="Figures",
            )
            for f in FIGURES
        },
        svg=[LAYOUT.figure(f, "svg") for f in FIGURES],
    log:
        log_path("figures", "figures"),
    benchmark:
        bench_path("figures", "figures")
    conda:
        CONDA_ENV
    params:
        selections=lambda wc: PLAN.selections(),
        curves=lambda wc: PLAN.loss_curves(),
        caption=CONFIG_LABEL,
        rows=lambda wc: PLAN.table_rows(),
        bootstrap=ragtune_rule_settings.canonical(config["evaluation"]["bootstrap"]),
        seed=config["seed"],
    script:
        "../workflow/scripts/figures.py"


rule report_config:
    output:
        report(
            LAYOUT.report_config(),
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
