"""Each rule's re-run triggers are exactly the config keys that shape its outputs."""

from types import SimpleNamespace

import pytest
import yaml
from snakemake.utils import validate

from helpers import REPO
from ragtune import rule_settings as rs


@pytest.fixture(scope="module")
def config():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    validate(cfg, str(REPO / "config/schema.yaml"))  # with every default
    return cfg


def test_every_listed_key_is_a_config_key(config):
    for table in (rs.TRIGGERS, rs.RUN_TIME):
        for keys in table.values():
            rs.pick(config, keys)  # a KeyError names a key the schema does not have
    assert set(rs.TRIGGERS) == set(rs.RUN_TIME)


def test_triggers_hold_only_the_rule_s_own_keys(config):
    joint = rs.triggers(config, "train_joint")
    assert joint["training"]["joint"]["scale"] == config["training"]["joint"]["scale"]
    assert "rows_per_forward" not in joint["training"]["joint"]  # speed only
    embedder = rs.triggers(config, "train_embedder")["training"]
    assert "joint" not in embedder and "generator" not in embedder
    assert "k" not in rs.triggers(config, "build_index")["retrieval"]
    assert rs.triggers(config, "retrieve")["retrieval"]["k"] == config["retrieval"]["k"]
    assert "batch_size" not in rs.triggers(config, "embed_corpus")["embedding"]
    assert "query_batch_size" not in rs.triggers(config, "retrieve")["retrieval"]


def test_a_script_sees_its_triggers_and_its_run_time_keys(config):
    smk = SimpleNamespace(
        rule="retrieve",
        params=SimpleNamespace(settings=rs.triggers(config, "retrieve")),
        config=config,
    )
    retrieval = rs.settings(smk)["retrieval"]
    assert retrieval["query_batch_size"] == config["retrieval"]["query_batch_size"]
    assert retrieval["k"] == config["retrieval"]["k"]
    assert "index_factory" not in retrieval  # not what retrieve reads


def test_the_result_config_leaves_out_speed_knobs_and_resources(config):
    out = rs.result_config(config)
    assert "resources" not in out and "batch_size" not in out["embedding"]
    assert "query_batch_size" not in out["retrieval"] and out["retrieval"]["k"]
    assert "rows_per_forward" not in out["training"]["joint"]
    assert "batch_size" in config["embedding"]  # the config itself is untouched


def test_the_training_dtype_triggers_once_set(config):
    # At its default the key stays out of the params: results trained before it existed are
    # not re-trained for it. Set, it re-trains the generator jobs, and only them.
    for rule in ("train_generator", "train_joint"):
        assert "dtype" not in rs.triggers(config, rule)["training"]
        smk = SimpleNamespace(
            rule=rule, params=SimpleNamespace(settings=rs.triggers(config, rule)), config=config
        )
        assert rs.settings(smk)["training"]["dtype"] == "auto"
    # train_joint reads both keys that trigger only once set; the shared lists stay as they were
    assert rs.settings(smk)["training"]["embedder"]["train_documents"] is False
    assert rs.DECODING_TRIGGERS == ["training.joint.scale"]
    assert rs.DTYPE_TRIGGERS == ["training.dtype"]
    bf16 = {**config, "training": {**config["training"], "dtype": "bfloat16"}}
    assert rs.triggers(bf16, "train_generator")["training"]["dtype"] == "bfloat16"
    assert rs.triggers(bf16, "train_joint")["training"]["dtype"] == "bfloat16"
    assert "dtype" not in rs.triggers(bf16, "train_embedder")["training"]


def test_a_checkpoint_fingerprint_ignores_speed_knobs():
    """A checkpoint resumes after a speed or memory knob changed; a setting that shapes the
    result still discards it."""
    from ragtune.steps.train import _result_shaping
    from ragtune.training import loop

    base = {
        "warmup_ratio": 0.1,
        "checkpoint_every": 50,
        "gradient_checkpointing": "auto",
        "embedder": {"loss": "mnrl", "mini_batch": 8},
        "joint": {"scale": 20.0, "rows_per_forward": 1},
    }
    knobs = {
        **base,
        "checkpoint_every": 5,
        "gradient_checkpointing": True,
        "embedder": {"loss": "mnrl", "mini_batch": 2},
        "joint": {"scale": 20.0, "rows_per_forward": 0},
    }
    shaped = {**base, "warmup_ratio": 0.2}

    def print_of(training):
        return loop.fingerprint(training=_result_shaping(training))

    assert print_of(knobs) == print_of(base)
    assert print_of(shaped) != print_of(base)


@pytest.mark.parametrize("name", ["config", "gain", "paper"])
def test_every_rules_settings_are_the_same_for_a_reordered_config(name):
    """The params half of "a reordered config re-runs nothing": each rule's trigger settings
    have one repr whatever the key order of the shipped config they come from."""
    import yaml
    from snakemake.utils import validate

    from helpers import REPO
    from ragtune.rule_settings import TRIGGERS, triggers

    def reordered(value):
        if isinstance(value, dict):
            return {k: reordered(value[k]) for k in reversed(list(value))}
        return value

    config = yaml.safe_load((REPO / f"config/{name}.yaml").read_text())
    validate(config, str(REPO / "config/schema.yaml"))
    other = reordered(config)
    for rule in TRIGGERS:
        assert repr(triggers(other, rule)) == repr(triggers(config, rule)), rule
