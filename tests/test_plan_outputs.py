"""The shipped configs plan the same output files as recorded in tests/plans/: the plan
moved into ragtune.plan without changing a path. Re-record on purpose (a new rule, a new
path) with `python tests/test_plan_outputs.py [name ...]`."""

import re
import shutil
import sys

import pytest
import yaml

from helpers import REPO, snakemake

PLANS = REPO / "tests" / "plans"


def planned_outputs(name, mirror, folder):
    """Every output file a dry run of config/<name>.yaml plans, in a fresh working folder."""
    cache = REPO / ".snakemake" / "ragtune-memory-plan"
    if cache.exists():
        shutil.copytree(cache, folder / ".snakemake" / "ragtune-memory-plan", dirs_exist_ok=True)
    text = (REPO / f"config/{name}.yaml").read_text()
    # gain.yaml reads the mirror itself (relative to the repository): point it there.
    cfg = yaml.safe_load(text.replace("../shared/data/mirror", str(mirror)))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake(
        "-n", "-c8", "-s", str(REPO / "Snakefile"), "--configfile", str(path),
        "--directory", str(folder),
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    files = set()
    for m in re.finditer(r"^    output: (.*)$", out.stdout, re.M):
        files.update(f.strip() for f in m.group(1).split(","))
    return sorted(files)


@pytest.mark.parametrize("name", ["config", "gain", "paper", "beyond"])
def test_the_plan_is_unchanged(name, mirror, tmp_path):
    expected = (PLANS / f"{name}.txt").read_text().split()
    assert planned_outputs(name, mirror, tmp_path) == expected


if __name__ == "__main__":
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(REPO / "tests"))
    for name in sys.argv[1:] or ("config", "gain", "paper", "beyond"):
        with tempfile.TemporaryDirectory() as tmp:
            files = planned_outputs(name, REPO.parent / "shared/data/mirror", Path(tmp))
        (PLANS / f"{name}.txt").write_text("\n".join(files) + "\n")
