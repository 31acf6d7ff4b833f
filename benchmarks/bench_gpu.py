"""The GPU path at the paper's widths, in one command (sized for under 8 minutes on one H100 or
H200): the memory plan against what CUDA allocates, fragmentation, and throughput.

    python -m benchmarks.bench_gpu      # writes benchmarks/out/bench_gpu.json

Models have random weights in the shape of the paper's (``ragtune.memory.architectures``:
Llama-3-8B and Mistral-7B; MiniLM and MPNet for the memory plan's encoder rows), saved as
``save_pretrained`` folders and loaded through ragtune's own loaders, so the 4-bit NF4 base,
the LoRA adapters and gradient checkpointing are those of a real job. Shapes are
config/paper.yaml's: micro-batches, prompt caps, k, the generation batch.

- **memory** (each generator; decoder depth cut to 1 and 2 layers): Ft. Gen.'s step, the joint
  step's generator pass (RAG-Token over k single-chunk prompts), evaluation (concat, RAG-Token
  decoding, and a QLoRA adapter on each ``generation.lora_base``: ``as_trained`` 4-bit and
  ``dequantized``). Each is measured (``torch.cuda.max_memory_allocated`` and
  ``max_memory_reserved``, the model loaded) and estimated by the memory plan's estimator for
  the same cut model: ``memory_rel_error_max`` is the worst relative error (goal <= 0.10). The
  two depths extrapolate per layer (a + b x L, as the plan does) to the full depth:
  ``full_depth_peak_gb`` per job against 0.9 x 24 GB (the paper's A10s, §3).
- **fragmentation**: reserved / allocated at the peak over 30 Ft. Gen. micro-batches of varying
  length (``fragmentation_ratio``).
- **throughput** (Llama-3-8B's full depth, 4-bit): QLoRA Ft. Gen. tokens/s
  (``qlora_tokens_per_s``; anchors quoted by issue 28, not measured here: 2,415 tokens/s per
  A100 with HF + peft, 3,726 with unsloth), the joint step's time over Ft. Gen.'s at k = 5
  (``joint_over_ft_gen``, goal <= 1.2), evaluation tokens/s (``eval_tokens_per_s``, prompt
  and generated tokens).

Without a CUDA GPU each of these is ``"SKIPPED"`` (every key is present) and the command exits
0; what runs anywhere runs: the memory plan's full-depth estimate of every paper job
(``plan_peak_gb``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from benchmarks.common import REPO, report

SKIPPED = "SKIPPED"
GENERATORS = {
    "llama3-8b": "meta-llama/Meta-Llama-3-8B-Instruct",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.1",
}
GPU_KEYS = (
    "memory",
    "memory_rel_error_max",
    "full_depth_peak_gb",
    "full_depth_fits_24gb",
    "fragmentation_ratio",
    "qlora_tokens_per_s",
    "joint_over_ft_gen",
    "eval_tokens_per_s",
)
BUDGET_GB = 0.9 * 24
ANCHORS = {"hf_peft_a100_tokens_per_s": 2415, "unsloth_a100_tokens_per_s": 3726}


def paper_config() -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "config/schema.yaml"))
    return config


def plan_peaks(config: dict) -> dict[str, float]:
    """The memory plan's full-depth peak of every GPU job of the paper config, in GB (the
    estimator runs on the meta device: no GPU needed)."""
    from ragtune.memory import plan

    rows = plan.plan(config, {}, REPO / ".snakemake" / "ragtune-memory-plan")
    return {f"{r.rule} ({r.model})": round(r.estimate.gb(), 2) for r in rows}


# ---- random-weight models at the paper's widths ----------------------------------------------
def save_random_generator(spec: str, layers: int, folder: Path) -> Path:
    """A random-weight causal LM of ``spec``'s architecture cut to ``layers`` decoder layers,
    in bfloat16, with a small tokenizer (its ids are a subset of the model's vocabulary)."""
    from transformers import AutoModelForCausalLM

    from ragtune import toy
    from ragtune.memory import architectures

    config = architectures.load(spec)
    config.num_hidden_layers = layers
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    toy.tokenizer().save_pretrained(folder)
    del model
    return folder


def _ids(rows: int, tokens: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, 259, (rows, tokens), generator=gen)  # ids every tokenizer here has


def _examples(rows: int, prompt_tokens: int, answer_tokens: int, seed: int = 0):
    from ragtune.prompting import Example

    ids = _ids(rows, prompt_tokens + answer_tokens, seed).tolist()
    return [
        Example(r, [0] * prompt_tokens + [1] * answer_tokens) for r in ids
    ]  # the answer is the last tokens, as build_example makes it


# ---- what a job allocates --------------------------------------------------------------------
def measure(step: Callable[[], None]) -> dict[str, int]:
    """Peak allocated and reserved bytes over ``step`` (what is resident before it counts)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return {
        "allocated": torch.cuda.max_memory_allocated(),
        "reserved": torch.cuda.max_memory_reserved(),
    }


class TrainingJob:
    """One job's model and step: ``step()`` runs one forward, backward and AdamW step on the
    trainable parameters (the first also allocates the optimizer's states)."""

    def __init__(self, model, tokenizer, loss: Callable[[], torch.Tensor]):
        self.model, self.tokenizer, self.loss = model, tokenizer, loss
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-5)

    def step(self) -> None:
        self.loss().backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def two_steps(self) -> None:
        """What the memory part measures: the second step runs with the optimizer's states."""
        self.step()
        self.step()


def _trainable(folder: Path):
    from ragtune.models import load_for_training

    model, tok = load_for_training(str(folder), "auto", 0.1, seed=0, gradient_checkpointing="auto")
    model.train()
    return model, tok


def ft_gen_job(folder: Path, rows: int, prompt_tokens: int, answer_tokens: int) -> TrainingJob:
    """Ft. Gen. through ragtune's loader (4-bit NF4 and checkpointing on CUDA) and loss."""
    from ragtune.prompting import collate
    from ragtune.training.generator import generator_loss

    model, tok = _trainable(folder)
    batch = collate(_examples(rows, prompt_tokens, answer_tokens), tok.pad_token_id)
    return TrainingJob(model, tok, lambda: generator_loss(model, batch))


def joint_job(folder: Path, questions: int, k: int, prompt_tokens: int, answer_tokens: int,
              rows_per_forward: int) -> TrainingJob:  # fmt: skip
    """The joint step's generator side: k single-chunk prompts per question, RAG-Token over
    retrieval scores that carry a gradient (the query encoder is the plan's encoder row)."""
    from ragtune.training.joint import answer_logprobs_by_row
    from ragtune.training.marginal import rag_token_nll

    model, tok = _trainable(folder)
    examples = _examples(questions * k, prompt_tokens, answer_tokens)

    def loss():
        logp = answer_logprobs_by_row(model, examples, tok.pad_token_id, rows_per_forward)
        logp = logp.view(questions, k, -1)
        mask = torch.ones(questions, logp.shape[-1], device=logp.device)
        scores = torch.zeros(questions, k, device=logp.device, requires_grad=True)
        return rag_token_nll(logp, mask, scores)

    return TrainingJob(model, tok, loss)


def generation_job(model, rows: int, prompt_tokens: int, new_tokens: int) -> Callable[[], None]:
    """Greedy generation of exactly ``new_tokens`` for ``rows`` prompts (concat decoding)."""
    ids = _ids(rows, prompt_tokens).to(model.device)

    def step():
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
            )

    return step


def rag_decoding_job(model, tok, questions: int, k: int, prompt_tokens: int, new_tokens: int):
    """(step, the prompts' real token count) of RAG-Token decoding of ``questions`` x k
    prompts made to hold about ``prompt_tokens`` tokens."""
    from ragtune.evaluation import rag_decoding
    from ragtune.prompting import prompt_ids

    text = tok.decode(_ids(1, prompt_tokens)[0].tolist())
    groups = [[text] * k for _ in range(questions)]
    weights = torch.zeros(questions, k).log_softmax(-1)

    def step():
        rag_decoding.rag_token_batch(model, tok, groups, weights, new_tokens)

    return step, len(prompt_ids(tok, text))


# ---- the memory part -------------------------------------------------------------------------
def memory_part(config: dict, workdir: Path) -> dict:
    from ragtune.evaluation.rag_decoding import rows_per_batch
    from ragtune.lora import LORA_RANK, LORA_TARGETS
    from ragtune.memory import architectures, estimate
    from ragtune.memory.result import ANSWER_TOKENS
    from ragtune.models import load_generator, save_adapter

    g, j, gen = config["training"]["generator"], config["training"]["joint"], config["generation"]
    k = config["retrieval"]["k"]
    lora = dict(compute_dtype="bfloat16", lora_rank=LORA_RANK, lora_targets=LORA_TARGETS,
                lora_dropout=config["training"]["lora_dropout"], checkpointing=True)  # fmt: skip
    new = gen["max_new_tokens"]
    rag_rows = rows_per_batch(gen["batch_size"], k)
    jobs: dict[str, dict] = {}
    for name, spec in GENERATORS.items():
        for layers in (1, 2):
            folder = save_random_generator(spec, layers, workdir / f"{name}-{layers}")
            adapter = workdir / f"{name}-{layers}-adapter"
            arch = architectures.load(spec)
            arch.num_hidden_layers = layers

            def record(job, step, est, layers=layers, name=name):
                measured = measure(step)
                entry = jobs.setdefault(f"{job} ({name})", {})
                entry[layers] = {"estimate": est.total - est.overhead, **measured}

            job = ft_gen_job(folder, g["batch_size"], g["max_prompt_tokens"], ANSWER_TOKENS)
            est = estimate.generator_training.exact(
                arch, job="train_generator", rows=g["batch_size"],
                prompt_tokens=g["max_prompt_tokens"], quantized=True, **lora,
            )  # fmt: skip
            record("train_generator", job.two_steps, est)
            save_adapter(job.model, job.tokenizer, adapter)  # for the lora_base rows
            del job
            job = joint_job(folder, j["batch_size"], k, j["max_prompt_tokens"], ANSWER_TOKENS,
                            j["rows_per_forward"])  # fmt: skip
            est = estimate.generator_training.exact(
                arch, job="train_joint", rows=j["batch_size"] * k,
                prompt_tokens=j["max_prompt_tokens"], quantized=True, joint_k=k,
                prefix_tokens=0, rows_per_forward=j["rows_per_forward"], **lora,
            )  # fmt: skip
            record("train_joint", job.two_steps, est)
            del job
            base, tok = load_generator(str(folder), "bfloat16")
            prompt = gen["max_prompt_tokens"]

            def generation_estimate(rows, prompt_tokens, quantized=False, arch=arch):
                return estimate.generation(
                    arch,
                    job="evaluate",
                    rows=rows,
                    prompt_tokens=prompt_tokens,
                    new_tokens=new,
                    dtype="bfloat16",
                    quantized=quantized,
                )

            rows = gen["batch_size"]
            record(
                "evaluate concat",
                generation_job(base, rows, prompt, new),
                generation_estimate(rows, prompt),
            )
            step, rag_prompt = rag_decoding_job(base, tok, rag_rows // k, k, prompt, new)
            record("evaluate rag_token", step, generation_estimate(rag_rows, rag_prompt))
            del base
            for lora_base, quantized in (("as_trained", True), ("dequantized", False)):
                model, _ = load_generator(str(adapter), "bfloat16", lora_base=lora_base)
                record(
                    f"evaluate lora_base={lora_base}",
                    generation_job(model, rows, prompt, new),
                    generation_estimate(rows, prompt, quantized),
                )
                del model
    depths = {n: architectures.load(s).num_hidden_layers for n, s in GENERATORS.items()}
    return summarise_memory(jobs, depths)


def summarise_memory(jobs: dict[str, dict], depths: dict[str, int]) -> dict:
    """Relative errors at the cut depths, and each job's allocated peak extrapolated per layer
    to its model's full depth."""
    errors, full = {}, {}
    for job, by_depth in jobs.items():
        for layers, m in by_depth.items():
            errors[f"{job} {layers}L"] = abs(m["estimate"] - m["allocated"]) / m["allocated"]
        if 1 in by_depth and 2 in by_depth:
            depth = depths[job.rsplit("(", 1)[1].rstrip(")")]
            one, two = by_depth[1]["allocated"], by_depth[2]["allocated"]
            full[job] = round((one + (depth - 1) * (two - one)) / 1e9, 2)
    return {
        "memory": {
            job: {f"{layers}L": {k: v for k, v in m.items()} for layers, m in by_depth.items()}
            for job, by_depth in jobs.items()
        },
        "memory_rel_error": {k: round(v, 4) for k, v in errors.items()},
        "memory_rel_error_max": round(max(errors.values()), 4) if errors else None,
        "full_depth_peak_gb": full,
        "full_depth_fits_24gb": all(v <= BUDGET_GB for v in full.values()),
    }


# ---- fragmentation and throughput ------------------------------------------------------------
def fragmentation_part(config: dict, workdir: Path) -> dict:
    """Reserved over allocated at the peak, over 30 Ft. Gen. micro-batches whose lengths vary
    from an eighth of the cap to the cap (Llama-3-8B width, 2 layers)."""
    from ragtune.prompting import collate
    from ragtune.training.generator import generator_loss

    g = config["training"]["generator"]
    folder = save_random_generator(GENERATORS["llama3-8b"], 2, workdir / "frag")
    model, tok = _trainable(folder)
    lengths = torch.randint(g["max_prompt_tokens"] // 8, g["max_prompt_tokens"], (30,),
                            generator=torch.Generator().manual_seed(0)).tolist()  # fmt: skip
    batches = [
        collate(_examples(g["batch_size"], n, 32, seed=i), tok.pad_token_id)
        for i, n in enumerate(lengths)
    ]
    job = TrainingJob(model, tok, lambda: generator_loss(model, batches.pop()))
    torch.cuda.reset_peak_memory_stats()
    while batches:
        job.step()
    ratio = torch.cuda.max_memory_reserved() / torch.cuda.max_memory_allocated()
    return {"fragmentation_ratio": round(ratio, 3)}


def _timed_steps(step: Callable[[], None], n: int) -> float:
    step()  # warm-up: kernels, allocator, optimizer states
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def throughput_part(config: dict, workdir: Path, steps: int) -> dict:
    """Llama-3-8B at its full depth, 4-bit: Ft. Gen. and joint steps at paper.yaml's shapes,
    and evaluation (concat) tokens/s."""
    from ragtune.memory import architectures
    from ragtune.memory.result import ANSWER_TOKENS
    from ragtune.models import load_generator

    g, j, gen = config["training"]["generator"], config["training"]["joint"], config["generation"]
    k = config["retrieval"]["k"]
    depth = architectures.load(GENERATORS["llama3-8b"]).num_hidden_layers
    folder = save_random_generator(GENERATORS["llama3-8b"], depth, workdir / "llama3-full")
    job = ft_gen_job(folder, g["batch_size"], g["max_prompt_tokens"], ANSWER_TOKENS)
    ft_gen_s = _timed_steps(job.step, steps)
    tokens = g["batch_size"] * (g["max_prompt_tokens"] + ANSWER_TOKENS)
    del job
    job = joint_job(folder, j["batch_size"], k, j["max_prompt_tokens"], ANSWER_TOKENS,
                    j["rows_per_forward"])  # fmt: skip
    joint_s = _timed_steps(job.step, steps)
    joint_tokens = j["batch_size"] * k * (j["max_prompt_tokens"] + ANSWER_TOKENS)
    del job
    base, _ = load_generator(str(folder), "bfloat16", quantize="nf4")
    prompt, new = gen["max_prompt_tokens"], gen["max_new_tokens"]
    eval_s = _timed_steps(generation_job(base, gen["batch_size"], prompt, new), max(1, steps // 2))
    return {
        "qlora_tokens_per_s": round(tokens / ft_gen_s, 1),
        "qlora_anchors": ANCHORS,
        # per token: the two steps hold different token counts at paper.yaml's shapes
        "joint_over_ft_gen": round((joint_s / joint_tokens) / (ft_gen_s / tokens), 3),
        "joint_step_s": round(joint_s, 3),
        "ft_gen_step_s": round(ft_gen_s, 3),
        "eval_tokens_per_s": round(gen["batch_size"] * (prompt + new) / eval_s, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per throughput row")
    args = parser.parse_args(argv)
    config = paper_config()
    result: dict = {"plan_peak_gb": plan_peaks(config), **dict.fromkeys(GPU_KEYS, SKIPPED)}
    if torch.cuda.is_available():
        result["device"] = torch.cuda.get_device_name(0)
        with tempfile.TemporaryDirectory(prefix="ragtune-bench-gpu-") as tmp:
            for part in (memory_part, fragmentation_part):
                result.update(part(config, Path(tmp)))
                torch.cuda.empty_cache()
            result.update(throughput_part(config, Path(tmp), args.steps))
    else:
        result["device"] = "cpu: every GPU part SKIPPED"
    return report("bench_gpu", result)


if __name__ == "__main__":
    main()
