"""A job's process keeps bitsandbytes out when it loads no 4-bit model (start-up time: its CPU
backend imports torch's compiler stack), and gets it whenever it does."""

import json
import subprocess
import sys
import textwrap

from ragtune import models, runtime
from ragtune.models import BASE_RECORD, quantizes


def _run(code: str, tmp_path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_a_job_that_quantises_nothing_never_imports_bitsandbytes(tmp_path, minilm_spec):
    # What an evaluate, train_generator (CPU) or embedding job does, in a job's own process.
    out = _run(
        f"""
        import sys
        from ragtune import models, runtime, toy
        from ragtune.models import load_for_training

        runtime.mark_one_job_process()
        assert runtime.keep_out_bitsandbytes()
        folder = toy.save_llama("{tmp_path}/toy")
        model, _ = load_for_training(folder, "none")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        generator, _ = models.load_generator(folder, "auto")
        embedder = models.load_embedder("{minilm_spec}", device="cpu")
        vector = embedder.encode(["a question"])
        print(trainable, vector.shape[1], "bitsandbytes" in sys.modules,
              sys.modules.get("bitsandbytes"))
        """,
        tmp_path,
    )
    trainable, dim, listed, module = out.split()
    assert int(trainable) > 0  # LoRA adapters were made without bitsandbytes
    assert dim == "384"
    assert (listed, module) == ("True", "None")  # the block, never a real import


def test_a_4bit_job_still_gets_bitsandbytes(tmp_path):
    # quantize: 4bit on a CPU (as a user may force): no block, QLoRA loads NF4 layers.
    out = _run(
        f"""
        import sys
        from ragtune import runtime, toy
        from ragtune.models import load_for_training, quantizes

        runtime.mark_one_job_process()
        if not quantizes("4bit"):
            runtime.keep_out_bitsandbytes()
        model, _ = load_for_training(toy.save_llama("{tmp_path}/toy"), "4bit")
        layers = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
        print(layers, sys.modules["bitsandbytes"] is not None)
        """,
        tmp_path,
    )
    layers, imported = out.split()
    assert int(layers) > 0
    assert imported == "True"


def test_nothing_is_kept_out_of_a_process_that_runs_more_than_one_job():
    # A test session or a notebook goes on to other work: blocking an import would outlive
    # the step that asked for it.
    had = sys.modules.get("bitsandbytes", "absent")
    assert runtime.keep_out_bitsandbytes() is False
    assert sys.modules.get("bitsandbytes", "absent") is had


def test_what_loads_4bit(tmp_path):
    plain = tmp_path / "model"
    plain.mkdir()
    assert not models.loads_4bit(str(plain))
    assert models.loads_4bit(str(plain), quantize="nf4")

    def adapter(name, record):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")
        if record is not None:
            (folder / BASE_RECORD).write_text(json.dumps(record))
        return str(folder)

    qlora = adapter("qlora", {"quantization": "nf4", "compute_dtype": "bfloat16"})
    assert models.loads_4bit(qlora)  # as trained
    assert models.loads_4bit(qlora, "as_trained")
    assert models.loads_4bit(qlora, "dequantized")  # dequantized after a 4-bit load
    assert not models.loads_4bit(qlora, "full")
    assert not models.loads_4bit(adapter("lora", {"quantization": "none"}))
    assert not models.loads_4bit(adapter("foreign", None))  # taken as full-precision

    assert quantizes("4bit") and not quantizes("none")
    assert quantizes("auto") is False  # no CUDA on this host: auto does not quantise
