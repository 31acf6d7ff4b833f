"""The demo's input files, wherever the user is.

The demo config reads four files in Hub schemas from ``demo_data.folder``. Where the local data
mirror is present (development, CI) the folder links to it: offline, and what the tests check.
Where it is not (a fresh clone), the same demo questions are fetched from public sources, once:

- the questions: the rows of the config's pinned ids (``datasets.<name>.splits.<split>.ids``)
  from ``hotpotqa/hotpot_qa`` (distractor) and ``akariasai/PopQA``, streamed until all are found;
- the corpus: each HotpotQA question's own context paragraphs (its gold and distractor
  paragraphs), each PopQA question's gold page (``s_wiki_title``) as its introduction from
  Wikipedia's page-extract API, and ``distractors`` leading rows of ``MedRAG/wikipedia``.

``SOURCE.json`` in the folder says which way it went; the run's log and report config carry it.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ragtune.io import write_json, write_jsonl

log = logging.getLogger(__name__)

FILES = {
    "hotpotqa": {
        "train": "hotpotqa/train.jsonl.gz",
        "validation": "hotpotqa/validation.jsonl.gz",
    },
    "popqa": {"test": "popqa/test.jsonl.gz"},
}
CORPUS = "wikipedia/chunks.jsonl.gz"
SOURCE = "SOURCE.json"
PAGES_PER_REQUEST = 20  # the extract API's limit for introductions
USER_AGENT = "ragtune-demo/0.1 (https://github.com/ragtune; demo data fetch)"


class DemoDataError(RuntimeError):
    """Neither the local mirror nor the public sources could provide the demo's files."""


def _all_files() -> list[str]:
    return [f for splits in FILES.values() for f in splits.values()] + [CORPUS]


def ensure(block: dict[str, Any], datasets: dict[str, Any], basedir: str | Path) -> dict:
    """Make ``block["folder"]`` hold the demo's files; return its ``SOURCE.json`` record.

    ``block``: the config's ``demo_data``; ``datasets``: the config's datasets (their pinned
    ids are the questions to fetch); ``basedir``: the workflow's folder, which a relative
    ``mirror`` is taken from."""
    folder = Path(block["folder"])
    if (folder / SOURCE).exists() and all((folder / f).exists() for f in _all_files()):
        return json.loads((folder / SOURCE).read_text(encoding="utf-8"))
    mirror = Path(block["mirror"])
    mirror = mirror if mirror.is_absolute() else Path(basedir) / mirror
    if all((mirror / f).exists() for f in _all_files()):
        return _link_mirror(folder, mirror.resolve())
    try:
        return fetch(block, datasets, folder, mirror)
    except DemoDataError:
        raise
    except (OSError, ValueError) as err:  # the network, or an answer that is not what we asked
        raise DemoDataError(_both_ways_out(mirror, folder, err)) from err


def _both_ways_out(mirror: Path, folder: Path, err: Exception) -> str:
    return (
        f"the demo's data is not here: the local data mirror {mirror} is missing, and "
        f"fetching the demo from public sources failed ({type(err).__name__}: {err}). Either "
        f"put the mirror there (or set demo_data.mirror to where it is), or run once where "
        "huggingface.co and en.wikipedia.org are reachable: the fetched files are kept in "
        f"{folder} and later runs are offline"
    )


def _link_mirror(folder: Path, mirror: Path) -> dict:
    for name in _all_files():
        link = folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(mirror / name)
    record = {"source": "mirror", "mirror": str(mirror)}
    write_json(folder / SOURCE, record)
    log.info("demo data: the local mirror %s", mirror)
    return record


def pinned_ids(datasets: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """{dataset: {source split: [ids]}} of every split that pins its questions."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, dataset in datasets.items():
        for spec in dataset["splits"].values():
            if "ids" in spec:
                out.setdefault(name, {}).setdefault(spec["from"], []).extend(
                    str(i) for i in spec["ids"]
                )
    return out


def fetch(block: dict[str, Any], datasets: dict[str, Any], folder: Path, mirror: Path) -> dict:
    """Fetch the demo's questions and build its corpus from public sources into ``folder``."""
    hub = block["hub"]
    _probe(hub, mirror, folder)
    wanted = pinned_ids(datasets)
    rows: dict[str, list[dict]] = {}
    for name, splits in FILES.items():
        for split, path in splits.items():
            ids = wanted.get(name, {}).get(split, [])
            config = "distractor" if name == "hotpotqa" else None
            found = _rows_by_id(hub[name], config, split, ids)
            rows[f"{name}/{split}"] = found
            write_jsonl(folder / path, found)
            log.info("demo data: %d %s %s questions from %s", len(found), name, split, hub[name])
    hotpot = [r for key, rs in rows.items() if key.startswith("hotpotqa/") for r in rs]
    titles = sorted({r["s_wiki_title"] for r in rows["popqa/test"]})
    docs = list(_hotpotqa_paragraphs(hotpot))
    paragraphs = len(docs)
    pages = fetch_intros(titles, block["wikipedia_api"])
    lost = sorted(set(titles) - {p["title"] for p in pages})
    if lost:
        log.warning("demo data: no Wikipedia page for %d PopQA gold title(s): %s", len(lost), lost)
    docs += pages
    docs += _leading_rows(hub["corpus"], block["distractors"])
    n = write_jsonl(folder / CORPUS, _unique(docs))
    record = {
        "source": "public",
        "questions": {name: hub[name] for name in FILES},
        "corpus": {
            "hotpotqa_paragraphs": paragraphs,
            "wikipedia_pages": len(pages),
            "wikipedia_api": block["wikipedia_api"],
            "distractors": f"{block['distractors']} leading rows of {hub['corpus']}",
            "documents": n,
        },
        "missing_pages": lost,
    }
    write_json(folder / SOURCE, record)  # last: it marks the folder complete
    log.info("demo data: fetched from public sources into %s (%d documents)", folder, n)
    return record


def _probe(hub: dict[str, str], mirror: Path, folder: Path) -> None:
    """One cheap Hub lookup first, so that an offline machine stops at once with one message
    instead of after the datasets library's retries."""
    first = hub["hotpotqa"]
    if Path(first).exists():  # a local stand-in (tests, or a user's own copy)
        return
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(first, timeout=15)
    except Exception as err:  # noqa: BLE001 - DNS, connection, offline mode, HTTP errors
        raise DemoDataError(_both_ways_out(mirror, folder, err)) from err


def _stream(source: str, config: str | None, split: str) -> Iterable[dict]:
    import datasets

    return datasets.load_dataset(source, config, split=split, streaming=True)


def _rows_by_id(source: str, config: str | None, split: str, ids: list[str]) -> list[dict]:
    """The rows of ``ids`` in their order, streamed until all are found (no full download)."""
    wanted, found = set(ids), {}
    if not wanted:
        return []
    for row in _stream(source, config, split):
        key = str(row["id"])
        if key in wanted:
            found[key] = row
            if len(found) == len(wanted):
                break
    missing = [i for i in ids if i not in found]
    if missing:
        raise DemoDataError(
            f"{source} ({config or 'default'}, {split}) lacks {len(missing)} demo question(s) "
            f"(first: {', '.join(missing[:3])}): the dataset changed on the Hub; use the "
            "local mirror, or pin other ids in config/config.yaml"
        )
    return [found[i] for i in ids]


def _document(doc_id: str, title: str, content: str, wiki_id: str = "") -> dict:
    """A document in the MedRAG/wikipedia schema the demo's corpus follows."""
    return {
        "id": doc_id,
        "title": title,
        "content": content,
        "contents": f"{title}. {content}",
        "wiki_id": wiki_id,
    }


def _hotpotqa_paragraphs(rows: Iterable[dict]) -> Iterator[dict]:
    for row in rows:
        context = row["context"]
        for title, sentences in zip(context["title"], context["sentences"], strict=True):
            text = "".join(sentences).strip()
            if text:
                yield _document(f"hotpotqa:{title}", title, text)


def fetch_intros(titles: list[str], api: str) -> list[dict]:
    """Each page's plain-text introduction from a MediaWiki extract API, following
    redirects, as documents titled with the asked title (the gold label matches it)."""
    docs = []
    for start in range(0, len(titles), PAGES_PER_REQUEST):
        batch = titles[start : start + PAGES_PER_REQUEST]
        query = urllib.parse.urlencode(
            {
                "action": "query",
                "format": "json",
                "formatversion": "2",
                "prop": "extracts",
                "exintro": "1",
                "explaintext": "1",
                "exlimit": "max",
                "redirects": "1",
                "titles": "|".join(batch),
            }
        )
        request = urllib.request.Request(f"{api}?{query}", headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)["query"]
        # The API answers with normalised and redirected titles: map them back to ours.
        back = {t: t for t in batch}
        for step in ("normalized", "redirects"):
            for m in answer.get(step, []):
                back[m["to"]] = back.get(m["from"], m["from"])
        for page in answer.get("pages", []):
            text = (page.get("extract") or "").strip()
            if page.get("missing") or not text:
                continue
            title = back.get(page["title"], page["title"])
            docs.append(_document(f"wikipedia:{title}", title, text, str(page.get("pageid", ""))))
    return docs


def _leading_rows(source: str, n: int) -> list[dict]:
    out = []
    for row in _stream(source, None, "train"):
        if len(out) >= n:
            break
        out.append({k: row[k] for k in ("id", "title", "content", "contents", "wiki_id")})
    return out


def _unique(docs: Iterable[dict]) -> Iterator[dict]:
    seen = set()
    for doc in docs:
        key = (doc["title"], doc["content"])
        if key not in seen:
            seen.add(key)
            yield doc


def read_source(folder: str | Path) -> dict | None:
    path = Path(folder) / SOURCE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def describe(record: dict) -> str:
    if record.get("source") == "mirror":
        return f"the local mirror {record['mirror']}"
    corpus = record.get("corpus", {})
    return (
        f"public sources ({', '.join(record.get('questions', {}).values())}; "
        f"{corpus.get('documents')} corpus documents)"
    )
