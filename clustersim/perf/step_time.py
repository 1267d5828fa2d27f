"""How long one engine step of a replica takes, from its aggregate `BatchLoad`.

Per op class the step pays the slower of its math and its HBM traffic (roofline), and the
classes run one after another:

- dense linear: attention projections, dense FFNs, shared experts, routers (weights read
  once per step, 2 FLOPs per parameter per token) and the lm_head for the sampled rows;
- routed experts: FLOPs 2 x top_k x expert params per token per MoE layer; bytes of the
  experts at least one token is routed to, E(1 - (1 - k/E)^T) of E per MoE layer for T
  tokens under uniform routing. With ep > 1 the layer waits for its busiest rank: the
  routed-expert compute time is scaled by the busiest rank's token-expert rows over the
  mean rank's, and the expert-read time by its distinct experts over the mean's
  (`moe_balance`: expected maxima under uniform routing, no fitted parameter). FLOPs and
  bytes (the work) are unchanged;
- attention: 4 x num_heads x head_dim FLOPs per query-key pair (QK^T and PV). MLA runs two
  forms, as vLLM, SGLang and TensorRT-LLM do: decode the absorbed (weight-folded) one, 2 x
  num_heads x (2 x kv_lora_rank + qk_rope_head_dim) per pair, prompts the expanded one, 2 x
  num_heads x (qk_nope + qk_rope + v_head dims) per pair (3.4x fewer for DeepSeek-V3). A
  step's pairs beyond one per key read (attn_pairs - kv_read_tokens: 0 for a decode, (n-1)(c
  + n/2) for an n-token chunk after c cached ones) are counted as prompt pairs;
  bytes are the KV entries read (kv_read_tokens x KV bytes per token, TP copies included).
  Sliding-window layers see at most `window` keys per query and keep `window` entries per
  sequence; the batch aggregates only allow the mean-context approximation
  pairs ~ min(attn_pairs, T x window), KV read ~ min(kv_read_tokens, num_seqs x window).

Then communication, not overlapped: per layer an all-reduce of T x hidden x 2 bytes after
attention and one after the FFN (TP), except that with ep > 1 each MoE layer instead moves
tokens by an all-to-all dispatch and combine, each rank sending T/ep x top_k x hidden x 2
bytes; with pp > 1, pp - 1 stage hand-offs of T x hidden x 2 bytes. Plus step_overhead_s
and layer_overhead_s per layer, and on a context step (one that encodes prompts: more tokens
than sequences) eff.context_overhead_s, the fixed cost of running a separately compiled
context-encoding graph (`context_overhead_s`; 0 except where the efficiency data set it).

Rates: linear math at peak(weight dtype) x eff.compute x M / (M + eff.gemm_half_rows) for a
GEMM of M rows (the step's tokens; for routed experts, the tokens per touched expert, at a
further eff.expert_compute: grouped GEMMs with token permutation run below one dense GEMM's
rate): small GEMMs leave tensor units idle (tile quantization, too few rows to hide latency),
attention at the bf16 peak x eff.attention_compute, HBM at bw x eff.memory, each times `tp`
chips. With pp > 1 this is the latency of one batch through all stages (each stage holds
1/pp of the work on tp chips); keeping pp batches in flight, which PP serving needs for
throughput, is the engine's business. Activation traffic and embedding lookups are left out.

Attention data parallelism + expert parallelism (DEP, replica.attn_dp = tp = ep = n ranks
per stage, MoE models only). The step's T tokens are spread evenly over the n ranks, each
running its own sequences:

- dense linear: each rank multiplies its T/n tokens by the whole attention / dense FFN /
  shared-expert / router weights, replicated on every rank, so the weights are read n times
  per step (once per rank, dense_bytes x n in total; the lm_head too when sampling) and each
  GEMM has M = T/n rows for the small-GEMM factor. FLOPs are unchanged in total;
- attention: the same FLOPs, but KV is not replicated (attention TP 1 per rank; MLA's latent
  read once, not n times);
- routed experts: as with EP above (experts touched by all T tokens, bytes split over ep);
- communication: no all-reduce at all (attention and dense layers are local); per MoE layer
  an all-to-all dispatch and combine over the n ranks, each rank sending its T/n tokens x
  top_k x hidden x 2 bytes; a pipeline hand-off moves T/n tokens per rank in parallel.

Ranks are assumed balanced (T/n tokens and 1/n of the attention work each); real engines
pad idle ranks with dummy tokens, so every rank reads its weights every step either way.

Static-shape engines (eff.kv_bucket_min_tokens > 0; Transformers-NeuronX compiles one graph
per power-of-two sequence bucket from 128 keys up): attention runs over the bucket, not the
context. With the mean context per sequence ctx = kv_read_tokens / num_seqs and
bucket = max(kv_bucket_min_tokens, 2^ceil(log2 ctx)), every sequence reads bucket KV entries
(kv_read = num_seqs x bucket); a decode step (one token per sequence) scores all bucket keys
(masked, not skipped: pairs = num_seqs x bucket), a step with prefill runs its prompts
padded to the bucket under the causal mask (pairs x (bucket / ctx)^2). Exact for a static
batch (equal contexts, whole prompts).

An empty step (num_tokens = 0) costs nothing: `step_cost` returns all zeros, overheads
included, since no engine runs a step without work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clustersim.perf.load import BatchLoad
from clustersim.perf.memory import (
    kv_bytes_per_layer_token,
    kv_replication,
    param_groups,
    weight_breakdown,
)
from clustersim.perf.moe_balance import rank_experts_imbalance, rank_rows_imbalance
from clustersim.perf.replica import ReplicaPerf

ACT_BYTES = 2.0
"""Bytes per activation element moved by collectives (bf16)."""


@dataclass(frozen=True, slots=True)
class StepCost:
    """Time and work of one step on one replica (totals over all its chips).

    step_s = sum over op classes of max(compute, memory) + comm_s + overhead_s, where
    compute_s and memory_s are the per-class terms summed separately, so
    step_s >= max(compute_s, memory_s) + comm_s + overhead_s. compute_util = flops / (step_s x peak(weight dtype) x num_chips);
    hbm_util = hbm_bytes / (step_s x hbm_bw x num_chips).
    """

    step_s: float
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    flops: float
    hbm_bytes: float
    compute_util: float
    hbm_util: float


ZERO_COST = StepCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class DecodeRunCosts:
    """Per-step arrays (length num_steps) of a fast-forwarded decode run; element i equals
    the same field of step_cost(replica, advance_decode(load, i))."""

    step_s: np.ndarray
    flops: np.ndarray
    hbm_bytes: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class _Constants:
    """Everything about a replica that does not depend on the load, computed once, plus a
    bounded memo of the load-independent terms by (num_tokens, num_sampled)."""

    overhead_s: float
    gemm_flops_s: float
    moe_flops_s: float
    gemm_half_rows: float
    dense_half_rows: float
    attn_flops_s: float
    mem_bytes_s: float
    peak_total_flops_s: float
    bw_total_bytes_s: float
    dense_flops_per_token: float
    lm_head_flops_per_row: float
    dense_bytes: float
    lm_head_bytes: float
    is_moe: bool
    num_experts: float
    expert_miss: float
    expert_bytes_all_layers: float
    moe_flops_per_token: float
    flops_per_pair_full: float
    prompt_flops_per_pair_full: float
    """MLA only (else 0): FLOPs per query-key pair of the expanded form prompts run in."""
    flops_per_pair_sliding: float
    kv_bytes_full: float
    kv_bytes_sliding: float
    has_sliding: bool
    window: int
    kv_bucket_min: float
    context_overhead_s: float
    comm: Any
    tp: int
    ep: int
    num_all_reduces: int
    all_reduce_bytes_per_token: float
    num_all_to_alls: int
    all_to_all_bytes_per_token: float
    num_sends: int
    send_bytes_per_token: float
    top_k: int
    moe_ep: int
    """Ranks the routed experts are spread over (1: no expert parallelism, no imbalance)."""
    memo: dict[tuple[int, int, bool], tuple[float, ...]] = field(default_factory=dict)


def _build_constants(replica: ReplicaPerf) -> _Constants:
    chip, m, eff = replica.chip, replica.model, replica.efficiency
    assert eff is not None and replica.weight_dtype is not None and replica.comm is not None
    weights = weight_breakdown(m, replica.weight_dtype)
    groups = param_groups(m)
    tp, attn_dp = replica.tp, replica.attn_dp
    num_moe = m.num_moe_layers
    num_sliding = m.num_sliding_layers if m.sliding_window > 0 else 0
    num_full = m.num_layers - num_sliding
    prompt_flops_per_pair = 0.0
    if m.attention == "mla":  # decode: absorbed (scores and values over the latent); prompts: expanded heads
        flops_per_pair = 2.0 * m.num_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
        prompt_flops_per_pair = 2.0 * m.num_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
    else:
        flops_per_pair = 4.0 * m.num_heads * m.head_dim
    kv_layer = kv_bytes_per_layer_token(m, replica.kv_dtype) * kv_replication(m, replica.attn_tp)
    uses_a2a = replica.ep > 1 and num_moe > 0
    tp_layers_ffn = m.num_layers - num_moe if uses_a2a else m.num_layers
    uses_all_reduce = replica.attn_tp > 1  # DEP: attention and dense layers are rank-local
    return _Constants(
        overhead_s=eff.step_overhead_s + eff.layer_overhead_s * m.num_layers,
        gemm_flops_s=chip.peak_flops_s(weights.block_dtype) * eff.compute * tp,
        moe_flops_s=chip.peak_flops_s(replica.weight_dtype) * eff.compute * eff.expert_compute * tp,
        gemm_half_rows=eff.gemm_half_rows,
        dense_half_rows=eff.gemm_half_rows * attn_dp,  # M = T / attn_dp rows per rank
        attn_flops_s=chip.peak_flops_s("bf16") * eff.attention_compute * tp,
        mem_bytes_s=chip.hbm_bw_bytes_s * eff.memory * tp,
        peak_total_flops_s=chip.peak_flops_s(replica.weight_dtype) * replica.num_chips,
        bw_total_bytes_s=chip.hbm_bw_bytes_s * replica.num_chips,
        dense_flops_per_token=2.0 * (groups.attention + groups.dense_ffn + groups.shared_experts + groups.router),
        lm_head_flops_per_row=2.0 * m.vocab_size * m.hidden_size,
        dense_bytes=weights.dense_bytes * attn_dp,  # replicated: every rank reads its copy
        lm_head_bytes=weights.lm_head_bytes * attn_dp,
        is_moe=num_moe > 0,
        num_experts=float(m.num_experts),
        expert_miss=1.0 - m.num_experts_per_tok / m.num_experts if m.num_experts else 1.0,
        expert_bytes_all_layers=weights.expert_bytes * num_moe,
        moe_flops_per_token=2.0 * m.num_experts_per_tok * groups.expert * num_moe,
        flops_per_pair_full=flops_per_pair * num_full,
        prompt_flops_per_pair_full=prompt_flops_per_pair * num_full,
        flops_per_pair_sliding=flops_per_pair * num_sliding,
        kv_bytes_full=kv_layer * num_full,
        kv_bytes_sliding=kv_layer * num_sliding,
        has_sliding=num_sliding > 0,
        window=m.sliding_window,
        kv_bucket_min=eff.kv_bucket_min_tokens,
        context_overhead_s=eff.context_overhead_s,
        comm=replica.comm,
        tp=tp,
        ep=replica.ep,
        num_all_reduces=(m.num_layers + tp_layers_ffn) if uses_all_reduce else 0,
        all_reduce_bytes_per_token=m.hidden_size * ACT_BYTES,
        num_all_to_alls=2 * num_moe if uses_a2a else 0,
        all_to_all_bytes_per_token=m.num_experts_per_tok * m.hidden_size * ACT_BYTES / replica.ep,
        num_sends=replica.pp - 1,
        send_bytes_per_token=m.hidden_size * ACT_BYTES / attn_dp,
        top_k=m.num_experts_per_tok,
        moe_ep=replica.ep if num_moe > 0 else 1,
    )


def _constants(replica: ReplicaPerf) -> _Constants:
    c = replica._constants
    if c is None:
        c = _build_constants(replica)
        object.__setattr__(replica, "_constants", c)
    return c


_MAX_MEMO = 1 << 16


def is_context_step(num_tokens: int, num_seqs: int) -> bool:
    """Whether a step encodes prompts: some sequence brings more than one token (a decode
    step has exactly one per sequence).

    >>> is_context_step(512, 4), is_context_step(4, 4), is_context_step(5, 4)
    (True, False, True)
    """
    return num_tokens > num_seqs


def context_overhead_s(context_overhead_s: float, num_tokens: int, num_seqs: int) -> float:
    """The fixed extra cost of a step: `context_overhead_s` on a context step, else 0.

    >>> context_overhead_s(0.01, 128, 1), context_overhead_s(0.01, 8, 8)
    (0.01, 0.0)
    """
    return context_overhead_s if is_context_step(num_tokens, num_seqs) else 0.0


def _load_independent_terms(c: _Constants, num_tokens: int, num_sampled: int, context: bool = False) -> tuple[float, ...]:
    """(time_s, compute_s, memory_s, comm_s, flops, bytes) of all but attention, memoized:
    engines repeat the same (num_tokens, num_sampled, context step or not) many times."""
    key = (num_tokens, num_sampled, context)
    terms = c.memo.get(key)
    if terms is None:
        if len(c.memo) >= _MAX_MEMO:
            c.memo.clear()
        terms = c.memo[key] = _compute_load_independent_terms(c, num_tokens, num_sampled, context)
    return terms


def _compute_load_independent_terms(c: _Constants, num_tokens: int, num_sampled: int,
                                    context: bool = False) -> tuple[float, ...]:
    flops = c.dense_flops_per_token * num_tokens + c.lm_head_flops_per_row * num_sampled
    hbm = c.dense_bytes + c.lm_head_bytes if num_sampled > 0 else c.dense_bytes
    # a GEMM of M rows fills the tensor units to M / (M + gemm_half_rows) of the fitted rate;
    # M = num_tokens / attn_dp per rank, folded into dense_half_rows = gemm_half_rows x attn_dp
    compute_s = flops * (num_tokens + c.dense_half_rows) / (num_tokens * c.gemm_flops_s)
    memory_s = hbm / c.mem_bytes_s
    time_s = compute_s if compute_s > memory_s else memory_s
    if c.is_moe:
        touched = c.num_experts * (1.0 - c.expert_miss**num_tokens)
        moe_bytes = touched * c.expert_bytes_all_layers
        moe_flops = c.moe_flops_per_token * num_tokens
        rows = num_tokens * (1.0 - c.expert_miss) * c.num_experts / touched  # tokens per touched expert
        moe_compute_s = moe_flops * (rows + c.gemm_half_rows) / (rows * c.moe_flops_s)
        moe_memory_s = moe_bytes / c.mem_bytes_s
        if c.moe_ep > 1:  # the layer waits for its busiest expert-parallel rank
            experts = int(c.num_experts)
            moe_compute_s *= rank_rows_imbalance(num_tokens, c.top_k, experts, c.moe_ep)
            moe_memory_s *= rank_experts_imbalance(num_tokens, c.top_k, experts, c.moe_ep)
        time_s += moe_compute_s if moe_compute_s > moe_memory_s else moe_memory_s
        compute_s += moe_compute_s
        memory_s += moe_memory_s
        flops += moe_flops
        hbm += moe_bytes
    comm_s = 0.0
    if c.num_all_reduces:
        comm_s += c.num_all_reduces * c.comm.all_reduce_s(num_tokens * c.all_reduce_bytes_per_token, c.tp)
    if c.num_all_to_alls:
        comm_s += c.num_all_to_alls * c.comm.all_to_all_s(num_tokens * c.all_to_all_bytes_per_token, c.ep)
    if c.num_sends:
        comm_s += c.num_sends * c.comm.send_s(num_tokens * c.send_bytes_per_token)
    overhead_s = c.overhead_s + c.context_overhead_s if context else c.overhead_s
    time_s = overhead_s + comm_s + time_s
    return time_s, compute_s, memory_s, comm_s, flops, hbm


def pow2_bucket(context: float, min_tokens: float) -> float:
    """The smallest power of two >= context, at least min_tokens (exact: from frexp).

    >>> pow2_bucket(100.0, 128.0), pow2_bucket(128.0, 128.0), pow2_bucket(129.0, 128.0), pow2_bucket(4160.5, 128.0)
    (128.0, 128.0, 256.0, 8192.0)
    """
    mantissa, exponent = math.frexp(context)
    return max(math.ldexp(1.0, exponent - (mantissa == 0.5)), min_tokens)


def pow2_buckets(context: np.ndarray, min_tokens: float) -> np.ndarray:
    """`pow2_bucket` element-wise, bitwise equal to it."""
    mantissa, exponent = np.frexp(context)
    return np.maximum(np.ldexp(1.0, exponent - (mantissa == 0.5)), min_tokens)


def _attention_terms(c: _Constants, pairs: Any, kv_read: Any, num_tokens: Any, num_seqs: Any,
                     minimum: Callable[[Any, Any], Any], maximum: Callable[[Any, Any], Any]) -> tuple[Any, ...]:
    """(time_s, compute_s, memory_s, flops, bytes) of attention, for scalars (minimum=min)
    or arrays (np.minimum; token and sequence counts may be arrays too, one per row): one
    formula, so all give bitwise-equal results."""
    if c.kv_bucket_min > 0.0:
        context = kv_read / num_seqs
        bucket = (pow2_bucket if minimum is min else pow2_buckets)(context, c.kv_bucket_min)
        # decode: every query scores the whole bucket; prefill: the prompt padded to the bucket, causal
        decode = num_tokens == num_seqs
        if isinstance(decode, np.ndarray):  # per-row counts: each row takes its own branch
            pairs = np.where(decode, num_tokens * bucket, pairs * (bucket / context) ** 2)
        else:
            pairs = num_tokens * bucket if decode else pairs * (bucket / context) ** 2
        kv_read = num_seqs * bucket
    if c.prompt_flops_per_pair_full:  # MLA: pairs beyond one per key read are prompt pairs (expanded form)
        flops = c.flops_per_pair_full * kv_read + c.prompt_flops_per_pair_full * (pairs - kv_read)
    else:
        flops = c.flops_per_pair_full * pairs
    hbm = c.kv_bytes_full * kv_read
    if c.has_sliding:
        flops = flops + c.flops_per_pair_sliding * minimum(pairs, num_tokens * c.window)
        hbm = hbm + c.kv_bytes_sliding * minimum(kv_read, num_seqs * c.window)
    compute_s = flops / c.attn_flops_s
    memory_s = hbm / c.mem_bytes_s
    return maximum(compute_s, memory_s), compute_s, memory_s, flops, hbm


def step_cost(replica: ReplicaPerf, load: BatchLoad) -> StepCost:
    """Time and work of one step of `replica` running `load` (see module docstring).

    Pure; per-replica constants are computed on first use and kept on the replica.
    """
    num_tokens = load.num_tokens
    if num_tokens <= 0:
        return ZERO_COST
    c = replica._constants or _constants(replica)
    context = is_context_step(num_tokens, load.num_seqs)
    fixed_s, fixed_compute_s, fixed_memory_s, comm_s, fixed_flops, fixed_bytes = _load_independent_terms(
        c, num_tokens, load.num_sampled, context
    )
    attn_s, attn_compute_s, attn_memory_s, attn_flops, attn_bytes = _attention_terms(
        c, load.attn_pairs, load.kv_read_tokens, num_tokens, load.num_seqs, min, max
    )
    step_s = fixed_s + attn_s
    flops = fixed_flops + attn_flops
    hbm_bytes = fixed_bytes + attn_bytes
    return StepCost(
        step_s,
        fixed_compute_s + attn_compute_s,
        fixed_memory_s + attn_memory_s,
        comm_s,
        c.overhead_s + context_overhead_s(c.context_overhead_s, num_tokens, load.num_seqs),
        flops,
        hbm_bytes,
        flops / (step_s * c.peak_total_flops_s),
        hbm_bytes / (step_s * c.bw_total_bytes_s),
    )


def step_cost_rows(replica: ReplicaPerf, num_tokens: np.ndarray, num_seqs: np.ndarray, num_sampled: np.ndarray,
                   attn_pairs: np.ndarray, kv_read_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step_s, flops, hbm_bytes) of many steps given as BatchLoad columns, in one vectorized
    pass: row i is bitwise equal to step_cost of that row's load (the step records' path)."""
    c = replica._constants or _constants(replica)
    num_tokens = np.asarray(num_tokens, dtype=np.int64)
    num_sampled = np.asarray(num_sampled, dtype=np.int64)
    num_seqs = np.asarray(num_seqs, dtype=np.int64)
    stride = int(num_sampled.max(initial=0)) + 1
    # key = 2 x (num_tokens x stride + num_sampled) + context step (0/1)
    keys, inverse = np.unique(2 * (num_tokens * stride + num_sampled) + (num_tokens > num_seqs), return_inverse=True)
    fixed = np.array([_load_independent_terms(c, int(key // 2 // stride), int(key // 2 % stride), bool(key % 2))
                      if key // 2 >= stride else (0.0,) * 6 for key in keys])
    fixed = fixed.reshape(-1, 6)[inverse.reshape(-1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        attn_s, _, _, attn_flops, attn_bytes = _attention_terms(
            c, np.asarray(attn_pairs, dtype=np.float64), np.asarray(kv_read_tokens, dtype=np.int64), num_tokens,
            num_seqs, np.minimum, np.maximum)
    idle = num_tokens <= 0
    return (np.where(idle, 0.0, fixed[:, 0] + attn_s), np.where(idle, 0.0, fixed[:, 4] + attn_flops),
            np.where(idle, 0.0, fixed[:, 5] + attn_bytes))


def step_time_s(replica: ReplicaPerf, load: BatchLoad) -> float:
    """Just `step_cost(replica, load).step_s`, without building the record."""
    num_tokens = load.num_tokens
    if num_tokens <= 0:
        return 0.0
    c = replica._constants or _constants(replica)
    fixed_s = _load_independent_terms(c, num_tokens, load.num_sampled, is_context_step(num_tokens, load.num_seqs))[0]
    attn_s = _attention_terms(c, load.attn_pairs, load.kv_read_tokens, num_tokens, load.num_seqs, min, max)[0]
    return fixed_s + attn_s


def advance_decode(load: BatchLoad, num_steps: int) -> BatchLoad:
    """The load of a decode batch `num_steps` steps after `load`: every sequence's context has
    grown by num_steps tokens, so kv_read_tokens and attn_pairs grow by num_seqs x num_steps.

    >>> advance_decode(BatchLoad(num_tokens=2, num_seqs=2, num_sampled=2, attn_pairs=20.0, kv_read_tokens=20), 3)
    BatchLoad(num_tokens=2, num_prefill_tokens=0, num_seqs=2, num_sampled=2, attn_pairs=26.0, kv_read_tokens=26)
    """
    grown = num_steps * load.num_seqs
    return BatchLoad(
        num_tokens=load.num_tokens,
        num_prefill_tokens=load.num_prefill_tokens,
        num_seqs=load.num_seqs,
        num_sampled=load.num_sampled,
        attn_pairs=load.attn_pairs + grown,
        kv_read_tokens=load.kv_read_tokens + grown,
    )


def decode_run_costs(replica: ReplicaPerf, load: BatchLoad, num_steps: int) -> DecodeRunCosts:
    """step_s, flops and hbm_bytes of `num_steps` consecutive decode steps from `load`, in one
    vectorized pass; element i is bitwise equal to step_cost(replica, advance_decode(load, i)).

    Exact while attn_pairs stays an integer below 2**53 (always, for sums of BatchLoad terms).
    """
    if load.num_tokens <= 0 or num_steps <= 0:
        zeros = np.zeros(max(num_steps, 0))
        return DecodeRunCosts(zeros, zeros.copy(), zeros.copy())
    c = replica._constants or _constants(replica)
    grown = np.arange(num_steps, dtype=np.int64) * load.num_seqs
    kv_read = load.kv_read_tokens + grown
    pairs = load.attn_pairs + grown
    fixed_s, _, _, _, fixed_flops, fixed_bytes = _load_independent_terms(
        c, load.num_tokens, load.num_sampled, is_context_step(load.num_tokens, load.num_seqs))
    attn_s, _, _, attn_flops, attn_bytes = _attention_terms(
        c, pairs, kv_read, load.num_tokens, load.num_seqs, np.minimum, np.maximum
    )
    return DecodeRunCosts(
        step_s=fixed_s + attn_s,
        flops=fixed_flops + attn_flops,
        hbm_bytes=fixed_bytes + attn_bytes,
    )


def _decode_roof(c: _Constants, load: BatchLoad) -> tuple[float, float] | None:
    """(work per context token, rate) of the attention roof that binds at every context of a
    decode run from `load`, or None when the shortcut does not apply: attention is not a
    plain roofline over the exact context (buckets, sliding windows), pairs differ from
    tokens read, or the two roofs are too close to pick one for every context's roundings."""
    if c.kv_bucket_min > 0.0 or c.has_sliding or load.num_tokens <= 0 or load.attn_pairs != load.kv_read_tokens:
        return None
    compute_per_pair = c.flops_per_pair_full / c.attn_flops_s
    memory_per_token = c.kv_bytes_full / c.mem_bytes_s
    if compute_per_pair > memory_per_token * (1.0 + 1e-9):
        return c.flops_per_pair_full, c.attn_flops_s
    if memory_per_token > compute_per_pair * (1.0 + 1e-9):
        return c.kv_bytes_full, c.mem_bytes_s
    return None


def decode_run_s(replica: ReplicaPerf, load: BatchLoad, num_steps: int) -> np.ndarray:
    """Durations of `num_steps` consecutive decode steps from `load`: decode_run_costs(...).step_s
    bitwise, computing only the binding attention roof when one binds throughout (the
    engine's path): (work x context) / rate, as _attention_terms computes it."""
    c = replica._constants or _constants(replica)
    roof = _decode_roof(c, load) if num_steps > 0 else None
    if roof is None:
        return decode_run_costs(replica, load, num_steps).step_s
    work, rate = roof
    # pairs and kv_read are the same integers here, so one array stands for both (exact below 2**53)
    first = load.kv_read_tokens
    context = np.arange(first, first + num_steps * load.num_seqs, load.num_seqs, dtype=np.int64)
    attn_s = work * context / rate
    attn_s += _load_independent_terms(c, load.num_tokens, load.num_sampled,
                                      is_context_step(load.num_tokens, load.num_seqs))[0]
    return attn_s


def end_times(start_s: float, durations: np.ndarray) -> np.ndarray:
    """start_s + d_0, + d_1, ...: each step's end, the durations added one by one in order
    (bitwise what stepping one by one gives; not cumsum(d) + start_s)."""
    times = np.concatenate(((start_s,), durations))
    return times.cumsum(out=times)[1:]


DECODE_ENDS_LOOP_STEPS = 64
"""Up to this many steps a Python loop (about 0.1 us a step) beats numpy (about 5 us a call)."""


def decode_run_ends(replica: ReplicaPerf, load: BatchLoad, num_steps: int, start_s: float) -> Sequence[float]:
    """End times of `num_steps` consecutive decode steps from `load` starting at start_s: the
    running sums start_s + d_0, + d_1, ... of decode_run_s, added one by one in that order
    (what stepping one by one gives, bitwise). Short runs in plain Python, long ones in numpy."""
    c = replica._constants or _constants(replica)
    roof = _decode_roof(c, load) if num_steps <= DECODE_ENDS_LOOP_STEPS else None
    if roof is None:
        return end_times(start_s, decode_run_s(replica, load, num_steps))
    work, rate = roof
    fixed_s = _load_independent_terms(c, load.num_tokens, load.num_sampled,
                                      is_context_step(load.num_tokens, load.num_seqs))[0]
    context = load.kv_read_tokens
    grown = load.num_seqs
    ends = []
    end_s = start_s
    for _ in range(num_steps):
        end_s += fixed_s + work * context / rate
        ends.append(end_s)
        context += grown
    return ends
