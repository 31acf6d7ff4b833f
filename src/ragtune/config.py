"""Checks that a JSON schema cannot express, run when Snakemake parses the workflow.

The schema (config/schema.yaml) catches wrong types and unknown keys. This module catches the
rest before any job starts: cross-references between sections, missing data files, files
without the columns their format needs, and model specs that name nothing loadable.
Every message names the config key, the file when there is one, and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune import models
from ragtune.data.qa import FIELD_RULES, FORMATS, first_record, iter_records, validate_file

SPLITS = ("train", "validation", "test")


class ConfigError(ValueError):
    pass


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref", "") if isinstance(node, dict) else ""
    if ref.startswith("#/"):
        for part in ref[2:].split("/"):
            schema = schema[part]
        return schema
    return node


def unknown_keys(config: Any, schema: dict, node: dict | None = None, at: str = "") -> list[str]:
    """Keys the schema does not know, each with the nearest valid key: one line per typo,
    instead of a validator's dump of the whole schema and config."""
    import difflib

    node = _resolve(schema if node is None else node, schema)
    if not isinstance(config, dict) or not isinstance(node, dict):
        return []
    known = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    out = []
    for key, value in config.items():
        where = f"{at}.{key}" if at else str(key)
        if key in known:
            out += unknown_keys(value, schema, known[key], where)
        elif isinstance(extra, dict):
            out += unknown_keys(value, schema, extra, where)
        elif extra is False:
            near = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = (
                f"did you mean '{f'{at}.' if at else ''}{near[0]}'?"
                if near
                else (f"valid keys here: {', '.join(known)}")
            )
            out.append(f"config key '{where}' is not a ragtune setting; {hint}")
    return out


def check_keys(config: dict[str, Any], schema_path: str | Path) -> None:
    """Run before Snakemake's own validation: unknown keys, named with the nearest valid one
    (config/README.md documents every key)."""
    import yaml

    problems = unknown_keys(config, yaml.safe_load(Path(schema_path).read_text()))
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def check(config: dict[str, Any]) -> None:
    problems: list[str] = []
    problems += _check_names(config)
    problems += _check_pipelines(config)
    problems += _check_models(config)
    problems += _check_corpus(config)
    problems += _check_index_training(config["retrieval"])
    problems += _check_two_phase(config["strategies"])
    problems += _check_judged(config["strategies"], config["retrieval"]["k"])
    if config["generation"]["num_beams"] > 1 and config["evaluation"]["decoding"] != "concat":
        problems.append(
            f"generation.num_beams is {config['generation']['num_beams']}, but "
            f"evaluation.decoding {config['evaluation']['decoding']} decodes greedily over the "
            "k single-chunk prompts: set num_beams to 1, or decoding to concat"
        )
    for name, dataset in config["datasets"].items():
        problems += _check_dataset(name, dataset)
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def _check_names(config) -> list[str]:
    """Names become folders: one that is a folder of the results layout itself would write
    into it (the schema already keeps every name a single, non-hidden path component)."""
    from ragtune.plan import Layout

    out = []
    for section, reserved, where in (
        ("datasets", Layout.RESULTS_FOLDERS, "results/<dataset>"),
        ("pipelines", Layout.DATASET_FOLDERS, "results/<dataset>/<pipeline>"),
    ):
        for name in config[section]:
            if name in reserved:
                out.append(
                    f"{section}.{name}: '{name}' is a folder ragtune itself writes where "
                    f"{where} goes ({', '.join(reserved)}); rename it"
                )
    return out


# faiss's k-means refuses fewer than 39 training points per centroid (and advises up to 256):
# an IVF with nlist lists needs 39 x nlist, a PQ sub-quantizer of 2^nbits codes 39 x 2^nbits.
MIN_POINTS_PER_CENTROID = 39


def _check_index_training(retrieval) -> list[str]:
    """The index's training sample against what its k-means needs, before any job: faiss
    would otherwise warn in build_index's log, or fail, hours into the run."""
    import re

    factory, train_size = retrieval["index_factory"], retrieval["train_size"]
    needs = []
    for match in re.finditer(r"IVF(\d+)", factory):
        needs.append((f"IVF{match[1]}", int(match[1])))
    for match in re.finditer(r"PQ(\d+)(?:x(\d+))?", factory):
        needs.append((match[0], 2 ** int(match[2] or 8)))
    out = []
    for part, centroids in needs:
        least = MIN_POINTS_PER_CENTROID * centroids
        if train_size < least:
            out.append(
                f"retrieval.train_size is {train_size}, but {part} in retrieval.index_factory "
                f"('{factory}') trains {centroids} centroids, which faiss needs at least "
                f"{MIN_POINTS_PER_CENTROID} x {centroids} = {least} vectors for (it advises up "
                f"to 256 x {centroids}): raise retrieval.train_size to at least {least}, or "
                "use fewer centroids"
            )
    return out


def _check_two_phase(strategies) -> list[str]:
    """2-Phase's phase 1 is either Ft. Gen.'s winner, which needs Ft. Gen.'s grid, or its own
    RAG-Token grid (gen_lrs); a gen_lrs that nothing would read is refused, not ignored."""
    block = strategies.get("two_phase")
    if block is None:
        return []
    phase1 = block.get("phase1", "ft_gen")
    if phase1 == "ft_gen" and "gen_lrs" in block:
        return [
            "strategies.two_phase.gen_lrs: phase 1 is Ft. Gen.'s winning run (phase1: ft_gen, "
            "the default), so gen_lrs would be unused: drop it, or set "
            "strategies.two_phase.phase1: rag_token to search phase 1's own RAG-Token grid"
        ]
    if phase1 == "ft_gen" and not (strategies.get("ft_gen") or {}).get("lrs"):
        return [
            "strategies.two_phase: phase 1 is Ft. Gen.'s winning run (phase1: ft_gen), but "
            "strategies.ft_gen.lrs is not set: give Ft. Gen. its grid, or set "
            "strategies.two_phase.phase1: rag_token with gen_lrs"
        ]
    if phase1 == "rag_token" and not block.get("gen_lrs"):
        return [
            "strategies.two_phase.phase1 is rag_token, which searches phase 1's own grid: "
            "give strategies.two_phase.gen_lrs"
        ]
    return []


def _check_judged(strategies, k: int = 2) -> list[str]:
    """PDist / LSR / LOOP judged by Ft. Gen.'s winner need Ft. Gen.'s grid. With k = 1 both
    distributions over the top k are [1]: the loss is 0 at every step, and a run would train
    nothing while looking finished."""
    from ragtune.plan import STRATEGIES

    out = []
    for name, s in STRATEGIES.items():
        block = strategies.get(name)
        if not s.judged or block is None:
            continue
        if block.get("generator") == "ft_gen" and not (strategies.get("ft_gen") or {}).get("lrs"):
            out.append(
                f"strategies.{name}.generator is ft_gen, but strategies.ft_gen.lrs is not set: "
                f"give Ft. Gen. its grid, or set strategies.{name}.generator: base"
            )
        if k < 2:
            out.append(
                f"strategies.{name}: retrieval.k is {k}, but {s.label} learns a distribution "
                "over the top k, which with one chunk is always [1] (the loss would be 0 at "
                f"every step): set retrieval.k to at least 2, or drop strategies.{name}"
            )
    return out


def _check_pipelines(config) -> list[str]:
    out = []
    for name, pipe in config["pipelines"].items():
        for role, section in (("embedder", "embedders"), ("generator", "generators")):
            if pipe[role] not in config[section]:
                out.append(
                    f"pipelines.{name}.{role}: '{pipe[role]}' is not a key of {section} "
                    f"(known: {', '.join(sorted(config[section]))}); add it there or fix the name"
                )
    return out


def _check_models(config) -> list[str]:
    out = []
    specs = [(f"embedders.{k}", v) for k, v in config["embedders"].items()]
    specs += [(f"generators.{k}", v) for k, v in config["generators"].items()]
    specs.append(("corpus.chunking.tokenizer", config["corpus"]["chunking"]["tokenizer"]))
    for key, spec in specs:
        try:
            models.resolve(spec)
        except models.ModelSpecError as err:
            out.append(f"{key}: {err}")
    return out


def _check_file(key: str, path: str) -> str | None:
    if not Path(path).exists():
        return (
            f"{key}: file '{path}' does not exist (relative paths start at the working "
            f"directory, {Path.cwd()}); fix the path or use a Hub source instead"
        )
    return None


def _check_corpus(config) -> list[str]:
    corpus = config["corpus"]
    out = []
    for i, path in enumerate(corpus["source"].get("files", [])):
        key = f"corpus.source.files[{i}]"
        if problem := _check_file(key, path):
            out.append(problem)
            continue
        fields = [corpus["id_field"], corpus["title_field"], corpus["text_field"]]
        record = first_record(path)
        missing = [f for f in fields if f not in record]
        if missing:
            out.append(
                f"{key}: '{path}' has no column(s) {missing} (it has {sorted(record)}); set "
                "corpus.id_field / title_field / text_field to the names it uses"
            )
    return out


def _check_ids(name: str, dataset, source: str, path) -> list[str]:
    """Pinned question ids (``splits.<split>.ids``) must all be in their source file, and in one
    split only."""
    pinned = {
        split: [str(i) for i in spec["ids"]]
        for split, spec in dataset["splits"].items()
        if spec["from"] == source and "ids" in spec
    }
    if not pinned:
        return []
    present = {str(rec.get("id")) for _, rec in iter_records(path)}
    out, seen = [], {}
    for split, ids in pinned.items():
        missing = [i for i in ids if i not in present]
        if missing:
            out.append(
                f"datasets.{name}.splits.{split}.ids: {len(missing)} id(s) are not in {path} "
                f"(first: {', '.join(missing[:3])}); fix the ids or the source file"
            )
        for i in ids:
            if i in seen:
                out.append(
                    f"datasets.{name}.splits.{split}.ids: '{i}' is also in split "
                    f"'{seen[i]}'; a question belongs to one split"
                )
            seen[i] = split
    return out


def _check_dataset(name: str, dataset) -> list[str]:
    out = []
    fmt = FORMATS[dataset["format"]]
    files = dataset["source"].get("files")
    for split, spec in dataset["splits"].items():
        if files is not None and spec["from"] not in files:
            out.append(
                f"datasets.{name}.splits.{split}.from: source split '{spec['from']}' has no "
                f"file in datasets.{name}.source.files (known: {', '.join(files)})"
            )
    counts, ids_of = {}, {}
    for split, path in (files or {}).items():
        key = f"datasets.{name}.source.files.{split}"
        if problem := _check_file(key, path):
            out.append(problem)
            continue
        try:
            record = first_record(path)
        except ValueError as err:  # corrupt, not UTF-8, not JSON: it names the file and row
            out.append(f"{key}: {err}")
            continue
        missing = [c for c in fmt.required_columns if c not in record]
        if missing:
            out.append(
                f"{key}: '{path}' lacks column(s) {missing} that format '{dataset['format']}' "
                f"needs (it has {sorted(record)}); give a file in the {fmt.hub_id} schema "
                f"or change datasets.{name}.format"
            )
            continue
        # Every row, not only the first: a column that goes null from row 2 on would write
        # "question": null for every question and fail jobs later, far from its cause.
        try:
            counts[split], bad, ids_of[split] = validate_file(path, FIELD_RULES[dataset["format"]])
            out += _check_ids(name, dataset, split, path)
        except ValueError as err:
            out.append(f"{key}: {err}")
            continue
        if bad:
            out.append(
                f"{key}: '{path}' has rows the workflow cannot use ({'; '.join(bad)}); fix or "
                f"drop them (the {fmt.hub_id} schema)"
            )
    # One question in two source files could land in two of our splits.
    sources = sorted(ids_of)
    for i, a in enumerate(sources):
        for b in sources[i + 1 :]:
            if shared := sorted(ids_of[a] & ids_of[b]):
                out.append(
                    f"datasets.{name}.source.files: {len(shared)} id(s) are in both {files[a]} "
                    f"and {files[b]} (first: {', '.join(shared[:3])}); a question must be in "
                    "one source file only"
                )
    # Split sizes against the data, before any job runs (prepare_qa would find out after
    # convert_generator had already run).
    for source, n in counts.items():
        users = [s for s, spec in dataset["splits"].items() if spec["from"] == source]
        asked = sum(
            dataset["splits"][s].get("size", len(dataset["splits"][s].get("ids", ())))
            for s in users
        )
        if asked > n:
            out.append(
                f"datasets.{name}.splits: {', '.join(users)} ask for {asked} questions from "
                f"source split '{source}', but {files[source]} holds {n}; lower "
                f"datasets.{name}.splits.<split>.size"
            )
    return out
