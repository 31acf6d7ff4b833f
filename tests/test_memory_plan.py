"""The GPU memory plan: the estimate's arithmetic on tiny models, the meta-device count against
the same step run for real, and the planning-time check of config/paper.yaml."""

import pytest
import torch
import yaml

from helpers import REPO, snakemake, write_config
from ragtune import toy
from ragtune.lora import LORA_RANK, LORA_TARGETS
from ragtune.memory import estimate, meta, plan
from ragtune.memory.result import NF4_BITS, Estimate

CACHE = REPO / ".snakemake" / "ragtune-memory-plan"


@pytest.fixture(scope="module")
def tiny():
    return toy.llama_config(512, hidden_size=64, intermediate_size=128, num_hidden_layers=3)


def _lora(tiny, **kw):
    return dict(job="t", rows=2, prompt_tokens=64, compute_dtype="float32",
                lora_rank=LORA_RANK, lora_targets=LORA_TARGETS, lora_dropout=0.0,
                checkpointing=False, target="cpu", **kw)  # fmt: skip


def test_live_bytes_counts_each_storage_once_and_frees_it():
    live = meta.LiveBytes()
    with live:
        x = torch.ones(1024, 1024)  # 4 MiB
        views = [x.view(-1), x.detach(), torch.ops.aten._unsafe_view(x, (1024, 1024))]
        assert live.live == 4 * 2**20
        y = x * 2
        assert live.live == 8 * 2**20
        del x, views, y
    assert live.live == 0 and live.peak == 8 * 2**20


def test_weights_and_optimizer_are_counted_from_shapes(tiny):
    h, i, layers, vocab = 64, 128, 3, 512
    kv = tiny.num_key_value_heads * (h // tiny.num_attention_heads)
    linears = layers * (h * h + 2 * h * kv + h * h + 3 * h * i)  # q, k, v, o, gate, up, down
    others = 2 * vocab * h + (2 * layers + 1) * h  # embeddings, LM head, norms
    lora = (
        layers * LORA_RANK * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))
    )  # A: r x in, B: out x r, on each of the 7 projections
    plain = estimate.generator_training.exact(tiny, quantized=False, **_lora(tiny))
    assert plain.weights == 4 * (linears + others + lora)
    assert plain.optimizer == 2 * 4 * lora
    nf4 = estimate.generator_training.exact(tiny, quantized=True, **_lora(tiny))
    # QLoRA: the decoder's linears in NF4, everything else in float32 (peft's k-bit prep)
    assert nf4.weights == pytest.approx(linears * NF4_BITS / 8 + 4 * (others + lora), abs=64)


def test_two_shallow_runs_extrapolate_to_the_full_depth(tiny):
    deep = toy.llama_config(512, hidden_size=64, intermediate_size=128, num_hidden_layers=5)
    for checkpointing in (False, True):
        for joint in ({}, {"joint_k": 2, "prefix_tokens": 8, "rows_per_forward": 1}):
            kw = _lora(deep, **joint) | {"checkpointing": checkpointing, "quantized": False}
            affine = estimate.generator_training(deep, **kw)
            exact = estimate.generator_training.exact(deep, **kw)
            assert affine.step_peak == pytest.approx(exact.step_peak, rel=0.01)
            assert affine.weights == exact.weights and affine.optimizer == exact.optimizer


def test_the_meta_count_matches_the_same_step_run_for_real(tiny, tmp_path):
    """Ft. Gen. on the CPU: the step's live tensors, counted on the real run, are what the
    estimate counts on meta."""
    from ragtune.models import load_for_training
    from ragtune.prompting import collate
    from ragtune.training.generator import generator_loss

    folder = toy.save_llama(tmp_path / "llama", hidden_size=64, intermediate_size=128,
                            num_hidden_layers=3, vocab_size=512)  # fmt: skip
    for checkpointing in (False, True):
        model, _ = load_for_training(str(folder), "none", 0.0, 0, checkpointing)
        model.train()
        live = meta.LiveBytes()
        with live:
            generator_loss(model, collate(estimate._examples(2, 64, 0), 0)).backward()
        kw = _lora(tiny) | {"checkpointing": checkpointing, "quantized": False}
        predicted = estimate.generator_training.exact(tiny, **kw).step_peak
        # A tiny model: the padded-batch mask the estimate assumes is a visible share of it.
        assert predicted == pytest.approx(live.peak, rel=0.1), checkpointing


def test_generation_holds_the_kv_cache_of_every_layer(tiny):
    est = estimate.generation(tiny, job="e", rows=4, prompt_tokens=128, new_tokens=8,
                              dtype="float32", target="cpu")  # fmt: skip
    head_dim = tiny.hidden_size // tiny.num_attention_heads
    per_token = 4 * tiny.num_hidden_layers * 2 * tiny.num_key_value_heads * head_dim * 4
    assert est.step_peak >= per_token * (128 + 8)
    assert est.optimizer == 0 and est.saved_activations == 0
    longer = estimate.generation(tiny, job="e", rows=4, prompt_tokens=128, new_tokens=40,
                                 dtype="float32", target="cpu")  # fmt: skip
    assert longer.step_peak - est.step_peak >= per_token * 32  # the cache of 32 more tokens


def test_a_job_that_does_not_fit_names_itself_its_estimate_and_the_knob():
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    from snakemake.utils import validate

    validate(config, str(REPO / "config/schema.yaml"))
    rows = plan.check(config, {}, CACHE)  # the paper config fits its 24 GB A10s
    assert rows and all(r.fits for r in rows)
    assert {r.rule for r in rows} >= {"train_generator", "train_joint", "evaluate",
                                      "embed_corpus", "retrieve", "train_embedder"}  # fmt: skip
    config["generation"]["batch_size"] = 32
    with pytest.raises(plan.MemoryPlanError) as err:
        plan.check(config, {}, CACHE)
    message = str(err.value)
    assert "evaluate (minilm-llama3): needs" in message and "24 GB GPU" in message
    assert "generation.batch_size: 32 -> 4" in message
    assert "train_generator" not in message
    # A profile's per-rule budget (an 80 GB GPU for evaluation) lets it through.
    assert plan.check(config, {"evaluate": 80}, CACHE)


def test_rag_decoding_is_planned_at_its_own_rows():
    """RAG-Token evaluation runs a batch's questions' k prompts as rows: with batch_size 2 and
    k = 5 that is 5 rows, not 2, and the plan sizes (and can refuse) those."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "config/schema.yaml"))
    config["generation"]["batch_size"] = 2

    def evaluate_peak(decoding):
        config["evaluation"]["decoding"] = decoding
        rows = plan.plan(config, {}, CACHE)
        return max(r.estimate.step_peak for r in rows if r.rule == "evaluate")

    concat, rag = evaluate_peak("concat"), evaluate_peak("rag_token")
    assert rag > 2 * concat  # 5 rows against 2, at the same prompt cap


def test_estimate_totals():
    e = Estimate("j", weights=5, optimizer=3, step_peak=10, saved_activations=4, overhead=2)
    assert e.total == 20 and e.as_dict()["total"] == 20


@pytest.mark.workflow
def test_planning_fails_for_an_80gb_only_setting(tmp_path):
    """Ft. Gen. micro-batches of 16 at 4,096 tokens without checkpointing: the dry run fails
    before planning a job, naming the job and the knobs; the paper config itself passes."""
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["training"]["generator"].update(batch_size=16, max_prompt_tokens=4096)
    config["training"]["gradient_checkpointing"] = False
    out = snakemake("-n", "--configfile", str(write_config(config, tmp_path / "big.yaml")))
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "MemoryPlanError" in text and "train_generator (minilm-llama3): needs" in text
    assert "training.gradient_checkpointing: true" in text
    assert "training.generator.batch_size" in text


def test_document_side_training_and_loop_are_planned():
    """train_documents: Ft. Embed.'s step holds its chunks' activations too, and the corpus
    re-embedding jobs get a row; LOOP's k prompts of k-1 chunks at evaluation's prompt length
    get one of their own."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "config/schema.yaml"))
    before = {(r.rule, r.model): r for r in plan.plan(config, {}, CACHE)}
    config["training"]["embedder"]["train_documents"] = True
    config["strategies"]["loop"] = {"embed_lrs": [1e-5]}
    after = {(r.rule, r.model): r for r in plan.plan(config, {}, CACHE)}
    new = set(after) - set(before)
    assert new == {("embed_corpus_refreshed", e) for e in ("minilm", "mpnet")} | {
        ("train_joint", f"{p}, LOOP") for p in config["pipelines"]
    }
    for e in ("minilm", "mpnet"):
        refreshed, base = after[("embed_corpus_refreshed", e)], after[("embed_corpus", e)]
        assert refreshed.estimate.total == base.estimate.total
        step = ("train_embedder", e)
        assert after[step].estimate.step_peak > before[step].estimate.step_peak
    joint = ("train_joint", "minilm-llama3")
    assert after[joint].estimate.total > before[joint].estimate.total
