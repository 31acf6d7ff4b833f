"""The bridge between a Snakemake ``script:`` and the library.

Scripts stay one line long: ``run(snakemake, step)``. This sets up the rule's log file, sends
tqdm bars and warnings there, claims GPUs before anything touches CUDA, and makes sure an
exception ends up in the log with its traceback instead of a silent non-zero exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ragtune")


def _configure_logging(stream) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
        force=True,
    )
    logging.captureWarnings(True)


def run(smk: Any, step: Callable[[Any], None]) -> None:
    """Run ``step(smk)`` with logging to ``smk.log[0]`` and GPUs claimed per ``resources.gpu``."""
    log_path = smk.log[0] if len(smk.log) else None
    # Closed by the ExitStack below (sys.stderr, the fallback, must stay open).
    stream = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    with contextlib.ExitStack() as stack:
        if log_path:
            stack.enter_context(stream)
            stack.enter_context(contextlib.redirect_stderr(stream))
            stack.enter_context(contextlib.redirect_stdout(stream))
        _configure_logging(stream)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        threads = getattr(smk, "threads", None)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        start = time.time()
        log.info("rule %s started", getattr(smk, "rule", "?"))
        try:
            from ragtune import gpu

            n_gpu = int(getattr(smk.resources, "gpu", 0) or 0)
            claim = gpu.claim(n_gpu)
            if claim.ids:
                log.info("claimed GPU(s) %s", ",".join(claim.ids))
            step(smk)
        except BaseException:
            log.error("rule failed:\n%s", traceback.format_exc())
            raise
        log.info("rule finished in %.1f s", time.time() - start)
