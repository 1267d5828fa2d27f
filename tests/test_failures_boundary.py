"""Failures at the boundary and in the records: the `failures:` section checked by build()
before a run directory is touched, OCS faults, the events.arrow lists, and links.arrow
following each replica's re-routed collectives after a failure."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import simpy
import yaml

from clustersim.build import build
from clustersim.errors import ScenarioError
from clustersim.failures import BlastModel, Fault, blast_radius, components_of, start_failures
from clustersim.records.links import PerfHistory, step_link_bytes
from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate
from clustersim.topology import nvl72, tpu_slice
from clustersim.topology.placement import ReplicaPlacement, place_replicas


def read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def scenario(failures: dict | None = None, **over) -> dict:
    base = {
        "name": "fb",
        "model": "llama-3.1-70b",
        "deployment": {"chip": "GB200", "tp": 4, "num_replicas": 4, "weight_dtype": "fp8"},
        "topology": {"name": "gb200-nvl72", "link_bucket_s": 0.5},
        "workload": {"kind": "poisson", "rate_per_s": 10, "num_requests": 40,
                     "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 50}},
        "run": {"max_sim_s": 30.0},
    }
    if failures is not None:
        base["failures"] = failures
    base.update(over)
    return base


# ---------------------------------------------------------------- the section, checked by build()


@pytest.mark.parametrize("failures, expected", [
    ({"random": False, "classes": {"gpu": {"mttf_h": 1}}}, r"^s\.yaml: failures\.classes: class 'gpu' is unknown; valid classes: chip, hbm"),
    ({"random": False, "classes": {"chip": {"mttf_h": -5}}}, r"^s\.yaml: failures\.classes chip: mttf_h=-5, must be a finite number > 0"),
    ({"random": False, "classes": {"chip": {"distribution": "gamma"}}}, r"^s\.yaml: failures\.classes chip: distribution='gamma', must be one of exponential, weibull"),
    ({"enabled": False, "classes": {"chip": {"mttr_h": -1}}}, r"failures\.classes chip: mttr_h=-1"),  # checked even when off
    ({"enabled": True, "scripted": [{"at_s": 1, "component": "r0.g99", "duration_s": 1}]},
     r"^s\.yaml: failures\.scripted\[0\]\.component='r0\.g99': no such component in this deployment; valid ids look like .*chip 'r0\.g0'"),
    ({"enabled": True, "scripted": [{"at_s": 30, "component": "r0.g1", "duration_s": 1}]},
     r"^s\.yaml: failures\.scripted\[0\]: at_s=30 \('r0\.g1'\) is not before run\.max_sim_s=30, so the fault would never happen"),
])
def test_bad_failures_sections_are_refused_by_build(failures, expected):
    with pytest.raises(ScenarioError, match=expected) as info:
        build(parse_scenario(scenario({"enabled": True, **failures})), "s.yaml")
    assert "\n" not in str(info.value)


def test_good_section_resolves_classes_and_scripted_faults_once():
    built = build(parse_scenario(scenario({"enabled": True, "random": False, "classes": {"chip": {"mttf_h": 2}},
                                           "scripted": [{"at_s": 3, "component": "r0.g5|r0.sw2", "duration_s": 4}]})))
    plan = built.failure_plan
    assert plan.classes["chip"].mttf_s == 7200.0
    (fault,) = plan.scripted
    assert (fault.time_s, fault.component, fault.component_class, fault.repair_s) == (3.0, "r0.g5|r0.sw2", "nvlink", 4.0)


def test_a_bad_section_leaves_an_earlier_run_directory_untouched(tmp_path):
    out = tmp_path / "run"
    simulate(parse_scenario(scenario(workload={"kind": "poisson", "rate_per_s": 10, "num_requests": 5,
                                               "lengths": {"kind": "fixed", "prompt_tokens": 50, "output_tokens": 5}})), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = scenario({"enabled": True, "random": False, "classes": {"chip": {"distribution": "gamma"}}})
    with pytest.raises(ScenarioError, match="distribution='gamma'"):
        simulate(parse_scenario(bad), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_cli_validate_names_the_bad_scripted_component(tmp_path, capsys):
    from test_cli import cli

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario({"enabled": True, "scripted": [{"at_s": 1, "component": "bogus", "duration_s": 1}]})))
    code, _, err = cli(["validate", str(path)], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{path}: failures.scripted[0].component='bogus'" in " ".join(err.split())


# ---------------------------------------------------------------- OCS


def test_every_multi_cube_slice_has_48_ocs_each_patching_one_face_position():
    g = tpu_slice("v7", (8, 8, 8))  # 2 x 2 x 2 cubes of 4x4x4
    ocs = sorted(c for c, cls in components_of(g) if cls == "ocs")
    # TPU v4 wiring (reliability.md s3): 48 OCS = 3 dimensions x 16 positions on a 4x4 face
    assert len(ocs) == 48 and ocs[0] == "ocs:0.x.0.0" and ocs[-1] == "ocs:0.z.3.3"
    e = blast_radius(g, [], "ocs:0.x.1.2")
    # the x-direction cube-to-cube links at y = 1 mod 4, z = 2 mod 4: lines y in {1, 5} x
    # z in {2, 6}, each crossing cubes at x 3-4 and (wrap-around) 7-0, both directions
    expect = {(f"c{a}.{y}.{z}", f"c{b}.{y}.{z}") for y in (1, 5) for z in (2, 6) for a, b in ((3, 4), (7, 0))}
    expect |= {(v, u) for u, v in expect}
    assert e.links == frozenset(expect) and len(expect) == 16
    assert all(g.edges[u, v]["kind"] == "ocs" for u, v in expect)
    assert e.chips == frozenset() and e.num_chips == 0 and e.down == frozenset()


def test_scripted_ocs_fault_degrades_only_replicas_that_cross_cubes_on_its_circuits():
    g = tpu_slice("v7", (8, 8, 8))
    crossing = ReplicaPlacement(0, tuple(f"c{x}.1.2" for x in range(8)), 8, 1, 1)  # an x ring through OCS x.1.2
    other = ReplicaPlacement(1, tuple(f"c{x}.0.0" for x in range(8)), 8, 1, 1)  # an x ring through OCS x.0.0
    inside = place_replicas(g, 1, tp=8, exclude=set(crossing.chips) | set(other.chips))[0]
    inside = ReplicaPlacement(2, inside.chips, 8, 1, 1)
    blast = BlastModel(g, [crossing, other, inside])
    effect = blast.effect(["ocs:0.x.1.2"])
    assert (effect.down, effect.partitioned, effect.degraded) == (frozenset(), frozenset(), frozenset({0}))
    used = {e for load in effect.comms[0].loads.values() for e, x in load.items() if x > 0}
    assert not used & effect.links  # the re-routed ring avoids every dead circuit
    env, rows = simpy.Environment(), []
    stub = type("C", (), {"engines": [type("E", (), {"down": False})() for _ in range(3)],
                          "fail": lambda self, r: None, "restore": lambda self, r: None})()
    start_failures(env, stub, [Fault(10.0, "ocs:0.x.1.2", "ocs", 86400.0, scripted=True)], blast.effect,
                   lambda r: 40.0, rows.append, lambda r, graph, comm: None)
    env.run(until=100_000.0)
    got = [(r["kind"], r["time_s"], r["affected_replicas"], r["affected_chips"], len(r["affected_links"])) for r in rows]
    # no chip dies, so nothing reloads: the crossing replica runs slower for the day of repair
    assert got == [("fail", 10.0, [], 0, 16), ("degrade", 10.0, [0], 0, 16),
                   ("repair", 86410.0, [], 0, 16), ("restore_bw", 86410.0, [0], 0, 16)]
    assert "c3.1.2->c4.1.2" in rows[0]["affected_links"]


def test_build_accepts_an_ocs_component_of_the_placed_slice():
    data = scenario({"enabled": True, "random": False, "scripted": [{"at_s": 1, "component": "ocs:0.y.3.0", "duration_s": 5}]},
                    deployment={"chip": "TPU v7", "tp": 8, "num_replicas": 2}, topology={"name": "tpu-v7-8x8x8"},
                    model="llama-3.1-8b")
    (fault,) = build(parse_scenario(data)).failure_plan.scripted
    assert fault.component_class == "ocs"


# ---------------------------------------------------------------- events.arrow lists


def test_fail_rows_list_the_chips_and_links_of_the_component():
    g = nvl72()
    ps = place_replicas(g, 4, tp=4)
    e = blast_radius(g, ps, "r0.g6")
    # a dead GPU takes its 18 NVLinks (to each of 18 switches, both ways) and its NIC link (pcie, both ways)
    assert e.chips == frozenset({"r0.g6"})
    assert {(u, v) for u, v in e.links if "sw" in u + v} == {(a, b) for s in range(18) for a, b in
                                                             (("r0.g6", f"r0.sw{s}"), (f"r0.sw{s}", "r0.g6"))}
    env, rows = simpy.Environment(), []
    stub = type("C", (), {"engines": [type("E", (), {"down": False})() for _ in range(4)],
                          "fail": lambda self, r: None, "restore": lambda self, r: None})()
    start_failures(env, stub, [Fault(1.0, "r0.g6", "chip", 5.0)], BlastModel(g, ps).effect, lambda r: 2.0, rows.append)
    env.run()
    fail = rows[0]
    assert (fail["kind"], fail["affected_replicas"], fail["affected_chips"], fail["affected_chip_ids"]) == ("fail", [1], 1, ["r0.g6"])
    assert "r0.g6->r0.sw0" in fail["affected_links"] and "r0.sw17->r0.g6" in fail["affected_links"]
    assert rows[-1]["kind"] == "reload_done" and rows[-1]["affected_links"] == [] and rows[-1]["affected_chip_ids"] == []


# ---------------------------------------------------------------- links.arrow after a failure


def test_perf_history_picks_the_model_in_force_at_each_step_start():
    h = PerfHistory(["a", "b"])
    h.record(1, 2.0, "b2")
    h.record(1, 2.0, "b3")  # same instant: the last record wins
    h.record(1, 5.0, None)
    assert [h.at(1, t) for t in (0.0, 1.999, 2.0, 4.0, 5.0)] == ["b", "b", "b3", "b3", None]
    assert [h.at(0, t) for t in (0.0, 1e9)] == ["a", "a"] and h.num_changes == 2


def test_links_trace_moves_off_a_dead_nvswitch_after_the_failure(tmp_path):
    fail_s = 3.0
    data = scenario({"enabled": True, "random": False, "scripted": [{"at_s": fail_s, "component": "r0.sw0", "duration_s": 100}]})
    simulate(parse_scenario(data), tmp_path / "run")
    links = read(tmp_path / "run" / "links.arrow").to_pydict()
    steps = read(tmp_path / "run" / "steps.arrow").to_pydict()
    on_sw0 = [(t, b) for t, s, d, b in zip(links["bucket_start_s"], links["src"], links["dst"], links["bytes"]) if "r0.sw0" in (s, d)]
    assert any(t < fail_s and b > 0 for t, b in on_sw0)  # it carried NVLS traffic while alive
    assert not [t for t, b in on_sw0 if t >= fail_s]  # and nothing once dead (the bucket edge is the failure instant)
    assert any(t >= fail_s for t in steps["start_s"])
    # every step's bytes are routed with the model in force when it starts: healthy before
    # 3 s, and after it the GraphComm routed on the graph without r0.sw0
    built = build(parse_scenario(data))
    degraded = blast_radius(built.graph, built.placements, "r0.sw0")
    assert degraded.degraded == frozenset(range(4))
    expected: dict[tuple[float, str, str], float] = {}
    for start, replica, pre, dec in zip(steps["start_s"], steps["replica"], steps["num_prefill_tokens"], steps["num_decode_tokens"]):
        perf = built.replicas[replica]
        if start >= fail_s:
            perf = dataclasses.replace(perf, comm=degraded.comms[replica])
        for (u, v), x in step_link_bytes(perf, pre + dec).items():
            key = (np.floor(start / 0.5) * 0.5, u, v)
            expected[key] = expected.get(key, 0.0) + x
    got: dict[tuple[float, str, str], float] = {}
    for t, s, d, b in zip(links["bucket_start_s"], links["src"], links["dst"], links["bytes"]):
        got[(t, s, d)] = got.get((t, s, d), 0.0) + b
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k], rel=1e-9) for k in expected)
    # NVLS splits a GPU's buffer evenly over the live switch planes: 1/18 each before, 1/17
    # after, so a surviving plane's link carries 18/17 as many bytes for the same step
    healthy, rerouted = built.replicas[0].comm, degraded.comms[0]
    before = healthy.link_bytes("all_reduce", 1e8, 4)[("r0.g0", "r0.sw1")]
    after = rerouted.link_bytes("all_reduce", 1e8, 4)[("r0.g0", "r0.sw1")]
    assert after == pytest.approx(before * 18 / 17, rel=1e-12)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failures"]["num_degrade_events"] == 1
