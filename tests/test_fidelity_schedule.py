"""A closed loop with no think time keeps its step schedule whatever the step times, so
concurrency rows can be fit rows: the fit re-times recorded steps (calibrate.record_schedule)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clustersim.catalog import load_catalog
from clustersim.fidelity.calibrate import FIT_MODES, record_schedule, retimed_metrics
from clustersim.fidelity.mapping import Setup
from clustersim.fidelity.runner import make_replica, run_setup
from clustersim.perf.efficiency import load_efficiency_table

CATALOG = load_catalog()
TABLE = load_efficiency_table()


def _setup(load: float, isl: int, osl: int, chip: str = "H100", tp: int = 1) -> Setup:
    family = CATALOG.chip(chip).family
    model = CATALOG.model("llama-3.1-8b")
    return Setup(chip=chip, model=model.name, family=family, num_chips=tp, tp=tp, ep=1, num_replicas=1,
                 num_heads=model.num_heads, weight_dtype="bf16", kv_dtype="bf16", mode="concurrency",
                 load=load, isl=isl, osl=osl, ttft_limit_s=None, tpot_limit_s=None)


def _slow(eff):
    """Very different step times: compute 3x slower, memory faster, 5x the step overhead."""
    return dataclasses.replace(eff, compute=eff.compute / 3, attention_compute=eff.attention_compute / 3,
                               memory=min(0.95, eff.memory * 1.2), step_overhead_s=eff.step_overhead_s * 5)


def _steps(schedule) -> list[tuple]:
    """The per-step batch sequence: (tokens, prefill tokens, sequences, sampled) of every step."""
    out = []
    for load, n in schedule.calls:
        out.append((load.num_tokens, load.num_prefill_tokens, load.num_seqs, load.num_sampled, n))
    return out


# 24 x 2000 and 40 x 900 prompt tokens exceed the 8192-token step budget: prefills spread
# over several steps, so requests finish, and followers arrive, at different steps.
@pytest.mark.parametrize("load,isl,osl", [(8, 300, 40), (24, 2000, 17), (40, 900, 30)])
def test_closed_loop_schedule_does_not_depend_on_step_times(load: float, isl: int, osl: int) -> None:
    setup = _setup(load, isl, osl)
    eff = TABLE[setup.family]
    a, b = record_schedule(setup, CATALOG, eff), record_schedule(setup, CATALOG, _slow(eff))
    assert _steps(a) == _steps(b)  # the same batches, step by step
    for field in ("first_step", "finish_step", "arrival_step"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    # followers arrive at step ends: every request after the first wave arrives at a finish step
    assert (a.arrival_step >= 0).sum() == len(a.arrival_step) - load
    assert set(a.arrival_step[a.arrival_step >= 0]) <= set(a.finish_step)


@pytest.mark.parametrize("load,isl,osl", [(8, 300, 40), (24, 2000, 17)])
def test_retimed_closed_loop_equals_a_fresh_simulation(load: float, isl: int, osl: int) -> None:
    """Recorded with one table, re-timed with another = simulated with the other."""
    setup = _setup(load, isl, osl)
    eff = TABLE[setup.family]
    schedule = record_schedule(setup, CATALOG, eff)
    replica, _ = make_replica(setup, CATALOG, _slow(eff))
    retimed = retimed_metrics(setup, schedule, replica)
    fresh = run_setup(setup, CATALOG, _slow(eff)).metrics
    assert set(retimed) == set(fresh)
    for name, value in fresh.items():
        assert retimed[name] == pytest.approx(value, rel=1e-6), name


@pytest.mark.parametrize("load,isl,osl", [(8, 300, 40), (24, 2000, 17)])
def test_steady_window_run_is_refittable_and_desynchronized(load: float, isl: int, osl: int) -> None:
    """A stable-window measurement (Setup.steady_window): the first wave ends at spread output
    counts, followers stay with their clients, the schedule still re-times exactly, and the
    latency figures cover only the requests finishing in the steady window."""
    from clustersim.fidelity.runner import _arrays, _serve, closed_loop, closed_loop_specs, engine_limits, latency_metrics, steady_mask

    setup = dataclasses.replace(_setup(load, isl, osl), steady_window=True)
    first = closed_loop_specs(setup, closed_loop(setup))
    assert sorted(s.num_output_tokens for s in first) == [max(1, -(-osl * (j + 1) // int(load))) for j in range(int(load))]
    assert [s.client_id for s in first] == list(range(int(load)))
    eff = TABLE[setup.family]
    schedule = record_schedule(setup, CATALOG, eff)
    replica, capacity = make_replica(setup, CATALOG, _slow(eff))
    retimed = retimed_metrics(setup, schedule, replica)
    fresh = run_setup(setup, CATALOG, _slow(eff)).metrics
    for name, value in fresh.items():
        assert retimed[name] == pytest.approx(value, rel=1e-6), name
    # the TTFT mean is the steady window's, not the whole run's (whose first wave queues at t=0)
    loop = closed_loop(setup)
    max_seqs, max_tokens = engine_limits(setup, 256, 8192)
    arrival, first_s, finish, num_out = _arrays(_serve(replica, capacity, max_seqs, max_tokens,
                                                       closed_loop_specs(setup, loop), closed=loop))
    keep = steady_mask(finish)
    assert keep.sum() == len(finish) * 3 // 4 - len(finish) // 4
    assert fresh["ttft_mean_ms"] == pytest.approx(latency_metrics(arrival[keep], first_s[keep], finish[keep], num_out[keep])["ttft_mean_ms"])
    assert fresh["ttft_mean_ms"] != pytest.approx(latency_metrics(arrival, first_s, finish, num_out)["ttft_mean_ms"])


def test_think_time_would_make_the_schedule_depend_on_step_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """The converse, so the check above can fail: with think time a follower arrives at a
    time, not at a step, and slower steps change which step it joins."""
    import clustersim.fidelity.runner as runner
    from clustersim.fidelity.runner import closed_loop

    def thinking(setup: Setup):
        loop = closed_loop(setup)
        loop.think_time_s = 0.013
        return loop

    monkeypatch.setattr(runner, "closed_loop", thinking)
    setup = _setup(24, 2000, 17)
    eff = TABLE[setup.family]
    assert _steps(record_schedule(setup, CATALOG, eff)) != _steps(record_schedule(setup, CATALOG, _slow(eff)))


def test_concurrency_rows_are_fit_rows_but_open_loops_are_not() -> None:
    assert "concurrency" in FIT_MODES
    assert "server" not in FIT_MODES and "qps" not in FIT_MODES


# ---- engine settings a row's source states ------------------------------------------------


def _row_with_source(tmp_path, source: str, mode: str = "concurrency", load: str = "64"):
    from clustersim.fidelity import read_rows

    path = tmp_path / "rows.csv"
    path.write_text(
        "id,chip,chips,model,precision,isl,osl,mode,load,ttft_p99_limit_ms,tpot_p99_limit_ms,parallelism,metric,value,source\n"
        f'R1,TPU v6e,8,llama-3.3-70b,bf16,999,1000,{mode},{load},,,TP8,ttft_p50_ms,200,"{source}"\n')
    return read_rows(path)[0]


def test_stated_engine_limits_and_prompt_count_reach_the_setup(tmp_path) -> None:
    from clustersim.fidelity.mapping import map_row

    src = "vLLM TPU, TP8, max-num-batched-tokens 512, max-num-seqs 256; vllm bench serve random 3000 prompts"
    s = map_row(_row_with_source(tmp_path, src), CATALOG, TABLE).setup
    assert (s.max_num_seqs, s.max_num_batched_tokens, s.num_requests) == (256, 512, 3000)
    plain = map_row(_row_with_source(tmp_path, "no settings stated"), CATALOG, TABLE).setup
    assert (plain.max_num_seqs, plain.max_num_batched_tokens, plain.num_requests) == (0, 0, 0)
    offline = map_row(_row_with_source(tmp_path, src, "offline", ""), CATALOG, TABLE).setup
    assert offline.num_requests == 3000  # a stated burst
    qps = map_row(_row_with_source(tmp_path, src, "qps", "2"), CATALOG, TABLE).setup
    assert qps.num_requests == 0  # open loops keep their own length


def test_a_stated_token_budget_chunks_the_prompt() -> None:
    """A lone 999-token prompt under a 512-token budget runs as chunks of 512 and 487
    (2 steps to the first token); under the 8192 default as one step of 999."""
    setup = dataclasses.replace(_setup(1, 999, 5), num_requests=3)
    eff = TABLE[setup.family]
    chunked = record_schedule(dataclasses.replace(setup, max_num_batched_tokens=512), CATALOG, eff)
    whole = record_schedule(setup, CATALOG, eff)
    assert [load.num_prefill_tokens for load, _ in chunked.calls[:2]] == [512, 487]
    assert whole.calls[0][0].num_prefill_tokens == 999
    assert chunked.first_step[0] == 1 and whole.first_step[0] == 0


def test_a_stated_prompt_count_sets_the_closed_loop_length() -> None:
    """100 prompts over 2 replicas: 50 requests per replica's loop; unstated: 4 x clients, at least 32."""
    from clustersim.fidelity.runner import closed_loop

    two = dataclasses.replace(_setup(16, 100, 10), num_replicas=2, num_chips=2)
    assert closed_loop(dataclasses.replace(two, num_requests=100)).num_requests == 50
    assert closed_loop(two).num_requests == 32  # 8 clients per replica: max(32, 4 x 8)
    assert len(record_schedule(dataclasses.replace(_setup(4, 100, 10), num_requests=40), CATALOG, TABLE["nvidia-hopper"]).finish_step) == 40


def test_a_stated_burst_reports_tokens_over_the_makespan() -> None:
    """An offline row stating its prompt count: exactly that many requests, none staggered,
    throughput = all output tokens / the last finish time (hand formula below)."""
    from clustersim.fidelity.runner import run_setup as run

    burst = dataclasses.replace(_setup(1, 300, 20), mode="offline", load=None, num_requests=10)
    eff = TABLE[burst.family]
    schedule = record_schedule(burst, CATALOG, eff)
    assert len(schedule.finish_step) == 10 and set(schedule.num_out) == {20.0}  # not staggered
    replica, _ = make_replica(burst, CATALOG, eff)
    from clustersim.fidelity.calibrate import _durations

    makespan_s = float(np.sum(_durations(replica, schedule.calls)))
    assert run(burst, CATALOG, eff).metrics["output_tok_s_total"] == pytest.approx(10 * 20 / makespan_s, rel=1e-9)
