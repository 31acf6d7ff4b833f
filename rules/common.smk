# Config access, wildcard constraints, target lists and input functions: the experiment plan
# (ragtune.plan, which also lays out results/) adapted to Snakemake, and nothing more.
import json
import os
from pathlib import Path

from ragtune import hub as ragtune_hub
from ragtune import models as ragtune_models
from ragtune import plan as ragtune_plan
from ragtune import preflight as ragtune_preflight
from ragtune import rule_settings as ragtune_rule_settings
from ragtune import scheduling as ragtune_scheduling
from ragtune import slurm as ragtune_slurm
from ragtune.report import labels as ragtune_labels
from ragtune.report import summary as ragtune_summary

# No configured source on the Hub: every job runs with the Hub offline (jobs inherit this
# process's environment, locally and through the SLURM executor, which re-reads this file).
if not ragtune_hub.sources(config):
    os.environ.update(ragtune_hub.OFFLINE_ENV)

RESULTS = config["results"]
# One pinned environment for every rule, for `--sdm conda` users (same pins as pyproject.toml):
# faiss-cpu, or on GPU hosts faiss-gpu of the same version.
CONDA_ENV = {"cpu": "../envs/ragtune.yaml", "gpu": "../envs/ragtune-gpu.yaml"}[
    config["conda_env"]
]
CORPUS = config["corpus"]["name"]
# Sorted: the tables, captions and labels list them in one order whatever the config's key
# order, so a reordered config re-makes nothing (rule_settings.canonical does the params).
DATASETS = sorted(config["datasets"])
PIPELINES = dict(sorted(config["pipelines"].items()))
EVAL_SPLITS = config["evaluation"]["splits"]
# Training reads the base embedder's retrieval of train; every run is evaluated on EVAL_SPLITS.
BASE_RETRIEVAL_SPLITS = ["train", *EVAL_SPLITS]


def winner(dataset, pipeline, strategy):
    """A grid's winning `lrs`, read from select_lr's output (a checkpoint), so that the DAG
    below it is only planned once the grid has been evaluated."""
    selected = checkpoints.select_lr.get(
        dataset=dataset, pipeline=pipeline, strategy=strategy
    ).output[0]
    with open(selected) as fh:
        return json.load(fh)["winner"]


# The experiment plan (ragtune.plan): the strategies, their grids, what each run trains and
# reads, and the layout of results/. What follows adapts it to Snakemake.
PLAN = ragtune_plan.Plan(config, winner)
LAYOUT = PLAN.layout
SHARDS = PLAN.shards


wildcard_constraints:
    shard=r"\d{3}",
    split="train|validation|test",
    dataset="|".join(DATASETS),
    pipeline="|".join(PIPELINES),
    embedder="|".join(config["embedders"]),
    generator="|".join(config["generators"]),
    strategy="|".join(PLAN.active),
    lrs=ragtune_plan.LRS_RE,
    # base, ft_embed/e<lr>, or <pipeline>/<strategy>/<lrs> for a query encoder trained jointly
    variant=f"base|{ragtune_plan.TUNED_VARIANT_RE}",
    lr=ragtune_plan.LR_RE,


# A run's wildcards, for the Layout paths of its outputs.
RUN_WILDCARDS = ("{dataset}", "{pipeline}", "{strategy}", "{lrs}")
log_path = LAYOUT.log
bench_path = LAYOUT.benchmark


def gpus(rule):
    return config["resources"][rule]


def _global_resource(name):
    value = workflow.global_resources.get(name)
    return getattr(value, "value", value)


# `--resources gpu=N` of a local run (None on SLURM, where the scheduler counts GPUs).
GPU_BUDGET = _global_resource("gpu")

# The config, the GPU budget, every GPU job's memory and k against a built index, once, in
# this (the main) process, before any job is planned (ragtune.preflight).
if workflow.is_main_process:
    ragtune_preflight.run(
        config,
        gpu_budget=GPU_BUDGET,
        gpu_memory_overrides={
            name: res["gpu_memory_gb"]
            for name, res in workflow.resource_settings.overwrite_resources.items()
            if "gpu_memory_gb" in res
        },
        built_index_infos=[
            f"{LAYOUT.index_dir(e)}/info.json" for e in config["embedders"]
        ],
    )


def job_threads(rule):
    """Threads of a GPU rule's job: config `threads`, capped at its GPUs' share of the node's
    cores, so that all the node's GPUs can be busy at once."""
    return ragtune_scheduling.gpu_job_threads(
        config["threads"], gpus(rule), _global_resource("_cores"), GPU_BUDGET
    )


# ---- input functions: the plan's answers for a job's wildcards ------------------------------
qa_split = LAYOUT.qa_split
retrieval_file = LAYOUT.retrieval
metrics_file = LAYOUT.metrics
index_file = LAYOUT.index_file
store_manifest = LAYOUT.store_manifest


def focus_qa_inputs():
    if config["corpus"].get("focus") is None:
        return []
    return [qa_split(d, s) for d in DATASETS for s in ("train", "validation", "test")]


def chunk_shards():
    return [LAYOUT.chunk_shard(s) for s in SHARDS]


def embedding_shards(embedder):
    return [LAYOUT.embedding_shard(embedder, s) for s in SHARDS]


def refreshed_shards(dataset, embedder, variant):
    return [LAYOUT.refreshed_shard(dataset, embedder, variant, s) for s in SHARDS]


def embedder_of(pipeline):
    return PIPELINES[pipeline]["embedder"]


def base_retrieval(dataset, embedder, split):
    return retrieval_file(dataset, embedder, "base", split)


def _run(wc):
    return {k: wc[k] for k in ("dataset", "pipeline", "strategy", "lrs")}


# Each plan answer is (the outputs a job waits for, the spec it loads); [0] is an input,
# [1] a param.
base_generator = PLAN.base_generator
generator_input = lambda wc: PLAN.run_generator(**_run(wc))[0]
generator_spec = lambda wc: PLAN.run_generator(**_run(wc))[1]
joint_generator_inputs = lambda wc: PLAN.joint_generator(**_run(wc))[0]
joint_generator_spec = lambda wc: PLAN.joint_generator(**_run(wc))[1]
query_embedder_input = lambda wc: PLAN.query_encoder(
    wc.dataset, wc.embedder, wc.variant
)[0]
query_embedder_spec = lambda wc: PLAN.query_encoder(
    wc.dataset, wc.embedder, wc.variant
)[1]
retrieval_input = lambda wc: PLAN.run_retrieval(**_run(wc), split=wc.split)
joint_loss = lambda wc: ragtune_rule_settings.canonical(PLAN.loss_params(wc.strategy))
joint_lrs = lambda wc: PLAN.joint_lrs(wc.strategy, wc.lrs)
grid_lrs = lambda wc: PLAN.grid_lrs(wc.dataset, wc.pipeline, wc.strategy)
grid_validation_metrics = lambda wc: PLAN.validation_metrics(
    wc.dataset, wc.pipeline, wc.strategy
)
# The seed a training job trains with: its run's, or the config's `seed`.
training_seed = lambda wc: PLAN.training_seed(wc.get("lrs") or wc.get("lr"))


# What the report says made it (ragtune.report.labels).
RESULT_CONFIG = ragtune_rule_settings.result_config(config)
CONFIG_MD5 = ragtune_labels.config_md5(config)
CONFIG_LABEL = ragtune_labels.config_label(config, PLAN.caption_notes())
TABLES = ragtune_labels.tables(EVAL_SPLITS)
FIGURES = ragtune_labels.FIGURES
REPORT = LAYOUT.report_html()


def all_targets():
    return LAYOUT.report_targets(TABLES, FIGURES)


def print_summary(log_file=None):
    ragtune_summary.print_summary(RESULTS, REPORT, CONFIG_MD5, log_file)


def check_hub_sources():
    rules_to_run = {job.rule.name for job in workflow.dag.needrun_jobs()}
    ragtune_hub.check(config, rules_to_run)


def check_slurm():
    ragtune_slurm.check_workflow(workflow)
