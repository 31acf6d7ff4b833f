"""Where an evaluate job's generation time goes, as the demo runs it: SmolLM2-135M in float32,
one thread, one batch of 10 HotpotQA validation prompts (3 of their own paragraphs each, as the
demo's k = 3), at most 12 new tokens.

With ``--chunk-tokens N`` each paragraph is cut to its first N tokens, as the demo's corpus
chunks are (128).

- ``generate_s``: the whole batch (the baseline of this run); ``prefill_s``: the same batch
  with one new token, i.e. the prompt pass; ``two_batches_of_5_s``: the same prompts in two
  length-sorted batches (less padding, twice the decode steps);
- ``op_share``: the torch profiler's share of CPU time of the top operators over one whole
  batch, and ``padded_tokens`` against ``prompt_tokens``: what left padding adds to the
  prompt pass;
- ``prefill_gflops_per_s``: the prompt pass's rate, counting 2 FLOPs per weight of the
  decoder's matrices (embeddings and LM head left out, attention scores too, so a lower
  bound) per padded token: set it against ``bench_cpu_dtype``'s float32 matmul rate.

    python -m benchmarks.bench_evaluate_profile [--prompts 10] [--max-new-tokens 12]
        [--chunk-tokens 128]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.bench_generation import hotpot_prompts
from benchmarks.common import OUT, SMOLLM, report, timed
from ragtune import models
from ragtune.evaluation.generate import generate_answers
from ragtune.models import load_generator
from ragtune.prompting import prompt_ids


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--chunk-tokens", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = OUT / "smollm2-hf"
    if not (folder / "config.json").exists():
        models.convert_gguf(SMOLLM, folder)
    model, tok = load_generator(str(folder), "float32")
    cut = None
    if args.chunk_tokens:

        def cut(text: str) -> str:
            ids = tok(text, add_special_tokens=False)["input_ids"][: args.chunk_tokens]
            return tok.decode(ids)

    prompts = hotpot_prompts(args.prompts, k=3, cut=cut)
    lengths = [len(prompt_ids(tok, p)) for p in prompts]
    n = len(prompts)

    def run(batch_size: int, new_tokens: int, early_stop: bool = True):
        return generate_answers(
            model, tok, prompts, batch_size=batch_size, max_new_tokens=new_tokens,
            early_stop=early_stop, progress=False,
        )  # fmt: skip

    weights = sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.dim() == 2 and "embed" not in name and "lm_head" not in name
    )
    run(n, 1)  # warm-up
    answers, generate_s = timed(run, n, args.max_new_tokens)
    _, prefill_s = timed(run, n, 1, False)
    halves, halves_s = timed(run, (n + 1) // 2, args.max_new_tokens)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(n, args.max_new_tokens)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
    name = f"evaluate_profile_chunks{args.chunk_tokens}" if args.chunk_tokens else ""
    return report(
        name or "evaluate_profile",
        {
            "prompts": n,
            "chunk_tokens": args.chunk_tokens,
            "max_new_tokens": args.max_new_tokens,
            "prompt_tokens": sum(lengths),
            "padded_tokens": max(lengths) * n,
            "generate_s": round(generate_s, 2),
            "prefill_s": round(prefill_s, 2),
            "prefill_share": round(prefill_s / generate_s, 3),
            "decoder_matrix_weights": weights,
            "prefill_gflops_per_s": round(2 * weights * max(lengths) * n / prefill_s / 1e9, 1),
            "two_batches_of_5_s": round(halves_s, 2),
            "two_batches_over_one": round(halves_s / generate_s, 3),
            "same_answers": halves == answers,
            "op_share": {e.key: round(e.self_cpu_time_total / total, 3) for e in top},
        },
    )


if __name__ == "__main__":
    main()
