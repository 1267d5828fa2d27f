"""Attention data-parallel + expert-parallel (DEP) replicas against hand arithmetic, with the
formulas written out from the spec figures, and the step model's properties on DEP layouts."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.errors import SpecError
from clustersim.perf import (
    BatchLoad,
    ReplicaPerf,
    advance_decode,
    decode_run_costs,
    kv_capacity_tokens,
    kv_capacity_tokens_per_rank,
    replica_kv_bytes_per_token,
    replica_weight_bytes,
    step_cost,
    step_time_s,
    weight_breakdown,
    weight_bytes_per_chip,
)
from clustersim.perf.comm_volume import comm_calls
from perf_specs import DEEPSEEK_V3, GPT_OSS_120B, H100, H200, LLAMA_8B, TEST_EFF, decode_loads

REL = 1e-12
EFF = replace(TEST_EFF, gemm_half_rows=128.0)  # round figures; exercises the per-rank GEMM rows

# DeepSeek-V3 (perf_specs.DEEPSEEK_V3), parameter counts by role, written out from the config.
H, LAYERS, MOE_LAYERS, VOCAB, HEADS = 7168, 61, 58, 129280, 128
ATTN = LAYERS * (H * 1536 + 1536 * HEADS * 192 + H * 576 + 512 * HEADS * 256 + HEADS * 128 * H)
NORMS = LAYERS * (2 * H + 1536 + 512) + H
DENSE_FFN = 3 * 3 * H * 18432  # first 3 layers dense
EXPERT = 3 * H * 2048
SHARED = MOE_LAYERS * EXPERT
ROUTER = MOE_LAYERS * H * 256
ROUTED = MOE_LAYERS * 256 * EXPERT
EMBED = LM_HEAD = VOCAB * H  # untied
# fp8 checkpoint: attention, dense FFN, shared experts, routed experts 1 byte; norms,
# routers, embedding, lm_head kept at 2 bytes (bf16).
DENSE_READ = 1 * (ATTN + DENSE_FFN + SHARED) + 2 * (NORMS + ROUTER)  # read every step, per copy
REPLICATED = DENSE_READ + 2 * (EMBED + LM_HEAD)  # per DEP rank
KV_TOKEN = LAYERS * (512 + 64) * 2  # MLA latent + rope key, bf16, one copy


def dep8() -> ReplicaPerf:
    return ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, efficiency=EFF, attn_dp=8)


def decode_load(num_seqs: int, context: int) -> BatchLoad:
    return BatchLoad(num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs,
                     attn_pairs=float(num_seqs * (context + 1)), kv_read_tokens=num_seqs * (context + 1))


def test_deepseek_v3_dep8_weights_and_kv_capacity_on_8xh200():
    replica = dep8()
    total = 8 * REPLICATED + ROUTED  # 8 copies of all but the routed experts, experts split 8 ways
    assert replica_weight_bytes(replica) == pytest.approx(total, rel=REL)
    assert weight_bytes_per_chip(replica) == pytest.approx(REPLICATED + ROUTED / 8, rel=REL)
    assert 100e9 < weight_bytes_per_chip(replica) < 102e9  # 81.7 GB of experts (654e9 / 8) + 19.1 GB replicated
    assert replica_kv_bytes_per_token(replica) == KV_TOKEN  # no copy per rank
    free = 141e9 * 8 * 0.9 - total - 2**30 * 8
    expected = int(free // KV_TOKEN)
    assert kv_capacity_tokens(replica) == expected
    assert kv_capacity_tokens_per_rank(replica) == expected // 8
    # plain TP8 stores the weights once but the latent on all 8 ranks: 8x the KV per token,
    # partly paid back by the 7 x 19 GB of weight copies DEP keeps
    tp8 = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, efficiency=EFF)
    tp_free = 141e9 * 8 * 0.9 - (ATTN + DENSE_FFN + SHARED + ROUTED + 2 * (NORMS + ROUTER + EMBED + LM_HEAD)) - 2**30 * 8
    assert kv_capacity_tokens(tp8) == int(tp_free // (8 * KV_TOKEN))
    assert 4 < kv_capacity_tokens(replica) / kv_capacity_tokens(tp8) < 6


def test_deepseek_v3_dep8_decode_step_by_hand():
    replica = dep8()
    num_seqs, context = 256, 2048  # 32 sequences per rank
    cost = step_cost(replica, decode_load(num_seqs, context))
    rows = num_seqs / 8  # GEMM rows per rank

    # dense linear: each rank its 32 tokens through its own copy; weights read 8 times in all
    dense_flops = 2 * (ATTN + DENSE_FFN + SHARED + ROUTER) * num_seqs + 2 * LM_HEAD * num_seqs
    dense_bytes = 8 * (DENSE_READ + 2 * LM_HEAD)
    per_rank_read = DENSE_READ + 2 * LM_HEAD
    assert 14e9 < per_rank_read < 18e9
    compute_rate, mem_rate = 1979e12 * 0.5 * 8, 4.8e12 * 0.8 * 8
    dense_s = max(dense_flops * (rows + 128) / rows / compute_rate, dense_bytes / mem_rate)
    assert dense_bytes / mem_rate == pytest.approx(per_rank_read / (4.8e12 * 0.8), rel=REL)

    # routed experts: touched by all 256 tokens, split over ep = 8
    touched = 256 * (1 - (1 - 8 / 256) ** num_seqs)
    moe_bytes = touched * MOE_LAYERS * EXPERT
    moe_flops = 2 * 8 * EXPERT * MOE_LAYERS * num_seqs
    expert_rows = num_seqs * 8 / touched
    # busiest of 8 EP ranks (moe_balance): rows mean 256 x 8 / 8 = 256, sd = sqrt(256 x 8 x
    # 1/8 x 7/8 x 248/255); experts mean 32 p, sd sqrt(32 p (1 - p)); + sd x E[max of 8 N(0,1)]
    e_max_8 = 1.4236003
    rows_factor = (256 + (256 * 8 * (1 / 8) * (7 / 8) * 248 / 255) ** 0.5 * e_max_8) / 256
    p = touched / 256
    experts_factor = (32 * p + (32 * p * (1 - p)) ** 0.5 * e_max_8) / (32 * p)
    moe_s = max(moe_flops * (expert_rows + 128) / expert_rows / compute_rate * rows_factor,
                moe_bytes / mem_rate * experts_factor)

    # attention: absorbed MLA, KV latent read once (no TP copies)
    pairs = num_seqs * (context + 1)
    attn_flops = 2 * HEADS * (2 * 512 + 64) * pairs * LAYERS
    attn_bytes = pairs * KV_TOKEN
    attn_s = max(attn_flops / (989e12 * 0.4 * 8), attn_bytes / mem_rate)

    # no all-reduce; dispatch + combine per MoE layer, each rank sends 32 x 8 x 7168 x 2 B
    bw, lat = 450e9 * 0.8, 1e-6
    a2a_bytes = rows * 8 * H * 2
    assert a2a_bytes == 3_670_016
    comm_s = 2 * MOE_LAYERS * (7 / 8 * a2a_bytes / bw + 7 * lat)
    overhead_s = 1e-3 + LAYERS * 1e-5

    assert cost.comm_s == pytest.approx(comm_s, rel=REL)
    assert cost.step_s == pytest.approx(overhead_s + comm_s + dense_s + moe_s + attn_s, rel=1e-7)
    assert cost.hbm_bytes == pytest.approx(dense_bytes + moe_bytes + attn_bytes, rel=REL)
    assert cost.flops == pytest.approx(dense_flops + moe_flops + attn_flops, rel=REL)
    assert comm_calls(replica, num_seqs) == (("all_to_all", a2a_bytes, 8, 2 * MOE_LAYERS),)


def test_dep_reads_kv_once_where_tp_reads_it_on_every_rank():
    """Long-context MLA decode is KV-bound: TP8 reads 8 latent copies, DEP8 one."""
    load = decode_load(64, 100_000)
    dep = step_cost(dep8(), load)
    tp = step_cost(ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, efficiency=EFF), load)
    kv = 64 * 100_001 * KV_TOKEN
    assert tp.hbm_bytes - dep.hbm_bytes == pytest.approx(7 * kv - 7 * (DENSE_READ + 2 * LM_HEAD), rel=1e-9)
    assert dep.step_s < tp.step_s


def test_dep_pipeline_hand_off_carries_one_ranks_tokens():
    replica = ReplicaPerf(H200, DEEPSEEK_V3, tp=4, ep=4, pp=2, efficiency=EFF, attn_dp=4)
    calls = dict((kind, (b, g, n)) for kind, b, g, n in comm_calls(replica, 64))
    assert calls["send"] == (64 / 4 * H * 2, 2, 1)
    assert "all_reduce" not in calls


@pytest.mark.parametrize("kwargs, field", [
    (dict(model=LLAMA_8B, tp=2, ep=1, attn_dp=2), "attn_dp=2"),  # dense model
    (dict(model=DEEPSEEK_V3, tp=8, ep=4, attn_dp=8), "ep=4"),  # experts on fewer ranks
    (dict(model=DEEPSEEK_V3, tp=8, ep=8, attn_dp=4), "attn_dp=4"),  # attention TP 2 inside DP: unsupported
    (dict(model=DEEPSEEK_V3, tp=8, ep=8, attn_dp=0), "attn_dp=0"),
])
def test_unsupported_layouts_name_the_field(kwargs, field):
    with pytest.raises(SpecError, match=field):
        ReplicaPerf(H200, **kwargs)


def test_dep_needs_no_head_divisibility():
    # 128 heads; DEP keeps each rank's heads whole, so tp need only split the experts
    model = replace(DEEPSEEK_V3, num_heads=100)
    assert ReplicaPerf(H200, model, tp=8, ep=8, attn_dp=8).attn_tp == 1
    with pytest.raises(SpecError, match="tp=8"):
        ReplicaPerf(H200, model, tp=8, ep=8)


# ---------------------------------------------------------------- properties

DEP_REPLICAS = [
    ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, attn_dp=8),
    ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, attn_dp=8, efficiency=EFF),
    ReplicaPerf(H100, GPT_OSS_120B, tp=2, ep=2, attn_dp=2, kv_dtype="fp8"),  # sliding-window layers
    ReplicaPerf(H200, DEEPSEEK_V3, tp=4, ep=4, pp=2, attn_dp=4),
]


@settings(max_examples=60, deadline=None)
@given(replica=st.sampled_from(DEP_REPLICAS), load=decode_loads(), num_steps=st.integers(1, 48))
def test_dep_decode_run_equals_repeated_step_cost_bitwise(replica, load, num_steps):
    run = decode_run_costs(replica, load, num_steps)
    for i in range(num_steps):
        cost = step_cost(replica, advance_decode(load, i))
        assert run.step_s[i] == cost.step_s
        assert run.flops[i] == cost.flops
        assert run.hbm_bytes[i] == cost.hbm_bytes


@settings(max_examples=100, deadline=None)
@given(replica=st.sampled_from(DEP_REPLICAS), load=decode_loads(), delta=st.integers(0, 4096))
def test_dep_never_below_roofline_and_monotone(replica, load, delta):
    cost = step_cost(replica, load)
    chip, chips = replica.chip, replica.num_chips
    best_peak = max(chip.peak_flops_s(replica.weight_dtype), chip.peak_flops_s("bf16"))
    assert cost.step_s >= cost.hbm_bytes / (chip.hbm_bw_bytes_s * chips)
    assert cost.step_s >= cost.flops / (best_peak * chips)
    assert 0.0 < cost.hbm_util <= 1.0 and 0.0 < cost.compute_util <= 1.0
    # every rank reads its own copy of the attention / dense weights from its own HBM
    dense = weight_breakdown(replica.model, replica.weight_dtype).dense_bytes
    assert cost.step_s >= dense / chip.hbm_bw_bytes_s
    more = replace(load, num_tokens=load.num_tokens + delta, num_seqs=load.num_seqs + delta,
                   num_sampled=load.num_sampled + delta)
    assert step_time_s(replica, more) >= cost.step_s


def test_dep_decode_run_is_nondecreasing():
    run = decode_run_costs(dep8(), decode_load(128, 1000), 64).step_s
    assert np.all(np.diff(run) >= 0)


# ---------------------------------------------------------------- scenario -> build

def _scenario(model: str, **deployment):
    from clustersim.scenario import parse_scenario

    return parse_scenario({"model": model, "deployment": {"chip": "H200", **deployment}})


def test_build_makes_a_dep_replica_with_dep_kv_capacity():
    from clustersim.build import build

    built = build(_scenario("deepseek-v3", tp=8, ep=8, attn_dp=8, weight_dtype="fp8"))
    assert built.replica.attn_dp == 8 and built.replica.attn_tp == 1
    assert built.kv_capacity_tokens == kv_capacity_tokens(built.replica, reserve_fraction=0.1)
    tp8 = build(_scenario("deepseek-v3", tp=8, ep=8, weight_dtype="fp8"))
    assert built.kv_capacity_tokens > 4 * tp8.kv_capacity_tokens  # no latent copy per rank


@pytest.mark.parametrize("model, deployment, message", [
    ("llama-3.1-8b", dict(tp=2, attn_dp=2), "deployment.attn_dp=2"),  # dense model
    ("deepseek-v3", dict(tp=8, ep=4, attn_dp=8), "attn_dp = tp = ep"),
    ("deepseek-v3", dict(tp=8, ep=8, attn_dp=4), "deployment.attn_dp=4"),
])
def test_build_rejects_unsupported_dep_layouts(model, deployment, message):
    from clustersim.build import build
    from clustersim.errors import ScenarioError

    with pytest.raises(ScenarioError, match=message):
        build(_scenario(model, **deployment))
