"""The configured sources that live on the Hugging Face Hub, and one check of them before any
job starts.

A mistyped model id otherwise fails minutes into the first job that loads it, after the Hub
client's retries, and an offline node fails inside ``download_corpus`` with the reason only in
that job's log. :func:`check` looks each source up once (a metadata request, no download) for
the rules about to run, and says in one message what is wrong: no such repository, revision or
file, or no Hub at all. A source the Hub cannot confirm but the local Hugging Face cache holds
passes, so a node that downloaded once can run offline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune import models, rules

log = logging.getLogger(__name__)

# Which rules read each kind of source (by config key prefix): a source no pending job reads
# is not looked up, so a re-run of the tables works offline once the downloads are done.
# The rules that read each kind of source (ragtune.rules.RULES, their `hub` prefixes).
READERS = {
    prefix: rules.readers(prefix)
    for prefix in ("corpus.source", "corpus.chunking.tokenizer", "datasets.", "embedders.",
                   "generators.")
}  # fmt: skip
# Set for every job where no source is on the Hub: the datasets and Hub libraries then make no
# network call (without them a local-only run still asks the Hub, e.g. datasets' counters).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
OFFLINE_FIX = (
    "Run where https://huggingface.co is reachable, or download these once on a machine that "
    "can reach it (they land in the Hugging Face cache, HF_HOME) and re-run with "
    "HF_HUB_OFFLINE=1, or point the config at local files and folders (config/README.md)"
)


class HubCheckError(RuntimeError):
    """A configured Hub source that does not exist, or a Hub that cannot be reached."""


@dataclass(frozen=True)
class HubSource:
    key: str  # the config key that names it
    repo_id: str
    repo_type: str  # "model" | "dataset"
    revision: str | None = None
    filename: str | None = None  # a GGUF file inside a model repository

    def __str__(self) -> str:
        spec = f"{self.repo_id}/{self.filename}" if self.filename else self.repo_id
        return f"{self.key}: {spec}" + (f"@{self.revision}" if self.revision else "")

    def read_by(self, rules: Iterable[str]) -> bool:
        readers = next(r for prefix, r in READERS.items() if self.key.startswith(prefix))
        return bool(readers & set(rules))


def sources(config: dict[str, Any]) -> list[HubSource]:
    """Every configured source that lives on the Hub: the corpus, datasets and models (a spec of
    a local folder, file or installed package is not)."""
    out = []
    corpus = config["corpus"]["source"]
    if "hub" in corpus:
        out.append(HubSource("corpus.source.hub", corpus["hub"], "dataset", corpus.get("revision")))
    for name, dataset in config["datasets"].items():
        src = dataset["source"]
        if "hub" in src:
            out.append(
                HubSource(f"datasets.{name}.source.hub", src["hub"], "dataset", src.get("revision"))
            )
    specs = [(f"embedders.{k}", v) for k, v in config["embedders"].items()]
    specs += [(f"generators.{k}", v) for k, v in config["generators"].items()]
    specs.append(("corpus.chunking.tokenizer", config["corpus"]["chunking"]["tokenizer"]))
    for key, spec in specs:
        try:
            resolved = models.resolve(spec)
        except models.ModelSpecError:
            continue  # config.check reports it
        if resolved.kind == "hub":
            out.append(HubSource(key, resolved.location, "model", resolved.revision))
        elif resolved.is_gguf and models.HUB_GGUF.match(str(spec)):
            out.append(HubSource(key, resolved.location, "model", filename=resolved.gguf_file))
    return out


def check(config: dict[str, Any], rules: Iterable[str], api=None) -> None:
    """Look up the Hub sources that ``rules`` (the jobs about to run) read; raise
    :class:`HubCheckError` naming each missing one, or saying that the Hub cannot be reached
    for the ones the local cache does not hold."""
    rules = set(rules)
    wanted = [s for s in sources(config) if s.read_by(rules)]
    if not wanted:
        return
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    missing, unreachable = [], []
    for source in wanted:
        problem = _lookup(api, source)
        if problem is None:
            continue
        if problem.startswith("unreachable"):
            if not _cached(source):
                unreachable.append((source, problem))
        else:
            missing.append(f"{source}: {problem}")
    lines = []
    if missing:
        lines += ["these configured sources are not on the Hugging Face Hub:"]
        lines += [f"  - {m}" for m in missing]
    if unreachable:
        reason = unreachable[0][1].removeprefix("unreachable: ")
        lines += [
            f"the Hugging Face Hub cannot be reached ({reason}), and the local cache does not hold:"
        ]
        lines += [f"  - {s}" for s, _ in unreachable]
        lines += [OFFLINE_FIX]
    if lines:
        raise HubCheckError("\n".join(lines))
    log.info("Hub sources found: %s", ", ".join(map(str, wanted)))


def _lookup(api, source: HubSource) -> str | None:
    """None if the Hub has it; else what is wrong ("unreachable: ..." when no answer came)."""
    from huggingface_hub import errors

    try:
        info = api.repo_info(
            source.repo_id, repo_type=source.repo_type, revision=source.revision, timeout=15
        )
    except errors.GatedRepoError:
        return None  # it exists; the download says how to get access
    except errors.RevisionNotFoundError:
        return f"no revision '{source.revision}' in this repository; check the @revision"
    except errors.RepositoryNotFoundError:
        return (
            f"no {source.repo_type} repository '{source.repo_id}' (a typo? a private one needs "
            "`hf auth login` or HF_TOKEN)"
        )
    except errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        return f"unreachable: HTTP {status}" if status else f"unreachable: {err}"
    except Exception as err:  # connection refused, DNS, timeout, offline mode
        return f"unreachable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if source.filename:
        names = {s.rfilename for s in info.siblings or []}
        if source.filename not in names:
            return f"the repository has no file '{source.filename}'"
    return None


def _cached(source: HubSource) -> bool:
    """Whether the local Hugging Face cache holds ``source`` (what an offline job can load)."""
    import huggingface_hub

    if source.filename:
        hit = huggingface_hub.try_to_load_from_cache(
            source.repo_id, source.filename, revision=source.revision
        )
        return isinstance(hit, str)
    try:
        huggingface_hub.snapshot_download(
            source.repo_id,
            repo_type=source.repo_type,
            revision=source.revision,
            local_files_only=True,
        )
        return True
    except Exception:
        pass
    if source.repo_type == "dataset":  # a dataset `datasets` prepared before
        import datasets
        from datasets.naming import camelcase_to_snakecase

        namespace, _, name = source.repo_id.rpartition("/")
        folder = "___".join(p for p in (namespace, camelcase_to_snakecase(name)) if p)
        return (Path(datasets.config.HF_DATASETS_CACHE) / folder).is_dir()
    return False
