"""The fixed cost of a context-encoding step (efficiency.context_overhead_s): paid once by a
step that encodes prompts, never by a decode step, identical on every step-time path, and
fitted as the 5th parameter only for families whose prior has one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.fidelity.calibrate import efficiency_yaml, factors_from, num_params
from clustersim.perf import ReplicaPerf, decode_run_costs, step_cost, step_cost_rows, step_time_s
from clustersim.perf.efficiency import DEFAULT_PATH, load_efficiency_table, parse_efficiency_table
from clustersim.perf.load import BatchLoad
from clustersim.perf.step_time import advance_decode, context_overhead_s, is_context_step
from perf_specs import H100, LLAMA_8B, TEST_EFF

CONTEXT_EFF = replace(TEST_EFF, context_overhead_s=0.012)


def prompt_load(num_seqs: int, prompt: int) -> BatchLoad:
    """num_seqs whole prompts of `prompt` tokens in one step (causal pairs)."""
    tokens = num_seqs * prompt
    return BatchLoad(num_tokens=tokens, num_prefill_tokens=tokens, num_seqs=num_seqs, num_sampled=num_seqs,
                     attn_pairs=float(num_seqs * prompt * (prompt + 1) // 2), kv_read_tokens=tokens)


def test_prompt_step_pays_the_context_cost_once_decode_never() -> None:
    plain = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    ctx = ReplicaPerf(H100, LLAMA_8B, efficiency=CONTEXT_EFF)
    # one 128-token prompt: 128 tokens > 1 sequence -> + 12 ms, the rest of the step unchanged
    prompt = prompt_load(1, 128)
    assert step_cost(ctx, prompt).step_s - step_cost(plain, prompt).step_s == pytest.approx(0.012, abs=1e-12)
    assert step_cost(ctx, prompt).overhead_s == pytest.approx(step_cost(plain, prompt).overhead_s + 0.012)
    # a batch of 8 prompts is still one context step: + 12 ms, not 8 x 12 ms
    eight = prompt_load(8, 128)
    assert step_cost(ctx, eight).step_s - step_cost(plain, eight).step_s == pytest.approx(0.012, abs=1e-12)
    # a decode step (one token per sequence) is bitwise unchanged
    decode = BatchLoad(num_tokens=8, num_seqs=8, num_sampled=8, attn_pairs=8 * 300.0, kv_read_tokens=8 * 300)
    assert step_cost(ctx, decode) == step_cost(plain, decode)


def test_zero_context_cost_changes_nothing_bitwise() -> None:
    # every family but aws-neuron leaves the factor out (default 0): steps bitwise as before
    a = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    b = ReplicaPerf(H100, LLAMA_8B, efficiency=replace(TEST_EFF, context_overhead_s=0.0))
    load = prompt_load(3, 1000)
    assert step_cost(a, load) == step_cost(b, load)
    assert TEST_EFF.context_overhead_s == 0.0


def test_context_step_helpers_by_hand() -> None:
    assert is_context_step(128, 1) and not is_context_step(8, 8)
    assert context_overhead_s(0.02, 129, 128) == 0.02 and context_overhead_s(0.02, 1, 1) == 0.0


@settings(max_examples=60, deadline=None)
@given(seqs=st.lists(st.integers(1, 16), min_size=1, max_size=8),
       prompts=st.lists(st.integers(1, 3000), min_size=8, max_size=8))
def test_all_step_paths_agree_bitwise(seqs: list[int], prompts: list[int]) -> None:
    # step_cost_rows (the step records), step_time_s and step_cost give the same bits per row,
    # for prompt rows (context cost) and decode rows (none) mixed
    replica = ReplicaPerf(H100, LLAMA_8B, efficiency=CONTEXT_EFF)
    loads = [prompt_load(n, p) if i % 2 else BatchLoad(num_tokens=n, num_seqs=n, num_sampled=n,
                                                       attn_pairs=float(n * p), kv_read_tokens=n * p)
             for i, (n, p) in enumerate(zip(seqs, prompts))]
    step_s, flops, hbm = step_cost_rows(
        replica, np.array([x.num_tokens for x in loads]), np.array([x.num_seqs for x in loads]),
        np.array([x.num_sampled for x in loads]), np.array([x.attn_pairs for x in loads]),
        np.array([x.kv_read_tokens for x in loads]))
    for i, load in enumerate(loads):
        cost = step_cost(replica, load)
        assert step_s[i] == cost.step_s == step_time_s(replica, load)
        assert flops[i] == cost.flops and hbm[i] == cost.hbm_bytes


def test_decode_run_of_a_context_load_matches_step_cost() -> None:
    replica = ReplicaPerf(H100, LLAMA_8B, efficiency=CONTEXT_EFF)
    load = prompt_load(2, 64)
    run = decode_run_costs(replica, load, 3)
    assert [float(x) for x in run.step_s] == [step_cost(replica, advance_decode(load, i)).step_s for i in range(3)]


def test_context_cost_is_the_fifth_parameter_only_with_a_prior() -> None:
    assert [num_params(n, True) for n in (1, 3, 4, 31, 32, 66)] == [1, 2, 3, 3, 5, 5]
    assert num_params(66) == 4
    prior = replace(load_efficiency_table()["aws-neuron"], context_overhead_s=0.01)
    four = factors_from(prior, [0.0, 0.0, -6.0, -13.0])
    assert four.context_overhead_s == 0.01
    five = factors_from(prior, [0.0, 0.0, -6.0, -13.0, float(np.log(0.013))])
    assert five.context_overhead_s == pytest.approx(0.013)


def test_efficiency_yaml_keeps_context_cost_where_set_only() -> None:
    text = DEFAULT_PATH.read_text()
    table = parse_efficiency_table(yaml.safe_load(text))
    fitted = {"aws-neuron": replace(table["aws-neuron"], context_overhead_s=0.02)}
    data = yaml.safe_load(efficiency_yaml(text, fitted, "2099-01-01", {"aws-neuron": "test"}))
    neuron = data["families"]["aws-neuron"]["context_overhead_s"]
    assert neuron["value"] == pytest.approx(0.02) and neuron["why"]
    assert "context_overhead_s" not in data["families"]["nvidia-hopper"]
