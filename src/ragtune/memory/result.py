"""What the memory estimate of one job says, without importing torch (the planner reads cached
estimates at every ``snakemake`` start, and torch alone takes seconds to import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The CUDA context and cuBLAS / kernel workspaces: allocated by the driver, counted by no tensor.
CUDA_CONTEXT_BYTES = int(0.6 * 2**30)
# bitsandbytes NF4 with double quantisation: 4 bits a weight, plus 8-bit absmax per block of 64
# and a float32 absmax per 256 of those (Dettmers et al., 2023: 4.127 bits a parameter).
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
# Tokens of the answer the LM head runs on (training) or generates after the prompt.
ANSWER_TOKENS = 32


@dataclass
class Estimate:
    job: str
    weights: int  # resident model weights (4-bit where quantised)
    optimizer: int  # AdamW's two float32 states per trainable parameter
    step_peak: int  # peak of what a step allocates: activations, transients, gradients, KV cache
    saved_activations: int  # of step_peak: the bytes autograd saves for backward
    overhead: int  # the CUDA context
    device: str = "cuda"

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.step_peak + self.overhead

    def gb(self) -> float:
        return self.total / 1e9

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total, "peak_gb": round(self.gb(), 2)}
