"""Helpers for the Makefile's install paths, run as a plain script (``python
src/ragtune/install.py ...``) before ragtune itself is installed, so they import nothing but
the standard library and, for the site-torch check, torch.

- ``requirements DEVICE``: every requirement of an install for DEVICE (cpu | gpu) with its
  pin, one a line: what ``make wheelhouse`` downloads.
- ``check-site-torch PYPROJECT``: the PyTorch a venv over the system site-packages sees is
  importable and new enough for this stack (the ``torch>=`` floor in pyproject.toml); says
  which torch and CUDA it found.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, device: str) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    pinned = extras["torch"] + extras[device] + extras["dev"]
    # The bare floor ("torch>=2.6") is covered by the torch extra's pin.
    floors = {re.split(r"[<>=!~ ]", r)[0] for r in pinned}
    return [r for r in project["dependencies"] if re.split(r"[<>=!~ ]", r)[0] not in floors] + (
        pinned
    )


def torch_floor(pyproject: Path) -> str:
    project = tomllib.loads(pyproject.read_text())["project"]
    for req in project["dependencies"]:
        if m := re.fullmatch(r"torch>=([\d.]+)", req.replace(" ", "")):
            return m.group(1)
    raise SystemExit(f"{pyproject}: no 'torch>=' floor in [project] dependencies")


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.match(r"[\d.]+", version).group(0).strip(".").split("."))


def check_site_torch(pyproject: Path) -> str:
    floor = torch_floor(pyproject)
    try:
        import torch
    except ImportError as err:
        raise SystemExit(
            f"TORCH=system: no PyTorch importable from {sys.executable} ({err}). Load the "
            "site's PyTorch first (e.g. `module load pytorch`) and run make with that python "
            "(`make install TORCH=system PYTHON=$(which python3)`), or drop TORCH=system to "
            "install torch from the package index"
        ) from err
    if _release(torch.__version__) < _release(floor):
        raise SystemExit(
            f"TORCH=system: the site's torch is {torch.__version__} ({torch.__file__}), but "
            f"this stack needs torch>={floor} (transformers 5.23, peft 0.21.2, "
            "bitsandbytes 0.50.2, sentence-transformers 6.2.0, installed into the venv, "
            "require it). Load a newer PyTorch module, or drop TORCH=system"
        )
    cuda = torch.version.cuda
    where = f"CUDA {cuda}" if cuda else "a CPU-only build: every job will run on the CPU"
    return f"TORCH=system: torch {torch.__version__} from {torch.__file__} ({where})"


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "requirements":
        print("\n".join(requirements(Path(argv[1]), argv[2])))
    elif len(argv) == 2 and argv[0] == "check-site-torch":
        print(check_site_torch(Path(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
