"""envs/*.yaml pin exactly what pyproject.toml pins, with the faiss build of their device."""

import tomllib

import yaml

from helpers import REPO

ENV_EXTRA = {"ragtune.yaml": "cpu", "ragtune-gpu.yaml": "gpu"}


def _pins(deps):
    return dict(dep.split("==") for dep in deps if "==" in dep and not dep.startswith("-"))


def test_conda_env_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert {e.name for e in envs} == set(ENV_EXTRA)
    for env_file in envs:
        extras = project["optional-dependencies"]
        extra = extras[ENV_EXTRA[env_file.name]] + extras["torch"]
        env = yaml.safe_load(env_file.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert _pins(pip) == _pins(project["dependencies"] + extra), env_file


def test_one_faiss_build_per_install():
    """faiss-cpu and faiss-gpu write the same package folder: same version, never both."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    cpu, gpu = _pins(extras["cpu"]), _pins(extras["gpu"])
    assert cpu["faiss-cpu"] == gpu["faiss-gpu"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("faiss") for d in project["dependencies"])
