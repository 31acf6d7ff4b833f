"""A joint (RAG-Token / RAG-Sequence) training step against a Ft. Gen step.

Same questions (HotpotQA train), same k, same generator with the same LoRA adapters, same
micro-batch of questions. The corpus is the questions' own context paragraphs, embedded with
MiniLM into a flat index. Ft. Gen's step: one prompt per question holding its top-k chunks
(base retrieval), answer-only NLL. The joint step: encode the questions with gradient, search,
rescore, k single-chunk prompts per question as one batch, marginal NLL, backward into both
models. Step times come from one process that runs the three kinds interleaved, batch by
batch (the same step timed in separate processes on this 2-core VM drifted by 10-20%); peak RSS
comes from each kind alone in its own fresh process.

Each kind's step is also split (``split_seconds``, medians): retrieval (encoding the
questions, the index search and the exact rescoring), the generator's forward pass (answer
log-probabilities), the backward pass, and the rest (prompt building, the marginal), so
that a regression names the part that moved. Checkpoint writes are no part of a step here:
``checkpoint_save_seconds`` times one save of the joint state (adapters, query encoder, AdamW
states) through the training loop's own writer.

Targets: step time <= 1.2x Ft. Gen's, peak memory <= 1.3x Ft. Gen's.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from benchmarks.bench_training import _in_child, _peak_rss_gb
from benchmarks.common import MINILM, MIRROR, SMOLLM, report
from ragtune import models
from ragtune.io import read_jsonl


def corpus_and_questions(n: int):
    questions, chunks = [], {}
    for rec in read_jsonl(MIRROR / "hotpotqa/train.jsonl.gz"):
        questions.append({"question": rec["question"], "answers": [rec["answer"]]})
        for title, sents in zip(rec["context"]["title"], rec["context"]["sentences"], strict=True):
            chunks.setdefault(title, {"title": title, "text": "".join(sents)})
        if len(questions) == n:
            return questions, list(chunks.values())
    raise ValueError(f"{MIRROR}/hotpotqa/train.jsonl.gz has fewer than {n} questions")


class ListChunks(list):
    def get_many(self, rows):
        return [self[int(r)] for r in rows]


def _setup(path, n, k, threads):
    import faiss

    from ragtune.models import load_for_training
    from ragtune.retrieval.embed import encode, passage_text
    from ragtune.training.joint import Retriever

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    questions, chunks = corpus_and_questions(n)
    embedder = models.load_embedder(MINILM, device="cpu")
    vecs = encode(embedder, [passage_text(c) for c in chunks], 64)

    class Store:
        dim = vecs.shape[1]

        def vectors(self, rows):
            return vecs[np.asarray(rows)]

    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    retriever = Retriever(index, Store(), ListChunks(chunks), k)
    generator, tok = load_for_training(path, "none")
    return questions, embedder, generator, tok, retriever


def make_step(kind, parts, max_prompt_tokens, rows_per_forward):
    """One training step's loss for ``kind`` (ft_gen, rag_token or rag_sequence)."""
    from ragtune.prompting import build_example, collate, fit_prompt
    from ragtune.training.generator import generator_loss
    from ragtune.training.joint import joint_loss, query_scores

    _, embedder, generator, tok, retriever = parts
    if kind == "ft_gen":
        # The prompt Ft. Gen trains on: the question's top-k chunks from the base embedder.
        def step(qs):
            with torch.no_grad():
                rows, _ = query_scores(embedder, [q["question"] for q in qs], retriever, 20, False)
            examples = [
                build_example(
                    tok,
                    fit_prompt(q["question"], retriever.chunks.get_many(r), tok, 10**6),
                    q["answers"][0],
                )
                for q, r in zip(qs, rows, strict=True)
            ]
            return generator_loss(generator, collate(examples, tok.pad_token_id))

        return step

    def step(qs):
        return joint_loss(
            qs,
            embedder=embedder,
            generator=generator,
            tokenizer=tok,
            retriever=retriever,
            loss=kind,
            scale=20.0,
            max_prompt_tokens=max_prompt_tokens,
            train_embedder=True,
            train_generator=True,
            rows_per_forward=rows_per_forward,
        )

    return step


KINDS = ("ft_gen", "rag_token", "rag_sequence")


def _batches(questions, batch):
    return [questions[a : a + batch] for a in range(0, len(questions), batch)]


class PartTimer:
    """Seconds spent in wrapped functions since the last :meth:`take`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

        return timed

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


def _time_parts(timer: PartTimer) -> None:
    """Wrap the functions each step calls by module attribute (the benchmark's Ft. Gen. step
    and ragtune's joint loss look them up there at call time)."""
    from ragtune.training import generator as generator_module
    from ragtune.training import joint

    joint.query_scores = timer.wrap("retrieval", joint.query_scores)
    joint.answer_logprobs_by_row = timer.wrap("forward", joint.answer_logprobs_by_row)
    generator_module.generator_loss = timer.wrap("forward", generator_module.generator_loss)


def checkpoint_save_seconds(parts, work_dir) -> float:
    """One save of the joint state through the training loop's writer (atomic torch.save)."""
    from ragtune.io import atomic_path

    _, embedder, generator = parts[0], parts[1], parts[2]
    params = [p for m in (embedder, generator) for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()  # its states exist, as in a checkpoint after the first step
    state = {
        "model": {k: v for k, v in generator.state_dict().items() if "lora" in k}
        | {f"encoder.{k}": v for k, v in embedder.state_dict().items()},
        "optimizer": optimizer.state_dict(),
    }
    start = time.perf_counter()
    with atomic_path(f"{work_dir}/checkpoint.pt") as tmp:
        torch.save(state, tmp)
    return time.perf_counter() - start


def time_interleaved(path, n, k, batch, max_prompt_tokens, rows_per_forward, threads, queue):
    """All three steps in one process on the same models, interleaved batch by batch in a
    rotating order, so that a slow patch of the machine hits every kind alike. Returns each
    kind's median step time, the median over batches of its time / Ft. Gen's, and the median
    split of its step into retrieval, forward, backward and the rest."""
    timer = PartTimer()
    _time_parts(timer)
    parts = _setup(path, n, k, threads)
    questions, embedder, generator = parts[0], parts[1], parts[2]
    generator.train()
    embedder.train()
    steps = {kind: make_step(kind, parts, max_prompt_tokens, rows_per_forward) for kind in KINDS}
    batches = _batches(questions, batch)
    for kind in KINDS:  # warm-up
        steps[kind](batches[0]).backward()
    times = {kind: [] for kind in KINDS}
    splits = {kind: [] for kind in KINDS}
    for i, qs in enumerate(batches[1:]):
        for kind in KINDS[i % 3 :] + KINDS[: i % 3]:
            generator.zero_grad(set_to_none=True)
            embedder.zero_grad(set_to_none=True)
            timer.take()
            start = time.perf_counter()
            loss = steps[kind](qs)
            backward_start = time.perf_counter()
            loss.backward()
            end = time.perf_counter()
            times[kind].append(end - start)
            split = timer.take()
            split["backward"] = end - backward_start
            split["other"] = (end - start) - sum(split.values())
            splits[kind].append(split)
    ratios = {
        kind: float(np.median(np.array(times[kind]) / np.array(times["ft_gen"])))
        for kind in KINDS[1:]
    }
    parts_named = ("retrieval", "forward", "backward", "other")
    with tempfile.TemporaryDirectory() as tmp:
        save_s = checkpoint_save_seconds(parts, tmp)
    queue.put(
        {
            "step_seconds": {kind: float(np.median(t)) for kind, t in times.items()},
            "time_ratio": ratios,
            "split_seconds": {
                kind: {
                    part: round(float(np.median([s.get(part, 0.0) for s in splits[kind]])), 3)
                    for part in parts_named
                }
                for kind in KINDS
            },
            "checkpoint_save_seconds": round(save_s, 3),
        }
    )


def peak_memory(kind, path, n, k, batch, max_prompt_tokens, rows_per_forward, threads, queue):
    """One kind alone in a fresh process over every batch: its peak RSS is its own."""
    parts = _setup(path, n, k, threads)
    parts[2].train()
    parts[1].train()
    step = make_step(kind, parts, max_prompt_tokens, rows_per_forward)
    for qs in _batches(parts[0], batch):
        step(qs).backward()
        parts[2].zero_grad(set_to_none=True)
        parts[1].zero_grad(set_to_none=True)
    queue.put({"peak_rss_gb": _peak_rss_gb()})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=18)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2, help="questions per step")
    parser.add_argument("--max-prompt-tokens", type=int, default=512)
    parser.add_argument("--rows-per-forward", type=int, default=1, help="0: one batch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/smollm2"
        models.convert_gguf(SMOLLM, path)
        common = (
            path,
            args.questions,
            args.k,
            args.batch,
            args.max_prompt_tokens,
            args.rows_per_forward,
            args.threads,
        )
        timing = _in_child(time_interleaved, *common)
        memory = {kind: _in_child(peak_memory, kind, *common)["peak_rss_gb"] for kind in KINDS}
    report(
        "joint_step",
        {
            "questions": args.questions,
            "k": args.k,
            "questions_per_step": args.batch,
            "rows_per_forward": args.rows_per_forward,
            "step_seconds": timing["step_seconds"],
            "split_seconds": timing["split_seconds"],
            "checkpoint_save_seconds": timing["checkpoint_save_seconds"],
            "peak_rss_gb": memory,
            **{f"{kind}_time_ratio": timing["time_ratio"][kind] for kind in KINDS[1:]},
            **{f"{kind}_memory_ratio": memory[kind] / memory["ft_gen"] for kind in KINDS[1:]},
        },
    )


if __name__ == "__main__":
    main()
