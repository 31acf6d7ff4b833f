# Config access, wildcard constraints, target lists and input functions.
# Every path the rules use is built here, so the layout of results/ is readable in one place.
import hashlib
import json
import os
from pathlib import Path

from ragtune import config as ragtune_config
from ragtune import gpu as ragtune_gpu
from ragtune import hub as ragtune_hub
from ragtune import models as ragtune_models
from ragtune import rule_settings as ragtune_rule_settings
from ragtune import scheduling as ragtune_scheduling
from ragtune.memory import plan as ragtune_memory_plan
from ragtune.retrieval import index as ragtune_faiss_index
from ragtune.report import summary as ragtune_summary
from ragtune.report import tables as ragtune_tables

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
DATASETS = list(config["datasets"])
PIPELINES = config["pipelines"]
EVAL_SPLITS = config["evaluation"]["splits"]
SPLITS_RE = "train|validation|test"
# Training reads the base embedder's retrieval of train; every run is evaluated on EVAL_SPLITS.
BASE_RETRIEVAL_SPLITS = ["train", *EVAL_SPLITS]
# A tuned query encoder: Ft. Embed's (shared by the embedder's pipelines) or a joint run's.
TUNED_VARIANT_RE = r"ft_embed/e[^_/]+|[^/]+/(two_phase|rag_seq|rag_tok)/e[^/]+"


def fmt_lr(lr):
    """1e-05 style: short, sortable by eye, and the same string in every path."""
    return f"{float(lr):.0e}"


STRATEGY_CONFIG = config["strategies"]
GRIDS = {
    name: [fmt_lr(lr) for lr in spec["lrs"]]
    for name, spec in STRATEGY_CONFIG.items()
    if spec.get("lrs")
}
# A joint strategy takes the LRs the 2-Phase grids chose (the paper's way) or searches its own.
JOINT_OWN_GRID = {
    st: STRATEGY_CONFIG[st].get("lrs_from", "two_phase") == "own"
    for st in ("rag_seq", "rag_tok")
    if st in STRATEGY_CONFIG
}
# The rows of the table, in the paper's order; each strategy is there once its grids are.
STRATEGIES = ["no_ft"] + [s for s in ("ft_embed", "ft_gen") if s in GRIDS]
if {"ft_embed", "ft_gen"} <= set(GRIDS):
    STRATEGIES.append("indp")
if "two_phase" in STRATEGY_CONFIG:
    STRATEGIES.append("two_phase")
STRATEGIES += [
    st for st, own in JOINT_OWN_GRID.items() if own or "two_phase" in STRATEGY_CONFIG
]
# Phase 1 of 2-Phase is a strategy of its own on disk: its grid is selected on validation
# before phase 2 starts, but it is not a row of the paper's table.
PHASE1 = "two_phase_1"
# Each joint run's marginal likelihood.
JOINT_LOSS = {
    PHASE1: "rag_token",
    "two_phase": "rag_token",
    "rag_seq": "rag_sequence",
    "rag_tok": "rag_token",
}
# Strategies whose grid select_lr picks a winner from.
SELECTED = [s for s in ("ft_embed", "ft_gen") if s in GRIDS]
if "two_phase" in STRATEGY_CONFIG:
    SELECTED += [PHASE1, "two_phase"]
SELECTED += [st for st, own in JOINT_OWN_GRID.items() if own]
# The paper's row labels (Figure 3).
STRATEGY_TITLES = ragtune_tables.STRATEGY_LABELS
# The letter that marks each model's LR in a run's `lrs` path part: e1e-05_g1e-04.
LR_KEY = {"ft_embed": "e", "ft_gen": "g"}


wildcard_constraints:
    shard=r"\d{3}",
    split="train|validation|test",
    dataset="|".join(DATASETS),
    pipeline="|".join(PIPELINES),
    embedder="|".join(config["embedders"]),
    generator="|".join(config["generators"]),
    strategy="|".join([*STRATEGIES, PHASE1]),
    lrs=r"base|e[^_/]+|g[^_/]+|e[^_/]+_g[^_/]+",
    # base, ft_embed/e<lr>, or <pipeline>/<strategy>/<lrs> for a query encoder trained jointly
    variant=f"base|{TUNED_VARIANT_RE}",
    lr=r"[0-9.e+-]+",


def log_path(rule, *parts):
    return os.path.join(RESULTS, "logs", rule, *parts) + ".log"


def bench_path(rule, *parts):
    # Snakemake writes one JSON record per run for a .jsonl benchmark file.
    return os.path.join(RESULTS, "benchmarks", rule, *parts) + ".jsonl"


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


# ---- corpus -------------------------------------------------------------------------------
def doc_shards():
    return [f"{RESULTS}/corpus/{CORPUS}/docs/shard-{s}.jsonl" for s in SHARDS]


def focus_qa_inputs():
    if config["corpus"].get("focus") is None:
        return []
    return [qa_split(d, s) for d in DATASETS for s in ("train", "validation", "test")]


def chunk_shards():
    return [f"{RESULTS}/corpus/{CORPUS}/chunks/shard-{s}.jsonl" for s in SHARDS]


def embedding_shards(embedder):
    return [
        f"{RESULTS}/corpus/{CORPUS}/embeddings/{embedder}/shard-{s}.npy" for s in SHARDS
    ]


def index_file(embedder):
    return f"{RESULTS}/corpus/{CORPUS}/index/{embedder}/index.faiss"


# k against every index already built: a k the corpus cannot fill fails here, before any job.
ragtune_faiss_index.check_k_against_built(
    config["retrieval"]["k"],
    [
        f"{RESULTS}/corpus/{CORPUS}/index/{embedder}/info.json"
        for embedder in sorted({p["embedder"] for p in PIPELINES.values()})
    ],
)


def store_manifest(embedder):
    # The chunk and embedding shards as one input: jobs read their paths from it (see
    # ragtune.retrieval.store.write_manifest for why).
    return f"{RESULTS}/corpus/{CORPUS}/index/{embedder}/store.json"


# ---- models -------------------------------------------------------------------------------
def embedder_of(pipeline):
    return config["pipelines"][pipeline]["embedder"]


def generator_of(pipeline):
    return config["pipelines"][pipeline]["generator"]


def generator_is_gguf(generator):
    return ragtune_models.resolve(config["generators"][generator]).is_gguf


def converted_generator(generator):
    return f"{RESULTS}/models/{generator}"


def lr_parts(lrs):
    """'e1e-05_g1e-04' -> {'e': '1e-05', 'g': '1e-04'}; 'base' -> {}."""
    if lrs == "base":
        return {}
    return {part[0]: part[1:] for part in lrs.split("_")}


def tuned_embedder_dir(dataset, embedder, lr):
    return f"{RESULTS}/{dataset}/models/{embedder}/ft_embed/lr{lr}/model"


def adapter_dir(dataset, pipeline, lr):
    return f"{RESULTS}/{dataset}/{pipeline}/ft_gen/lr{lr}/adapter"


def run_dir(dataset, pipeline, strategy, lrs):
    return f"{RESULTS}/{dataset}/{pipeline}/{strategy}/{lrs}"


def joint_model_dir(dataset, pipeline, strategy, lrs):
    """A joint run's output: query_encoder/ and/or adapter/, whichever side it trained."""
    return f"{run_dir(dataset, pipeline, strategy, lrs)}/model"


def base_generator_inputs(pipeline):
    generator = generator_of(pipeline)
    return [converted_generator(generator)] if generator_is_gguf(generator) else []


def base_generator_spec(pipeline):
    generator = generator_of(pipeline)
    if generator_is_gguf(generator):
        return converted_generator(generator)
    return config["generators"][generator]


def tuned_generator(dataset, pipeline, strategy, lrs):
    """(the rule output that holds a run's adapter, the adapter folder), or None for the base
    generator. 2-Phase runs use their phase 1's adapter, trained at their `g` LR."""
    g = lr_parts(lrs).get("g")
    if g is None:
        return None
    if strategy in ("ft_gen", "indp"):
        return adapter_dir(dataset, pipeline, g), adapter_dir(dataset, pipeline, g)
    if strategy in (PHASE1, "two_phase"):
        model = joint_model_dir(dataset, pipeline, PHASE1, f"g{g}")
    else:
        model = joint_model_dir(dataset, pipeline, strategy, lrs)
    return model, f"{model}/adapter"


def generator_input(wildcards):
    """The base generator's converted folder (GGUF only) and, for a tuned run, its adapter."""
    tuned = tuned_generator(
        wildcards.dataset, wildcards.pipeline, wildcards.strategy, wildcards.lrs
    )
    return base_generator_inputs(wildcards.pipeline) + ([tuned[0]] if tuned else [])


def generator_spec(wildcards):
    tuned = tuned_generator(
        wildcards.dataset, wildcards.pipeline, wildcards.strategy, wildcards.lrs
    )
    return tuned[1] if tuned else base_generator_spec(wildcards.pipeline)


# ---- QA and retrieval ----------------------------------------------------------------------
def qa_split(dataset, split):
    return f"{RESULTS}/{dataset}/qa/{split}.jsonl"


def retrieval_file(dataset, embedder, variant, split):
    return f"{RESULTS}/{dataset}/retrieval/{embedder}/{variant}/{split}.jsonl"


def base_retrieval(dataset, embedder, split):
    return retrieval_file(dataset, embedder, "base", split)


def retrieval_variant(pipeline, strategy, lrs):
    """Which query encoder a run retrieves with: base, Ft. Embed's (shared by every pipeline
    of the embedder) or a joint run's own (tied to its pipeline)."""
    e = lr_parts(lrs).get("e")
    if e is None:
        return "base"
    if strategy in ("ft_embed", "indp"):
        return f"ft_embed/e{e}"
    return f"{pipeline}/{strategy}/{lrs}"


def tuned_query_encoder(dataset, embedder, variant):
    """(the rule output that holds a tuned query encoder, the encoder folder), or None."""
    if variant == "base":
        return None
    parts = variant.split("/")
    if parts[0] == "ft_embed":
        path = tuned_embedder_dir(dataset, embedder, parts[1][1:])
        return path, path
    model = joint_model_dir(dataset, *parts)
    return model, f"{model}/query_encoder"


def query_embedder_input(wildcards):
    tuned = tuned_query_encoder(
        wildcards.dataset, wildcards.embedder, wildcards.variant
    )
    return [tuned[0]] if tuned else []


def query_embedder_spec(wildcards):
    tuned = tuned_query_encoder(
        wildcards.dataset, wildcards.embedder, wildcards.variant
    )
    return tuned[1] if tuned else config["embedders"][wildcards.embedder]


def retrieval_input(wildcards):
    """The retrieval a run is evaluated on: its tuned query encoder's, if it has one."""
    variant = retrieval_variant(wildcards.pipeline, wildcards.strategy, wildcards.lrs)
    embedder = embedder_of(wildcards.pipeline)
    return retrieval_file(wildcards.dataset, embedder, variant, wildcards.split)


# ---- training ----------------------------------------------------------------------------
def train_job(dataset, pipeline, strategy, lrs):
    """The one training job a (strategy, lrs) point runs: its record (train.json) and its
    Snakemake benchmark. Ft. Embed's job is the embedder's, shared by its pipelines."""
    parts = lr_parts(lrs)
    if strategy == "ft_embed":
        embedder, lr = embedder_of(pipeline), parts["e"]
        return {
            "record": f"{os.path.dirname(tuned_embedder_dir(dataset, embedder, lr))}/train.json",
            "benchmark": bench_path("train_embedder", dataset, embedder, f"lr{lr}"),
        }
    if strategy == "ft_gen":
        return {
            "record": f"{os.path.dirname(adapter_dir(dataset, pipeline, parts['g']))}/train.json",
            "benchmark": bench_path(
                "train_generator", dataset, pipeline, f"lr{parts['g']}"
            ),
        }
    return {
        "record": f"{run_dir(dataset, pipeline, strategy, lrs)}/train.json",
        "benchmark": bench_path("train_joint", dataset, pipeline, strategy, lrs),
    }


def chosen_jobs(dataset, pipeline, strategy, lrs):
    """The training jobs behind one run: Indp. has both halves' and 2-Phase both phases', so
    their time is the sum, as in the paper; No Ft. has none."""
    parts = lr_parts(lrs)
    if strategy in ("no_ft", "indp"):
        return [
            train_job(dataset, pipeline, half, f"{key}{parts[key]}")
            for half, key in (("ft_embed", "e"), ("ft_gen", "g"))
            if key in parts
        ]
    jobs = [train_job(dataset, pipeline, strategy, lrs)]
    if strategy == "two_phase":
        jobs.append(train_job(dataset, pipeline, PHASE1, f"g{parts['g']}"))
    return jobs


def loss_curve(dataset, pipeline, strategy, lrs):
    """(the rule output folder, its loss.csv) of a training job."""
    parts = lr_parts(lrs)
    if strategy == "ft_embed":
        folder = tuned_embedder_dir(dataset, embedder_of(pipeline), parts["e"])
    elif strategy == "ft_gen":
        folder = adapter_dir(dataset, pipeline, parts["g"])
    else:
        folder = joint_model_dir(dataset, pipeline, strategy, lrs)
    return folder, f"{folder}/loss.csv"


def joint_lrs(wildcards):
    """A joint run's learning rates: None for the side that stays frozen."""
    parts = lr_parts(wildcards.lrs)
    embed = float(parts["e"]) if "e" in parts else None
    gen = float(parts["g"]) if "g" in parts else None
    if wildcards.strategy == "two_phase":
        gen = None  # phase 2: phase 1's generator, frozen
    return {"embed": embed, "gen": gen}


def joint_generator_inputs(wildcards):
    inputs = base_generator_inputs(wildcards.pipeline)
    if wildcards.strategy == "two_phase":
        inputs.append(
            tuned_generator(
                wildcards.dataset, wildcards.pipeline, "two_phase", wildcards.lrs
            )[0]
        )
    return inputs


def joint_generator_spec(wildcards):
    if wildcards.strategy == "two_phase":
        return tuned_generator(
            wildcards.dataset, wildcards.pipeline, "two_phase", wildcards.lrs
        )[1]
    return base_generator_spec(wildcards.pipeline)


# ---- LR grids and selection ----------------------------------------------------------------
def grid_lrs(dataset, pipeline, strategy):
    """Every `lrs` path part of a strategy's grid. 2-Phase's phase 2 runs at phase 1's
    winning generator LR, so its grid is only known once phase 1 is selected."""
    if strategy in LR_KEY:
        return [f"{LR_KEY[strategy]}{lr}" for lr in GRIDS[strategy]]
    spec = STRATEGY_CONFIG["two_phase" if strategy == PHASE1 else strategy]
    gen = [fmt_lr(lr) for lr in spec.get("gen_lrs", [])]
    embed = [fmt_lr(lr) for lr in spec.get("embed_lrs", [])]
    if strategy == PHASE1:
        return [f"g{g}" for g in gen]
    if strategy == "two_phase":
        return [f"e{e}_{winner(dataset, pipeline, PHASE1)}" for e in embed]
    return [f"e{e}_g{g}" for e in embed for g in gen]


def grid_validation_metrics(wildcards):
    return [
        metrics_file(
            wildcards.dataset, wildcards.pipeline, wildcards.strategy, lrs, "validation"
        )
        for lrs in grid_lrs(wildcards.dataset, wildcards.pipeline, wildcards.strategy)
    ]


def winner(dataset, pipeline, strategy):
    """The grid winner's `lrs`, read from select_lr's output (a checkpoint), so that the DAG
    below it is only planned once the grid has been evaluated."""
    selected = checkpoints.select_lr.get(
        dataset=dataset, pipeline=pipeline, strategy=strategy
    ).output[0]
    with open(selected) as fh:
        return json.load(fh)["winner"]


def chosen_lrs(dataset, pipeline, strategy):
    if strategy == "no_ft":
        return "base"
    if strategy == "indp":
        embed = winner(dataset, pipeline, "ft_embed")
        gen = winner(dataset, pipeline, "ft_gen")
        return f"{embed}_{gen}"
    if strategy in JOINT_OWN_GRID and not JOINT_OWN_GRID[strategy]:
        return winner(dataset, pipeline, "two_phase")  # the paper's way
    return winner(dataset, pipeline, strategy)


def grid_points(dataset, pipeline, strategy):
    """Every (strategy, lrs) run of the search behind a row, each one training job plus its
    validation evaluation: Indp. = both grids, 2-Phase = both phases' grids, and a joint
    strategy that borrows 2-Phase's LRs = that search plus its own run."""
    if strategy == "no_ft":
        return []
    if strategy == "indp":
        return grid_points(dataset, pipeline, "ft_embed") + grid_points(
            dataset, pipeline, "ft_gen"
        )
    if strategy == "two_phase":
        phases = (PHASE1, "two_phase")
        return [(ph, lrs) for ph in phases for lrs in grid_lrs(dataset, pipeline, ph)]
    if strategy in JOINT_OWN_GRID and not JOINT_OWN_GRID[strategy]:
        lrs = chosen_lrs(dataset, pipeline, strategy)
        return grid_points(dataset, pipeline, "two_phase") + [(strategy, lrs)]
    return [(strategy, lrs) for lrs in grid_lrs(dataset, pipeline, strategy)]


# ---- evaluation and report ---------------------------------------------------------------
def metrics_file(dataset, pipeline, strategy, lrs, split):
    return f"{run_dir(dataset, pipeline, strategy, lrs)}/{split}/metrics.json"


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
            for st in STRATEGIES:
                lrs = chosen_lrs(d, p, st)
                grid = [
                    {
                        "train": train_job(d, p, g_st, g_lrs),
                        "eval": eval_job(d, p, g_st, g_lrs, "validation"),
                    }
                    for g_st, g_lrs in grid_points(d, p, st)
                ]
                for sp in EVAL_SPLITS:
                    rows.append(
                        {
                            "dataset": d,
                            "split": sp,
                            "pipeline": p,
                            "embedder": embedder_of(p),
                            "generator": generator_of(p),
                            "strategy": st,
                            "lrs": lrs,
                            "metrics": metrics_file(d, p, st, lrs, sp),
                            "chosen": chosen_jobs(d, p, st, lrs),
                            "grid": grid,
                        }
                    )
    return rows


def chosen_loss_curves(wildcards=None):
    """Every chosen run's training job: {dataset, pipeline, label, folder, path}."""
    curves = []
    for d in DATASETS:
        for p in PIPELINES:
            for st in STRATEGIES:
                lrs = chosen_lrs(d, p, st)
                jobs = []
                if st in ("indp", "no_ft"):
                    continue  # Indp. trains nothing of its own: its halves have their rows
                if st == "two_phase":
                    g = lr_parts(lrs)["g"]
                    jobs.append(("2-Phase, phase 1", PHASE1, f"g{g}"))
                    jobs.append(("2-Phase, phase 2", st, lrs))
                else:
                    jobs.append((STRATEGY_TITLES[st], st, lrs))
                for label, job_st, job_lrs in jobs:
                    folder, path = loss_curve(d, p, job_st, job_lrs)
                    curves.append(
                        {
                            "dataset": d,
                            "pipeline": p,
                            "label": f"{label} ({job_lrs})",
                            "folder": folder,
                            "path": path,
                        }
                    )
    return curves


PHASE_TITLES = {PHASE1: "2-Phase, phase 1", "two_phase": "2-Phase, phase 2"}


def selections(wildcards=None):
    """Every grid's select_lr output, for the LR-sensitivity figure."""
    return [
        {
            "dataset": d,
            "pipeline": p,
            "strategy": PHASE_TITLES.get(st, STRATEGY_TITLES.get(st)),
            "path": f"{RESULTS}/{d}/{p}/{st}/selected.json",
        }
        for d in DATASETS
        for p in PIPELINES
        for st in SELECTED
    ]


def all_selections():
    """Every grid's selected.json, as plain paths: listing them all up front lets Snakemake plan
    every grid at once instead of one checkpoint at a time."""
    return [
        f"{RESULTS}/{d}/{p}/{st}/selected.json"
        for d in DATASETS
        for p in PIPELINES
        for st in SELECTED
    ]


def table_inputs(wildcards):
    rows = table_rows()
    files = {r["metrics"] for r in rows}
    for r in rows:
        jobs = r["chosen"] + [job for point in r["grid"] for job in point.values()]
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
CONFIG_LABEL = "config md5 {md5} (report/config.yaml); pipelines: {pipes}; datasets: {data}".format(
    md5=CONFIG_MD5,
    pipes=", ".join(
        f"{p} ({v['embedder']} + {v['generator']})" for p, v in PIPELINES.items()
    ),
    data=", ".join(
        f"{d} (validation n={split_size(v['splits']['validation'])})"
        for d, v in config["datasets"].items()
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
        for d, v in config["datasets"].items()
    ),
)
# Pipelines that reproduce one of the paper's, for the per-pipeline comparison.
PAPER_MATCHES = {p: v["paper"] for p, v in PIPELINES.items() if v.get("paper")}

# The held-out test table exists only where the config evaluates on the test split.
TABLES = ["all_runs", "per_pipeline", "averaged"]
TABLES += ["test"] if "test" in EVAL_SPLITS else []
TABLES += ["cost", "paper_comparison"]
FIGURES = ["strategies", "lr_sensitivity", "loss_curves", "paper_comparison"]


def all_targets():
    return (
        [f"{RESULTS}/report/config.yaml"]
        + [f"{RESULTS}/tables/{t}.csv" for t in TABLES]
        + [f"{RESULTS}/figures/{f}.png" for f in FIGURES]
    )


REPORT = f"{RESULTS}/report.html"


def print_summary():
    text = ragtune_summary.summary(
        f"{RESULTS}/tables",
        f"{RESULTS}/figures",
        REPORT,
        CONFIG_MD5,
        f"{RESULTS}/report/config.yaml",
    )
    if text:
        print(text)


def check_hub_sources():
    rules_to_run = {job.rule.name for job in workflow.dag.needrun_jobs()}
    ragtune_hub.check(config, rules_to_run)
