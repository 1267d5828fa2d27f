"""Parameter counts, weight bytes, KV-cache bytes and KV capacity of a replica.

Counts follow the Hugging Face module layout of a decoder-only transformer: embedding,
per-layer norms, attention projections (GQA/MHA or MLA), a SwiGLU FFN (3 matrices) or an MoE
block (router + routed experts + shared experts), final norm, lm_head. Small terms no spec
field describes are left out: biases (gpt-oss attention and experts), per-head q/k norms
(Qwen3), attention sinks, DeepSeek's multi-token-prediction layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from clustersim.catalog.specs import DTYPE_BYTES, ModelSpec
from clustersim.errors import SpecError
from clustersim.perf.replica import ReplicaPerf

ACTIVATION_RESERVE_BYTES = float(2**30)
"""Default per-chip allowance for activations and graph buffers outside the KV cache (an
assumption: serving engines profile it at start-up, typically around a GiB per GPU)."""


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of `dtype`; SpecError naming the valid dtypes if unknown.

    >>> dtype_bytes("fp8")
    1.0
    """
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise SpecError(f"dtype={dtype!r}, must be one of {', '.join(DTYPE_BYTES)}") from None


@dataclass(frozen=True, slots=True)
class ParamGroups:
    """Parameters of a model by role, whole model (all layers).

    `expert` is one routed expert of one layer; `routed_experts` all of them in all MoE
    layers; `lm_head` is 0 when tied to the embedding (the matrix is then counted once).
    """

    embedding: float
    lm_head: float
    norms: float
    attention: float
    dense_ffn: float
    router: float
    shared_experts: float
    routed_experts: float
    expert: float

    @property
    def total(self) -> float:
        return (
            self.embedding + self.lm_head + self.norms + self.attention + self.dense_ffn
            + self.router + self.shared_experts + self.routed_experts
        )


def _attention_params_per_layer(m: ModelSpec) -> tuple[float, float]:
    """(projection params, extra norm params) of one attention layer."""
    h = m.hidden_size
    if m.attention == "mla":
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank > 0:
            q = h * m.q_lora_rank + m.q_lora_rank * m.num_heads * qk_dim
        else:
            q = h * m.num_heads * qk_dim
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_b = m.kv_lora_rank * m.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
        out = m.num_heads * m.v_head_dim * h
        return float(q + kv_a + kv_b + out), float(m.q_lora_rank + m.kv_lora_rank)
    q_and_out = 2 * h * m.num_heads * m.head_dim
    k_and_v = 2 * h * m.num_kv_heads * m.head_dim
    return float(q_and_out + k_and_v), 0.0


def param_groups(model: ModelSpec) -> ParamGroups:
    """Parameter counts of `model` by role (see module docstring for what is counted)."""
    m = model
    h, num_layers = m.hidden_size, m.num_layers
    attn, attn_norms = _attention_params_per_layer(m)
    num_moe = m.num_moe_layers
    num_dense_ffn = num_layers - num_moe
    expert = 3.0 * h * m.moe_intermediate_size if m.is_moe else 0.0
    return ParamGroups(
        embedding=float(m.vocab_size * h),
        lm_head=0.0 if m.tie_word_embeddings else float(m.vocab_size * h),
        norms=float(num_layers * (2 * h + attn_norms) + h),
        attention=num_layers * attn,
        dense_ffn=float(num_dense_ffn * 3 * h * m.intermediate_size),
        router=float(num_moe * h * m.num_experts),
        shared_experts=num_moe * m.num_shared_experts * expert,
        routed_experts=num_moe * m.num_experts * expert,
        expert=expert,
    )


def param_count(model: ModelSpec) -> float:
    """Total parameters (embedding, lm_head unless tied, norms, attention, FFN/MoE, routers)."""
    return param_groups(model).total


def active_param_count(model: ModelSpec) -> float:
    """Parameters one token is multiplied by: everything but the embedding table (a lookup)
    and the routed experts it is not sent to (top-k of them run; shared experts always).
    The lm_head counts even when tied to the embedding. Linear FLOPs per token ~ 2x this."""
    g = param_groups(model)
    lm_head = float(model.vocab_size * model.hidden_size)
    routed_active = model.num_moe_layers * model.num_experts_per_tok * g.expert
    return lm_head + g.norms + g.attention + g.dense_ffn + g.router + g.shared_experts + routed_active


@dataclass(frozen=True, slots=True)
class WeightBytes:
    """Bytes of a model's weights by how they are read: `dense_bytes` every step (attention,
    dense FFN, shared experts, routers, norms), `lm_head_bytes` when a step samples,
    `expert_bytes` per routed expert per layer when a token is routed to it,
    `embedding_bytes` never in bulk (lookups of a few rows)."""

    embedding_bytes: float
    lm_head_bytes: float
    dense_bytes: float
    expert_bytes: float
    routed_expert_bytes: float
    block_dtype: str
    """dtype of attention, dense FFN and shared-expert weights (see weight_breakdown)."""

    @property
    def total_bytes(self) -> float:
        return self.embedding_bytes + self.lm_head_bytes + self.dense_bytes + self.routed_expert_bytes


def weight_breakdown(model: ModelSpec, dtype: str) -> WeightBytes:
    """Weight bytes of `model` stored in `dtype`, by how a step reads them.

    Quantized checkpoints leave some modules in bf16, so we do too: embedding, lm_head,
    norms and routers stay at least bf16 whatever `dtype` is. A 4-bit dtype on an MoE model
    quantizes the routed experts only, with attention, dense FFN and shared experts in bf16
    (gpt-oss's MXFP4 checkpoint; NVIDIA's FP4 DeepSeek/Qwen checkpoints also quantize only
    the experts, their FP8 attention is counted here as bf16).
    A tied lm_head reads the embedding matrix, so lm_head_bytes is V x h either way.

    >>> from clustersim.catalog.specs import ModelSpec
    >>> tiny = ModelSpec("tiny", num_layers=2, hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4,
    ...     intermediate_size=16, vocab_size=10, attention="gqa", max_context=64, source="doctest")
    >>> w = weight_breakdown(tiny, "bf16")  # attn 2*(2*8*8 + 2*8*4)=384, ffn 2*3*8*16=768, norms 2*16+8=40
    >>> w.dense_bytes, w.lm_head_bytes, w.total_bytes  # x 2 bytes; embedding and lm_head 80 each
    (2384.0, 160.0, 2704.0)
    """
    b = dtype_bytes(dtype)
    keep_b = max(b, DTYPE_BYTES["bf16"])
    block_dtype = "bf16" if (model.is_moe and b < 1.0) else dtype
    block_b = dtype_bytes(block_dtype)
    g = param_groups(model)
    lm_head_params = float(model.vocab_size * model.hidden_size)
    return WeightBytes(
        embedding_bytes=g.embedding * keep_b,
        lm_head_bytes=lm_head_params * keep_b,
        dense_bytes=(g.attention + g.dense_ffn + g.shared_experts) * block_b + (g.norms + g.router) * keep_b,
        expert_bytes=g.expert * b,
        routed_expert_bytes=g.routed_experts * b,
        block_dtype=block_dtype,
    )


def weight_bytes(model: ModelSpec, dtype: str) -> float:
    """Bytes of all weights of `model` stored in `dtype` (a tied lm_head counted once).

    See weight_breakdown for the modules kept in bf16.
    """
    w = weight_breakdown(model, dtype)
    tied_lm_head = w.lm_head_bytes if model.tie_word_embeddings else 0.0
    return w.total_bytes - tied_lm_head


def kv_bytes_per_layer_token(model: ModelSpec, kv_dtype: str) -> float:
    """KV-cache bytes one token occupies in one layer: GQA/MHA 2 x num_kv_heads x head_dim x b;
    MLA (kv_lora_rank + qk_rope_head_dim) x b (the compressed latent and the shared rope key).

    >>> from clustersim.catalog.specs import ModelSpec
    >>> m = ModelSpec("m", 1, 64, 8, 2, 8, 128, 100, "gqa", 64, "doctest")
    >>> kv_bytes_per_layer_token(m, "bf16")  # 2 x 2 heads x 8 x 2 bytes
    64.0
    """
    b = dtype_bytes(kv_dtype)
    if model.attention == "mla":
        return (model.kv_lora_rank + model.qk_rope_head_dim) * b
    return 2.0 * model.num_kv_heads * model.head_dim * b


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """KV bytes of one token in all layers (a whole-model figure, before TP replication).

    Sliding-window layers count too: this is exact for a token within the window and an upper
    bound beyond it (a sliding layer then keeps only `sliding_window` tokens of a sequence;
    kv_bytes_for_context gives the exact per-sequence figure).
    """
    return model.num_layers * kv_bytes_per_layer_token(model, kv_dtype)


def kv_bytes_for_context(model: ModelSpec, kv_dtype: str, num_tokens: int) -> float:
    """KV bytes of one sequence of `num_tokens` tokens: full-attention layers keep all of them,
    sliding-window layers at most `sliding_window`."""
    per_layer = kv_bytes_per_layer_token(model, kv_dtype)
    num_sliding = model.num_sliding_layers if model.sliding_window > 0 else 0
    kept = min(num_tokens, model.sliding_window) if num_sliding else 0
    return per_layer * ((model.num_layers - num_sliding) * num_tokens + num_sliding * kept)


def kv_replication(model: ModelSpec, tp: int) -> float:
    """How many copies of each KV entry a TP group of `tp` ranks stores.

    GQA/MHA split KV heads over ranks, but a rank holds at least one: with num_kv_heads < tp
    each head sits on tp / num_kv_heads ranks (ceil(Hkv / tp) x tp / Hkv in general). MLA's
    latent is shared by all heads, so every TP rank keeps the whole of it (factor tp).

    >>> from clustersim.catalog.specs import ModelSpec
    >>> m = ModelSpec("m", 1, 64, 8, 2, 8, 128, 100, "gqa", 64, "doctest")
    >>> kv_replication(m, 1), kv_replication(m, 2), kv_replication(m, 8)
    (1.0, 1.0, 4.0)
    """
    if model.attention == "mla":
        return float(tp)
    heads_per_rank = -(-model.num_kv_heads // tp)
    return heads_per_rank * tp / model.num_kv_heads


def replica_kv_bytes_per_token(replica: ReplicaPerf) -> float:
    """KV bytes one token occupies across the replica's HBM (all layers, TP copies included).

    Under DEP (attn_dp = tp) a sequence's KV lives on its own rank only, attention TP 1, so
    nothing is replicated: MLA's latent is stored once, not tp times.
    """
    per_token = kv_bytes_per_token(replica.model, replica.kv_dtype)
    return per_token * kv_replication(replica.model, replica.attn_tp)


def replica_weight_bytes(replica: ReplicaPerf) -> float:
    """Weight bytes summed over the replica's chips.

    Plain TP stores one copy of the model, split. Under DEP every one of the attn_dp ranks
    holds its own copy of everything but the routed experts (attention, dense FFNs, shared
    experts, routers, norms, embedding, lm_head), and the routed experts are split over ep:
    attn_dp x (all - routed) + routed.
    """
    total = weight_bytes(replica.model, replica.weight_dtype or replica.model.weight_dtype)
    if replica.attn_dp == 1:
        return total
    routed = weight_breakdown(replica.model, replica.weight_dtype or replica.model.weight_dtype).routed_expert_bytes
    return replica.attn_dp * (total - routed) + routed


def weight_bytes_per_chip(replica: ReplicaPerf) -> float:
    """Weight bytes on each chip, the replica's total split evenly over its chips (exact for
    DEP with pp = 1: replicated part + routed experts / ep; even sharding assumed otherwise)."""
    return replica_weight_bytes(replica) / replica.num_chips


def kv_capacity_tokens(
    replica: ReplicaPerf,
    reserve_fraction: float = 0.1,
    activation_reserve_bytes: float = ACTIVATION_RESERVE_BYTES,
) -> int:
    """Tokens of KV cache that fit in the replica, <= 0 when the weights alone do not fit.

    floor((hbm_bytes x num_chips x (1 - reserve_fraction) - replica weights
           - activation_reserve_bytes x num_chips) / replica KV bytes per token)

    `reserve_fraction` mirrors vLLM's gpu_memory_utilization (0.9 by default); the activation
    reserve is per chip. Weights are assumed sharded evenly (small replicated pieces such as
    norms and MLA down-projections ignored); under DEP they are `replica_weight_bytes`
    (replicated attention and dense parts). KV per token counts every layer, sliding-window
    ones included: conservative for long contexts on gpt-oss-like models.

    Under DEP this is the sum over the attn_dp ranks, each holding the KV of its own
    sequences: one sequence must fit one rank (`kv_capacity_tokens_per_rank`), and a pool of
    this size assumes sequences spread evenly over the ranks.
    """
    usable = replica.chip.hbm_bytes * replica.num_chips * (1.0 - reserve_fraction)
    free = usable - replica_weight_bytes(replica)
    free -= activation_reserve_bytes * replica.num_chips
    return math.floor(free / replica_kv_bytes_per_token(replica))


def kv_capacity_tokens_per_rank(
    replica: ReplicaPerf,
    reserve_fraction: float = 0.1,
    activation_reserve_bytes: float = ACTIVATION_RESERVE_BYTES,
) -> int:
    """KV tokens one attention data-parallel rank holds: the longest sequence the replica can
    serve. kv_capacity_tokens // attn_dp (the whole replica for plain TP)."""
    return kv_capacity_tokens(replica, reserve_fraction, activation_reserve_bytes) // replica.attn_dp
