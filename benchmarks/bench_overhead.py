"""What every job pays before its step does any work, per rule.

A job is ``python <workflow/scripts/rule.py>`` (Snakemake's ``script:``): the interpreter
starts, the script imports its step and the runner, and the step imports the libraries it
needs (sentence-transformers, transformers, peft, faiss, datasets) before its first line of
its own work. For every rule this benchmark starts a fresh process that does exactly that
(the script's own import lines, then the step's libraries, :data:`STEP_LIBRARIES`),
``--repeat`` times, and records the median wall seconds from
process start. The baseline, measured in the same run, is a bare ``python -c pass``.

The steps of the rules in :data:`KEEP_OUT_BITSANDBYTES` load no 4-bit model on a CPU, so their
job process blocks bitsandbytes (``ragtune.runtime.keep_out_bitsandbytes``) before importing its
libraries; the benchmark does the same, and also measures each such rule without the block
(``seconds_with_bitsandbytes``: what a job cost before), in the same run.

Output: benchmarks/out/overhead.json with ``max_job_overhead_s`` and one entry per rule, and
for a rule over the 3 s target the libraries that make it so.

    python -m benchmarks.bench_overhead [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

from benchmarks.common import REPO, report

SCRIPTS = REPO / "workflow" / "scripts"
TARGET_S = 3.0
# The libraries each rule's step imports before its own work (lazily, inside the step), and
# why it needs them.
STEP_LIBRARIES = {
    "download_corpus": ["datasets"],  # reads Hub datasets and local files in their schema
    "chunk_corpus": ["transformers"],  # the tokenizer that measures chunk length
    "embed_corpus": ["sentence_transformers"],  # the embedder
    "build_index": ["faiss"],
    "prepare_qa": ["datasets"],
    "retrieve": ["sentence_transformers", "faiss"],  # the query encoder and the index
    "convert_generator": ["transformers"],  # GGUF de-quantisation
    "train_embedder": ["sentence_transformers"],
    "train_generator": ["transformers", "peft"],  # QLoRA
    "train_joint": ["sentence_transformers", "transformers", "peft", "faiss"],
    "evaluate": ["transformers", "peft"],  # an adapter on its base
    "select_lr": [],
    "tables": ["pandas"],
    "figures": ["pandas", "matplotlib"],
    "report_config": ["yaml"],
}


# Rules whose steps keep bitsandbytes out of their process on a CPU (on CUDA, the training and
# evaluation of a QLoRA generator import it, as they must).
KEEP_OUT_BITSANDBYTES = {
    "embed_corpus",
    "retrieve",
    "train_embedder",
    "train_generator",
    "train_joint",
    "evaluate",
}
BLOCK = (
    "from ragtune import runtime\n"
    "runtime.mark_one_job_process()\n"
    "assert runtime.keep_out_bitsandbytes()"
)


def script_imports(rule: str) -> str:
    """The import lines of a rule's script: what runs before ``run(snakemake, ...)``."""
    lines = (SCRIPTS / f"{rule}.py").read_text().splitlines()
    return "\n".join(ln for ln in lines if re.match(r"^(from|import) ", ln))


def seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - start


def median(code: str, repeat: int) -> float:
    return statistics.median(seconds(code) for _ in range(repeat))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv or [])
    missing = sorted({p.stem for p in SCRIPTS.glob("*.py")} - set(STEP_LIBRARIES))
    if missing:
        raise SystemExit(f"no STEP_LIBRARIES entry for {missing}: add what their steps import")
    baseline = median("pass", args.repeat)
    rules = {}
    for rule, libraries in STEP_LIBRARIES.items():
        own = script_imports(rule)
        stack = "\n".join(f"import {lib}" for lib in libraries)
        script_s = median(own, args.repeat)
        blocks = rule in KEEP_OUT_BITSANDBYTES
        total_s = median(f"{own}\n{BLOCK if blocks else ''}\n{stack}", args.repeat)
        entry = {
            "seconds": round(total_s, 2),
            "script_imports_s": round(script_s, 2),
            "step_libraries": libraries,
            "keeps_out_bitsandbytes": blocks,
            "x_bare_python": round(total_s / baseline, 1),
        }
        if blocks:
            entry["seconds_with_bitsandbytes"] = round(median(f"{own}\n{stack}", args.repeat), 2)
        if total_s > TARGET_S:
            prefix = BLOCK + "\n" if blocks else ""
            alone = [f"{lib} {median(f'{prefix}import {lib}', 1):.1f} s alone" for lib in libraries]
            entry["over_target_because"] = f"its step needs {', '.join(libraries)}: " + ", ".join(
                alone
            )
        rules[rule] = entry
        print(rule, entry, flush=True)
    return report(
        "overhead",
        {
            "bare_python_s": round(baseline, 3),
            "max_job_overhead_s": max(r["seconds"] for r in rules.values()),
            "target_s": TARGET_S,
            "rules": rules,
        },
    )


if __name__ == "__main__":
    main(sys.argv[1:])
