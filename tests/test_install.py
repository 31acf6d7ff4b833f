"""The Makefile's install paths: a venv remembers its choices (a GPU install is never undone by a
later target), a new TORCH_INDEX reinstalls torch, and the offline paths (a wheelhouse, the
site's own PyTorch) install with no package index."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO


def _make(*args: str, env: dict | None = None, timeout: int = 60) -> str:
    out = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _installed_venv(folder: Path, **choices: str) -> Path:
    """A venv folder as `make install` leaves it: its record and stamps, newer than the
    Makefile and pyproject.toml."""
    venv = folder / "venv"
    venv.mkdir()
    record = {"TORCH": "pip", "TORCH_INDEX": "", "DEVICE": "cpu", **choices}
    (venv / ".choices").write_text("".join(f"{k}={v}\n" for k, v in record.items()))
    later = time.time() + 5
    for stamp in (".torch", ".installed"):
        (venv / stamp).touch()
        os.utime(venv / stamp, (later, later))
    return venv


@pytest.mark.parametrize("target", ["gpu-check", "run", "test"])
def test_later_targets_keep_a_gpu_install(tmp_path, target):
    venv = _installed_venv(tmp_path, DEVICE="gpu")
    plan = _make("-n", target, f"VENV={venv}")
    assert "pip" not in plan and "venv" not in plan.split(f"{venv}/bin")[0], plan


def test_a_device_given_again_reinstalls_with_its_faiss(tmp_path):
    venv = _installed_venv(tmp_path, DEVICE="gpu")
    plan = _make("-n", "install", f"VENV={venv}", "DEVICE=cpu")
    assert "uninstall --quiet --yes faiss-gpu" in plan
    assert "-e '.[torch,cpu,dev]'" in plan
    assert "torch==2.13.0" not in plan  # torch's own choices did not change


def test_a_new_torch_index_reinstalls_torch_from_it(tmp_path):
    venv = _installed_venv(tmp_path, DEVICE="gpu")
    url = "https://download.pytorch.org/whl/cu128"
    plan = _make("-n", "install", f"VENV={venv}", "DEVICE=gpu", f"TORCH_INDEX={url}")
    assert f"--force-reinstall --index-url {url} torch==2.13.0" in plan, plan
    # and it is remembered: the next target keeps that index
    assert "TORCH_INDEX=" + url in plan
    (venv / ".choices").write_text(f"TORCH=pip\nTORCH_INDEX={url}\nDEVICE=gpu\n")
    assert "pip" not in _make("-n", "test", f"VENV={venv}")
    # an empty index given explicitly goes back to PyPI's build
    plan = _make("-n", "install", f"VENV={venv}", "TORCH_INDEX=")
    assert "pip install --quiet   torch==2.13.0" in plan and "force-reinstall" not in plan


def test_a_venv_from_before_the_record_keeps_its_device(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".device-gpu").touch()
    plan = _make("-n", "install", f"VENV={venv}")
    assert "-e '.[torch,gpu,dev]'" in plan and "uninstall --quiet --yes faiss-cpu" in plan


def test_the_site_torch_path_installs_no_torch(tmp_path):
    plan = _make("-n", "install", f"VENV={tmp_path / 'venv'}", "TORCH=system")
    assert "--system-site-packages" in plan
    assert "torch==2.13.0" not in plan and "-e '.[cpu,dev]'" in plan
    assert "install.py check-site-torch" in plan


def test_a_wheelhouse_install_never_asks_an_index(tmp_path):
    plan = _make("-n", "install", f"VENV={tmp_path / 'venv'}", f"WHEELHOUSE={tmp_path}")
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert len(installs) == 3, plan  # torch, ragtune with its dependencies, the models
    assert all(f"--no-index --find-links {tmp_path}" in line for line in installs)


def test_the_site_torch_check_names_the_floor(tmp_path):
    """A site torch older than the stack's floor is refused, naming both versions."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '2.1.2+cu121'\n")
    out = subprocess.run(
        [sys.executable, str(REPO / "src/ragtune/install.py"), "check-site-torch",
         str(REPO / "pyproject.toml")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )  # fmt: skip
    assert out.returncode != 0
    assert "2.1.2+cu121" in out.stderr and "torch>=2.6" in out.stderr


@pytest.mark.slow
def test_offline_installs_from_a_wheelhouse_and_over_a_site_torch(tmp_path):
    """`make wheelhouse` with the package index, then two installs with none (pip's proxy points
    nowhere): one with torch from the wheelhouse, one over a site torch (a user site-packages
    that only the venv made with --system-site-packages sees)."""
    wheels = tmp_path / "wheelhouse"
    _make("wheelhouse", f"WHEELHOUSE={wheels}", "DEVICE=cpu", timeout=1200)
    offline = {
        "PIP_FIND_LINKS": "",  # this host's local wheel folder is no part of the wheelhouse
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "PIP_RETRIES": "0",
        # No byte-compiling of what it installs: it halves each install (64 s -> 33 s alone)
        # and is no part of what this test checks. (PIP_COMPILE=0, not PIP_NO_COMPILE=1: pip
        # reads the latter as --compile.)
        "PIP_COMPILE": "0",
    }
    site = tmp_path / "site"
    torch_wheel = next(wheels.glob("torch-*.whl"))
    python = getattr(sys, "_base_executable", sys.executable)  # outside any venv
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--user", "--no-deps", str(torch_wheel)],
        check=True, env={**os.environ, **offline, "PYTHONUSERBASE": str(site)},
    )  # fmt: skip
    venvs = {"wheelhouse": {}, "site": {"TORCH": "system", "PYTHONUSERBASE": str(site)}}
    for name, extra in venvs.items():
        venv = tmp_path / f"venv-{name}"
        args = [f"VENV={venv}", f"WHEELHOUSE={wheels}", "DEVICE=cpu", f"PYTHON={python}"]
        if "TORCH" in extra:
            args.append(f"TORCH={extra['TORCH']}")
        log = _make("install", *args, env={**offline, **extra}, timeout=900)
        probe = subprocess.run(
            [str(venv / "bin/python"), "-c",
             "import faiss, peft, ragtune, snakemake, torch; print(torch.__file__)"],
            capture_output=True, text=True, env={**os.environ, **extra}, check=True,
        ).stdout  # fmt: skip
        if name == "site":
            assert "TORCH=system: torch 2.13.0" in log
            assert probe.startswith(str(site)), probe  # the site's torch, not one of its own
            assert not list((venv / "lib").glob("python3*/site-packages/torch"))
        else:
            assert probe.startswith(str(venv)), probe
        assert "DEVICE=cpu" in (venv / ".choices").read_text()


def test_make_clean_keeps_the_other_shipped_configs_results(tmp_path):
    results = tmp_path / "results"
    for part in (
        "paper/tables/averaged.md",
        "gain/x.json",
        "beyond/tables/averaged.md",
        "hotpotqa/qa/train.jsonl",
        "logs/a.log",
    ):
        (results / part).parent.mkdir(parents=True, exist_ok=True)
        (results / part).write_text("x")
    _make("clean", f"RESULTS={results}")
    assert sorted(p.name for p in results.iterdir()) == ["beyond", "gain", "paper"]
    assert (results / "paper/tables/averaged.md").exists()
