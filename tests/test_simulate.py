"""Whole runs through the scenario -> simulate -> Arrow files path: invariants on the records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustersim.errors import ScenarioError
from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate

REPO = Path(__file__).resolve().parents[1]


def read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def small(**overrides) -> dict:
    scenario = {
        "name": "t",
        "seed": 3,
        "model": "llama-3.1-8b",
        "deployment": {"chip": "H100", "num_replicas": 2, "tp": 1},
        "engine": {"max_num_batched_tokens": 2048, "max_num_seqs": 64},
        "workload": {"kind": "poisson", "rate_per_s": 8, "num_requests": 120,
                     "lengths": {"kind": "lognormal", "prompt_tokens": 800, "output_tokens": 150, "cv": 1.0,
                                 "prompt_tokens_max": 8000, "output_tokens_max": 1500}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(scenario.get(key), dict):
            scenario[key] = {**scenario[key], **value}
        else:
            scenario[key] = value
    return scenario


def test_run_directory_is_complete(tmp_path):
    result = simulate(parse_scenario(small()), tmp_path / "run")
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {"manifest.json", "requests.arrow", "steps.arrow", "summary.json"} <= names
    manifest = json.loads((run / "manifest.json").read_text())
    assert names == set(manifest["files"]) | {"manifest.json"}  # the manifest lists every file, no stray temp files
    assert manifest["seed"] == 3 and manifest["files"]["requests.arrow"]["rows"] == 120
    assert manifest["scenario"]["model"] == "llama-3.1-8b"
    requests = read(run / "requests.arrow")
    assert requests.num_rows == 120 == result.num_requests
    assert sorted(requests.column("request_id").to_pylist()) == list(range(120))


TRACES = ("azure_llm_2023_conv.csv", "azure_llm_2023_code.csv", "burstgpt_synthetic_example.csv",
          "mooncake_fast25_conversation_head2000.jsonl", "mooncake_fast25_synthetic_head1000.jsonl")
"""The bundled real traces (traces/README.md), replayed with a request cap and a time scale."""


@st.composite
def small_scenarios(draw) -> dict:
    """A random small scenario: every workload kind (a bundled trace included), 1-3 replicas,
    random batch limits, router policy and fast-forward; no horizon, so every request ends."""
    kind = draw(st.sampled_from(["poisson", "gamma", "closed_loop", "offline", "trace"]))
    num_requests = draw(st.integers(1, 40))
    if kind == "trace":
        workload = {"kind": "trace", "path": str(REPO / "traces" / draw(st.sampled_from(TRACES))), "num_requests": num_requests,
                    "time_scale": draw(st.floats(0.001, 1.0)), "rate_per_s": None}
    else:
        workload = {"kind": kind, "num_requests": num_requests, "rate_per_s": draw(st.floats(0.5, 50.0)),
                    "cv": draw(st.floats(0.2, 4.0)), "num_clients": draw(st.integers(1, 6)),
                    "think_time_s": draw(st.sampled_from([0.0, 0.05, 1.0]))}
    return small(
        seed=draw(st.integers(0, 2**31)),
        deployment={"num_replicas": draw(st.integers(1, 3))},
        engine={"max_num_batched_tokens": draw(st.integers(256, 4096)), "max_num_seqs": draw(st.integers(1, 64)),
                "fast_forward": draw(st.booleans())},
        router={"policy": draw(st.sampled_from(["round_robin", "least_outstanding_tokens", "least_outstanding_requests"]))},
        workload=workload,
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=small_scenarios())
def test_same_seed_gives_byte_identical_arrow_files(tmp_path_factory, scenario):
    out = tmp_path_factory.mktemp("seed")
    for name in ("a", "b"):
        simulate(parse_scenario(scenario), out / name)
    for table in ("requests.arrow", "steps.arrow"):
        assert (out / "a" / table).read_bytes() == (out / "b" / table).read_bytes(), table
    if scenario["workload"]["kind"] in ("poisson", "gamma") and scenario["workload"]["num_requests"] > 1:
        simulate(parse_scenario({**scenario, "seed": scenario["seed"] + 1}), out / "c")  # the seed matters
        assert (out / "a" / "requests.arrow").read_bytes() != (out / "c" / "requests.arrow").read_bytes()


def test_fast_forward_gives_the_same_records(tmp_path):
    simulate(parse_scenario(small()), tmp_path / "ff")
    simulate(parse_scenario(small(engine={"fast_forward": False})), tmp_path / "step")
    for table, key in (("requests.arrow", ["request_id"]), ("steps.arrow", ["replica", "start_s"])):
        a = read(tmp_path / "ff" / table).sort_by([(k, "ascending") for k in key])
        b = read(tmp_path / "step" / table).sort_by([(k, "ascending") for k in key])
        assert a.equals(b), table


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=small_scenarios())
def test_littles_law_between_engine_and_request_records(tmp_path_factory, scenario):
    # Little's law L = lambda x W over the window T from the first arrival to the last finish,
    # with two independent accounts of one run: L from the engines' step records (requests
    # running or queued at each step's start, weighted by the step's length), lambda x W =
    # n / T x mean(e2e) from the request records. The engines count a request from the first
    # step that starts after it arrives, so L falls short of lambda x W by exactly
    # sum(gap_i) / T, gap_i = that step's start - arrival_i; a step starting at the arrival
    # instant may run before or after the arrival (same-time order), hence the two bounds.
    out = tmp_path_factory.mktemp("little")
    simulate(parse_scenario(scenario), out)
    requests = read(out / "requests.arrow")
    steps = read(out / "steps.arrow")
    assert set(requests.column("status").to_pylist()) == {"finished"}
    arrival = requests.column("arrival_s").to_numpy()
    e2e = requests.column("e2e_s").to_numpy()
    replica = requests.column("replica").to_numpy()
    window = float(requests.column("finish_s").to_numpy().max() - arrival.min())
    step_s = steps.column("step_s").to_numpy()
    in_system = steps.column("num_seqs").to_numpy() + steps.column("num_waiting").to_numpy()
    mean_in_system = float(np.sum(step_s * in_system)) / window if window > 0 else 0.0
    throughput_x_latency = len(arrival) / window * float(np.mean(e2e)) if window > 0 else 0.0
    starts = steps.column("start_s").to_numpy()
    step_replica = steps.column("replica").to_numpy()
    gap_before, gap_after = 0.0, 0.0  # step after the arrival: counting a same-instant step, or not
    for r in np.unique(replica):
        ordered = np.sort(starts[step_replica == r])
        mine = arrival[replica == r]
        gap_before += float(np.sum(ordered[np.searchsorted(ordered, mine, side="left")] - mine))
        gap_after += float(np.sum(ordered[np.minimum(np.searchsorted(ordered, mine, side="right"), len(ordered) - 1)] - mine))
    if window > 0:
        tol = 1e-9 * max(throughput_x_latency, 1.0)
        assert throughput_x_latency - gap_after / window - tol <= mean_in_system <= throughput_x_latency - gap_before / window + tol
        assert mean_in_system <= throughput_x_latency + tol


def test_closed_loop_never_exceeds_its_clients(tmp_path):
    simulate(parse_scenario(small(workload={"kind": "closed_loop", "num_clients": 5, "num_requests": 60})), tmp_path / "run")
    requests = read(tmp_path / "run" / "requests.arrow")
    arrival = requests.column("arrival_s").to_numpy()
    finish = requests.column("finish_s").to_numpy()
    events = sorted([(t, 1) for t in arrival] + [(t, -1) for t in finish], key=lambda e: (e[0], e[1]))
    level = np.cumsum([d for _, d in events])
    assert level.max() == 5 and requests.num_rows == 60


def test_trace_replay_of_bundled_azure_trace(tmp_path):
    scenario = small(workload={"kind": "trace", "path": str(REPO / "traces" / "azure_llm_2023_conv.csv"), "num_requests": 150, "rate_per_s": None})
    simulate(parse_scenario(scenario), tmp_path / "run")
    requests = read(tmp_path / "run" / "requests.arrow")
    assert requests.num_rows == 150
    assert requests.column("arrival_s").to_numpy()[0] == 0.0


def test_horizon_records_unfinished_requests(tmp_path):
    scenario = small(workload={"kind": "offline", "num_requests": 50, "lengths": {"kind": "fixed", "prompt_tokens": 100, "output_tokens": 5000}},
                     run={"max_sim_s": 5.0})
    result = simulate(parse_scenario(scenario), tmp_path / "run")
    statuses = read(tmp_path / "run" / "requests.arrow").column("status").to_pylist()
    assert len(statuses) == 50 and set(statuses) == {"unfinished"}
    assert result.summary["num_requests"]["unfinished"] == 50


def test_requests_that_cannot_fit_are_rejected_with_a_record(tmp_path):
    scenario = small(model="llama-3.1-70b", deployment={"chip": "H100", "tp": 4, "num_replicas": 1},
                     workload={"kind": "offline", "num_requests": 3, "lengths": {"kind": "fixed", "prompt_tokens": 120000, "output_tokens": 100000}})
    simulate(parse_scenario(scenario), tmp_path / "run")
    statuses = read(tmp_path / "run" / "requests.arrow").column("status").to_pylist()
    assert statuses == ["rejected"] * 3


def test_kv_limits_batch_and_preempts_but_never_overflows(tmp_path):
    # 70B on 4 x H100 leaves little KV: long requests preempt each other.
    scenario = small(model="llama-3.1-70b", deployment={"chip": "H100", "tp": 4, "num_replicas": 1},
                     engine={"max_num_seqs": 256},
                     workload={"kind": "offline", "num_requests": 120, "lengths": {"kind": "fixed", "prompt_tokens": 2000, "output_tokens": 4000}})
    simulate(parse_scenario(scenario), tmp_path / "run")
    steps = read(tmp_path / "run" / "steps.arrow")
    used = steps.column("kv_blocks_used").to_numpy()
    total = steps.column("kv_blocks_total").to_numpy()
    assert np.all(used <= total) and used.max() > 0.9 * total.max()
    requests = read(tmp_path / "run" / "requests.arrow")
    assert set(requests.column("status").to_pylist()) == {"finished"}
    assert requests.column("num_generated_tokens").to_pylist() == requests.column("num_output_tokens").to_pylist()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(["poisson", "gamma", "closed_loop", "offline"]),
    num_requests=st.integers(1, 60),
    replicas=st.integers(1, 3),
    budget=st.integers(64, 4096),
    max_seqs=st.integers(1, 128),
    policy=st.sampled_from(["round_robin", "least_outstanding_tokens", "least_outstanding_requests"]),
    horizon=st.one_of(st.none(), st.floats(0.5, 30)),
)
def test_record_invariants_over_random_scenarios(tmp_path_factory, seed, kind, num_requests, replicas, budget, max_seqs, policy, horizon):
    out = tmp_path_factory.mktemp("run")
    scenario = small(seed=seed, deployment={"num_replicas": replicas}, engine={"max_num_batched_tokens": budget, "max_num_seqs": max_seqs},
                     router={"policy": policy}, run={"max_sim_s": horizon},
                     workload={"kind": kind, "num_requests": num_requests, "cv": 3.0, "num_clients": 4})
    simulate(parse_scenario(scenario), out)
    requests = read(out / "requests.arrow")
    ids = requests.column("request_id").to_pylist()
    assert len(ids) == len(set(ids))  # exactly one terminal record each
    if horizon is None:
        assert sorted(ids) == list(range(num_requests))
    status = np.array(requests.column("status").to_pylist())
    arrival = requests.column("arrival_s").to_numpy()
    first = requests.column("first_token_s").to_numpy()
    finish = requests.column("finish_s").to_numpy()
    done = status == "finished"
    assert np.all(arrival[done] <= first[done]) and np.all(first[done] <= finish[done])
    generated = requests.column("num_generated_tokens").to_numpy()
    wanted = requests.column("num_output_tokens").to_numpy()
    assert np.all(generated[done] == wanted[done]) and np.all(generated <= wanted)
    steps = read(out / "steps.arrow")
    assert np.all(steps.column("kv_blocks_used").to_numpy() <= steps.column("kv_blocks_total").to_numpy())
    # every generated token was sampled by exactly one recorded step (engine and request records agree)
    assert int(steps.column("num_sampled").to_numpy().sum()) == int(generated.sum())


def test_scenario_physics_errors_name_the_field(tmp_path):
    cases = [
        (small(deployment={"chip": "H1000"}), "deployment.chip='H1000'"),
        (small(model="llama-9"), "model='llama-9'"),
        (small(deployment={"tp": 3}), "deployment.tp=3, must divide num_heads=32"),
        (small(model="llama-3.1-405b", deployment={"chip": "H100", "tp": 1}), "needs"),
        (small(deployment={"tp": 16}), "scale-up"),
    ]
    for scenario, expected in cases:
        with pytest.raises(ScenarioError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            simulate(parse_scenario(scenario), tmp_path / "never")
        assert not (tmp_path / "never" / "manifest.json").exists()


def test_model_from_hugging_face_config_json(tmp_path):
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
        "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 16, "vocab_size": 128256,
        "max_position_embeddings": 131072, "torch_dtype": "bfloat16", "tie_word_embeddings": True,
    }
    path = tmp_path / "my-1b" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    result = simulate(parse_scenario(small(model=str(path))), tmp_path / "run")
    assert result.summary["deployment"]["model"] == "my-1b"
    assert result.summary["num_requests"]["finished"] == 120
