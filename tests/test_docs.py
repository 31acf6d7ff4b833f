"""The README stays a front page: at most 12 kB, the details one link away."""

import re

from helpers import REPO


def test_readme_is_at_most_12_kb():
    size = len((REPO / "README.md").read_bytes())
    assert size <= 12_000, f"README.md is {size} bytes: move detail to docs/"


def test_every_doc_the_readme_links_exists():
    text = (REPO / "README.md").read_text()
    linked = set(re.findall(r"`((?:docs|config|src|benchmarks|tests)/[\w./-]+)`", text))
    assert "docs/demo.md" in linked and "docs/fidelity.md" in linked
    missing = [p for p in sorted(linked) if not (REPO / p).exists()]
    assert missing == []
