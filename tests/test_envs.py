"""envs/*.yaml pin exactly what pyproject.toml pins."""

import tomllib

import yaml

from helpers import REPO


def test_conda_env_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(dep.split("==") for dep in project["dependencies"])
    for env_file in (REPO / "envs").glob("*.yaml"):
        env = yaml.safe_load(env_file.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert dict(p.split("==") for p in pip) == pins, env_file
