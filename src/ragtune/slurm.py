"""What a SLURM run checks before it submits anything, and how it learns that jobs ended.

Snakemake's SLURM executor plugin (snakemake-executor-plugin-slurm 2.8) submits and polls; it
does not check that a job can ever start, and two of its status paths never end:

- With ``sacct`` as the status command on a cluster without accounting storage, every query
  fails and the plugin keeps waiting for jobs that finished long ago. ``squeue`` works there,
  as long as SLURM remembers finished jobs longer than the plugin polls (``MinJobAge`` at
  least 3x its first status interval; below that the plugin falls back to ``sacct``).
- With accounting, ``sacct`` reports a cancelled job as ``CANCELLED by <uid>``; the plugin
  matches the exact word ``CANCELLED`` and keeps waiting. :func:`install_sacct_shim` puts a
  ``sacct`` in front of the real one that reports the bare state, for this process only.

:func:`preflight` runs once, in the main process, before the first submission: it picks the
status command and says which, and fails naming the rule, what it asks and the largest node
of its partition when a job can never start. The profile's values stay the user's.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SlurmPreflightError(RuntimeError):
    """A SLURM run that could never finish: a job no node can hold, or jobs nobody can see end."""


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: dict[str, int]  # GPU type ("" when untyped) -> count
    partitions: tuple[str, ...]

    def gpu_count(self, model: str | None = None) -> int:
        if model:
            return self.gpus.get(model, 0)
        return sum(self.gpus.values())

    def describe(self) -> str:
        gpus = ",".join(f"{t or 'gpu'}:{n}" for t, n in sorted(self.gpus.items())) or "no GPU"
        return f"{self.name} ({self.cpus} CPUs, {self.mem_mb} MB, {gpus})"


@dataclass(frozen=True)
class Ask:
    """What one job asks sbatch for, read from its resources as the plugin reads them."""

    rule: str
    partition: str | None
    cpus: int
    mem_mb: int
    gpus: int
    gpu_model: str | None
    cpus_per_gpu: int | None = None

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU(s){f' of model {self.gpu_model}' if self.gpu_model else ''}"
        return f"{self.cpus} CPUs, {self.mem_mb} MB{gpus if self.gpus else ''}"


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _fields(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one line of ``scontrol show ... -o``."""
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def parse_gres(gres: str) -> dict[str, int]:
    """``gpu:a100:8(S:0-1),gpu:v100:2`` -> {"a100": 8, "v100": 2}; ``gpu:4`` -> {"": 4}."""
    counts: dict[str, int] = {}
    for item in gres.split(","):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        kind, count = (parts[1], parts[2]) if len(parts) >= 3 else ("", parts[1])
        digits = re.match(r"\d+", count)
        if digits:
            counts[kind] = counts.get(kind, 0) + int(digits.group())
    return counts


def parse_nodes(text: str) -> list[Node]:
    """The nodes of ``scontrol show node -o``, one per line."""
    nodes = []
    for line in text.splitlines():
        f = _fields(line)
        if "NodeName" not in f:
            continue
        nodes.append(
            Node(
                name=f["NodeName"],
                cpus=int(f.get("CPUTot", 0) or 0),
                mem_mb=int(f.get("RealMemory", 0) or 0),
                gpus=parse_gres(f.get("Gres", "")),
                partitions=tuple(p for p in f.get("Partitions", "").split(",") if p),
            )
        )
    return nodes


def default_partition(text: str) -> str | None:
    """The partition ``scontrol show partition -o`` marks ``Default=YES``."""
    for line in text.splitlines():
        f = _fields(line)
        if f.get("Default") == "YES":
            return f.get("PartitionName")
    return None


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config``: ``Key = Value`` lines."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def seconds(value: str | None) -> int | None:
    """``MinJobAge = 300 sec`` -> 300 (SLURM prints seconds)."""
    match = re.match(r"(\d+)", value or "")
    return int(match.group(1)) if match else None


def ask_of(rule: str, resources: Mapping, threads: int) -> Ask:
    """A job's request as the plugin turns it into sbatch options (submit_string and the
    jobstep plugin's get_cpu_setting): cpus_per_task wins, then cpus_per_gpu times the GPUs,
    then the rule's threads; mem_mb, or mem_mb_per_cpu times the CPUs."""
    gpus = int(resources.get("gpu") or 0)
    per_gpu = resources.get("cpus_per_gpu")
    if resources.get("cpus_per_task"):
        cpus, per_gpu = max(1, int(resources["cpus_per_task"])), None
    elif gpus and per_gpu and int(per_gpu) > 0:
        cpus = int(per_gpu) * gpus
    else:
        cpus, per_gpu = max(1, int(threads)), None
    if resources.get("mem_mb_per_cpu"):
        mem = int(resources["mem_mb_per_cpu"]) * cpus
    else:
        mem = int(resources.get("mem_mb") or 0)
    return Ask(
        rule,
        resources.get("slurm_partition") or None,
        cpus,
        mem,
        gpus,
        resources.get("gpu_model") or None,
        int(per_gpu) if per_gpu else None,
    )


def _fits(ask: Ask, node: Node) -> bool:
    return (
        ask.cpus <= node.cpus
        and ask.mem_mb <= node.mem_mb
        and ask.gpus <= node.gpu_count(ask.gpu_model)
    )


def check_fits(asks: Iterable[Ask], nodes: list[Node], default: str | None) -> Findings:
    """An error for each rule whose job no node of its partition can hold (SLURM would leave it
    PENDING for ever, Reason=PartitionConfig or Resources), and a warning for each GPU rule
    whose CPUs per GPU would leave GPUs of a full node idle."""
    found = Findings()
    seen: set[str] = set()
    for ask in asks:
        if ask.rule in seen:
            continue
        seen.add(ask.rule)
        partition = ask.partition or default
        members = [n for n in nodes if partition in n.partitions]
        if not members:
            known = sorted({p for n in nodes for p in n.partitions})
            found.errors.append(
                f"rule {ask.rule}: partition {partition!r} has no node (partitions: "
                f"{', '.join(known)}); set slurm_partition for it in the profile's "
                "set-resources"
            )
            continue
        if not any(_fits(ask, n) for n in members):
            largest = max(members, key=lambda n: (n.gpu_count(ask.gpu_model), n.cpus, n.mem_mb))
            found.errors.append(
                f"rule {ask.rule} asks for {ask.describe()} on partition {partition}, but its "
                f"largest node is {largest.describe()}: the job could never start. Lower "
                f"the rule's cpus_per_task / cpus_per_gpu / mem_mb (or gpu_model) in the "
                "profile's set-resources"
            )
            continue
        for node in members:
            n_gpu = node.gpu_count(ask.gpu_model)
            if ask.cpus_per_gpu and n_gpu >= 8 and ask.cpus_per_gpu * n_gpu > node.cpus:
                found.warnings.append(
                    f"rule {ask.rule}: {ask.cpus_per_gpu} CPUs per GPU x {n_gpu} GPUs exceeds "
                    f"node {node.name}'s {node.cpus} CPUs, so at most "
                    f"{node.cpus // ask.cpus_per_gpu} of its GPUs can run this rule at once; "
                    f"lower cpus_per_gpu to {max(1, node.cpus // n_gpu)} to use all of them"
                )
                break
    return found


def status_command(
    cluster: Mapping[str, str], requested: str, init_seconds: int, sacct_available: bool
) -> tuple[str, str]:
    """The status command the plugin will really use, and why; raises where none can see jobs
    end. Without accounting storage only ``squeue`` can (``sacct`` then fails on every
    query); with it, the requested one. The plugin keeps ``squeue`` only while MinJobAge is
    at least 3x its first status interval, and otherwise falls back to ``sacct``."""
    min_age = seconds(cluster.get("MinJobAge"))
    accounting = cluster.get("AccountingStorageType", "") not in ("", "accounting_storage/none")
    threshold = 3 * init_seconds
    why = f"MinJobAge={min_age} s, accounting storage {'on' if accounting else 'off'}"
    squeue_sees_ends = min_age is not None and min_age >= threshold
    if not accounting:
        if not squeue_sees_ends:
            raise SlurmPreflightError(
                f"no status command can see jobs end on this cluster ({why}): sacct needs "
                f"accounting storage, and squeue needs MinJobAge of at least {threshold} s "
                f"(3x slurm-init-seconds-before-status-checks, {init_seconds} s). Lower that "
                f"setting to {max(1, (min_age or 0) // 3)} in profiles/slurm/profile.yaml, or "
                "ask the administrators to raise MinJobAge"
            )
        return "squeue", why
    command = requested if requested in ("sacct", "squeue") else "sacct"
    if command == "squeue" and not squeue_sees_ends and sacct_available:
        command = "sacct"
    if command == "sacct" and not sacct_available:
        command = "squeue"
    return command, why


def account_error(cluster: Mapping[str, str], asks: Iterable[tuple[str, str | None]]) -> str | None:
    """Where the cluster enforces associations, every job needs an account."""
    if "assoc" not in cluster.get("AccountingStorageEnforce", "").lower():
        return None
    missing = sorted({rule for rule, account in asks if not account})
    if not missing:
        return None
    return (
        f"this cluster enforces accounts (AccountingStorageEnforce="
        f"{cluster['AccountingStorageEnforce']}) and rules {', '.join(missing)} have none: set "
        "slurm_account under default-resources in profiles/slurm/profile.yaml"
    )


# --- the sacct shim ----------------------------------------------------------------------

_CANCELLED = re.compile(r"^(?P<head>[^|\n]*\|)CANCELLED by [^|\s]+(?P<tail>(\|[^\n]*)?)$", re.M)


def normalise_sacct(text: str) -> str:
    """``123|CANCELLED by 0`` -> ``123|CANCELLED``: the state word alone, as squeue and the
    plugin's list of failure states spell it."""
    return _CANCELLED.sub(lambda m: f"{m['head']}CANCELLED{m['tail']}", text)


SHIM = """#!{python}
# ragtune's sacct: the real sacct, with "CANCELLED by <uid>" reported as "CANCELLED" so that
# the SLURM executor plugin sees a cancelled job end (ragtune.slurm.normalise_sacct).
import sys
from ragtune.slurm import shim_main
sys.exit(shim_main({real!r}, sys.argv[1:]))
"""


def shim_main(real: str, args: list[str]) -> int:
    out = subprocess.run([real, *args], capture_output=True, text=True)
    sys.stdout.write(normalise_sacct(out.stdout))
    sys.stderr.write(out.stderr)
    return out.returncode


def install_sacct_shim(folder: Path) -> Path | None:
    """Write the shim into ``folder`` and put it first on this process's PATH (the plugin runs
    ``sacct`` by name). Returns the shim, or None where there is no sacct to wrap."""
    # Absolute: the jobs sbatch starts inherit this PATH, from their own working folder.
    folder = Path(folder).resolve()
    path_dirs = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and Path(d).resolve() != folder.resolve()
    ]
    real = shutil.which("sacct", path=os.pathsep.join(path_dirs))
    if real is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "sacct"
    tmp = folder / ".sacct.tmp"
    tmp.write_text(SHIM.format(python=sys.executable, real=real))
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp.replace(shim)
    os.environ["PATH"] = os.pathsep.join([str(folder), *path_dirs])
    return shim


# --- reading the cluster --------------------------------------------------------------------


def _scontrol(*args: str) -> str:
    out = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SlurmPreflightError(f"`scontrol {' '.join(args)}` failed: {out.stderr.strip()}")
    return out.stdout


@dataclass
class Cluster:
    nodes: list[Node]
    default_partition: str | None
    config: dict[str, str]

    @classmethod
    def read(cls) -> Cluster:
        return cls(
            parse_nodes(_scontrol("show", "node", "-o")),
            default_partition(_scontrol("show", "partition", "-o")),
            parse_config(_scontrol("show", "config")),
        )


def preflight(
    jobs: Iterable, settings, shim_folder: Path, cluster: Cluster | None = None, say=print
) -> str:
    """Check a SLURM run's pending ``jobs`` (Snakemake jobs, their resources evaluated with
    the profile's) against the cluster, pick the status command and install the sacct shim.
    ``settings`` is the plugin's executor settings (status_command and the first status
    interval are read, and the command the plugin will use is written back). Raises
    SlurmPreflightError with every problem at once; returns the status command."""
    cluster = cluster or Cluster.read()
    jobs = [j for j in jobs if not getattr(j, "is_local", False)]
    asks = [ask_of(j.rule.name, j.resources, j.threads) for j in jobs]
    found = check_fits(asks, cluster.nodes, cluster.default_partition)
    account = account_error(
        cluster.config, [(j.rule.name, j.resources.get("slurm_account")) for j in jobs]
    )
    if account:
        found.errors.append(account)
    shim = install_sacct_shim(shim_folder)
    try:
        command, why = status_command(
            cluster.config,
            getattr(settings, "status_command", None) or "sacct",
            int(getattr(settings, "init_seconds_before_status_checks", 40) or 40),
            shim is not None,
        )
    except SlurmPreflightError as err:
        found.errors.append(str(err))
        command, why = "", ""
    for warning in found.warnings:
        say(f"ragtune: warning: {warning}")
    if found.errors:
        raise SlurmPreflightError(
            "this SLURM run could not finish; nothing was submitted:\n- "
            + "\n- ".join(found.errors)
        )
    if hasattr(settings, "status_command"):
        settings.status_command = command
    say(
        f"ragtune: SLURM job status through {command} ({why})"
        + ("; sacct's 'CANCELLED by <uid>' read as CANCELLED" if command == "sacct" else "")
    )
    return command


def check_workflow(workflow) -> None:
    """From the workflow's ``onstart``: on the SLURM executor only, :func:`preflight` over the
    jobs Snakemake is about to run."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    preflight(
        workflow.dag.needrun_jobs(),
        workflow.executor_settings,
        Path(".snakemake") / "ragtune-slurm-bin",
    )
