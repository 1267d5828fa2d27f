"""Serving stacks: the source regex, per-stack efficiency entries (override and inheritance),
the hierarchical stack fit and its honest cross-validation."""

from __future__ import annotations

import copy
import csv
import dataclasses
from pathlib import Path

import pytest
import yaml

from clustersim.catalog import load_catalog
from clustersim.errors import SpecError
from clustersim.fidelity import read_rows
from clustersim.fidelity.calibrate import cross_validate, efficiency_yaml, fit, fit_data, fit_family, predict
from clustersim.fidelity.evaluate import map_rows
from clustersim.fidelity.mapping import stack_of
from clustersim.perf.efficiency import (
    DEFAULT_PATH,
    load_efficiency_table,
    load_stack_table,
    parse_efficiency_table,
    parse_stack_table,
    resolve,
    stacks_of,
)

HEADER = ["id", "chip", "chips", "model", "precision", "isl", "osl", "mode", "load",
          "ttft_p99_limit_ms", "tpot_p99_limit_ms", "parallelism", "metric", "value", "source"]


def _doc() -> dict:
    with open(DEFAULT_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(("source", "stack"), [
    # the PyTorch/XLA-era vLLM TPU recipe is its own stack although it also says "vLLM"
    ("tpu-recipes (2025-02-27); vLLM TPU (PyTorch/XLA era), v6e-4", "vllm-torchxla"),
    ("vLLM TPU serving Llama-3.3-70B on v6e-8, TP8", "vllm"),
    # V1 on PyTorch/XLA (Apr 2025) runs like today's vLLM TPU: only the pre-V1 worker is its own stack
    ("vllm PR #16458; vLLM V1 TPU backend (PyTorch/XLA era), v6e-1", "vllm"),
    ("vLLM with VLLM_USE_V1=1 on torch_xla 2.7, v6e-1", "vllm"),
    ("AI-Hypercomputer/JetStream experimental/jax/README.md", "jetstream"),
    ("MLPerf v5.1, Cisco, TensorRT-LLM 0.x, TRT", "tensorrt-llm"),
    ("NVIDIA TensorRT-LLM perf-overview, trtllm-bench offline", "tensorrt-llm"),
    ("MLPerf v5.1 open, Krai, 8xH100 (xe9680_h100_x8_vllm_092), vLLM 0.9.2", "vllm"),
    ("LMSYS/SGLang blog 2025-05-05, 96xH100", "sglang"),
    ("AWS Neuron SDK docs; Transformers NeuronX, Neuron 2.18.1", "transformers-neuronx"),
    ("optimum-neuron vLLM (NxDI backend) on trn2.48xlarge", "optimum-neuron"),  # before nxdi and vllm
    ("NxDI tutorial, neuronx-distributed-inference on trn2.48xlarge", "nxdi"),
    ("Dell_MangoBoost, MangoBoost LLMBoost, vLLM-based", "llmboost"),
    ("NVIDIA NIM 1.8.0 benchmarking docs", ""),
    ("MLPerf v6.0, AMD, PyTorch 2.9.1", ""),
    ("vllmx-fork", ""),  # a word boundary is required
])
def test_stack_of_source(source: str, stack: str) -> None:
    assert stack_of(source) == stack


def test_stack_entry_overrides_only_its_factors() -> None:
    doc = _doc()
    doc["stacks"] = {"google-tpu/slowstack": {"why": "hand", "fitted": "2026-01-01",
                                              "compute": {"value": 0.1, "why": "hand"},
                                              "step_overhead_s": {"value": 0.004, "why": "hand"}}}
    families = parse_efficiency_table(doc)
    stacks = parse_stack_table(doc, families)
    fam, eff = families["google-tpu"], stacks["google-tpu/slowstack"]
    assert (eff.compute, eff.step_overhead_s, eff.stack, eff.fitted) == (0.1, 0.004, "slowstack", "2026-01-01")
    for name in ("memory", "attention_compute", "comm_bw", "layer_overhead_s", "comm_latency_s", "gemm_half_rows"):
        assert getattr(eff, name) == getattr(fam, name), name
    table = {**families, **stacks}
    assert resolve(table, "google-tpu", "slowstack") is eff
    assert resolve(table, "google-tpu", "unknown") is fam and resolve(table, "google-tpu") is fam
    assert resolve(table, "nope", "slowstack") is None
    assert stacks_of(table, "google-tpu") == ["slowstack"] and stacks_of(table, "aws-neuron") == []


@pytest.mark.parametrize(("key", "entry", "message"), [
    ("mystery/x", {"why": "h", "compute": {"value": 0.1, "why": "h"}}, r"stacks.mystery/x: family='mystery'.*valid: .*google-tpu"),
    ("google-tpu/Bad Name", {"why": "h", "compute": {"value": 0.1, "why": "h"}}, r"stack='Bad Name', must be lowercase"),
    ("google-tpu", {"why": "h", "compute": {"value": 0.1, "why": "h"}}, r"stack='', must be"),
    ("google-tpu/x", {"why": "h", "compute": {"value": 1.5, "why": "h"}}, r"stacks.google-tpu/x.compute.value=1.5, must be in \(0, 1\]"),
    ("google-tpu/x", {"why": "h", "step_overhead_s": {"value": -1.0, "why": "h"}}, r"step_overhead_s.value=-1.0, must be >= 0"),
    ("google-tpu/x", {"compute": {"value": 0.1, "why": "h"}}, r"stacks.google-tpu/x.why=None"),
    ("google-tpu/x", {"why": "h", "speed": {"value": 0.1, "why": "h"}}, r"unknown field\(s\) \['speed'\]; valid: .*compute"),
    ("google-tpu/x", {"why": "h"}, r"lists no factor"),
    ("google-tpu/x", {"why": "h", "compute": 0.1}, r"stacks.google-tpu/x.compute=0.1, must be a mapping"),
])
def test_bad_stack_entries_are_named(key: str, entry: dict, message: str) -> None:
    doc = _doc()
    doc["stacks"] = {key: entry}
    with pytest.raises(SpecError, match=message):
        parse_efficiency_table(doc)  # the family table validates the stacks section too


def test_packaged_table_keeps_families_apart_from_stacks() -> None:
    families, stacked = load_efficiency_table(), load_stack_table()
    assert all("/" not in k for k in families)
    assert {k for k in stacked if "/" not in k} == set(families)
    for key, eff in stacked.items():
        if "/" in key:
            family, _, stack = key.partition("/")
            assert eff.stack == stack and eff.family == family
            assert 0.6 <= eff.memory <= 0.95 and 0.05 <= eff.compute <= 0.95  # fitted within the physical bounds


def _rows(tmp_path: Path) -> list:
    """Two H100 batch setups (8 and 64 requests of 128 + 32 tokens) of a family's own stack,
    and one (32 requests) whose source names a stack the family runs 3x slower (one setup: a
    single common scale). Llama-3.1-8B bf16 on one H100: 16 GB of weights / (3.35 TB/s x 0.73)
    = 6.5 ms a decode step plus ~1.8 ms overhead and a little KV: about 8.5 ms at 8 requests,
    9.5 ms at 64; at 32 about 9 ms, so the slow stack's row is 25 ms."""
    rows = []
    for n, batch in enumerate((8, 64)):
        rows.append([f"F{n}", "H100", "1", "llama-3.1-8b", "bf16", "128", "32", "batch", str(batch), "", "", "TP1",
                     "tpot_p50_ms", ("8.5", "9.5")[n], "hand, TensorRT-LLM"])
    rows.append(["S0", "H100", "1", "llama-3.1-8b", "bf16", "128", "32", "batch", "32", "", "", "TP1",
                 "tpot_p50_ms", "25.0", "hand, JetStream"])
    path = tmp_path / "s.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return read_rows(path)


def test_stack_fit_is_hierarchical_deterministic_and_honest_in_cv(tmp_path: Path) -> None:
    catalog, table = load_catalog(), load_efficiency_table()
    mapped = map_rows(_rows(tmp_path), catalog, table)
    assert [m.setup.stack for m in mapped] == ["tensorrt-llm", "tensorrt-llm", "jetstream"]
    data = fit_data(mapped, catalog, table, stacks={"nvidia-hopper/jetstream"})
    assert sorted(data) == ["nvidia-hopper", "nvidia-hopper/jetstream"]
    assert [i.row.id for i in data["nvidia-hopper"].items] == ["F0", "F1"]  # the stack's row is kept out of the family fit
    first = fit(mapped, catalog, table, data)
    second = fit(mapped, catalog, table, fit_data(mapped, catalog, table, stacks={"nvidia-hopper/jetstream"}))
    assert first == second
    family, stack = first["nvidia-hopper"], first["nvidia-hopper/jetstream"]
    assert stack.stack == "jetstream" and stack.family == "nvidia-hopper"
    # the stack starts from the family's fitted factors: a single common scale (slower here), overhead inherited
    assert stack.compute < family.compute and stack.memory < family.memory
    assert stack.step_overhead_s == family.step_overhead_s and stack.comm_bw == family.comm_bw
    assert stack == dataclasses.replace(fit_family(data["nvidia-hopper/jetstream"], catalog, family), stack="jetstream")
    # one setup: in its CV fold (k=3 over three setups: a fold each) the stack has no training
    # rows, so it is predicted with the family's factors fitted on that fold's training rows,
    # here both family setups, i.e. the family's full fit: not with the stack's own fit
    held = {m.row.id: v for m, v in cross_validate(mapped, catalog, table, k=3, data=data)}
    [(_, expected)] = predict(data["nvidia-hopper/jetstream"], catalog, family)
    [(_, in_sample)] = predict(data["nvidia-hopper/jetstream"], catalog, stack)
    assert held["S0"] == pytest.approx(expected)
    assert abs(in_sample - 25.0) < abs(expected - 25.0)


def test_efficiency_yaml_writes_a_stack_entry_that_inherits(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text()
    table = load_stack_table()
    family = table["google-tpu"]
    slow = dataclasses.replace(family, compute=family.compute / 3, memory=0.65, attention_compute=family.attention_compute / 3,
                               stack="newstack")
    fitted = {**table, "google-tpu/newstack": slow}
    out = efficiency_yaml(text, fitted, "2026-01-02", {"google-tpu/newstack": "hand fit"})
    doc = yaml.safe_load(out)
    entry = doc["stacks"]["google-tpu/newstack"]
    assert set(entry) == {"fitted", "why", "compute", "memory", "attention_compute"}  # only the factors that moved
    assert entry["memory"] == pytest.approx({"value": 0.65, "prior": round(family.memory, 3), "why": entry["memory"]["why"]})
    families = parse_efficiency_table(doc)
    parsed = parse_stack_table(doc, families)["google-tpu/newstack"]
    assert parsed.step_overhead_s == families["google-tpu"].step_overhead_s and parsed.fitted == "2026-01-02"
    # existing stacks survive a rewrite of another entry untouched
    again = yaml.safe_load(efficiency_yaml(out, fitted, "2026-01-03", {}))
    assert again["stacks"] == doc["stacks"]
    assert copy.deepcopy(again["families"]) == doc["families"]
