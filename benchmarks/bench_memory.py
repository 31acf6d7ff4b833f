"""The GPU memory estimator against measured peaks, and the plan of config/paper.yaml.

**Estimator vs measured.** For SmolLM2-135M and a tiny Llama-shaped model, the real ragtune
code runs a Ft. Gen. step, a joint-step generator pass (RAG-Token over k single-chunk prompts)
and greedy generation on the CPU, with and without gradient checkpointing, each shape in a
fresh process. What a step adds to memory is measured as the growth of the process's peak RSS
over the step (the kernel's VmHWM, reset just before the step; glibc is told to mmap every
allocation above 64 KB, so freed tensors leave the resident set), after one step untimed
(memory-mapped weights become resident on first use). The estimator predicts the
same quantity, the step's peak on top of the loaded model, from the architecture alone, on
the meta device, with CPU attention kernels (``target="cpu"``). The relative error of each
shape, and the worst one, are reported; the target is 15%.

**The paper plan.** Every GPU job kind of config/paper.yaml per pipeline or embedder, with its
peak in GB against the 24 GB A10 budget.

    python -m benchmarks.bench_memory            # writes benchmarks/out/bench_memory.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import OUT, REPO, SMOLLM, report

# (name, model, kind, rows, prompt tokens, gradient checkpointing)
CASES = [
    ("smollm2 ft_gen 2x512", "smollm2", "ft_gen", 2, 512, False),
    ("smollm2 ft_gen 2x512 ckpt", "smollm2", "ft_gen", 2, 512, True),
    ("smollm2 ft_gen 1x1024", "smollm2", "ft_gen", 1, 1024, False),
    ("smollm2 joint 6x192", "smollm2", "joint", 6, 192, False),
    ("smollm2 joint 6x192 ckpt", "smollm2", "joint", 6, 192, True),
    ("smollm2 eval 4x512", "smollm2", "eval", 4, 512, False),
    ("tiny-llama ft_gen 4x1024", "tiny", "ft_gen", 4, 1024, False),
    ("tiny-llama ft_gen 4x1024 ckpt", "tiny", "ft_gen", 4, 1024, True),
    ("tiny-llama joint 10x256 ckpt", "tiny", "joint", 10, 256, True),
    ("tiny-llama eval 8x1024", "tiny", "eval", 8, 1024, False),
]
NEW_TOKENS = 32
LORA_DROPOUT = 0.05
# A Llama-shaped model big enough that its steps allocate hundreds of MB.
TINY = dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=2, vocab_size=8192, max_position_embeddings=4096)  # fmt: skip


def _models(folder: Path) -> dict[str, Path]:
    """SmolLM2 converted from its GGUF once (cached in benchmarks/out), and the tiny Llama."""
    from ragtune import models, toy

    smol = OUT / "smollm2-hf"
    if not (smol / "config.json").exists():
        models.convert_gguf(SMOLLM, smol)
    tiny = folder / "tiny-llama"
    if not tiny.exists():
        toy.save_llama(tiny, **TINY)
    return {"smollm2": smol, "tiny": tiny}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(folder: str, kind: str, rows: int, tokens: int, checkpointing: bool) -> int:
    """In this (fresh) process: load the model as ragtune does, run one step, and return the
    growth of peak RSS over the step."""
    import torch

    from ragtune.models import load_for_training
    from ragtune.prompting import Example, collate
    from ragtune.training.generator import generator_loss

    torch.manual_seed(0)
    if kind == "eval":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        ids = torch.randint(3, model.config.vocab_size, (rows, tokens))

        def step():
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                               max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                               do_sample=False, pad_token_id=0)  # fmt: skip

    else:
        model, tok = load_for_training(folder, "none", LORA_DROPOUT, 0, checkpointing)
        model.train()
        vocab = model.config.vocab_size
        answer = [1] * 32
        if kind == "ft_gen":
            examples = [
                Example(torch.randint(3, vocab, (tokens + 32,)).tolist(), [0] * tokens + answer)
                for _ in range(rows)
            ]

            def step():
                generator_loss(model, collate(examples, 0)).backward()

        else:
            from ragtune.training.joint import answer_logprobs_by_row
            from ragtune.training.marginal import rag_token_nll

            shared = torch.randint(3, vocab, (40,)).tolist()  # the instruction every prompt has
            examples = [
                Example(shared + torch.randint(3, vocab, (tokens - 8,)).tolist(),
                        [0] * tokens + answer)
                for _ in range(rows)
            ]  # fmt: skip
            scores = torch.randn(rows // 2, 2, requires_grad=True)

            def step():
                logp = answer_logprobs_by_row(model, examples, 0, 0).view(rows // 2, 2, -1)
                mask = torch.ones(rows // 2, logp.shape[-1])
                rag_token_nll(logp, mask, scores).backward()

    import gc

    # Once first: the weights are memory-mapped from safetensors and only become resident when
    # a step reads them, and a first step initialises kernels' workspaces.
    step()
    model.zero_grad(set_to_none=True)
    gc.collect()
    before = _rss_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    step()
    return _peak_rss_bytes() - before


def estimate(folder: Path, kind: str, rows: int, tokens: int, checkpointing: bool):
    from transformers import AutoConfig

    from ragtune.lora import LORA_RANK, LORA_TARGETS
    from ragtune.memory import estimate as est

    config = AutoConfig.from_pretrained(folder)
    if kind == "eval":
        return est.generation(config, job=kind, rows=rows, prompt_tokens=tokens,
                              new_tokens=NEW_TOKENS, dtype="float32", target="cpu")  # fmt: skip
    joint = dict(joint_k=2, prefix_tokens=40) if kind == "joint" else {}
    return est.generator_training(
        config, job=kind, rows=rows, prompt_tokens=tokens, quantized=False,
        compute_dtype="float32", lora_rank=LORA_RANK, lora_targets=LORA_TARGETS,
        lora_dropout=LORA_DROPOUT, checkpointing=checkpointing, target="cpu", **joint,
    )  # fmt: skip


def paper_plan() -> list[dict]:
    import yaml
    from snakemake.utils import validate

    from ragtune.memory import plan

    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "config/schema.yaml"))
    rows = plan.plan(config, {}, REPO / ".snakemake" / "ragtune-memory-plan")
    return [row.as_dict() for row in rows]


def main() -> dict:
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = _models(Path(tmp))
        for name, model, kind, rows, tokens, ckpt in CASES:
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "2"}
            args = [str(folders[model]), kind, str(rows), str(tokens), str(int(ckpt))]
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_memory", "--measure", *args],
                cwd=REPO, env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            measured = int(out.stdout.strip().splitlines()[-1])
            predicted = estimate(folders[model], kind, rows, tokens, ckpt).step_peak
            error = abs(predicted - measured) / measured
            cases.append({"case": name, "measured_mb": round(measured / 2**20, 1),
                          "estimated_mb": round(predicted / 2**20, 1),
                          "rel_error": round(error, 4)})  # fmt: skip
            print(f"{name:<32} measured {measured / 2**20:8.1f} MB  estimated "
                  f"{predicted / 2**20:8.1f} MB  error {error:6.1%}", flush=True)  # fmt: skip
    plan_rows = paper_plan()
    return report(
        "bench_memory",
        {
            "estimator_max_rel_error": max(c["rel_error"] for c in cases),
            "target_max_rel_error": 0.15,
            "cases": cases,
            "paper_plan": plan_rows,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", nargs=5)
    args = parser.parse_args()
    if args.measure:
        folder, kind, rows, tokens, ckpt = args.measure
        print(measure(folder, kind, int(rows), int(tokens), bool(int(ckpt))))
    else:
        main()
