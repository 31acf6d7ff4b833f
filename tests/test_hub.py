"""The up-front Hub check, against a fake Hub API (no network): what each answer becomes."""

from types import SimpleNamespace
from unittest.mock import Mock

import pytest
from huggingface_hub import errors

from ragtune import hub

RESPONSE = Mock(status_code=404, headers={})  # what huggingface_hub's errors read of it


def _config(**over):
    cfg = {
        "corpus": {"source": {"hub": "MedRAG/wikipedia"}, "chunking": {"tokenizer": "org/tok"}},
        "datasets": {"popqa": {"source": {"hub": "akariasai/PopQA", "revision": "main"}}},
        "embedders": {"minilm": "sentence-transformers/all-MiniLM-L6-v2"},
        "generators": {"gguf": "org/llm-GGUF/model.Q4.gguf", "llama": "meta-llama/Llama@v1"},
    }
    cfg.update(over)
    return cfg


class FakeHub:
    """repo_info answers from a table: {repo_id: exception or list of file names}."""

    def __init__(self, answers, default=()):
        self.answers, self.default, self.asked = answers, default, []

    def repo_info(self, repo_id, repo_type=None, revision=None, timeout=None):
        self.asked.append((repo_id, repo_type, revision))
        answer = self.answers.get(repo_id, self.default)
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in answer])


ALL_RULES = {"download_corpus", "chunk_corpus", "prepare_qa", "embed_corpus", "evaluate"}


def test_every_hub_source_is_found_with_its_key_type_and_revision():
    found = {s.key: s for s in hub.sources(_config())}
    assert found["corpus.source.hub"].repo_type == "dataset"
    assert found["datasets.popqa.source.hub"].revision == "main"
    assert found["generators.llama"].repo_id == "meta-llama/Llama"
    assert found["generators.llama"].revision == "v1"
    assert found["generators.gguf"].filename == "model.Q4.gguf"
    assert str(found["generators.gguf"]) == "generators.gguf: org/llm-GGUF/model.Q4.gguf"


def test_all_found_passes_and_asks_once_per_source():
    api = FakeHub({"org/llm-GGUF": ["model.Q4.gguf"]})
    hub.check(_config(), ALL_RULES, api=api)
    assert len(api.asked) == 6  # corpus, dataset, embedder, two generators, tokenizer
    assert ("akariasai/PopQA", "dataset", "main") in api.asked


def test_missing_repository_revision_and_file_are_each_named():
    api = FakeHub(
        {
            "sentence-transformers/all-MiniLM-L6-v2": errors.RepositoryNotFoundError(
                "404", response=RESPONSE
            ),
            "meta-llama/Llama": errors.RevisionNotFoundError("404", response=RESPONSE),
            "org/llm-GGUF": ["model.Q8.gguf"],
        }
    )
    with pytest.raises(hub.HubCheckError) as err:
        hub.check(_config(), ALL_RULES, api=api)
    text = str(err.value)
    assert "embedders.minilm: sentence-transformers/all-MiniLM-L6-v2: no model repository" in text
    assert "generators.llama: meta-llama/Llama@v1: no revision 'v1'" in text
    assert "generators.gguf: org/llm-GGUF/model.Q4.gguf: the repository has no file" in text
    assert "cannot be reached" not in text


def test_gated_repositories_exist():
    api = FakeHub({"meta-llama/Llama": errors.GatedRepoError("403", response=RESPONSE)})
    hub.check(_config(generators={"llama": "meta-llama/Llama"}), ALL_RULES, api=api)


def test_no_hub_says_so_once_and_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    api = FakeHub({}, default=OSError("[Errno -2] Name or service not known"))
    with pytest.raises(hub.HubCheckError) as err:
        hub.check(_config(), ALL_RULES, api=api)
    text = str(err.value)
    assert text.count("cannot be reached") == 1 and "Name or service not known" in text
    assert "  - corpus.source.hub: MedRAG/wikipedia" in text and "HF_HUB_OFFLINE=1" in text


def test_offline_passes_for_what_the_cache_holds(monkeypatch):
    api = FakeHub({}, default=ConnectionError("offline"))
    monkeypatch.setattr(hub, "_cached", lambda source: source.repo_type == "model")
    with pytest.raises(hub.HubCheckError) as err:
        hub.check(_config(), ALL_RULES, api=api)
    assert "corpus.source.hub" in str(err.value) and "embedders" not in str(err.value)
    hub.check(_config(), {"embed_corpus", "evaluate"}, api=api)  # only models are read


def test_only_the_sources_of_pending_rules_are_looked_up():
    api = FakeHub({}, default=ConnectionError("offline"))
    hub.check(_config(), {"tables", "figures", "build_index"}, api=api)  # offline re-run
    assert api.asked == []
    with pytest.raises(hub.HubCheckError, match="datasets.popqa") as err:
        hub.check(_config(), {"prepare_qa"}, api=api)
    assert "MedRAG" not in str(err.value)
