"""Trace replay: repeated copies, limits, and the kept-rows and re-streamed paths agree."""

from __future__ import annotations

from pathlib import Path

import pytest

import clustersim.serving.replay as replay_module
from clustersim.errors import ScenarioError, TraceError
from clustersim.scenario import parse_scenario
from clustersim.serving.replay import ReplayShape, TraceReplay
from clustersim.simulate import simulate

TRACE = Path(__file__).resolve().parent.parent / "traces" / "azure_llm_2023_code.csv"


def write_plain(tmp_path: Path, rows: list[tuple[float, int, int]]) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,num_prompt_tokens,num_output_tokens\n" + "".join(f"{a},{p},{o}\n" for a, p, o in rows))
    return path


def test_repeat_shifts_each_copy_by_span_plus_one_mean_gap(tmp_path):
    # 3 rows at 0, 2, 4 s: span 4 s, mean gap 2 s, period 6 s; ids continue across copies
    path = write_plain(tmp_path, [(0.0, 10, 1), (2.0, 20, 2), (4.0, 30, 3)])
    replay = TraceReplay(path, repeat=2)
    shape = replay.check()
    assert (shape.num_requests, shape.span_s, shape.period_s) == (3, 4.0, 6.0)
    got = [(s.request_id, s.arrival_s, s.num_prompt_tokens, s.num_output_tokens) for s in replay.requests(shape)]
    assert got == [(0, 0.0, 10, 1), (1, 2.0, 20, 2), (2, 4.0, 30, 3),
                   (3, 6.0, 10, 1), (4, 8.0, 20, 2), (5, 10.0, 30, 3)]
    assert replay.expected_span_s(shape) == 10.0


def test_limits_apply_across_copies(tmp_path):
    path = write_plain(tmp_path, [(0.0, 10, 1), (2.0, 20, 2), (4.0, 30, 3)])
    capped = TraceReplay(path, repeat=3, max_requests=4)
    assert [s.request_id for s in capped.requests(capped.check())] == [0, 1, 2, 3]
    windowed = TraceReplay(path, repeat=3, horizon_s=9.0)
    assert [s.arrival_s for s in windowed.requests(windowed.check())] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_kept_rows_and_restreamed_file_give_the_same_requests(monkeypatch):
    kept = TraceReplay(TRACE, time_scale=0.5, repeat=2)
    kept_shape = kept.check()
    assert kept_shape.rows is not None
    monkeypatch.setattr(replay_module, "MAX_KEPT_ROWS", 10)
    streamed_shape = kept.check()
    assert streamed_shape.rows is None and streamed_shape.num_requests == kept_shape.num_requests == 8819
    assert list(kept.requests(kept_shape)) == list(kept.requests(streamed_shape))


def test_a_bad_row_is_found_before_any_request_is_replayed(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("arrival_s,num_prompt_tokens,num_output_tokens\n0,10,1\n1,x,2\n")
    with pytest.raises(TraceError, match="line 3"):
        TraceReplay(path).check()


def test_repeat_is_checked(tmp_path):
    with pytest.raises(ScenarioError, match="workload.repeat=0"):
        TraceReplay(TRACE, repeat=0)
    with pytest.raises(ValueError, match="repeat"):
        parse_scenario({"workload": {"kind": "poisson", "rate_per_s": 1, "num_requests": 3, "repeat": 2}})


def test_a_repeated_trace_run_accounts_for_every_copy(tmp_path):
    scenario = parse_scenario({
        "name": "rep", "model": "llama-3.1-8b",
        "deployment": {"chip": "H100", "num_replicas": 2, "tp": 1},
        "workload": {"kind": "trace", "path": str(TRACE), "repeat": 2, "num_requests": 300, "time_scale": 0.05},
    })
    result = simulate(scenario, tmp_path / "run")
    assert result.num_requests == 300
    assert result.summary["num_requests"]["total"] == 300


def test_shape_period_of_a_single_row_is_its_span():
    assert ReplayShape(1, 0.0).period_s == 0.0
