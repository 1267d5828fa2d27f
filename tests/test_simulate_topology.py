"""Runs placed on a topology: graph-routed communication and the links.arrow trace."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from clustersim.build import build
from clustersim.errors import ScenarioError
from clustersim.perf.comm_volume import comm_calls
from clustersim.records.links import step_link_bytes
from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate


def scenario(**over) -> dict:
    base = {
        "model": "llama-3.1-70b",
        "deployment": {"chip": "GB200", "tp": 4, "num_replicas": 4, "weight_dtype": "fp8"},
        "topology": {"name": "gb200-nvl72", "link_bucket_s": 0.5},
        "workload": {"kind": "poisson", "rate_per_s": 10, "num_requests": 40,
                     "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 50}},
    }
    base.update(over)
    return base


def test_links_trace_carries_every_step_byte(tmp_path):
    result = simulate(parse_scenario(scenario()), tmp_path / "run")
    links = pa.ipc.open_file(str(tmp_path / "run" / "links.arrow")).read_all()
    steps = pa.ipc.open_file(str(tmp_path / "run" / "steps.arrow")).read_all()
    built = build(parse_scenario(scenario()))
    expected = 0.0
    for replica, prefill, decode in zip(steps.column("replica").to_pylist(), steps.column("num_prefill_tokens").to_pylist(),
                                        steps.column("num_decode_tokens").to_pylist()):
        expected += sum(step_link_bytes(built.replicas[replica], prefill + decode).values())
    assert float(np.sum(links.column("bytes").to_numpy())) == pytest.approx(expected, rel=1e-9)
    assert set(links.column("kind").to_pylist()) == {"nvlink"}
    assert result.summary["deployment"]["topology"] == "gb200-nvl72"


def test_link_classes_sum_the_links_of_each_kind(tmp_path):
    simulate(parse_scenario(scenario()), tmp_path / "links")
    over = scenario()
    over["topology"] = dict(over["topology"], link_detail="class")
    simulate(parse_scenario(over), tmp_path / "classes")
    per_link = pa.ipc.open_file(str(tmp_path / "links" / "links.arrow")).read_all().to_pydict()
    per_class = pa.ipc.open_file(str(tmp_path / "classes" / "links.arrow")).read_all().to_pydict()
    assert set(per_class["src"]) == {"class:nvlink"} and set(per_class["dst"]) == {"all"}
    # per bucket: bytes summed over every NVLink; mean utilization over the rack's total NVLink
    # bandwidth (72 GPUs x 18 links x 2 directions x 50 GB/s); max = the busiest link's
    nvlink_bw = 72 * 18 * 2 * 50e9
    for start, moved, util, top in zip(per_class["bucket_start_s"], per_class["bytes"], per_class["utilization"],
                                       per_class["max_utilization"]):
        rows = [i for i, b in enumerate(per_link["bucket_start_s"]) if b == start]
        assert moved == pytest.approx(sum(per_link["bytes"][i] for i in rows), rel=1e-12)
        assert util == pytest.approx(moved / (nvlink_bw * 0.5), rel=1e-6)
        assert top == pytest.approx(max(per_link["utilization"][i] for i in rows), rel=1e-6)
    assert per_link["max_utilization"] == per_link["utilization"]


def test_all_reduce_bytes_leave_each_gpu_over_its_nvlinks():
    # One step of T tokens on a TP4 replica: 160 all-reduces of T x 8192 x 2 bytes. Whatever the
    # algorithm, each of the 4 GPUs must send at least (n-1)/n of the message (reduce-scatter
    # half) through its 18 NVLinks, so the bytes leaving GPU chips are >= 4 x 3/4 x message.
    built = build(parse_scenario(scenario()))
    replica = built.replicas[0]
    ((kind, num_bytes, group, count),) = comm_calls(replica, 100)
    assert (kind, group, count) == ("all_reduce", 4, 160) and num_bytes == 100 * 8192 * 2
    out_of_gpus = sum(b for (u, _), b in step_link_bytes(replica, 100).items() if u in replica.comm.chips)
    assert out_of_gpus >= 4 * 0.75 * num_bytes * count * (1 - 1e-9)


def test_topology_errors_name_the_field(tmp_path):
    with pytest.raises(ScenarioError, match="deployment.chip='H100'"):
        build(parse_scenario(scenario(deployment={"chip": "H100", "tp": 4, "num_replicas": 1})))
    with pytest.raises(ScenarioError, match="num_replicas=19"):
        build(parse_scenario(scenario(deployment={"chip": "GB200", "tp": 4, "num_replicas": 19, "weight_dtype": "fp8"})))
    with pytest.raises(ScenarioError, match="topology.name='no-such-topology'"):
        build(parse_scenario(scenario(topology={"name": "no-such-topology"})))


def test_torus_replica_is_placed_on_a_contiguous_box():
    built = build(parse_scenario(scenario(deployment={"chip": "TPU v6e", "tp": 8, "num_replicas": 4}, topology={"name": "tpu-v6e-16x16"})))
    assert len(built.placements) == 4
    chips = [c for p in built.placements for c in p.chips]
    assert len(set(chips)) == 32


def test_rerun_into_the_same_directory_leaves_no_stale_files(tmp_path):
    simulate(parse_scenario(scenario()), tmp_path / "run")
    assert (tmp_path / "run" / "links.arrow").exists()
    plain = scenario()
    plain.pop("topology")
    simulate(parse_scenario(plain), tmp_path / "run")
    import json

    names = {p.name for p in (tmp_path / "run").iterdir()}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "links.arrow" not in names and names == set(manifest["files"]) | {"manifest.json"}
