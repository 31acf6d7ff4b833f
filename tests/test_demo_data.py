"""The demo's data on a fresh clone: the mirror where present, else the public sources.

The public path runs the code users run, offline: the Hub datasets are local stand-ins in the
Hub's file layout (parquet under a README that declares the configs, as on the Hub), and the
Wikipedia API is a local HTTP server answering in the API's own format.
"""

import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from helpers import REPO, snakemake
from ragtune.config import check
from ragtune.data import demo
from ragtune.data.qa import carve, iter_records, normalise
from ragtune.data.sources import load_split
from ragtune.io import read_jsonl

DEMO = yaml.safe_load((REPO / "config/config.yaml").read_text())
HOTPOT_README = """---
configs:
- config_name: distractor
  data_files:
  - split: train
    path: distractor/train-*.parquet
  - split: validation
    path: distractor/validation-*.parquet
---
"""


def _rows(path):
    return [rec for _, rec in iter_records(path)]


def _parquet(rows, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture(scope="module")
def stand_in(mirror, tmp_path_factory):
    """Local copies of the three Hub datasets, in their Hub layout, from the mirror's rows."""
    root = tmp_path_factory.mktemp("hub")
    hotpot = root / "hotpotqa" / "hotpot_qa"
    (hotpot).mkdir(parents=True)
    (hotpot / "README.md").write_text(HOTPOT_README)
    for split in ("train", "validation"):
        rows = _rows(mirror / f"hotpotqa/{split}.jsonl.gz")
        _parquet(rows, hotpot / f"distractor/{split}-00000-of-00001.parquet")
    popqa = root / "akariasai" / "PopQA"
    rows = _rows(mirror / "popqa/test.jsonl.gz")
    for row in rows:  # on the Hub the id column is an integer
        row["id"] = int(row["id"])
    _parquet(rows, popqa / "data/test-00000-of-00001.parquet")
    wiki = root / "MedRAG" / "wikipedia"
    chunks = _rows(mirror / "wikipedia/chunks.jsonl.gz")
    _parquet(chunks[-300:], wiki / "data/train-00000-of-00001.parquet")
    return {"hotpotqa": str(hotpot), "popqa": str(popqa), "corpus": str(wiki)}, chunks


class WikiAPI(BaseHTTPRequestHandler):
    """Answers action=query&prop=extracts as MediaWiki does (formatversion 2), from pages."""

    pages: dict = {}
    asked: list = []

    def do_GET(self):  # noqa: N802 - the http.server interface
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        titles = query["titles"][0].split("|")
        self.asked.append(titles)
        normalized, out = [], []
        for title in titles:
            name = title[:1].upper() + title[1:]  # MediaWiki's first-letter normalisation
            if name != title:
                normalized.append({"from": title, "to": name})
            if name in self.pages:
                out.append({"pageid": 7, "title": name, "extract": self.pages[name]})
            else:
                out.append({"title": name, "missing": True})
        body = json.dumps(
            {"batchcomplete": True, "query": {"normalized": normalized, "pages": out}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def wiki_api(stand_in):
    _, chunks = stand_in
    WikiAPI.pages = {c["title"]: c["content"] for c in chunks}
    WikiAPI.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), WikiAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/w/api.php"
    server.shutdown()


def _demo_questions(datasets):
    """The demo's splits as carved from ``datasets`` (question ids per split)."""
    out = {}
    for name, ds in datasets.items():
        pools = {
            src: normalise(load_split(ds["source"], src), ds["format"], src)
            for src in {s["from"] for s in ds["splits"].values()}
        }
        out[name] = {k: [r["id"] for r in v] for k, v in carve(pools, ds["splits"], 13).items()}
    return out


def _config_reading(folder):
    from snakemake.utils import validate

    cfg = json.loads(json.dumps(DEMO).replace("data/demo", str(folder)))
    cfg.pop("demo_data")
    validate(cfg, str(REPO / "config/schema.yaml"))  # fills in the defaults
    return cfg


def test_the_mirror_is_linked_where_it_is_present(mirror, tmp_path):
    block = {"folder": str(tmp_path / "demo"), "mirror": str(mirror)}
    record = demo.ensure(block, DEMO["datasets"], REPO)
    assert record == {"source": "mirror", "mirror": str(mirror.resolve())}
    linked = (tmp_path / "demo/popqa/test.jsonl.gz").resolve()
    assert linked == (mirror / "popqa/test.jsonl.gz").resolve()  # ../shared may be a link
    # a relative mirror is the workflow's folder's
    assert demo.ensure({**block, "mirror": "../shared/data/mirror"}, {}, REPO) == record


def test_the_public_path_fetches_the_same_questions_and_a_corpus_with_their_gold(
    stand_in, wiki_api, tmp_path
):
    hub, _ = stand_in
    folder = tmp_path / "demo"
    block = {
        "folder": str(folder),
        "mirror": str(tmp_path / "no-mirror"),
        "hub": hub,
        "wikipedia_api": wiki_api,
        "distractors": 100,
    }
    record = demo.ensure(block, DEMO["datasets"], REPO)
    assert record["source"] == "public" and "public sources" in demo.describe(record)
    cfg = _config_reading(folder)
    check(cfg)  # every row valid, every pinned id present
    fetched = _demo_questions(cfg["datasets"])
    for name, ds in DEMO["datasets"].items():
        assert fetched[name] == {k: [str(i) for i in s["ids"]] for k, s in ds["splits"].items()}
    # only the demo's questions were kept, one row each
    assert len(_rows(folder / "popqa/test.jsonl.gz")) == 36
    # every demo question's gold documents are in the corpus
    titles = {d["title"] for d in read_jsonl(folder / "wikipedia/chunks.jsonl.gz")}
    gold = {t for q in ("hotpotqa", "popqa") for t in _gold_titles(folder, q)}
    assert gold <= titles
    popqa_titles = _gold_titles(folder, "popqa")
    assert record["missing_pages"] == [] and record["corpus"]["wikipedia_pages"] == len(
        popqa_titles
    )
    assert sum(map(len, WikiAPI.asked)) == len(popqa_titles)
    assert max(map(len, WikiAPI.asked)) <= demo.PAGES_PER_REQUEST
    # a second call finds the folder complete and fetches nothing
    WikiAPI.asked.clear()
    assert demo.ensure(block, DEMO["datasets"], REPO) == record and WikiAPI.asked == []


def _gold_titles(folder, name):
    ds = json.loads(json.dumps(DEMO["datasets"][name]).replace("data/demo", str(folder)))
    return {
        t
        for src in {s["from"] for s in ds["splits"].values()}
        for q in normalise(load_split(ds["source"], src), ds["format"], src)
        for t in q["gold_titles"]
    }


def test_page_titles_come_back_as_asked_through_normalisation(wiki_api):
    WikiAPI.pages = {"Abraham Lincoln": "Abraham Lincoln was a president."}
    docs = demo.fetch_intros(["abraham Lincoln", "No such page"], wiki_api)
    assert [(d["title"], d["content"]) for d in docs] == [
        ("abraham Lincoln", "Abraham Lincoln was a president.")
    ]
    assert docs[0]["contents"] == "abraham Lincoln. Abraham Lincoln was a president."


def test_no_mirror_and_no_network_stops_at_once_naming_both_ways_out(tmp_path):
    """`make run` on a fresh clone without the mirror and without network: one message, before
    any job, that names the mirror and the public sources."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    block = json.dumps({"folder": "data/demo", "mirror": str(tmp_path / "no-mirror")})
    out = snakemake(
        "-n",
        "-c1",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(REPO / "config/config.yaml"),
        "--config",
        f"demo_data={block}",
        timeout=300,
        env=env,
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "DemoDataError" in text and "the local data mirror" in text
    assert "no-mirror is missing" in text and "huggingface.co and en.wikipedia.org" in text
    assert not (tmp_path / "data/demo/SOURCE.json").exists()


def test_the_report_config_says_where_the_demo_data_came_from(tmp_path):
    from ragtune.report.build import write_config

    source = {"source": "mirror", "mirror": "/data/mirror"}
    write_config({"seed": 13}, tmp_path / "config.yaml", "config md5 x", source)
    text = (tmp_path / "config.yaml").read_text()
    assert "# demo data from the local mirror /data/mirror" in text
    assert yaml.safe_load(text) == {"seed": 13}  # still the config, comments aside
