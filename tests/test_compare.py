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


def test_sizing_finds_the_fewest_replicas_that_meet_the_slo(tmp_path):
    from clustersim.scenario import parse_scenario
    from clustersim.sizing import attainment, size_to_slo

    scenario = parse_scenario({
        "model": "llama-3.1-8b", "deployment": {"chip": "H100", "num_replicas": 1},
        "workload": {"kind": "poisson", "rate_per_s": 40, "num_requests": 200,
                     "lengths": {"kind": "fixed", "prompt_tokens": 2000, "output_tokens": 100}},
        "slo": {"ttft_s": 0.5, "tpot_s": 0.05},
        "run": {"record_steps": False},
    })
    sized = size_to_slo("h100", scenario, tmp_path, target=0.95)
    assert sized.meets and sized.num_replicas > 1
    assert attainment(sized.result) >= 0.95
    fewer = sized.num_replicas - 1  # the search ran (or reuses) the run with one replica less
    from clustersim.sweep import run_sweep

    below = run_sweep([(f"r{fewer}", scenario.model_copy(update={"deployment": scenario.deployment.model_copy(update={"num_replicas": fewer})}))],
                      tmp_path / "h100", workers=1)[0]
    assert below.reused and attainment(below) < 0.95


def test_size_option_is_validated(tmp_path, capsys):
    import sys

    from clustersim.cli import main

    old = sys.argv
    sys.argv = ["clustersim", "compare", str(tiny(tmp_path)), "--size", "1.5", "--out", str(tmp_path / "o")]
    try:
        main()
    except SystemExit as exc:
        assert exc.code == 2
    finally:
        sys.argv = old
    assert "--size=1.5" in capsys.readouterr().err


def test_grid_sweeps_every_layout_over_every_point(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "base": {"model": "llama-3.1-8b", "workload": {"kind": "poisson", "num_requests": 20,
                                                       "lengths": {"kind": "fixed", "prompt_tokens": 100, "output_tokens": 20}}},
        "layouts": {"h100": {"deployment": {"chip": "H100"}}, "h200": {"deployment": {"chip": "H200"}}},
        "grid": {"workload.rate_per_s": [1, 4], "deployment.num_replicas": [1, 2]},
    }, sort_keys=False))  # grid fields vary in file order, the last fastest
    _, runs = load_comparison(path)
    assert [name for name, _ in runs][:4] == [
        "h100@rate_per_s=1,num_replicas=1", "h100@rate_per_s=1,num_replicas=2",
        "h100@rate_per_s=4,num_replicas=1", "h100@rate_per_s=4,num_replicas=2"]
    assert len(runs) == 8
    by_name = dict(runs)
    assert by_name["h200@rate_per_s=4,num_replicas=2"].workload.rate_per_s == 4
    assert by_name["h200@rate_per_s=4,num_replicas=2"].deployment.num_replicas == 2
    assert by_name["h200@rate_per_s=4,num_replicas=2"].deployment.chip == "H200"
    _, rows = run_comparison(path, tmp_path / "out", workers=1)
    assert len(rows) == 8 and all(r["chips"] in (1, 2) for r in rows)


def test_bad_grid_is_named(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"layouts": {"a": {}}, "grid": {"workload.rate_per_s": []}}))
    with pytest.raises(ScenarioError, match=r"grid.workload.rate_per_s=\[\]"):
        load_comparison(path)
    path.write_text(yaml.safe_dump({"layouts": {"a": {}}, "grid": {"workload.rate": [1]}}))
    with pytest.raises(ScenarioError, match="rate"):
        load_comparison(path)
