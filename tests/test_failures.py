"""Failures: class data, fault sampling, blast radius on topologies, the injector on the
serving cluster, events.arrow and whole runs with faults on."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from serving_harness import LinearTimer

from clustersim.collectives import GraphComm
from clustersim.errors import ScenarioError, SpecError
from clustersim.failures import (
    EVENTS, BlastModel, FailureClass, FailuresConfig, Fault, ReplicaBlast, blast_radius, components_of,
    failure_summary, load_failure_classes, sample_faults, scripted_faults, start_failures,
)
from clustersim.failures.attach import attach_failures, reload_time_s
from clustersim.failures.blast import link_id
from clustersim.failures.records import down_intervals
from clustersim.serving.batcher import Batcher
from clustersim.serving.clock import ArrivalFeed
from clustersim.serving.cluster import Cluster
from clustersim.serving.engine import Engine
from clustersim.serving.step_log import span_columns
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import RequestSpec, Status
from clustersim.serving.router import Router
from clustersim.topology import nvl72, tpu_slice, trn2
from clustersim.topology.placement import ReplicaPlacement, place_replicas


def read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


# ---------------------------------------------------------------- classes (data)


def test_default_classes_load_with_sources_and_si_units():
    classes = load_failure_classes()
    assert {"chip", "hbm", "host", "nvswitch", "nvlink", "ici_link", "optic", "leaf", "spine", "ocs", "rack_power"} <= set(classes)
    chip = classes["chip"]
    # Llama 3 Table 5: 196 GPU-attributed (non-HBM) interruptions over 16,384 GPUs x 54 days
    rate_per_gpu_year = 196 / (16384 * 54 / 365.25)
    assert chip.mttf_s == pytest.approx(365.25 * 86400 / rate_per_gpu_year, rel=0.01)
    assert all(c.source for c in classes.values())


def test_overrides_apply_and_errors_name_field_value_and_valid():
    c = load_failure_classes({"chip": {"distribution": "weibull", "weibull_shape": 0.5, "mttf_h": 1.0}})["chip"]
    assert (c.distribution, c.weibull_shape, c.mttf_s) == ("weibull", 0.5, 3600.0)
    with pytest.raises(SpecError, match=r"chipp.*valid classes: chip"):
        load_failure_classes({"chipp": {"mttf_h": 1}})
    with pytest.raises(SpecError, match=r"mttf_h=-1.*> 0"):
        load_failure_classes({"chip": {"mttf_h": -1}})
    with pytest.raises(SpecError, match=r"distribution='gamma'.*exponential, weibull"):
        load_failure_classes({"chip": {"distribution": "gamma"}})
    with pytest.raises(SpecError, match=r"num_spares=1.5.*integer >= 0"):
        load_failure_classes({"optic": {"num_spares": 1.5}})


# ---------------------------------------------------------------- sampling

EXP = FailureClass("chip", "exponential", mttf_s=1000.0, mttr_s=10.0, num_spares=0, swap_s=1.0)


def test_exponential_mttf_recovered_within_clt_tolerance():
    comps = [(f"c{i}", "chip") for i in range(200)]
    faults = sample_faults(11, comps, {"chip": EXP}, horizon_s=50_000.0)
    # renewal: each component alternates up (mean 1000 s) and repair (10 s); up time per
    # component = horizon - repairs; observed MTTF = total up time / number of failures
    up_s = 200 * 50_000.0 - sum(min(f.end_s, 50_000.0) - f.time_s for f in faults)
    n = len(faults)
    assert n > 5000
    # MLE of an exponential mean from n events has relative sd 1/sqrt(n): allow 4 sd
    assert abs(up_s / n / 1000.0 - 1.0) < 4 / math.sqrt(n)


def test_weibull_mean_matches_mttf():
    # repair (1e12 s) outlasts the horizon: exactly one fault per component, its first
    w = FailureClass("chip", "weibull", 1000.0, 1e12, 0, 0.0, weibull_shape=0.7)
    faults = sample_faults(2, [(f"c{i}", "chip") for i in range(4000)], {"chip": w}, 1e9)
    assert len({f.component for f in faults}) == len(faults) == 4000
    times = np.array([f.time_s for f in faults])
    sd = 1000.0 * math.sqrt(math.gamma(1 + 2 / 0.7) / math.gamma(1 + 1 / 0.7) ** 2 - 1)
    assert abs(times.mean() - 1000.0) < 4 * sd / math.sqrt(len(times))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_faults_and_classes_do_not_shift_each_other(seed):
    comps = [(f"c{i}", "chip") for i in range(5)] + [(f"l{i}", "optic") for i in range(5)]
    classes = {"chip": EXP, "optic": FailureClass("optic", "exponential", 300.0, 5.0, 2, 1.0)}
    a = sample_faults(np.random.SeedSequence(seed), comps, classes, 5000.0)
    assert a == sample_faults(np.random.SeedSequence(seed), comps, classes, 5000.0)
    only_chip = sample_faults(np.random.SeedSequence(seed), comps[:5], {"chip": EXP}, 5000.0)
    assert [f for f in a if f.component_class == "chip"] == only_chip
    assert [(f.time_s, f.component) for f in a] == sorted((f.time_s, f.component) for f in a)
    # renewal: a component fails again only after its repair; spares go to the first failures
    by_comp: dict[str, list[Fault]] = {}
    for f in a:
        by_comp.setdefault(f.component, []).append(f)
    for fs in by_comp.values():
        assert all(x.end_s <= y.time_s for x, y in zip(fs, fs[1:]))
    optic = [f for f in a if f.component_class == "optic"]
    assert [f.used_spare for f in optic] == [True] * min(2, len(optic)) + [False] * max(0, len(optic) - 2)
    assert all(f.repair_s == (1.0 if f.used_spare else 5.0) for f in optic)


def test_scripted_faults_merge_and_unknown_component_is_named():
    s = scripted_faults([(600.0, "a", 300.0)], {"a": "chip", "b": "chip"})
    faults = sample_faults(0, [("a", "chip"), ("b", "chip")], {"chip": EXP}, 2000.0, s)
    assert Fault(600.0, "a", "chip", 300.0, scripted=True) in faults
    with pytest.raises(ScenarioError, match=r"scripted\[0\].component='zz'"):
        scripted_faults([(1.0, "zz", 1.0)], {"a": "chip"})


# ---------------------------------------------------------------- blast radius


def test_nvl72_chip_tray_power_and_nvswitch():
    g = nvl72()
    ps = place_replicas(g, 4, tp=4)  # replica k on GPUs 4k..4k+3 = compute tray k
    assert sorted(blast_radius(g, ps, "r0.g6").down) == [1]
    assert sorted(blast_radius(g, ps, "r0.g6/hbm").down) == [1]
    assert sorted(blast_radius(g, ps, "host:0.tray2").down) == [2]
    assert sorted(blast_radius(g, ps, "power:0").down) == [0, 1, 2, 3]
    e = blast_radius(g, ps, "r0.sw7")
    assert e.down == frozenset() and e.degraded == frozenset({0, 1, 2, 3})
    # 18 switch planes, each GPU-switch link 900/18 GB/s; with 17 planes the bandwidth term
    # of a large all-reduce grows by 18/17 (latency is the same few hops)
    healthy = GraphComm.build(g, ps[0].chips, 4)
    ratio = e.comms[0].all_reduce_s(4e9, 4) / healthy.all_reduce_s(4e9, 4)
    assert ratio == pytest.approx(18 / 17, rel=2e-3)


def test_torus_link_failure_reroutes_a_ring_all_reduce_the_other_way_round():
    # A 16-chip wrapped ring (a full v5e row: 16x1 slice), one TP16 replica on it in ring order;
    # link bandwidth b = 45 GB/s per direction, 1 us per hop, 1 us software per step.
    g = tpu_slice("v5e", (16, 1))
    chips = tuple(f"c{i}.0" for i in range(16))
    (p,) = [ReplicaPlacement(0, chips, 16, 1, 1)]
    b, hop_s, step_s, n, size = 45e9, 1e-6, 1e-6, 16, 1e9
    # healthy: bidirectional ring, half the buffer each way, so every directed link carries
    # 2 (n-1)/n x B / 2 = 15/16 B; 2 (n-1) = 30 steps of one hop each
    healthy = GraphComm.build(g, chips)
    assert healthy.all_reduce_s(size, n) == pytest.approx(30 * (hop_s + step_s) + 15 / 16 * size / b, rel=1e-12)
    e = blast_radius(g, [p], "c1.0|c0.0")  # either spelling of the link id
    assert e.degraded == frozenset({0}) and not e.down and not e.partitioned
    # link c0-c1 dead: the 0 -> 1 share (15/16 B) detours 0 -> 15 -> ... -> 1 over all 15 other
    # downward links, the 1 -> 0 share over all 15 other upward links, each on top of its own
    # 15/16 B: every surviving directed link carries 15/8 B; the longest route is 15 hops
    loads = e.comms[0].link_bytes("all_reduce", size, n)
    assert len(loads) == 30 and ("c0.0", "c1.0") not in loads and ("c1.0", "c0.0") not in loads
    assert max(loads.values()) == pytest.approx(15 / 8 * size, rel=1e-12)
    assert min(loads.values()) == pytest.approx(15 / 8 * size, rel=1e-12)
    after = 30 * (15 * hop_s + step_s) + 15 / 8 * size / b  # 0.48 ms + 41.667 ms
    assert e.comms[0].all_reduce_s(size, n) == pytest.approx(after, rel=1e-12)
    assert after == pytest.approx(0.0421467, rel=1e-5)


def test_partition_is_reported_not_raised():
    g = tpu_slice("v5e", (4, 4))  # a mesh: the corner chip has two links
    ps = place_replicas(g, 1, tp=16)
    e = blast_radius(g, ps, [link_id("c0.0", "c0.1"), link_id("c0.0", "c1.0")])
    assert e.partitioned == frozenset({0}) and e.down == frozenset() and e.out == frozenset({0})


def test_tpu_cube_and_spares_trainium_racks_and_fallback():
    g = tpu_slice("v7", (8, 8, 8))  # 8 cubes
    b = BlastModel(g, place_replicas(g, 28, tp=8))  # 28 x 8 = 224 chips: 4 cubes free
    assert b.num_spare_cubes == 4
    assert b.effect(["c0.0.0"]).cube == "0.cube0.0.0"
    assert b.effect(["power:0.cube0.0.0"]).num_chips == 64
    t = trn2(64)
    classes = dict(components_of(t))
    assert sum(1 for c in classes.values() if c == "rack_power") == 2  # an UltraServer is two racks
    assert sum(1 for c in classes.values() if c == "host") == 4  # four 16-chip servers
    fb = ReplicaBlast(3, 2)
    assert fb.effect(["rep2.chip1"]).down == frozenset({2})


# ---------------------------------------------------------------- injector on the serving cluster


class ConstTimer:
    """Every step takes 0.1 s, whatever the batch: times below are counted by hand."""

    peak_flops_s = 20.0
    peak_bytes_s = 20.0

    def step(self, load):
        return (0.1, 1.0, 1.0)

    def decode_run(self, load, num_steps):
        return tuple(np.full(num_steps, v) for v in (0.1, 1.0, 1.0))


def serve(specs, faults, num_replicas=2, timer=None, num_blocks=1000, reload_s=50.0, max_retries=2, horizon_s=None):
    env = simpy.Environment()
    records, events, steps, degrades = [], [], [], []
    cluster = Cluster(env, Router("round_robin", num_replicas), max_tokens=num_blocks * 16,
                      max_context=10**9, on_record=records.append, max_retries=max_retries)

    def on_steps(r, span, n):
        steps.append(span_columns(r, span, n))

    cluster.attach([Engine(env, i, Batcher(KVCache(num_blocks, 16), 512, 64), timer or ConstTimer(),
                           cluster.finished, on_steps, on_evicted=cluster.evicted) for i in range(num_replicas)])

    ArrivalFeed(env, specs, cluster.arrive)
    blast = ReplicaBlast(num_replicas, 2)
    start_failures(env, cluster, faults, blast.effect, lambda r: reload_s, events.append,
                   lambda r, g, c: degrades.append((r, g)))
    env.run(until=horizon_s)
    if horizon_s is not None:
        for e in cluster.engines:
            e.finalize(horizon_s)
        for req in cluster.unfinished():
            req.status = Status.UNFINISHED
            records.append(req)
    return records, events, steps, cluster


def test_chip_failure_mid_decode_retry_and_reload_times_by_hand():
    # one request (100 prompt, 10 output) on replica 0 (round robin starts there); steps of
    # 0.1 s: the prefill step ends at 0.1 with token 1, decode steps end at 0.2 .. 0.5
    # (tokens 2..5). The chip dies at 0.55: the step in progress is lost, and the request is
    # retried on replica 1 at once: one step recomputes its 105 known tokens (and yields
    # token 6) at 0.65, tokens 7..10 at 0.75 .. 1.05. Replica 0: repair 100 s -> reload
    # starts at 100.55, reload 50 s -> back at 150.55, out for 150 s.
    records, events, _, cluster = serve([RequestSpec(0, 0.0, 100, 10)], [Fault(0.55, "rep0.chip1", "chip", 100.0)])
    (r,) = records
    assert (r.status, r.replica, r.num_retries) == (Status.FINISHED, 1, 1)
    assert r.first_token_s == pytest.approx(0.1) and r.finish_s == pytest.approx(1.05)
    assert cluster.engines[0].num_lost_tokens == 104  # prompt + 4 generated tokens had KV
    got = [(e["kind"], round(e["time_s"], 9), e["affected_replicas"], e["recovery_s"]) for e in events]
    assert got == [("fail", 0.55, [0], 100.0), ("repair", 100.55, [0], 100.0),
                   ("reload_start", 100.55, [0], 50.0), ("reload_done", 150.55, [0], 150.0)]


def test_queued_request_is_rerouted_without_spending_a_retry():
    # Steps of 0.1 s, a 512-token budget, max_retries=0. Round robin: A (1,000-token prompt)
    # and C go to replica 0, B to replica 1. A's first chunk (512 tokens) ends at 0.1; C,
    # arrived at 0.05, joins A's second chunk (488 + 10 tokens), which the failure at 0.15
    # cuts: A lost 512 computed tokens of KV (a retry: 1 > 0, FAILED); C never had a step
    # complete, so it lost nothing and goes to replica 1 as it is. There B (prefill 0.01-0.11,
    # decode to 0.21) finishes first; C then prefills 0.21-0.31 and decodes its 2nd token by 0.41.
    specs = [RequestSpec(0, 0.0, 1000, 2), RequestSpec(1, 0.01, 10, 2), RequestSpec(2, 0.05, 10, 2)]
    records, _, _, cluster = serve(specs, [Fault(0.15, "rep0.chip0", "chip", 100.0)], max_retries=0)
    got = {r.request_id: (r.status, r.replica, r.num_retries) for r in records}
    assert got == {0: (Status.FAILED, 0, 1), 1: (Status.FINISHED, 1, 0), 2: (Status.FINISHED, 1, 0)}
    finish = {r.request_id: r.finish_s for r in records}
    assert finish[1] == pytest.approx(0.21) and finish[2] == pytest.approx(0.41)
    assert cluster.engines[0].num_lost_tokens == 512


def test_overlapping_faults_replica_back_only_after_both():
    faults = [Fault(1.0, "rep0.chip0", "chip", 10.0), Fault(5.0, "rep0.chip1", "chip", 20.0),
              Fault(30.0, "rep1.chip0", "chip", 5.0), Fault(36.0, "rep1.chip1", "chip", 5.0)]
    _, events, _, _ = serve([], faults, reload_s=3.0)
    done = [(e["time_s"], e["affected_replicas"]) for e in events if e["kind"] == "reload_done"]
    # replica 0: second fault repaired at 25 -> back at 28. replica 1: repaired at 35, reload
    # to 38 is cut by the fault at 36 (repaired at 41) -> back at 44
    assert done == [(28.0, [0]), (44.0, [1])]
    t = pa.Table.from_pylist(events, schema=EVENTS)
    assert down_intervals(t, 2, 100.0) == [[(1.0, 28.0)], [(30.0, 44.0)]]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_requests=st.integers(1, 30),
    raw_faults=st.lists(st.tuples(st.floats(0, 3), st.integers(0, 2), st.integers(0, 1), st.floats(0, 2)), max_size=6),
    num_blocks=st.integers(40, 200),
)
def test_random_fault_schedules_keep_the_serving_invariants(seed, num_requests, raw_faults, num_blocks):
    rng = np.random.default_rng(seed)
    specs = [RequestSpec(i, float(t), int(p), int(o)) for i, (t, p, o) in
             enumerate(zip(np.sort(rng.uniform(0, 2, num_requests)), rng.integers(1, 300, num_requests), rng.integers(1, 40, num_requests)))]
    faults = [Fault(t, f"rep{r}.chip{c}", "chip", d) for t, r, c, d in raw_faults]
    run = lambda: serve(specs, faults, num_replicas=3, timer=LinearTimer(), num_blocks=num_blocks, reload_s=0.3, max_retries=1, horizon_s=20.0)
    records, events, steps, _ = run()
    # conservation: every request has exactly one terminal record
    assert sorted(r.request_id for r in records) == list(range(num_requests))
    downs = down_intervals(pa.Table.from_pylist(events, schema=EVENTS), 3, 20.0)
    for cols in steps:
        for replica, start, step_s, used, total in zip(cols["replica"], cols["start_s"], cols["step_s"], cols["kv_blocks_used"], cols["kv_blocks_total"]):
            assert used <= total  # KV never over capacity, re-routed requests included
            for a, b in downs[replica]:  # no step runs on a replica while it is out
                assert start + step_s <= a + 1e-12 or start >= b - 1e-12
    for r in records:
        if r.status is Status.FINISHED:
            assert not any(a < r.finish_s < b for a, b in downs[r.replica])
        assert r.num_retries <= 2
    again = run()
    assert [(r.request_id, r.status, r.replica, r.finish_s, r.num_retries) for r in again[0]] == \
           [(r.request_id, r.status, r.replica, r.finish_s, r.num_retries) for r in records]
    assert again[1] == events


# ---------------------------------------------------------------- whole runs (the lead's wiring)


def run_with_failures(tmp: Path, failures: dict, seed: int = 3, topology: dict | None = None):
    """What simulate() does with failures on: _Run, attach_failures, run, finish."""
    from clustersim.build import build
    from clustersim.scenario import parse_scenario
    from clustersim.serving.sources import make_source
    from clustersim.simulate import _Run, rng_for

    scenario = parse_scenario({
        "name": "f", "seed": seed, "model": "llama-3.1-8b",
        "deployment": {"chip": "H100", "num_replicas": 3, "tp": 1},
        "workload": {"kind": "poisson", "rate_per_s": 6, "num_requests": 60,
                     "lengths": {"kind": "fixed", "prompt_tokens": 400, "output_tokens": 100}},
        "run": {"max_sim_s": 40.0},
        **({"topology": topology, "deployment": {"chip": "H100", "num_replicas": 3, "tp": 2}} if topology else {}),
    })
    tmp.mkdir(parents=True)
    source = make_source(scenario, rng_for(scenario.seed, "workload"), rng_for(scenario.seed, "lengths"))
    run = _Run(build(scenario), source, tmp)
    hooks = attach_failures(run, FailuresConfig(**failures), tmp)
    run.start()
    run.env.run(until=40.0)
    run.finish(40.0)
    run.requests_out.close()
    run.steps_out.close()
    return hooks.finish(tmp / "requests.arrow", 40.0), run


def test_whole_run_with_random_faults_is_byte_identical_and_summarised(tmp_path):
    cfg = {"enabled": True, "classes": {"chip": {"mttf_h": 0.005, "mttr_h": 0.001}}, "engine_init_s": 1.0,
           "reload_bw_bytes_s": 16e9}
    s1, _ = run_with_failures(tmp_path / "a", cfg)
    s2, run = run_with_failures(tmp_path / "b", cfg)
    for name in ("events.arrow", "requests.arrow", "steps.arrow"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert s1 == s2 and s1["num_faults"] > 0
    requests = read(tmp_path / "a" / "requests.arrow")
    assert sorted(requests.column("request_id").to_pylist()) == list(range(60))
    assert 0 < s1["mean_capacity_online"] < 1 and s1["service_availability"] >= s1["mean_capacity_online"] - 1e-12
    assert s1["tokens_recomputed"] == sum(e.num_lost_tokens for e in run.engines)
    # reload = 16 GB of llama-3.1-8b bf16 weights / 16 GB/s + 1 s init, per weight_bytes
    from clustersim.perf import weight_bytes
    expect = reload_time_s(weight_bytes(run.built.model, "bf16"), 16e9, 1.0)
    events = read(tmp_path / "a" / "events.arrow").to_pylist()
    reloads = [e["recovery_s"] for e in events if e["kind"] == "reload_start"]
    assert reloads and reloads == pytest.approx([expect] * len(reloads))


def test_failure_summary_by_hand():
    ev = pa.Table.from_pylist([
        {"time_s": 10.0, "component": "c", "component_class": "chip", "kind": "fail", "affected_replicas": [0], "affected_chips": 1, "recovery_s": 5.0},
        {"time_s": 20.0, "component": "d", "component_class": "chip", "kind": "fail", "affected_replicas": [1], "affected_chips": 1, "recovery_s": 5.0},
        {"time_s": 30.0, "component": "replica0", "component_class": "replica", "kind": "reload_done", "affected_replicas": [0], "affected_chips": 0, "recovery_s": 20.0},
    ], schema=EVENTS)
    req = pa.table({"status": ["finished", "failed"], "num_prompt_tokens": [10, 20], "num_output_tokens": [5, 7], "num_retries": [0, 3]})
    s = failure_summary(ev, req, 2, 100.0, num_lost_tokens=42)
    # replica 0 out 10..30 (20 s), replica 1 out 20..100 (80 s); both out 20..30
    assert s["replica_availability"] == pytest.approx([0.8, 0.2])
    assert s["service_availability"] == pytest.approx(0.9)
    assert s["mean_capacity_online"] == pytest.approx(0.5)
    assert s["observed_replica_mttf_s"] == pytest.approx((200 - 100) / 2)
    assert (s["goodput_lost_tokens"], s["tokens_recomputed"], s["num_retries"]) == (27, 42, 3)


def test_scripted_nvswitch_fault_degrades_then_restores_the_timers(tmp_path):
    cfg = {"enabled": True, "random": False, "scripted": [{"at_s": 5.0, "component": "s0.sw0", "duration_s": 10.0}]}
    s, run = run_with_failures(tmp_path / "a", cfg, topology={"name": "hgx-h100-2x8"})
    rows = [(e["kind"], e["time_s"], e["affected_replicas"]) for e in read(tmp_path / "a" / "events.arrow").to_pylist()]
    # 3 replicas of tp=2 on server 0 (4 NVSwitch chips): all three lose a quarter of their NVLink
    assert rows == [("fail", 5.0, []), ("degrade", 5.0, [0, 1, 2]), ("repair", 15.0, []), ("restore_bw", 15.0, [0, 1, 2])]
    assert s["replica_availability"] == [1.0, 1.0, 1.0] and s["num_degrade_events"] == 1
    assert all(e.timer.replica is run.built.replica_perf(i) for i, e in enumerate(run.engines))
    # every replica is online throughout, but slower for 10 of the 40 s: capacity counts that
    assert s["mean_capacity_online"] == 1.0 and 0.75 < s["mean_effective_capacity"] < 1.0


def test_effective_capacity_by_hand():
    # one replica, healthy for 0-10 s, on a half-bandwidth fabric for 10-30 s, out 30-40 s
    from clustersim.catalog import load_catalog
    from clustersim.failures.records import REFERENCE_STEP, effective_capacity
    from clustersim.perf import AlphaBetaComm, ReplicaPerf, step_time_s
    from clustersim.records.links import PerfHistory

    cat = load_catalog()
    healthy = ReplicaPerf(cat.chips["H100"], cat.models["llama-3.1-70b"], tp=4, weight_dtype="fp8")
    slow = dataclasses.replace(healthy, comm=AlphaBetaComm(bw_bytes_s=healthy.chip.scaleup_bw_bytes_s * 0.4,
                                                           latency_s=2e-6))
    history = PerfHistory([healthy])
    history.record(0, 10.0, slow)
    history.record(0, 30.0, None)
    speed = step_time_s(healthy, REFERENCE_STEP) / step_time_s(slow, REFERENCE_STEP)
    assert speed < 1.0
    assert effective_capacity(history, 40.0) == pytest.approx((10.0 + 20.0 * speed) / 40.0)


class _Stub:
    """The part of serving.Cluster the injector touches."""

    def __init__(self, n):
        self.engines = [type("E", (), {"down": False})() for _ in range(n)]
        self.log = []

    def fail(self, r):
        self.log.append(("fail", r))

    def restore(self, r):
        self.log.append(("restore", r))


def test_tpu_slice_reformed_around_a_dead_cube_after_the_ocs_delay():
    g = tpu_slice("v7", (8, 8, 8))
    blast = BlastModel(g, place_replicas(g, 28, tp=8))  # 4 spare cubes
    (victim,) = blast.effect(["c0.0.0"]).down
    env, rows, cluster = simpy.Environment(), [], _Stub(28)
    inj = start_failures(env, cluster, [Fault(100.0, "c0.0.0", "chip", 5000.0)], blast.effect, lambda r: 40.0, rows.append,
                         reconfig_s=10.0, num_spare_cubes=blast.num_spare_cubes)
    env.run(until=200.0)
    # out at 100, OCS re-forms by 110, weights reload onto the spare cube for 40 s: back at 150,
    # long before the dead chip is repaired (5,100 s)
    got = [(e["kind"], e["time_s"]) for e in rows]
    assert got == [("fail", 100.0), ("reconfig", 100.0), ("reload_start", 110.0), ("reload_done", 150.0)]
    assert cluster.log == [("fail", victim), ("restore", victim)] and inj.num_spare_cubes == 3
    env.run(until=6000.0)
    assert inj.num_spare_cubes == 4
