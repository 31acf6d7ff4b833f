# Config access, wildcard constraints, target lists and input functions.
# Every path the rules use is built here, so the layout of results/ is readable in one place.
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
# Strategies built so far; each strategy issue adds its own.
STRATEGIES = ["no_ft"]


wildcard_constraints:
    shard=r"\d{3}",
    split="train|validation|test",
    dataset="|".join(DATASETS),
    pipeline="|".join(PIPELINES),
    embedder="|".join(config["embedders"]),
    generator="|".join(config["generators"]),
    strategy="|".join(STRATEGIES),


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


def generator_input(wildcards):
    """The converted folder for a GGUF generator (a rule makes it), else nothing to wait for."""
    generator = generator_of(wildcards.pipeline)
    return [converted_generator(generator)] if generator_is_gguf(generator) else []


def generator_spec(wildcards):
    generator = generator_of(wildcards.pipeline)
    if generator_is_gguf(generator):
        return converted_generator(generator)
    return config["generators"][generator]


# ---- QA and retrieval ----------------------------------------------------------------------
def qa_split(dataset, split):
    return f"{RESULTS}/{dataset}/qa/{split}.jsonl"


def base_retrieval(dataset, embedder, split):
    return f"{RESULTS}/{dataset}/retrieval/{embedder}/base/{split}.jsonl"


def retrieval_input(wildcards):
    """The retrieval a (pipeline, strategy) is evaluated on."""
    embedder = embedder_of(wildcards.pipeline)
    return base_retrieval(wildcards.dataset, embedder, wildcards.split)


# ---- evaluation and report ---------------------------------------------------------------
def run_dir(dataset, pipeline, strategy, lrs):
    return f"{RESULTS}/{dataset}/{pipeline}/{strategy}/{lrs}"


def metrics_file(dataset, pipeline, strategy, lrs, split):
    return f"{run_dir(dataset, pipeline, strategy, lrs)}/{split}/metrics.json"


def chosen_runs():
    """(dataset, pipeline, strategy, lrs, split) of every row of the main table."""
    return [
        (d, p, "no_ft", "base", s)
        for d in DATASETS
        for p in PIPELINES
        for s in EVAL_SPLITS
    ]


def all_targets():
    return [f"{RESULTS}/tables/main.csv", f"{RESULTS}/tables/main.md"]
