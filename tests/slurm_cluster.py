"""A real one-node SLURM cluster for the tests: Debian's slurm-wlm and munge, started as root.

`Cluster(folder).start()` writes slurm.conf and gres.conf into `folder`, makes 8 fake GPU
device nodes (SLURM binds gres `File=` ids and sets CUDA_VISIBLE_DEVICES for them), starts
munged, slurmctld and slurmd, and waits until the node is idle; `stop()` stops only the
daemons it started. `Cluster.unavailable()` says why this host cannot run one (not root, no
apt-get and no packages), or None. Nothing here is ragtune's: it is the test's cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
GPUS = 8


def _have_binaries() -> bool:
    return all(
        shutil.which(b) or Path("/usr/sbin", b).exists()
        for b in ("slurmctld", "slurmd", "munged", "sbatch")
    )


def install() -> None:
    """Install Debian's slurm-wlm and munge when missing (the CI runs as root)."""
    if _have_binaries():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, capture_output=True
    )


def unavailable() -> str | None:
    """Why a cluster cannot start here, or None when it can."""
    if os.geteuid() != 0:
        return "a one-node SLURM needs root (munged, slurmd and device nodes)"
    if not _have_binaries() and not shutil.which("apt-get"):
        return "slurm-wlm and munge are not installed and there is no apt-get"
    return None


class Cluster:
    def __init__(
        self,
        folder: Path,
        *,
        cpus: int = 2,
        memory_mb: int = 20000,
        min_job_age: int = 300,
        port: int = 6917,
    ) -> None:
        self.folder = Path(folder)
        self.host = socket.gethostname().split(".")[0]
        self.cpus, self.memory_mb, self.min_job_age, self.port = cpus, memory_mb, min_job_age, port
        self.conf = self.folder / "slurm.conf"
        self._started: list[subprocess.Popen] = []
        self._linked: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment SLURM's client commands (sbatch, squeue, sacct) need."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "log", "dev", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        # Fake GPUs: character devices SLURM can bind by id (clones of /dev/null).
        for i in range(GPUS):
            dev = f / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
        node = (f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                f"RealMemory={self.memory_mb} Gres=gpu:a100:{GPUS} State=UNKNOWN")  # fmt: skip
        self.conf.write_text(f"""\
ClusterName=ragtune-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={self.port}
SlurmdPort={self.port + 1}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={f}/state
SlurmdSpoolDir={f}/spool
SlurmctldPidFile={f}/slurmctld.pid
SlurmdPidFile={f}/slurmd.pid
SlurmctldLogFile={f}/log/slurmctld.log
SlurmdLogFile={f}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge={self.min_job_age}
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
{node}
PartitionName=cpu Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={self.host} MaxTime=INFINITE State=UP
""")
        (f / "gres.conf").write_text(
            f"NodeName={self.host} Name=gpu Type=a100 File={f}/dev/nvidia[0-{GPUS - 1}]\n"
        )

    def _daemon(self, *cmd: str) -> None:
        self._started.append(
            subprocess.Popen(
                list(cmd),
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self, timeout: float = 60) -> Cluster:
        install()
        self._write_config()
        munge = self.folder / "munge"
        os.chmod(munge, 0o700)
        # munged in the foreground, on its own socket, so it never meets a system munged.
        socket_path = munge / "munge.socket"
        self._daemon(
            "/usr/sbin/munged",
            "--foreground",
            "--force",
            f"--socket={socket_path}",
            f"--pid-file={munge}/munged.pid",
            f"--log-file={munge}/munged.log",
            f"--seed-file={munge}/seed",
        )
        self._wait(lambda: socket_path.exists(), timeout, "munged's socket")
        with self.conf.open("a") as conf:
            conf.write(f"AuthInfo=socket={socket_path}\n")
        # The SLURM jobstep plugin drops SLURM_CONF (with every SLURM_* variable but the job's
        # ids) before its srun, so srun inside a job finds the config only at the default path.
        default = Path("/etc/slurm/slurm.conf")
        if default.is_symlink() or not default.exists():
            default.parent.mkdir(parents=True, exist_ok=True)
            default.unlink(missing_ok=True)
            default.symlink_to(self.conf)
            self._linked = default
        elif default.resolve() != self.conf.resolve():
            raise RuntimeError(f"{default} exists: this host has a SLURM of its own")
        self._daemon("/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf))
        self._daemon("/usr/sbin/slurmd", "-D", "-f", str(self.conf))
        self._wait(self._node_idle, timeout, f"node {self.host} idle (see {self.folder}/log)")
        return self

    def _node_idle(self) -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%t"], env=self.env, capture_output=True, text=True
        )
        return out.returncode == 0 and out.stdout.split()[:1] == ["idle"]

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            if any(p.poll() is not None for p in self._started):
                break
            time.sleep(0.5)
        logs = "".join(p.read_text()[-2000:] for p in (self.folder / "log").glob("*.log"))
        self.stop()
        raise RuntimeError(f"SLURM test cluster: no {what} after {timeout:.0f} s\n{logs}")

    def stop(self) -> None:
        for proc in reversed(self._started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self._started.clear()
        if self._linked is not None:
            self._linked.unlink(missing_ok=True)
            self._linked = None
