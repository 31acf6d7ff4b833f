# Config access, wildcard constraints, target lists and input functions.
# Every path the rules use is built here, so the layout of results/ is readable in one place.
import json
import os

from ragtune import config as ragtune_config
from ragtune import models as ragtune_models

# Cross-references, data files, their columns and model specs, before any job is planned.
ragtune_config.check(config)

RESULTS = config["results"]
# One pinned environment for every rule, for `--sdm conda` users (same pins as pyproject.toml).
CONDA_ENV = "../envs/ragtune.yaml"
CORPUS = config["corpus"]["name"]
SHARDS = [f"{i:03d}" for i in range(config["corpus"]["shards"])]
DATASETS = list(config["datasets"])
PIPELINES = config["pipelines"]
EVAL_SPLITS = config["evaluation"]["splits"]
SPLITS_RE = "train|validation|test"


def fmt_lr(lr):
    """1e-05 style: short, sortable by eye, and the same string in every path."""
    return f"{float(lr):.0e}"


GRIDS = {
    name: [fmt_lr(lr) for lr in spec["lrs"]]
    for name, spec in config["strategies"].items()
    if spec.get("lrs")
}
# Strategies built so far, in the paper's order; each needs its grid(s) in the config.
STRATEGIES = ["no_ft"] + [s for s in ("ft_embed", "ft_gen") if s in GRIDS]
if {"ft_embed", "ft_gen"} <= set(GRIDS):
    STRATEGIES.append("indp")
# The letter that marks each model's LR in a run's `lrs` path part: e1e-05_g1e-04.
LR_KEY = {"ft_embed": "e", "ft_gen": "g"}


wildcard_constraints:
    shard=r"\d{3}",
    split="train|validation|test",
    dataset="|".join(DATASETS),
    pipeline="|".join(PIPELINES),
    embedder="|".join(config["embedders"]),
    generator="|".join(config["generators"]),
    strategy="|".join(STRATEGIES),
    lrs=r"base|e[^_/]+|g[^_/]+|e[^_/]+_g[^_/]+",
    variant=r"base|ft_embed-[^/]+",
    lr=r"[0-9.e+-]+",


def log_path(rule, *parts):
    return os.path.join(RESULTS, "logs", rule, *parts) + ".log"


def bench_path(rule, *parts):
    # Snakemake writes one JSON record per run for a .jsonl benchmark file.
    return os.path.join(RESULTS, "benchmarks", rule, *parts) + ".jsonl"


def gpus(rule):
    return config["resources"][rule]


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


def base_generator_inputs(pipeline):
    generator = generator_of(pipeline)
    return [converted_generator(generator)] if generator_is_gguf(generator) else []


def base_generator_spec(pipeline):
    generator = generator_of(pipeline)
    if generator_is_gguf(generator):
        return converted_generator(generator)
    return config["generators"][generator]


def generator_input(wildcards):
    """The base generator's converted folder (GGUF only) and, for a tuned run, its adapter."""
    inputs = base_generator_inputs(wildcards.pipeline)
    lrs = lr_parts(wildcards.lrs)
    if "g" in lrs:
        inputs.append(adapter_dir(wildcards.dataset, wildcards.pipeline, lrs["g"]))
    return inputs


def generator_spec(wildcards):
    lrs = lr_parts(wildcards.lrs)
    if "g" in lrs:
        return adapter_dir(wildcards.dataset, wildcards.pipeline, lrs["g"])
    return base_generator_spec(wildcards.pipeline)


# ---- QA and retrieval ----------------------------------------------------------------------
def qa_split(dataset, split):
    return f"{RESULTS}/{dataset}/qa/{split}.jsonl"


def retrieval_file(dataset, embedder, variant, split):
    return f"{RESULTS}/{dataset}/retrieval/{embedder}/{variant}/{split}.jsonl"


def base_retrieval(dataset, embedder, split):
    return retrieval_file(dataset, embedder, "base", split)


def query_embedder_input(wildcards):
    if wildcards.variant == "base":
        return []
    lr = wildcards.variant.removeprefix("ft_embed-")
    return [tuned_embedder_dir(wildcards.dataset, wildcards.embedder, lr)]


def query_embedder_spec(wildcards):
    tuned = query_embedder_input(wildcards)
    return tuned[0] if tuned else config["embedders"][wildcards.embedder]


def retrieval_input(wildcards):
    """The retrieval a run is evaluated on: the tuned query encoder's, if it has one."""
    lrs = lr_parts(wildcards.lrs)
    variant = f"ft_embed-{lrs['e']}" if "e" in lrs else "base"
    embedder = embedder_of(wildcards.pipeline)
    return retrieval_file(wildcards.dataset, embedder, variant, wildcards.split)


# ---- training ----------------------------------------------------------------------------
def embedder_train_info(dataset, embedder, lr):
    return f"{RESULTS}/{dataset}/models/{embedder}/ft_embed/lr{lr}/train.json"


def generator_train_info(dataset, pipeline, lr):
    return f"{RESULTS}/{dataset}/{pipeline}/ft_gen/lr{lr}/train.json"


def train_infos(dataset, pipeline, lrs):
    """The training records behind one run: Indp. has both, No Ft. none."""
    parts = lr_parts(lrs)
    infos = []
    if "e" in parts:
        infos.append(embedder_train_info(dataset, embedder_of(pipeline), parts["e"]))
    if "g" in parts:
        infos.append(generator_train_info(dataset, pipeline, parts["g"]))
    return infos


def grid_lrs(strategy):
    """Every `lrs` path part of a strategy's grid."""
    return [f"{LR_KEY[strategy]}{lr}" for lr in GRIDS[strategy]]


# ---- evaluation, selection and report ---------------------------------------------------
def run_dir(dataset, pipeline, strategy, lrs):
    return f"{RESULTS}/{dataset}/{pipeline}/{strategy}/{lrs}"


def metrics_file(dataset, pipeline, strategy, lrs, split):
    return f"{run_dir(dataset, pipeline, strategy, lrs)}/{split}/metrics.json"


def grid_validation_metrics(wildcards):
    return [
        metrics_file(
            wildcards.dataset, wildcards.pipeline, wildcards.strategy, lrs, "validation"
        )
        for lrs in grid_lrs(wildcards.strategy)
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
    return winner(dataset, pipeline, strategy)


def grid_train_infos(dataset, pipeline, strategy):
    """Training records of the whole grid a strategy's row costs (Indp. = both grids)."""
    parts = {
        "ft_embed": ["ft_embed"],
        "ft_gen": ["ft_gen"],
        "indp": ["ft_embed", "ft_gen"],
    }
    return [
        info
        for grid in parts.get(strategy, [])
        for lrs in grid_lrs(grid)
        for info in train_infos(dataset, pipeline, lrs)
    ]


def table_rows(wildcards=None):
    """One entry per row of the main table, with the chosen LRs resolved."""
    rows = []
    for d in DATASETS:
        for p in PIPELINES:
            for st in STRATEGIES:
                lrs = chosen_lrs(d, p, st)
                for sp in EVAL_SPLITS:
                    rows.append(
                        {
                            "dataset": d,
                            "pipeline": p,
                            "strategy": st,
                            "lrs": lrs,
                            "split": sp,
                            "metrics": metrics_file(d, p, st, lrs, sp),
                            "train_infos": train_infos(d, p, lrs),
                            "grid_infos": grid_train_infos(d, p, st),
                        }
                    )
    return rows


def all_selections():
    """Every grid's selected.json, as plain paths: listing them all up front lets Snakemake plan
    every grid at once instead of one checkpoint at a time."""
    return [
        f"{RESULTS}/{d}/{p}/{st}/selected.json"
        for d in DATASETS
        for p in PIPELINES
        for st in STRATEGIES
        if st in GRIDS
    ]


def table_inputs(wildcards):
    rows = table_rows()
    files = {r["metrics"] for r in rows}
    files |= {f for r in rows for f in r["train_infos"] + r["grid_infos"]}
    return sorted(files)


def all_targets():
    return [f"{RESULTS}/tables/main.csv", f"{RESULTS}/tables/main.md"]
