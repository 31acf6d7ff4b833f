# Config access, wildcard constraints, target lists and input functions: the experiment plan
# (ragtune.plan, which also lays out results/) adapted to Snakemake, and nothing more.
import hashlib
import json
import os
from pathlib import Path

from ragtune import config as ragtune_config
from ragtune import gpu as ragtune_gpu
from ragtune import hub as ragtune_hub
from ragtune import models as ragtune_models
from ragtune import plan as ragtune_plan
from ragtune import rule_settings as ragtune_rule_settings
from ragtune import scheduling as ragtune_scheduling
from ragtune import slurm as ragtune_slurm
from ragtune.memory import plan as ragtune_memory_plan
from ragtune.retrieval import index as ragtune_faiss_index
from ragtune.report import summary as ragtune_summary

# Cross-references, data files, their columns and model specs, before any job is planned.
ragtune_config.check(config)
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
SHARDS = [f"{i:03d}" for i in range(config["corpus"]["shards"])]
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


log_path = LAYOUT.log
bench_path = LAYOUT.benchmark


def gpus(rule):
    return config["resources"][rule]


def _global_resource(name):
    value = workflow.global_resources.get(name)
    return getattr(value, "value", value)


# `--resources gpu=N` of a local run (None on SLURM, where the scheduler counts GPUs): a budget
# above the node's GPUs fails here, before any job starts and waits for a GPU that is not there.
GPU_BUDGET = _global_resource("gpu")
if workflow.is_main_process:
    ragtune_scheduling.check_gpu_budget(GPU_BUDGET, ragtune_gpu.node_gpu_count())


# Every GPU job's memory, estimated from its model's architecture and the configured shapes,
# against its GPU (resources.gpu_memory_gb, or the profile's gpu_memory_gb per rule): a job that
# would run out of memory fails the plan here, not hours into a queue.
if workflow.is_main_process:
    MEMORY_PLAN = ragtune_memory_plan.check(
        config,
        {
            name: res["gpu_memory_gb"]
            for name, res in workflow.resource_settings.overwrite_resources.items()
            if "gpu_memory_gb" in res
        },
        cache_dir=Path(".snakemake") / "ragtune-memory-plan",
    )


def job_threads(rule):
    """Threads of a GPU rule's job: config `threads`, capped at its GPUs' share of the node's
    cores, so that all the node's GPUs can be busy at once."""
    return ragtune_scheduling.gpu_job_threads(
        config["threads"], gpus(rule), _global_resource("_cores"), GPU_BUDGET
    )


# ---- corpus and index ----------------------------------------------------------------------
def focus_qa_inputs():
    if config["corpus"].get("focus") is None:
        return []
    return [qa_split(d, s) for d in DATASETS for s in ("train", "validation", "test")]


def chunk_shards():
    return [LAYOUT.chunk_shard(s) for s in SHARDS]


def embedding_shards(embedder):
    return [LAYOUT.embedding_shard(embedder, s) for s in SHARDS]


def index_file(embedder):
    return f"{LAYOUT.index_dir(embedder)}/index.faiss"


def store_manifest(embedder):
    # The chunk and embedding shards as one input: jobs read their paths from it (see
    # ragtune.retrieval.store.write_manifest for why).
    return f"{LAYOUT.index_dir(embedder)}/store.json"


# k against every index already built: a k the corpus cannot fill fails here, before any job.
ragtune_faiss_index.check_k_against_built(
    config["retrieval"]["k"],
    [
        f"{LAYOUT.index_dir(e)}/info.json"
        for e in sorted({p["embedder"] for p in PIPELINES.values()})
    ],
)


# ---- models --------------------------------------------------------------------------------
def embedder_of(pipeline):
    return PIPELINES[pipeline]["embedder"]


def base_generator_inputs(pipeline):
    """The converted HF folder of a GGUF generator (convert_generator), else nothing."""
    generator = PIPELINES[pipeline]["generator"]
    if ragtune_models.resolve(config["generators"][generator]).is_gguf:
        return [LAYOUT.converted_generator(generator)]
    return []


def base_generator_spec(pipeline):
    converted = base_generator_inputs(pipeline)
    return (
        converted[0]
        if converted
        else config["generators"][PIPELINES[pipeline]["generator"]]
    )


def generator_input(wildcards):
    """The base generator's converted folder (GGUF only) and, for a tuned run, its adapter."""
    tuned = PLAN.tuned_generator(**_run(wildcards))
    return base_generator_inputs(wildcards.pipeline) + ([tuned[0]] if tuned else [])


def generator_spec(wildcards):
    tuned = PLAN.tuned_generator(**_run(wildcards))
    return tuned[1] if tuned else base_generator_spec(wildcards.pipeline)


def _run(wildcards):
    return {k: wildcards[k] for k in ("dataset", "pipeline", "strategy", "lrs")}


# ---- QA and retrieval ------------------------------------------------------------------------
qa_split = LAYOUT.qa_split
retrieval_file = LAYOUT.retrieval


def base_retrieval(dataset, embedder, split):
    return retrieval_file(dataset, embedder, "base", split)


def query_embedder_input(wildcards):
    tuned = PLAN.tuned_query_encoder(
        wildcards.dataset, wildcards.embedder, wildcards.variant
    )
    return [tuned[0]] if tuned else []


def query_embedder_spec(wildcards):
    tuned = PLAN.tuned_query_encoder(
        wildcards.dataset, wildcards.embedder, wildcards.variant
    )
    return tuned[1] if tuned else config["embedders"][wildcards.embedder]


def retrieval_input(wildcards):
    """The retrieval a run is evaluated on: its tuned query encoder's, if it has one."""
    variant = PLAN.retrieval_variant(
        wildcards.pipeline, wildcards.strategy, wildcards.lrs
    )
    return retrieval_file(
        wildcards.dataset, embedder_of(wildcards.pipeline), variant, wildcards.split
    )


# ---- joint training ----------------------------------------------------------------------
def joint_loss(wildcards):
    return ragtune_plan.STRATEGIES[wildcards.strategy].loss


def joint_lrs(wildcards):
    return PLAN.joint_lrs(wildcards.strategy, wildcards.lrs)


def joint_generator_inputs(wildcards):
    """A joint run's starting generator: the base, or (2-Phase) its first phase's adapter."""
    inputs = base_generator_inputs(wildcards.pipeline)
    if PLAN.after(wildcards.strategy):
        inputs.append(PLAN.tuned_generator(**_run(wildcards))[0])
    return inputs


def joint_generator_spec(wildcards):
    if PLAN.after(wildcards.strategy):
        return PLAN.tuned_generator(**_run(wildcards))[1]
    return base_generator_spec(wildcards.pipeline)


# ---- LR grids, evaluation and the report -------------------------------------------------------
metrics_file = LAYOUT.metrics


def grid_lrs(wildcards):
    return PLAN.grid_lrs(wildcards.dataset, wildcards.pipeline, wildcards.strategy)


def grid_validation_metrics(wildcards):
    """Every run of the grid, point by point, each point's seeds together."""
    return [
        metrics_file(
            wildcards.dataset, wildcards.pipeline, wildcards.strategy, run, "validation"
        )
        for lrs in grid_lrs(wildcards)
        for run in PLAN.runs(lrs)
    ]


def training_seed(wildcards):
    """The seed a training job trains with: its run's, or the config's `seed`."""
    return PLAN.training_seed(wildcards.get("lrs") or wildcards.get("lr"))


def eval_job(dataset, pipeline, strategy, lrs, split):
    return {
        "record": metrics_file(dataset, pipeline, strategy, lrs, split),
        "benchmark": bench_path("evaluate", dataset, pipeline, strategy, lrs, split),
    }


def table_rows(wildcards=None):
    """One entry per (dataset, pipeline, strategy, split) row, with the chosen LRs resolved,
    and every job behind it (see ragtune.report.tables.collect)."""
    rows = []
    for d in DATASETS:
        for p in PIPELINES:
            for st in PLAN.rows:
                lrs = PLAN.chosen_lrs(d, p, st)
                # Every seed's jobs: the cost counts them all.
                grid = [
                    {
                        "lrs": run,
                        "train": PLAN.train_job(d, p, g_st, run),
                        "eval": eval_job(d, p, g_st, run, "validation"),
                    }
                    for g_st, g_lrs in PLAN.grid_points(d, p, st)
                    for run in PLAN.runs(g_lrs)
                ]
                chosen = [
                    PLAN.train_job(d, p, *job)
                    for run in PLAN.runs(lrs)
                    for job in PLAN.training_runs(st, run)
                ]
                for sp in EVAL_SPLITS:
                    rows.append(
                        {
                            "dataset": d,
                            "split": sp,
                            "pipeline": p,
                            "embedder": embedder_of(p),
                            "generator": PIPELINES[p]["generator"],
                            "strategy": st,
                            "lrs": lrs,
                            # one per seed
                            "metrics": [
                                metrics_file(d, p, st, run, sp)
                                for run in PLAN.runs(lrs)
                            ],
                            "chosen": chosen,
                            "grid": grid,
                        }
                    )
    return rows


def chosen_loss_curves(wildcards=None):
    """Every chosen run's own training job: {dataset, pipeline, label, folder, path}. Indp.
    trains nothing of its own (its halves have their rows); 2-Phase shows both phases.
    """
    curves = []
    for d in DATASETS:
        for p in PIPELINES:
            for st in PLAN.rows:
                if ragtune_plan.STRATEGIES[st].combines:
                    continue
                runs = PLAN.runs(PLAN.chosen_lrs(d, p, st))
                for job_st, job_lrs in [
                    job for run in runs for job in reversed(PLAN.training_runs(st, run))
                ]:
                    folder = PLAN.model_dir(d, p, job_st, job_lrs)
                    # 2-Phase's phase 1 may be Ft. Gen.'s run, already drawn
                    if any(c["folder"] == folder for c in curves):
                        continue
                    curves.append(
                        {
                            "dataset": d,
                            "pipeline": p,
                            "label": f"{ragtune_plan.phase_label(job_st)} ({job_lrs})",
                            "folder": folder,
                            "path": f"{folder}/loss.csv",
                        }
                    )
    return curves


def selections(wildcards=None):
    """Every grid's select_lr output, for the LR-sensitivity figure."""
    return [
        {
            "dataset": d,
            "pipeline": p,
            "strategy": ragtune_plan.phase_label(st),
            "path": LAYOUT.selected(d, p, st),
        }
        for d in DATASETS
        for p in PIPELINES
        for st in PLAN.selected
    ]


def all_selections():
    """Every grid's selected.json, as plain paths: listing them all up front lets Snakemake plan
    every grid at once instead of one checkpoint at a time."""
    return [
        LAYOUT.selected(d, p, st)
        for d in DATASETS
        for p in PIPELINES
        for st in PLAN.selected
    ]


def table_inputs(wildcards):
    rows = table_rows()
    files = {path for r in rows for path in r["metrics"]}
    for r in rows:
        jobs = r["chosen"] + [
            point[role] for point in r["grid"] for role in ("train", "eval")
        ]
        files |= {path for job in jobs for path in job.values()}
    return sorted(files)


def figure_inputs(wildcards):
    return sorted({c["folder"] for c in chosen_loss_curves()})


def split_size(spec):
    return spec["size"] if "size" in spec else len(spec["ids"])


# What the report says made it: the config's content hash (saved beside the report as
# report/config.yaml), its pipelines and datasets. Not the config file's name, so that the same
# config under another name does not re-make every table.
# Speed and memory knobs and resources are left out (ragtune.rule_settings.result_config).
RESULT_CONFIG = ragtune_rule_settings.result_config(config)
CONFIG_MD5 = hashlib.md5(
    json.dumps(RESULT_CONFIG, sort_keys=True).encode()
).hexdigest()[:10]
CONFIG_LABEL = "config md5 {md5} (report/config.yaml); pipelines: {pipes}; datasets: {data}; decoding: {decoding}{two_phase}".format(
    two_phase=f"; {PLAN.two_phase_note()}" if PLAN.two_phase_note() else "",
    decoding=config["evaluation"]["decoding"],
    md5=CONFIG_MD5,
    pipes=", ".join(
        f"{p} ({v['embedder']} + {v['generator']})" for p, v in PIPELINES.items()
    ),
    data=", ".join(
        f"{d} (validation n={split_size(v['splits']['validation'])})"
        for d, v in sorted(config["datasets"].items())
    ),
)
# Our models and scale, beside the paper's in the comparison table.
SETUP_LABEL = "{pipes}; top-{k}; validation n = {n}".format(
    pipes=", ".join(
        f"{config['embedders'][v['embedder']]} + {config['generators'][v['generator']]}"
        for v in PIPELINES.values()
    ),
    k=config["retrieval"]["k"],
    n=", ".join(
        f"{d} {split_size(v['splits']['validation'])}"
        for d, v in sorted(config["datasets"].items())
    ),
)
# Pipelines that reproduce one of the paper's, for the per-pipeline comparison.
PAPER_MATCHES = {p: v["paper"] for p, v in PIPELINES.items() if v.get("paper")}

# The held-out test table exists only where the config evaluates on the test split.
TABLES = ["all_runs", "per_pipeline", "averaged"]
TABLES += ["test"] if "test" in EVAL_SPLITS else []
TABLES += ["cost", "paper_comparison", "significance"]
FIGURES = ["strategies", "lr_sensitivity", "loss_curves", "paper_comparison"]


def all_targets():
    return (
        [f"{RESULTS}/report/config.yaml"]
        + [
            f"{RESULTS}/tables/{t}.{ext}"
            for t in TABLES
            for ext in ("csv", "md", "tex")
        ]
        + [f"{RESULTS}/figures/{f}.png" for f in FIGURES]
    )


REPORT = f"{RESULTS}/report.html"


def print_summary(log_file=None):
    text = ragtune_summary.summary(
        f"{RESULTS}/tables",
        f"{RESULTS}/figures",
        REPORT,
        CONFIG_MD5,
    )
    text = text or f"ragtune: no tables yet in {RESULTS}/tables (run snakemake first)"
    print(text)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        Path(log_file).write_text(text + "\n")


def check_hub_sources():
    rules_to_run = {job.rule.name for job in workflow.dag.needrun_jobs()}
    ragtune_hub.check(config, rules_to_run)


def check_slurm():
    """On the SLURM executor only: every pending job fits a node of its partition, and the
    status command can see jobs end (ragtune.slurm), before anything is submitted."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    ragtune_slurm.preflight(
        workflow.dag.needrun_jobs(),
        workflow.executor_settings,
        Path(".snakemake") / "ragtune-slurm-bin",
    )
