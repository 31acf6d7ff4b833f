"""Style gates: snakefmt, snakemake --lint and ruff, on the whole repository."""

import subprocess
import sys

from helpers import REPO, snakemake

BIN = REPO / ".venv" / "bin"


def _tool(name):
    path = BIN / name
    return str(path) if path.exists() else name


def test_snakefmt_clean():
    out = subprocess.run(
        [_tool("snakefmt"), "--check", "Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_snakemake_lint_clean():
    out = snakemake("--lint", "--cores", "1")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_clean():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
