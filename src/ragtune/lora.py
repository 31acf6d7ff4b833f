"""The LoRA adapters every generator-training strategy puts on the generator (the paper's
r=16, §2.2), kept apart from the training code so the memory planner can read them without
torch."""

# Attention and MLP projections of Llama / Mistral / SmolLM2-style decoders.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_RANK = 16
# The paper gives only the rank. 0.05 is our choice: QLoRA used 0.1 for models up to 13B and
# 0.05 for 33B and 65B.
LORA_DROPOUT = 0.05


def lora_config(dropout: float = LORA_DROPOUT, rank: int = LORA_RANK, targets=None):
    """peft's ``LoraConfig`` of ragtune's adapters (alpha = 2 x rank, every projection)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=dropout,
        target_modules=list(targets or LORA_TARGETS),
        task_type="CAUSAL_LM",
    )
