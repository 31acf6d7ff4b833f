"""The bridge between a Snakemake ``script:`` and the library.

Scripts stay one line long: ``run(snakemake, step)``. This sets up the rule's log file, sends
tqdm bars and warnings there, claims GPUs before anything touches CUDA, and makes sure an
exception ends up in the log with its traceback instead of a silent non-zero exit.

A training step (``distributed=True``) whose rule asks for ``gpu: N > 1`` is re-launched under
``torchrun`` as N ranks. Snakemake runs a ``script:`` as ``python <tmp-script>``, the tmp
script carrying the pickled ``snakemake`` object, so each rank simply runs that same file and
gets the same object; the job's process claims the GPUs and waits for its ranks.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("ragtune")

# A rehearsal of a cluster's GPU scheduling on a host without usable GPUs (a CPU partition
# with gres declared, or the test suite's one-node SLURM): GPU ids are claimed and logged as
# on a GPU node, then hidden, and the job runs on the CPU.
REHEARSE_ENV = "RAGTUNE_REHEARSE_GPUS"


def keep_attempt(log_path: str) -> Path | None:
    """A second name for this attempt's log, ``<log>.attempt-<n>``: Snakemake deletes a job's
    log before each retry, and the hard link keeps this attempt's lines should it fail or be
    killed (even by SIGKILL). Removed again when the attempt succeeds, so every
    ``.attempt-<n>`` file is one attempt that did not, numbered in order."""
    path = Path(log_path)
    n = 1 + len(list(path.parent.glob(f"{glob.escape(path.name)}.attempt-*")))
    link = path.with_name(f"{path.name}.attempt-{n}")
    try:
        os.link(path, link)
    except OSError:  # a file system without hard links: the log alone, as before
        return None
    return link


def _configure_logging(stream, tag: str = "") -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
        stream=stream,
        force=True,
    )
    logging.captureWarnings(True)


def run(smk: Any, step: Callable[[Any], None], *, distributed: bool = False) -> None:
    """Run ``step(smk)`` with logging to ``smk.log[0]`` and GPUs claimed per ``resources.gpu``;
    with ``distributed``, as ``resources.gpu`` data-parallel ranks when that is more than 1."""
    from ragtune import runtime
    from ragtune.training import distributed as ddp

    # This process runs this one job and ends: a step may keep out what it will not use.
    runtime.mark_one_job_process()
    log_path = smk.log[0] if len(smk.log) else None
    # Closed by the ExitStack below (sys.stderr, the fallback, must stay open).
    stream = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    worker = ddp.in_worker()
    attempt_link = keep_attempt(log_path) if log_path and not worker else None
    n_gpu = int(getattr(smk.resources, "gpu", 0) or 0)
    with contextlib.ExitStack() as stack:
        if log_path:
            stack.enter_context(stream)
            stack.enter_context(contextlib.redirect_stderr(stream))
            stack.enter_context(contextlib.redirect_stdout(stream))
        _configure_logging(stream, f"[rank {os.environ['RANK']}] " if worker else "")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        threads = int(getattr(smk, "threads", 0) or 0)
        if threads:
            import torch

            # Ranks share the job's cores (on a GPU node they need few host threads anyway).
            torch.set_num_threads(max(1, threads // (n_gpu if worker else 1)))
        start = time.time()
        log.info("rule %s started", getattr(smk, "rule", "?"))
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            log.info("Hugging Face Hub offline: no configured source is on the Hub")
        try:
            if worker:
                from ragtune import gpu

                # The launching process claimed the GPUs and exported CUDA_VISIBLE_DEVICES;
                # the rank holds them too, so they stay taken should the launcher die.
                gpu.hold_for_ranks()
                ddp.init_from_env()
                try:
                    step(smk)
                finally:
                    ddp.shutdown()
            else:
                from ragtune import gpu

                claim = gpu.claim(n_gpu)
                if claim.ids and os.environ.get(REHEARSE_ENV) == "1":
                    log.info(
                        "claimed GPU(s) %s; %s=1: running on the CPU",
                        ",".join(claim.ids),
                        REHEARSE_ENV,
                    )
                    gpu.hide_gpus()
                elif claim.ids:
                    log.info("claimed GPU(s) %s", ",".join(claim.ids))
                    runtime.check_cuda_usable(claim.ids)
                if distributed and n_gpu > 1:
                    # This very script again, once per rank.
                    script, args = os.path.abspath(sys.argv[0]), sys.argv[1:]
                    ddp.launch(script, n_gpu, threads or 1, stream, args)
                else:
                    step(smk)
        except BaseException:
            log.error("rule failed:\n%s", traceback.format_exc())
            raise
        log.info("rule finished in %.1f s", time.time() - start)
    if attempt_link is not None:
        attempt_link.unlink(missing_ok=True)
