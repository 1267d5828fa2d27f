"""The routed-expert GEMM rate (efficiency.expert_compute): it slows only the MoE expert
GEMMs, by hand; dense models and the other terms are bitwise unchanged; the YAML keeps it a
fraction; the fit moves it only for families with enough MoE setups."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from clustersim.catalog import load_catalog
from clustersim.errors import SpecError
from clustersim.fidelity import read_rows
from clustersim.fidelity.calibrate import (
    MOE_FIT_MIN_SETUPS,
    _start,
    factors_from,
    fitted_names,
    param_names,
)
from clustersim.fidelity.evaluate import map_rows
from clustersim.perf import ReplicaPerf, step_cost
from clustersim.perf.efficiency import DEFAULT_PATH, load_stack_table, parse_efficiency_table
from clustersim.perf.load import BatchLoad
from perf_specs import DEEPSEEK_V3, H200, LLAMA_8B, TEST_EFF

HEADER = "id,chip,chips,model,precision,isl,osl,mode,load,ttft_p99_limit_ms,tpot_p99_limit_ms,parallelism,metric,value,source\n"


def prefill(tokens: int) -> BatchLoad:
    """One prompt of `tokens` tokens (causal pairs)."""
    return BatchLoad(num_tokens=tokens, num_prefill_tokens=tokens, num_seqs=1, num_sampled=1,
                     attn_pairs=tokens * (tokens + 1) / 2, kv_read_tokens=tokens)


def test_expert_rate_slows_only_the_expert_gemms_by_hand() -> None:
    # DeepSeek-V3 fp8 on 8 H200 (TP8), a 16384-token prompt: compute-bound experts.
    # routed expert FLOPs = 2 x top-8 x (3 x 7168 x 2048 params) x 58 MoE layers x 16384 tokens
    moe_flops = 2 * 8 * (3 * 7168 * 2048) * (61 - 3) * 16384
    rate = 1979e12 * 0.5 * 8  # fp8 peak x TEST_EFF.compute x 8 chips; gemm_half_rows 0: no small-GEMM penalty
    full = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, efficiency=TEST_EFF)
    half = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, efficiency=replace(TEST_EFF, expert_compute=0.5))
    a, b = step_cost(full, prefill(16384)), step_cost(half, prefill(16384))
    # halving the expert rate adds the expert GEMM time once more: moe_flops / rate = 6.696e14 / 7.916e15 = 0.0846 s
    assert b.compute_s - a.compute_s == pytest.approx(moe_flops / rate, rel=1e-9)
    assert moe_flops / rate == pytest.approx(0.0846, abs=1e-4)
    # experts stay compute-bound at both rates (their weights: 653 GB / (4.8 TB/s x 0.8 x 8) = 21 ms)
    assert b.step_s - a.step_s == pytest.approx(moe_flops / rate, rel=1e-9)
    # the work itself does not change, only its rate
    assert (a.flops, a.hbm_bytes, a.memory_s, a.comm_s, a.overhead_s) == (b.flops, b.hbm_bytes, b.memory_s, b.comm_s, b.overhead_s)


def test_dense_models_are_bitwise_unchanged() -> None:
    a = ReplicaPerf(H200, LLAMA_8B, efficiency=TEST_EFF)
    b = ReplicaPerf(H200, LLAMA_8B, efficiency=replace(TEST_EFF, expert_compute=0.3))
    for load in (prefill(4096), BatchLoad(num_tokens=64, num_seqs=64, num_sampled=64, attn_pairs=64 * 900.0, kv_read_tokens=64 * 900)):
        assert step_cost(a, load) == step_cost(b, load)


def test_yaml_keeps_expert_compute_a_fraction() -> None:
    with open(DEFAULT_PATH, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    bad = copy.deepcopy(doc)
    bad["families"]["nvidia-hopper"]["expert_compute"] = {"value": 1.5, "why": "hand"}
    with pytest.raises(SpecError, match=r"families.nvidia-hopper.expert_compute.value=1.5, must be in \(0, 1\]"):
        parse_efficiency_table(bad)
    missing = copy.deepcopy(doc)
    del missing["families"]["nvidia-hopper"]["expert_compute"]
    assert parse_efficiency_table(missing)["nvidia-hopper"].expert_compute == 1.0  # optional: the dense rate
    # families without MoE rows (TPU, Neuron) keep the default
    table = load_stack_table()
    assert table["google-tpu"].expert_compute == 1.0 and table["aws-neuron"].expert_compute == 1.0


def test_named_parameters_round_trip() -> None:
    prior = replace(TEST_EFF, expert_compute=1.0)
    names = param_names(9, fits_expert=True)
    assert names == ("compute", "memory", "step_overhead_s", "expert_compute")
    back = factors_from(prior, _start(prior, names), names)
    for name in ("compute", "memory", "step_overhead_s", "expert_compute"):
        assert getattr(back, name) == pytest.approx(getattr(prior, name), rel=1e-6), name
    x = _start(prior, names)
    x[3] = math.log(0.7)
    assert factors_from(prior, x, names).expert_compute == pytest.approx(0.7)
    x[3] = math.log(0.01)  # below the floor: clamped, not a nonsense rate
    assert factors_from(prior, x, names).expert_compute == pytest.approx(0.2)
    # the positional form (no names) is what it was: expert_compute never moves there
    assert factors_from(prior, _start(prior, 3)).expert_compute == 1.0


def _mapped(lines: list[str], path: Path):
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    rows = read_rows(path)
    catalog = load_catalog()
    return map_rows(rows, catalog, load_stack_table()), catalog


def test_expert_rate_is_fitted_only_with_enough_moe_setups(tmp_path: Path) -> None:
    moe = [f"R{n},H200,8,mixtral-8x7b,fp8,{isl},150,offline,,,,TP1,output_tok_s_total,50000,hand\n"
           for n, isl in enumerate((300, 600, 900, 1200))]
    dense = [f"D{n},H200,8,llama-3.1-70b,fp8,{isl},150,offline,,,,TP8,output_tok_s_total,9000,hand\n"
             for n, isl in enumerate((300, 600, 900, 1200))]
    prior = load_stack_table()["nvidia-hopper"]
    mapped, catalog = _mapped(moe + dense, tmp_path / "all.csv")
    assert "expert_compute" in fitted_names(mapped, catalog, prior)
    few, catalog = _mapped(moe[:MOE_FIT_MIN_SETUPS - 1] + dense, tmp_path / "few.csv")
    assert "expert_compute" not in fitted_names(few, catalog, prior)
    assert fitted_names(few, catalog, prior) == ("compute", "memory", "step_overhead_s")
