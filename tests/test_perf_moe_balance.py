"""Expert-parallel load imbalance (perf.moe_balance) and collectives across scale-up domains
(perf.comm.HierarchicalComm), against hand arithmetic with the formulas written out."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.perf import BatchLoad, ReplicaPerf, advance_decode, decode_run_costs, step_cost
from clustersim.perf.comm import AlphaBetaComm, HierarchicalComm
from clustersim.perf.moe_balance import expected_max_std_normal, rank_experts_imbalance, rank_rows_imbalance
from perf_specs import DEEPSEEK_V3, H100, TEST_EFF, decode_loads


def test_expected_max_of_standard_normals_matches_tables():
    # E[max of n N(0,1)]: n=2 is 1/sqrt(pi) exactly; n=3 is 3/(2 sqrt(pi)); n=16 tabulated 1.7660
    assert expected_max_std_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-6)
    assert expected_max_std_normal(3) == pytest.approx(1.5 / math.sqrt(math.pi), rel=1e-6)
    assert expected_max_std_normal(16) == pytest.approx(1.7660, abs=1e-4)
    assert expected_max_std_normal(1) == 0.0


def test_rank_rows_imbalance_by_hand():
    # gpt-oss-120b on DEP4 (E=128, k=4), 1024 tokens: mu = 1024 x 4 / 4 = 1024;
    # sd = sqrt(1024 x 4 x 1/4 x 3/4 x 124/127); busiest = mu + sd x e(4), e(4) = 1.0293754
    sd = math.sqrt(1024 * 4 * 0.25 * 0.75 * 124 / 127)
    expected = (1024 + sd * 1.0293754) / 1024
    assert rank_rows_imbalance(1024, 4, 128, 4) == pytest.approx(expected, rel=1e-6)
    # one token, top-1 of 8 experts on 8 ranks: one rank does all the work, 8 x the mean
    assert rank_rows_imbalance(1, 1, 8, 8) == 8.0
    # no expert parallelism: nothing to wait for
    assert rank_rows_imbalance(1024, 8, 256, 1) == 1.0


def test_rank_experts_imbalance_by_hand():
    # DeepSeek (E=256, k=8) on EP8, 4 tokens: p = 1 - (1 - 8/256)^4; 32 experts per rank,
    # mean 32 p, sd sqrt(32 p (1 - p)); busiest = mean + sd x e(8), e(8) = 1.4236003
    p = 1 - (1 - 8 / 256) ** 4
    mean = 32 * p
    expected = (mean + math.sqrt(32 * p * (1 - p)) * 1.4236003) / mean
    assert rank_experts_imbalance(4, 8, 256, 8) == pytest.approx(expected, rel=1e-6)
    assert rank_experts_imbalance(100_000, 8, 256, 8) == 1.0  # every expert on every rank touched


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20_000), st.sampled_from([(8, 256), (4, 128), (2, 8), (8, 128)]), st.sampled_from([2, 4, 8, 16, 32]))
def test_imbalance_factors_are_bounded(num_tokens, routing, ep):
    top_k, experts = routing
    rows = rank_rows_imbalance(num_tokens, top_k, experts, ep)
    # a rank can take no more than T rows per expert it holds, and it holds whole experts
    most = num_tokens * min(top_k, math.ceil(experts / ep)) / (num_tokens * top_k / ep)
    assert 1.0 <= rows <= most + 1e-12
    touched = rank_experts_imbalance(num_tokens, top_k, experts, ep)
    assert 1.0 <= touched <= ep  # at most all E/ep experts against a mean of at least E p / ep


@settings(max_examples=30, deadline=None)
@given(decode_loads(), st.integers(1, 40))
def test_ep_decode_runs_stay_bitwise_equal_to_single_steps(load, num_steps):
    ep8 = ReplicaPerf(H100, DEEPSEEK_V3, tp=8, ep=8, efficiency=TEST_EFF)
    run = decode_run_costs(ep8, load, num_steps)
    for i in (0, num_steps - 1):
        cost = step_cost(ep8, advance_decode(load, i))
        assert run.step_s[i] == cost.step_s and run.hbm_bytes[i] == cost.hbm_bytes and run.flops[i] == cost.flops


def test_hierarchical_all_to_all_by_hand():
    # 72 H100 ranks, 8 per HGX node: NVLink 450 GB/s and the 400 Gb/s NIC (50 GB/s), both at 0.8
    up, out, lat = 450e9 * 0.8, 50e9 * 0.8, 1e-6
    comm = HierarchicalComm(up_bw_bytes_s=up, out_bw_bytes_s=out, latency_s=lat, domain_size=8)
    num_bytes = 1e6
    inside_s = 7 / 72 * num_bytes / up
    outside_s = 64 / 72 * num_bytes / out
    assert comm.all_to_all_s(num_bytes, 72) == pytest.approx(max(inside_s, outside_s) + 71 * lat, rel=1e-12)
    # within one node it is the flat alpha-beta model
    assert comm.all_reduce_s(num_bytes, 8) == AlphaBetaComm(up, lat).all_reduce_s(num_bytes, 8)
    assert comm.send_s(num_bytes) == pytest.approx(num_bytes / out + lat, rel=1e-12)


def test_replica_spanning_nodes_uses_the_nic():
    wide = ReplicaPerf(H100, DEEPSEEK_V3, tp=32, ep=32, efficiency=TEST_EFF, attn_dp=32)
    assert isinstance(wide.comm, HierarchicalComm)
    assert wide.comm.out_bw_bytes_s == pytest.approx(H100.scaleout_bw_bytes_s * TEST_EFF.comm_bw)
    assert wide.comm.domain_size == H100.scaleup_domain
    node = ReplicaPerf(H100, DEEPSEEK_V3, tp=8, ep=8, efficiency=TEST_EFF, attn_dp=8)
    assert isinstance(node.comm, AlphaBetaComm)
    # same tokens per rank (64): the 32-rank all-to-all crosses the NIC, 8x slower than NVLink
    load_node = BatchLoad(num_tokens=512, num_seqs=512, num_sampled=512, attn_pairs=512e3, kv_read_tokens=512_000)
    load_wide = BatchLoad(num_tokens=2048, num_seqs=2048, num_sampled=2048, attn_pairs=2048e3, kv_read_tokens=2_048_000)
    node_s, wide_s = step_cost(node, load_node).comm_s, step_cost(wide, load_wide).comm_s
    assert np.isfinite(wide_s) and wide_s > 3 * node_s
