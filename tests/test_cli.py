"""The command line: clean one-line errors (exit 2, no traceback) for every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustersim.cli import main

REPO = Path(__file__).resolve().parents[1]


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["clustersim", *argv]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_run_writes_a_run_directory(tmp_path, capsys):
    code, out, err = cli(["run", "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "manifest.json").exists()
    assert "output tokens/s" in out


def test_catalog_lists_chips_and_models(capsys):
    code, out, _ = cli(["catalog"], capsys)
    assert code == 0
    for name in ("GB200", "TPU v7", "Trainium2", "deepseek-v3", "llama-3.1-405b"):
        assert name in out


def test_validate_good_scenario(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"model": "llama-3.1-70b", "deployment": {"chip": "H200", "tp": 8}}))
    code, out, err = cli(["validate", str(path)], capsys)
    assert code == 0, err
    assert "ok" in out


BAD_VALUES = {
    ("deployment", "tp"): [0, -1, "eight", 3, 1.5, [8]],
    ("deployment", "chip"): ["H1000", 7, ""],
    ("deployment", "num_replicas"): [0, -2, "many"],
    ("deployment", "kv_dtype"): ["fp3", 8],
    ("engine", "max_num_seqs"): [0, -5, "x"],
    ("engine", "kv_reserve_fraction"): [1.0, -0.1, "half"],
    ("workload", "rate_per_s"): [0, -3, "fast"],
    ("workload", "kind"): ["burst", 1],
    ("workload", "num_requests"): [0, -1, 2.5],
    ("router", "policy"): ["random", None],
    ("slo", "ttft_s"): [-1, "soon"],
    (None, "model"): ["gpt-17", 5],
    (None, "seed"): [-1, "abc"],
    (None, "nonsense_field"): [1],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_broken_scenarios_give_clean_errors(tmp_path, capsys, data):
    (section, field) = data.draw(st.sampled_from(sorted(BAD_VALUES, key=str)))
    value = data.draw(st.sampled_from(BAD_VALUES[(section, field)]))
    scenario = {"model": "llama-3.1-8b", "deployment": {"chip": "H100"}, "workload": {"kind": "poisson", "rate_per_s": 1, "num_requests": 5}}
    if section is None:
        scenario[field] = value
    else:
        scenario.setdefault(section, {})[field] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(scenario))
    code, out, err = cli(["validate", str(path)], capsys)
    assert code == 2, (scenario, out, err)
    assert "Traceback" not in err + out
    assert "error:" in err and field in err, err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("deployment: 5\n", "deployment"),
    ],
)
def test_malformed_scenario_files(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = cli(["validate", str(path)], capsys)
    assert code == 2 and expected in err and "Traceback" not in err


def test_missing_scenario_file(tmp_path, capsys):
    code, _, err = cli(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "not found" in err


def test_malformed_trace_row_is_named_and_nothing_is_written(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,100,20\n2023-11-16 18:17:04.1000000,abc,20\n")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"model": "llama-3.1-8b", "deployment": {"chip": "H100"}, "workload": {"kind": "trace", "path": str(trace)}}))
    code, _, err = cli(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 2 and "line 3" in err and "ContextTokens" in err and "abc" in err
    assert not (tmp_path / "run").exists()  # inputs are read before the run directory is touched


def test_bad_seed_option(tmp_path, capsys):
    code, _, err = cli(["run", "--seed", "-3", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--seed" in err


def test_console_script_exit_code_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("deployment: {tp: 3}\n")
    proc = subprocess.run([sys.executable, "-m", "clustersim.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "deployment.tp=3" in proc.stderr


def test_cost_system_of_another_chip_is_refused_before_the_run(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"model": "llama-3.1-8b", "deployment": {"chip": "H100"},
                                    "cost": {"system": "tpu-v7-host"}}))
    code, _, err = cli(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 2 and "cost.system='tpu-v7-host'" in err and "deployment.chip='H100'" in err
    assert not (tmp_path / "run").exists()


def test_error_text_in_brackets_is_printed_as_is(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"model": "llama-3.1-8b", "deployment": {"chip": "[bold]H100"}}))
    code, _, err = cli(["validate", str(path)], capsys)
    assert code == 2 and "[bold]H100" in err
