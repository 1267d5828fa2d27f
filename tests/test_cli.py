"""The command line: clean one-line errors (exit 2, no traceback) for every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_harness import cli

REPO = Path(__file__).resolve().parents[1]


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


# ---------------------------------------------------------------- strict types, finite numbers, validate = run

def write_scenario(tmp_path: Path, scenario: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(scenario))
    return path


def one_error_line(code: int, out: str, err: str) -> str:
    """The single error line of a refused input (exit 2, no traceback)."""
    assert code == 2, (out, err)
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("section, field, value, expected", [
    (None, "seed", "7", "seed='7', must be an integer >= 0"),
    ("workload", "rate_per_s", "2", "workload.rate_per_s='2', must be a finite number > 0"),
    ("workload", "num_requests", 5.0, "workload.num_requests=5.0, must be an integer > 0"),
    ("engine", "fast_forward", "yes", "engine.fast_forward='yes', must be true or false"),
    ("engine", "max_num_seqs", True, "engine.max_num_seqs=True, must be an integer > 0"),
    ("workload", "rate_per_s", float("inf"), "workload.rate_per_s=inf, must be a finite number > 0"),
    ("slo", "ttft_s", float("nan"), "slo.ttft_s=nan, must be a finite number > 0"),
    ("cost", "electricity_usd_per_kwh", float("-inf"), "cost.electricity_usd_per_kwh=-inf, must be a finite number >= 0"),
    ("deployment", "num_replicas", 1_000_000_000, "deployment.num_replicas=1000000000 x tp=1 x pp=1 = 1,000,000,000 chips, must be at most 1,000,000"),
    ("workload", "format", "parquet", "workload.format='parquet', must be one of 'auto', 'azure'"),
])
def test_wrong_types_and_values_are_refused_not_coerced(tmp_path, capsys, section, field, value, expected):
    scenario = {"model": "llama-3.1-8b", "deployment": {"chip": "H100"}, "workload": {"kind": "poisson", "rate_per_s": 1, "num_requests": 5}}
    (scenario.setdefault(section, {}) if section else scenario)[field] = value
    line = one_error_line(*cli(["validate", str(write_scenario(tmp_path, scenario))], capsys))
    assert f"s.yaml: {expected}" in line


def test_ints_where_floats_are_expected_and_yaml_values_are_accepted(tmp_path, capsys):
    scenario = {"model": "llama-3.1-8b", "deployment": {"chip": "H100", "num_replicas": 2},
                "engine": {"kv_reserve_fraction": 0, "fast_forward": False},
                "workload": {"kind": "gamma", "rate_per_s": 3, "cv": 2, "duration_s": 10, "think_time_s": 0},
                "slo": {"ttft_s": 1, "tpot_s": None}, "catalog_dirs": []}
    code, out, err = cli(["validate", str(write_scenario(tmp_path, scenario))], capsys)
    assert code == 0, err


def test_unknown_field_lists_the_valid_ones_at_its_level(tmp_path, capsys):
    scenario = {"workload": {"kind": "poisson", "rate": 3, "num_requests": 5}}
    line = one_error_line(*cli(["validate", str(write_scenario(tmp_path, scenario))], capsys))
    assert "workload.rate: unknown field" in line and "valid fields of workload: kind, rate_per_s, cv" in line
    line = one_error_line(*cli(["validate", str(write_scenario(tmp_path, {"modle": "llama-3.1-8b"}))], capsys))
    assert "did you mean 'model'?" in line and "valid fields: name, seed, model" in line


def _trace_scenario(trace: Path, **workload) -> dict:
    return {"model": "llama-3.1-8b", "deployment": {"chip": "H100"}, "workload": {"kind": "trace", "path": str(trace), **workload}}


AZURE_BAD_ROW = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,100,20\n2023-11-16 18:17:04.1000000,abc,20\n"


@pytest.mark.parametrize("case, expected", [
    ("missing", "workload.path='{dir}/nope.csv': cannot open trace"),
    ("bad row", "workload.path='{dir}/t.csv' line 3: ContextTokens='abc'"),
    ("bad lengths row", "workload.lengths.path='{dir}/t.csv' line 3: ContextTokens='abc'"),
    ("format", "workload.format='parquet', must be one of"),
    ("wrong format", "workload.path='{dir}/t.csv' line 1: not valid JSON"),
])
def test_validate_refuses_what_run_refuses(tmp_path, capsys, case, expected):
    trace = tmp_path / "t.csv"
    trace.write_text(AZURE_BAD_ROW)
    scenario = {
        "missing": _trace_scenario(tmp_path / "nope.csv"),
        "bad row": _trace_scenario(trace),
        "bad lengths row": {"workload": {"kind": "poisson", "rate_per_s": 1, "num_requests": 5,
                                         "lengths": {"kind": "trace", "path": str(trace)}}},
        "format": _trace_scenario(trace, format="parquet"),
        "wrong format": _trace_scenario(trace, format="mooncake"),
    }[case]
    path = write_scenario(tmp_path, scenario)
    expected = f"{path}: " + expected.format(dir=tmp_path)
    validated = one_error_line(*cli(["validate", str(path)], capsys))
    ran = one_error_line(*cli(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"], capsys))
    assert expected in validated and validated == ran
    assert not (tmp_path / "run").exists()


def test_scenario_trace_formats_are_the_readers_formats():
    import typing

    from clustersim.scenario import TraceFormat
    from clustersim.serving.traces import TRACE_FORMATS

    assert typing.get_args(TraceFormat) == ("auto", *TRACE_FORMATS)


def test_non_utf8_scenario_file(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"model: llama-3.1-8b\nname: caf\xe9\n")
    line = one_error_line(*cli(["validate", str(path)], capsys))
    assert f"{path}: scenario file is not UTF-8 text (byte 0xe9 at offset 29)" in line


def test_out_under_a_file_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    line = one_error_line(*cli(["run", "--out", str(tmp_path / "afile" / "sub"), "--quiet"], capsys))
    assert f"--out {tmp_path / 'afile' / 'sub'}: cannot create the run directory" in line
    line = one_error_line(*cli(["run", "--out", str(tmp_path / "afile"), "--quiet"], capsys))
    assert "exists and is not a directory" in line


# ---------------------------------------------------------------- mutated scenarios (hypothesis)

VALID = {
    "name": "m", "seed": 1, "model": "llama-3.1-8b",
    "deployment": {"chip": "H100", "num_replicas": 1, "tp": 1, "kv_dtype": "bf16"},
    "engine": {"max_num_batched_tokens": 2048, "max_num_seqs": 16, "kv_reserve_fraction": 0.1, "fast_forward": True},
    "router": {"policy": "round_robin"},
    "workload": {"kind": "poisson", "rate_per_s": 5.0, "num_requests": 4, "time_scale": 1.0,
                 "lengths": {"kind": "fixed", "prompt_tokens": 64, "output_tokens": 4}},
    "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
    "run": {"max_sim_s": 100.0, "record_steps": True},
    "cost": {"electricity_usd_per_kwh": 0.08, "mode": "auto"},
    "failures": {"max_retries": 3, "enabled": False},
}
"""A scenario that validates; the test below breaks one thing in it at a time."""

MARKUP = st.sampled_from(["[/x]", "[bold]H100", "[red]", "\\[x]", "[link=x]y[/link]", "caf\u00e9 [/]"])
JUNK = st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2))
NON_FINITE = st.sampled_from([float("inf"), float("-inf"), float("nan")])
NUMERIC_TEXT = st.sampled_from(["7", "2.5", "1e3", "yes", "", "0x10"])
# (path, what is valid) -> strategy of values that are definitely not valid there
FIELDS = {
    ("seed",): st.one_of(st.integers(max_value=-1), NUMERIC_TEXT, st.booleans(), st.floats(allow_nan=False), NON_FINITE, JUNK, st.none()),
    ("name",): st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False), NON_FINITE, JUNK, st.none()),
    ("model",): st.one_of(st.integers(), st.booleans(), MARKUP, st.sampled_from(["gpt-17", "llama-9.json"]), JUNK),
    ("deployment", "chip"): st.one_of(st.integers(), MARKUP, st.sampled_from(["H1000", ""]), JUNK, st.none()),
    ("deployment", "num_replicas"): st.one_of(st.integers(max_value=0), st.integers(min_value=1_000_001), NUMERIC_TEXT,
                                              st.booleans(), st.floats(allow_nan=False), NON_FINITE, JUNK, st.none()),
    ("deployment", "tp"): st.one_of(st.integers(max_value=0), st.sampled_from([3, 5, 7, 64]), NUMERIC_TEXT, st.booleans(), st.just(2.0)),
    ("deployment", "kv_dtype"): st.one_of(MARKUP, st.sampled_from(["fp3", "BF16", 8]), st.none()),
    ("engine", "max_num_seqs"): st.one_of(st.integers(max_value=0), st.integers(min_value=10**9 + 1), st.booleans(), NUMERIC_TEXT, st.just(16.0)),
    ("engine", "kv_reserve_fraction"): st.one_of(st.floats(min_value=1.0, allow_infinity=False), st.floats(max_value=-1e-9, allow_infinity=False),
                                                 NON_FINITE, NUMERIC_TEXT, st.booleans()),
    ("engine", "fast_forward"): st.one_of(st.integers(), NUMERIC_TEXT, st.floats(allow_nan=False), st.none(), JUNK),
    ("router", "policy"): st.one_of(MARKUP, st.sampled_from(["random", "RoundRobin"]), st.integers(), st.none()),
    ("workload", "kind"): st.one_of(MARKUP, st.sampled_from(["burst", "Poisson"]), st.integers(), st.none()),
    ("workload", "rate_per_s"): st.one_of(st.floats(max_value=0, allow_infinity=False), NON_FINITE, NUMERIC_TEXT, st.booleans(), st.none(), JUNK),
    ("workload", "num_requests"): st.one_of(st.integers(max_value=0), st.integers(min_value=10_000_001), st.floats(allow_nan=False),
                                            NUMERIC_TEXT, st.booleans()),
    ("workload", "format"): st.one_of(MARKUP, st.sampled_from(["parquet", "csv", "AZURE"]), st.integers()),
    ("workload", "time_scale"): st.one_of(st.floats(max_value=0, allow_infinity=False), NON_FINITE, NUMERIC_TEXT),
    ("workload", "lengths", "prompt_tokens"): st.one_of(st.integers(max_value=0), st.integers(min_value=100_000_001), st.floats(allow_nan=False),
                                                        NUMERIC_TEXT, st.booleans()),
    ("workload", "lengths", "kind"): st.one_of(MARKUP, st.sampled_from(["normal", "trace"])),  # trace without a path is refused
    ("slo", "ttft_s"): st.one_of(st.floats(max_value=0, allow_infinity=False), NON_FINITE, NUMERIC_TEXT, st.booleans()),
    ("run", "max_sim_s"): st.one_of(st.floats(max_value=0, allow_infinity=False), NON_FINITE, NUMERIC_TEXT),
    ("cost", "electricity_usd_per_kwh"): st.one_of(st.floats(max_value=-1e-9, allow_infinity=False), NON_FINITE, NUMERIC_TEXT),
    ("cost", "mode"): st.one_of(MARKUP, st.sampled_from(["buy"]), st.integers()),
    ("failures", "max_retries"): st.one_of(st.integers(max_value=-1), st.floats(allow_nan=False), NUMERIC_TEXT, st.booleans()),
}
SECTIONS = [(), ("deployment",), ("engine",), ("router",), ("workload",), ("workload", "lengths"), ("slo",), ("run",), ("cost",), ("failures",)]
RANDOM_KEY = st.one_of(MARKUP, st.text(min_size=1, max_size=12))
BAD_TRACE_CELLS = st.sampled_from(["abc", "-1", "1.5", "", "0", "[/x]", "1e3", "\uff11"])


def _set(scenario: dict, path: tuple[str, ...], value) -> dict:
    node = scenario
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return scenario


@st.composite
def broken_scenarios(draw) -> tuple[str, object]:
    """(what was broken, the file content: a dict to dump as YAML, or raw bytes)."""
    import copy

    scenario = copy.deepcopy(VALID)
    how = draw(st.sampled_from(["value", "value", "value", "extra key", "section", "bytes", "trace row"]))
    if how == "value":
        path = draw(st.sampled_from(sorted(FIELDS)))
        return ".".join(path), _set(scenario, path, draw(FIELDS[path]))
    if how == "extra key":
        section = draw(st.sampled_from(SECTIONS))
        node = scenario
        for part in section:
            node = node[part]
        key = draw(RANDOM_KEY.filter(lambda k: k not in node and k not in VALID["workload"]["lengths"]
                                     and k not in ("topology", "catalog_dirs", "prompt_tokens_max", "output_tokens_max")))
        from clustersim.scenario import _walk
        model = _walk(section)[0]
        if key in model.model_fields:  # a real optional field: not unknown
            key = key + "_x"
        node[key] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
        return "unknown field", scenario
    if how == "section":
        section = draw(st.sampled_from(SECTIONS[1:]))
        return ".".join(section), _set(scenario, section, draw(st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))))
    if how == "bytes":
        text = yaml.safe_dump(scenario).encode()
        at = draw(st.integers(0, len(text)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe9", b"\x80\x80"]))
        return "not UTF-8", text[:at] + bad + text[at:]
    rows = ["2023-11-16 18:17:03.0000000,100,20", "2023-11-16 18:17:04.0000000,120,30", "2023-11-16 18:17:05.0000000,90,10"]
    row = draw(st.integers(0, len(rows) - 1))
    column = draw(st.integers(0, 2))
    cells = rows[row].split(",")
    cells[column] = draw(BAD_TRACE_CELLS) if column else draw(st.sampled_from(["yesterday", "", "2023-13-01 00:00:00", "1"]))
    rows[row] = ",".join(cells)
    content = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n"
    in_lengths = draw(st.booleans())
    if in_lengths:
        scenario["workload"]["lengths"] = {"kind": "trace"}
        return "workload.lengths.path", (scenario, content)
    scenario["workload"] = {"kind": "trace", "num_requests": 3}
    return "workload.path", (scenario, content)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(broken=broken_scenarios(), also_run=st.integers(0, 3))
def test_mutated_scenarios_give_one_clean_line_and_no_run_directory(tmp_path_factory, capsys, broken, also_run):
    what, content = broken
    folder = tmp_path_factory.mktemp("mut")
    path = folder / "s.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        if isinstance(content, tuple):  # a scenario and its broken trace
            content, trace = content
            (folder / "t.csv").write_text(trace)
            (content["workload"]["lengths"] if what.endswith("lengths.path") else content["workload"])["path"] = "t.csv"
        path.write_text(yaml.safe_dump(content, allow_unicode=True))
    line = one_error_line(*cli(["validate", str(path)], capsys))
    assert str(path) in line
    if what == "not UTF-8":
        assert "not UTF-8" in line
    elif what == "unknown field":
        assert "unknown field" in line and "valid fields" in line
    else:
        assert what.split(".")[-1] in line or what.split(".")[0] in line, line
    if also_run == 0:  # run refuses it too, before touching its run directory
        run_line = one_error_line(*cli(["run", str(path), "--out", str(folder / "run"), "--quiet"], capsys))
        assert run_line == line
        assert not (folder / "run").exists()
