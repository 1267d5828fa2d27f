"""Alpha-beta collectives, the efficiency table, and ReplicaPerf's boundary checks."""

from dataclasses import replace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.errors import SpecError
from clustersim.perf import AlphaBetaComm, CommModel, ReplicaPerf, efficiency_for, load_efficiency_table
from clustersim.perf.efficiency import DEFAULT_PATH, parse_efficiency_table
from perf_specs import DEEPSEEK_V3, H100, H200, LLAMA_8B, LLAMA_70B

FAMILIES = {"nvidia-ampere", "nvidia-ada", "nvidia-hopper", "nvidia-blackwell", "amd-cdna3", "amd-cdna4", "google-tpu", "aws-neuron"}


def test_alpha_beta_hand_values():
    comm = AlphaBetaComm(bw_bytes_s=360e9, latency_s=1e-6)
    # ring all-reduce of 1 MB over 8: 2 x 7/8 x 1e6 / 360e9 + 14 us
    assert comm.all_reduce_s(1e6, 8) == pytest.approx(2 * 7 / 8 * 1e6 / 360e9 + 14e-6, rel=1e-12)
    # all-to-all, each rank sending 1 MB in total: 7/8 of it leaves the rank, 7 steps
    assert comm.all_to_all_s(1e6, 8) == pytest.approx(7 / 8 * 1e6 / 360e9 + 7e-6, rel=1e-12)
    assert comm.send_s(1e6) == pytest.approx(1e6 / 360e9 + 1e-6, rel=1e-12)
    assert comm.all_reduce_s(1e9, 1) == comm.all_to_all_s(1e9, 1) == 0.0
    assert isinstance(comm, CommModel)


@settings(max_examples=200, deadline=None)
@given(num_bytes=st.floats(0, 1e10), more=st.floats(0, 1e10), n=st.integers(1, 1024))
def test_collectives_monotone_in_bytes(num_bytes, more, n):
    comm = AlphaBetaComm(bw_bytes_s=100e9, latency_s=2e-6)
    assert comm.all_reduce_s(num_bytes + more, n) >= comm.all_reduce_s(num_bytes, n)
    assert comm.all_to_all_s(num_bytes + more, n) >= comm.all_to_all_s(num_bytes, n)
    assert comm.all_reduce_s(num_bytes, n + 1) >= comm.all_reduce_s(num_bytes, n)


def test_efficiency_table_has_every_family_documented():
    table = load_efficiency_table()
    assert set(table) == FAMILIES
    with open(DEFAULT_PATH, encoding="utf-8") as f:
        raw = yaml.safe_load(f)["families"]
    for family, eff in table.items():
        assert 0 < eff.compute <= 1 and 0 < eff.memory <= 1 and 0 < eff.attention_compute <= 1
        assert eff.step_overhead_s >= 0 and eff.layer_overhead_s >= 0 and eff.comm_latency_s >= 0
        assert raw[family]["fitted"]
        assert all(raw[family][k]["why"] for k in raw[family] if k != "fitted")


def test_efficiency_for_unknown_family_names_the_valid_ones():
    with pytest.raises(SpecError, match=r"family='mystery'.*nvidia-hopper"):
        efficiency_for(replace(H100, family="mystery"))
    assert efficiency_for(H100).family == "nvidia-hopper"


def test_bad_efficiency_value_is_reported_with_its_place():
    with open(DEFAULT_PATH, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    data["families"]["google-tpu"]["memory"]["value"] = 1.5
    with pytest.raises(SpecError, match=r"families.google-tpu.memory.value=1.5, must be in \(0, 1\]"):
        parse_efficiency_table(data)
    del data["families"]["google-tpu"]["memory"]["why"]
    with pytest.raises(SpecError, match="google-tpu.memory"):
        parse_efficiency_table(data)


def test_replica_defaults_resolve_from_chip_and_model():
    replica = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8)
    eff = efficiency_for(H200)
    assert replica.weight_dtype == "fp8" and replica.num_chips == 8
    assert replica.comm == AlphaBetaComm(bw_bytes_s=450e9 * eff.comm_bw, latency_s=eff.comm_latency_s)
    assert replica == ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, weight_dtype="fp8")
    assert hash(replica) == hash(ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, weight_dtype="fp8"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": LLAMA_70B, "tp": 3}, r"tp=3, must divide num_heads=64"),
        ({"model": LLAMA_8B, "tp": 0}, r"tp=0, must be an integer >= 1"),
        ({"model": LLAMA_8B, "ep": 2, "tp": 2}, r"ep=2, must be 1 for a dense model"),
        ({"model": DEEPSEEK_V3, "ep": 3, "tp": 4}, r"ep=3, must divide num_chips = tp x pp = 4"),
        ({"model": LLAMA_8B, "pp": 33}, r"pp=33, must be <= num_layers=32"),
        ({"model": LLAMA_8B, "weight_dtype": "fp6"}, r"weight_dtype='fp6'"),
        ({"model": LLAMA_8B, "kv_dtype": "int3"}, r"kv_dtype='int3'"),
    ],
)
def test_replica_rejects_bad_layouts(kwargs, message):
    with pytest.raises(SpecError, match=message):
        ReplicaPerf(H100, **kwargs)
