# ragtune: fine-tune and evaluate RAG pipelines, after Lawton et al. (EMNLP 2025 Findings).
# This file only wires things together: helpers live in rules/common.smk, logic in src/ragtune.
import os
import sys

from snakemake.utils import min_version, validate

from ragtune.config import check_keys
from ragtune.data import demo

min_version("9.0")


# The demo config is the default. A --configfile replaces it rather than being deep-merged
# into it, so the paper config never inherits the demo's local files and models.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Unknown keys first, one line each with the nearest valid key; then the schema's own checks.
check_keys(config, f"{workflow.basedir}/config/schema.yaml")
validate(config, "config/schema.yaml")

# The demo's inputs, before anything reads them: the local mirror, or a fetch from public
# sources on a fresh clone (ragtune.data.demo). Which one is in the log and the report.
DEMO_SOURCE = None
if "demo_data" in config:
    DEMO_SOURCE = demo.ensure(config["demo_data"], config["datasets"], workflow.basedir)
    if workflow.is_main_process:
        print(f"ragtune: demo data from {demo.describe(DEMO_SOURCE)}", file=sys.stderr)


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/corpus.smk"
include: "rules/index.smk"
include: "rules/qa.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Small jobs run in Snakemake's own process, under a cluster profile too: queued as sbatch
# jobs, select_lr alone (between 2-Phase's phases) would stall the DAG at every grid.
localrules:
    select_lr,
    tables,
    figures,
    report_config,
    summary,


rule all:
    default_target: True
    input:
        all_targets(),


# Before the first job (not on a dry run): every Hub source a pending job reads exists, and
# the Hub answers or the local cache holds it; on SLURM, every job fits a node and its end can
# be seen. One message, instead of a failure in a job log or a job pending for ever.
onstart:
    check_hub_sources()
    check_slurm()


# `make run` prints the summary itself, once the report is built (rule summary).
onsuccess:
    if os.environ.get("RAGTUNE_SUMMARY") != "0":
        print_summary()
