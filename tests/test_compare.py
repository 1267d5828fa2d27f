"""Layout comparisons and resumable sweeps."""

from __future__ import annotations

import json

import pytest
import yaml

from clustersim.compare import DEFAULT_COMPARISON, load_comparison, run_comparison
from clustersim.errors import ScenarioError


def tiny(tmp_path):
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny",
        "base": {"model": "llama-3.1-8b", "workload": {"kind": "poisson", "rate_per_s": 5, "num_requests": 30,
                                                       "lengths": {"kind": "fixed", "prompt_tokens": 200, "output_tokens": 40}}},
        "layouts": {
            "one-h100": {"deployment": {"chip": "H100", "num_replicas": 1}},
            "two-h100": {"deployment": {"chip": "H100", "num_replicas": 2}},
        },
    }))
    return path


def test_comparison_runs_each_layout_and_resumes(tmp_path):
    name, rows = run_comparison(tiny(tmp_path), tmp_path / "out", workers=1)
    assert name == "tiny" and [r["layout"] for r in rows] == ["one-h100", "two-h100"]
    assert [r["chips"] for r in rows] == [1, 2]
    assert all(not r["reused"] for r in rows)
    assert rows[1]["output_tokens_s_per_chip"] < rows[0]["output_tokens_s_per_chip"]  # same load, twice the chips
    saved = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert [r["layout"] for r in saved["rows"]] == ["one-h100", "two-h100"]
    # an interrupted sweep: one run lost its manifest -> only that one reruns
    (tmp_path / "out" / "two-h100" / "manifest.json").unlink()
    _, again = run_comparison(tiny(tmp_path), tmp_path / "out", workers=1)
    assert [r["reused"] for r in again] == [True, False]
    assert again[1]["ttft_p99_ms"] == rows[1]["ttft_p99_ms"]


def test_built_in_comparison_parses_into_nvl72_tpu_trainium():
    name, runs = load_comparison(DEFAULT_COMPARISON)
    chips = {run.deployment.chip for _, run in runs}
    assert {"GB200", "TPU v7", "Trainium2"} <= chips
    assert len({run.workload for _, run in runs}) == 1  # the same traffic for every layout


def test_bad_comparison_files(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layouts: []\n")
    with pytest.raises(ScenarioError, match="layouts"):
        load_comparison(path)
    path.write_text(yaml.safe_dump({"layouts": {"x": {"deployment": {"tp": 0}}}}))
    with pytest.raises(ScenarioError, match=r"layouts.x: deployment.tp=0"):
        load_comparison(path)
