"""Render one sbatch command per rule of a config's DAG through the SLURM executor plugin.

Run as `python tests/render_sbatch.py REPO CONFIG PROFILE` (its own process: the Snakemake API
changes the working folder and logging). Prints one JSON line per rule: {rule, call, local}
(a local rule is never submitted). The calls are built by the plugin's own functions, from the
jobs of a dry-run DAG with the profile's resources applied; nothing is submitted.
"""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
from snakemake_executor_plugin_slurm import Executor
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

repo, configfile, profile = (Path(a).resolve() for a in sys.argv[1:4])
prof = yaml.safe_load(profile.read_text())
with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(
            cores=1,
            nodes=prof.get("jobs", 1),
            default_resources=prof["default-resources"],
            overwrite_resources=prof["set-resources"],
        ),
        config_settings=ConfigSettings(configfiles=[configfile]),
        snakefile=repo / "Snakefile",
        workdir=repo,
    )
    dag_api = wf.dag()
    dag_api.execute_workflow(executor="dryrun")
    jobs = {}
    for job in wf._workflow.dag.jobs:
        jobs.setdefault(job.rule.name, job)
    fake = SimpleNamespace(_partitions=None, _fallback_partition=None, logger=None)
    for name, job in sorted(jobs.items()):
        if name == "all":
            continue
        params = {
            "run_uuid": "uuid",
            "slurm_logfile": "log/%j.log",
            "comment_str": f"rule_{name}",
            "account": "",
            "partition": Executor.get_partition_arg(fake, job),
            "workdir": str(repo),
        }
        call = get_submit_command(job, params) + set_gres_string(job)
        print(json.dumps({"rule": name, "call": call, "local": name in wf._workflow._localrules}))
