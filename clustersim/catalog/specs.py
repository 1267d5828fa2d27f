"""Frozen spec records for chips and models: the catalog's data in typed, hashable form.

Units are SI and sit in the field names (`_bytes`, `_bytes_s`, `_flops_s`, `_w`, `_usd`).
Conversion from vendor units (GB/s, TFLOPS, GiB) happens once, in the loader.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5}
"""Bytes per element of each storage dtype clustersim knows (FP4/MXFP4 scale overhead ignored)."""


@dataclass(frozen=True, slots=True)
class ChipSpec:
    """One accelerator as the roofline sees it.

    `family` selects the efficiency factors (perf/efficiency.yaml): chips of one
    architecture and software stack share them. Peak FLOP/s are dense (no sparsity);
    a dtype whose peak is 0 is not accelerated and runs at the next wider dtype's rate.
    Scale-up/out bandwidths are unidirectional bytes/s per chip.
    """

    name: str
    vendor: str
    family: str
    hbm_bytes: float
    hbm_bw_bytes_s: float
    bf16_flops_s: float
    fp8_flops_s: float
    fp4_flops_s: float
    scaleup_bw_bytes_s: float
    scaleup_domain: int
    scaleout_bw_bytes_s: float
    tdp_w: float
    price_usd: float
    source: str
    aliases: tuple[str, ...] = ()

    def peak_flops_s(self, dtype: str) -> float:
        """Dense peak for math in `dtype`, falling back to the next wider supported dtype."""
        order = ("fp4", "fp8", "bf16")
        start = order.index(dtype) if dtype in order else order.index("bf16")
        for name in order[start:]:
            value = getattr(self, f"{name}_flops_s")
            if value > 0:
                return value
        return self.bf16_flops_s


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A decoder-only transformer's shape, enough for FLOPs, bytes and KV size.

    attention: "mha" | "gqa" | "mla". For MLA, kv_lora_rank and qk_rope_head_dim give the
    latent KV; qk_nope_head_dim / v_head_dim / q_lora_rank the projections.
    MoE: num_experts > 0 routed experts of moe_intermediate_size, top num_experts_per_tok,
    plus num_shared_experts; the first num_dense_layers layers use the dense FFN.
    Sliding-window layers (num_sliding_layers of them) attend to at most sliding_window tokens.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    attention: str
    max_context: int
    source: str
    weight_dtype: str = "bf16"
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    num_dense_layers: int = 0
    sliding_window: int = 0
    num_sliding_layers: int = 0
    tie_word_embeddings: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.num_dense_layers if self.is_moe else 0
