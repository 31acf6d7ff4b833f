"""bfloat16 against float32 on this CPU: is bf16 a speed lever here, and how far do its
answers move?

On a CPU with native bf16 (AVX512-BF16 or AMX) a bf16 matmul runs at several times the
float32 rate; elsewhere torch converts and runs a far slower path. Before the demo's jobs
could run in bf16 on such CPUs, both halves must be measured where they run: the speed, and
the closeness of what the model predicts. Same process, both dtypes interleaved, one thread:

- ``matmul``: SmolLM2-135M's MLP up-projection shape (tokens x 576 x 1536), GFLOP/s per dtype;
- ``forward``: SmolLM2-135M over HotpotQA prompts (3 of their own paragraphs, as the demo's
  k = 3), seconds per dtype, and how often bf16's next-token choice equals float32's at every
  position (the greedy decision an answer is made of);
- ``train``: ``--steps`` LoRA steps on the first prompt and its answer, the base in each dtype
  (``training.dtype``; the adapters train in float32), seconds per step and both loss curves.

    python -m benchmarks.bench_cpu_dtype [--prompts 2] [--tokens 512] [--steps 4]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from benchmarks.bench_generation import hotpot_prompts
from benchmarks.common import MIRROR, OUT, SMOLLM, report, timed
from ragtune import models, runtime
from ragtune.io import read_jsonl
from ragtune.models import load_for_training, load_generator
from ragtune.prompting import build_example, collate
from ragtune.training.generator import generator_loss

HOTPOT_VALIDATION = MIRROR / "hotpotqa/validation.jsonl.gz"


def matmul_gflops(dtype: torch.dtype, tokens: int, repeat: int = 5) -> float:
    a = torch.randn(tokens, 576).to(dtype)
    b = torch.randn(576, 1536).to(dtype)
    a @ b  # warm-up
    _, seconds = timed(lambda: [a @ b for _ in range(repeat)])
    return 2 * tokens * 576 * 1536 * repeat / seconds / 1e9


def train_curves(folder: str, prompt: str, answer: str, steps: int):
    """LoRA training steps on one example with the base in float32, then in bfloat16."""
    curves, step_s = {}, {}
    for dtype in ("float32", "bfloat16"):
        model, tok = load_for_training(folder, "none", 0.0, seed=0, dtype=dtype)
        batch = collate([build_example(tok, prompt, answer)], tok.pad_token_id)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
        losses, start = [], time.perf_counter()
        for _ in range(steps):
            loss = generator_loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(round(loss.item(), 4))
        step_s[dtype] = round((time.perf_counter() - start) / steps, 2)
        curves[dtype] = losses
    return curves, step_s


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rates = {
        str(dt).removeprefix("torch."): round(matmul_gflops(dt, args.tokens), 2)
        for dt in (torch.float32, torch.bfloat16)
    }
    folder = OUT / "smollm2-hf"
    if not (folder / "config.json").exists():
        models.convert_gguf(SMOLLM, folder)
    model, tok = load_generator(str(folder), "float32")
    prompts = hotpot_prompts(args.prompts, k=3)
    answers = [r["answer"] for r in itertools.islice(read_jsonl(HOTPOT_VALIDATION), len(prompts))]
    seconds = {"float32": 0.0, "bfloat16": 0.0}
    same = total = 0
    with torch.no_grad():
        for prompt in prompts:
            ids = tok(prompt, return_tensors="pt").input_ids
            picks = {}
            for dtype in (torch.float32, torch.bfloat16):
                model.to(dtype)
                logits, s = timed(lambda m=model, x=ids: m(x).logits)
                name = str(dtype).removeprefix("torch.")
                seconds[name] += s
                picks[name] = logits.argmax(-1)
            same += int((picks["float32"] == picks["bfloat16"]).sum())
            total += ids.shape[1]
    model.to(torch.float32)
    curves, step_s = train_curves(str(folder), prompts[0], answers[0], args.steps)
    return report(
        "cpu_dtype",
        {
            "native_bf16": runtime.cpu_bf16_features(),
            "matmul_gflops": rates,
            "matmul_bf16_over_fp32": round(rates["bfloat16"] / rates["float32"], 3),
            "forward_prompts": len(prompts),
            "forward_tokens": total,
            "forward_s": {k: round(v, 2) for k, v in seconds.items()},
            "forward_bf16_s_over_fp32_s": round(seconds["bfloat16"] / seconds["float32"], 3),
            "next_token_agreement": round(same / total, 4),
            "train_steps": args.steps,
            "train_s_per_step": step_s,
            "train_losses": curves,
        },
    )


if __name__ == "__main__":
    main()
