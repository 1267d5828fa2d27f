"""Topology builders give the node/link counts the specs say; every ready file loads,
validates and equals its builder's output; bad files raise SpecError naming what is wrong."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest

from clustersim.errors import SpecError
from clustersim.topology import hgx, nvl72, tpu_slice, trn2
from clustersim.topology.files import BUILDERS, TOPOLOGY_DIR, load_topology, save_topology, topology_names
from clustersim.topology.graph import chips, num_links, validate_graph
from cli_harness import cli


def kinds(g: nx.DiGraph) -> Counter:
    return Counter(k for _, k in g.nodes(data="kind"))


def out_bw(g: nx.DiGraph, node: str, kind: str) -> float:
    return sum(d["bw_bytes_s"] for _, _, d in g.out_edges(node, data=True) if d["kind"] == kind)


def test_nvl72_has_72_gpus_with_18_links_each_to_18_switches_in_9_trays():
    g = nvl72("gb200")
    assert kinds(g) == {"chip": 72, "nvswitch": 18, "switch_tray": 9, "host": 18}
    assert num_links(g) == 72 * 18  # each GPU one NVLink5 to each switch chip; 'contains' edges are not links
    for gpu in chips(g):
        assert g.out_degree(gpu) == 18
        assert out_bw(g, gpu, "nvlink") == pytest.approx(18 * 50e9)  # 900 GB/s/dir
    trays = Counter(d["tray"] for _, d in g.nodes(data=True) if d["kind"] == "nvswitch")
    assert len(trays) == 9 and set(trays.values()) == {2}
    # each switch_tray node holds exactly the 2 switch chips whose `tray` attribute names it
    for tray in (n for n, k in g.nodes(data="kind") if k == "switch_tray"):
        held = sorted(g.successors(tray))
        assert len(held) == 2 and all(g.nodes[sw]["tray"] == g.nodes[tray]["tray"] for sw in held)
        assert g.in_degree(tray) == 0  # nothing leads into a tray: no route can cross it


def test_switch_trays_never_carry_traffic():
    from clustersim.collectives.routing import Router

    g = nvl72("gb200", num_racks=2)
    router = Router(g)
    for src, dst in [("r0.g0", "r0.g71"), ("r0.g3", "r1.g40"), ("r1.g7", "r0.g7")]:
        route = router.route(src, dst)
        assert route.share and all(g.edges[e]["kind"] != "contains" for e in route.share)
        assert not any(g.nodes[n]["kind"] == "switch_tray" for e in route.share for n in e)


def test_nvl72_racks_get_one_nic_per_gpu_on_a_rail_fabric():
    g = nvl72("gb300", num_racks=2)
    k = kinds(g)
    assert k["chip"] == 144 and k["nic"] == 144 and k["nvswitch"] == 36 and k["switch_tray"] == 18
    nic = "r1.g5.nic"
    assert g.edges[nic, next(v for v in g.successors(nic) if g.nodes[v]["kind"] == "leaf")]["bw_bytes_s"] == 100e9


def test_hgx_servers_and_oversubscription():
    g = hgx("h100", num_servers=4, leaf_down_ports=32, oversubscription=2.0)
    k = kinds(g)
    assert k["chip"] == 32 and k["nvswitch"] == 16 and k["nic"] == 32
    assert k["spine"] == 16  # 32 down ports / 2:1 -> 16 uplinks, one per spine
    assert k["leaf"] == 8  # one leaf per rail
    assert out_bw(g, "s0.g0", "nvlink") == pytest.approx(450e9)
    assert out_bw(hgx("b200", 1), "s0.g0", "nvlink") == pytest.approx(900e9)


@pytest.mark.parametrize("gpu,nic_gbit_s,bytes_s", [("h200", None, 400e9 / 8), ("h200", 800, 800e9 / 8),
                                                    ("b200", 400, 400e9 / 8), ("b300", None, 800e9 / 8)])
def test_hgx_nic_speed_is_a_parameter(gpu, nic_gbit_s, bytes_s):
    g = hgx(gpu, num_servers=2, nic_gbit_s=nic_gbit_s)
    # every hop of the scale-out path runs at the NIC speed: chip-NIC, NIC-leaf, leaf-spine
    assert out_bw(g, "s1.g3", "pcie") == bytes_s
    assert g.edges["s1.g3.nic", "rail3.leaf0"]["bw_bytes_s"] == bytes_s
    assert g.edges["rail3.leaf0", "spine0"]["bw_bytes_s"] == bytes_s
    assert g.graph["params"]["nic_gbit_s"] == (nic_gbit_s or {"h200": 400, "b300": 800}[gpu])


def test_oversubscription_sets_uplinks_per_leaf():
    # 64 servers x 8 GPUs, 8 rails: 64 NICs per rail -> 2 leaves of 32 down ports; 4:1 -> 32/4 = 8 uplinks
    g = hgx("b200", num_servers=64, oversubscription=4.0)
    k = kinds(g)
    assert k["leaf"] == 16 and k["spine"] == 8
    assert all(sum(1 for v in g.successors(leaf) if g.nodes[v]["kind"] == "spine") == 8
               for leaf, kind in g.nodes(data="kind") if kind == "leaf")


@pytest.mark.parametrize("version,shape", [("v5p", (4, 4, 4)), ("v7", (8, 8, 8)), ("v5p", (4, 8, 12))])
def test_wrapped_3d_torus_gives_every_chip_six_neighbours(version, shape):
    g = tpu_slice(version, shape)
    n = shape[0] * shape[1] * shape[2]
    assert len(chips(g)) == n
    assert all(g.out_degree(c) == 6 for c in chips(g))
    assert num_links(g) == 3 * n


def test_partial_cube_slice_is_a_mesh():
    g = tpu_slice("v5p", (2, 2, 1))
    assert g.graph["torus_wrap"] == (False, False, False)
    assert num_links(g) == 4  # a 2x2 square


def test_2d_pods_wrap_only_on_full_axes():
    g = tpu_slice("v6e")
    assert len(chips(g)) == 256 and all(g.out_degree(c) == 4 for c in chips(g))
    assert g.edges["c0.0", "c0.1"]["bw_bytes_s"] == 9e10
    h = tpu_slice("v5e", (16, 4))  # wraps in x (16 = full axis), not in y
    assert h.has_edge("c15.0", "c0.0") and not h.has_edge("c0.3", "c0.0")


def test_full_pods_have_the_published_chip_counts():
    assert len(chips(tpu_slice("v5p"))) == 8960
    assert len(chips(tpu_slice("v7"))) == 9216


def test_trn2_ultraserver_is_4x4x4_with_thinner_z():
    g = trn2(64)
    assert len(chips(g)) == 64 and all(g.out_degree(c) == 6 for c in chips(g))
    assert g.edges["u0.c0.0.0", "u0.c1.0.0"]["bw_bytes_s"] == 128e9
    assert g.edges["u0.c0.0.0", "u0.c0.0.1"]["bw_bytes_s"] == 64e9
    server = trn2(16)
    assert len(chips(server)) == 16 and all(server.out_degree(c) == 4 for c in chips(server))
    pod = trn2(64, num_ultraservers=2)
    assert kinds(pod)["nic"] == 128


def same_graph(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    return dict(a.nodes(data=True)) == dict(b.nodes(data=True)) and {
        (u, v): d for u, v, d in a.edges(data=True)
    } == {(u, v): d for u, v, d in b.edges(data=True)}


REQUIRED = ["gb200-nvl72", "gb300-nvl72", "hgx-h100-2x8", "tpu-v5e-16x16", "tpu-v6e-16x16",
            "tpu-v5p-4x4x4", "tpu-v7-8x8x8", "trn2-server-16", "trn2-ultraserver-64"]


def test_required_files_exist_and_one_is_explicit():
    names = topology_names()
    assert set(REQUIRED) <= set(names)
    assert any(p.suffix == ".json" for p in TOPOLOGY_DIR.iterdir())


def _torus_links(shape: tuple[int, ...]) -> tuple[int, int]:
    """(ici, ocs) links of a whole-cube TPU slice: every chip has one link per dimension (wrapped);
    of the k links on a line of k chips, k/4 cross a cube face (OCS)."""
    n = shape[0] * shape[1] * shape[2]
    ocs = sum(n // k * (k // 4) for k in shape)
    return 3 * n - ocs, ocs


# name -> (chips, other node kinds, links by kind), from the physics of each system:
# NVL72: 72 GPUs x 18 switch chips (9 trays x 2) = 1,296 NVLinks per rack.
# HGX: 8 GPUs x 4 (H100/H200) or 2 (B200) NVSwitch chips per server. Rail fabric: one NIC per
#   GPU (pcie link), NICs of a rail fill leaves of 32 ports, each leaf has 32 / oversubscription
#   uplinks, one to each spine.
# 2D torus 16x16 wrapped: 2 links per chip. 3D torus wrapped: 3 links per chip.
EXPECTED = {
    "gb200-nvl72": (72, {"nvswitch": 18, "switch_tray": 9, "host": 18}, {"nvlink": 72 * 18}),  # 18 compute trays x 4 GPUs
    "gb300-nvl72": (72, {"nvswitch": 18, "switch_tray": 9, "host": 18}, {"nvlink": 72 * 18}),
    # 4 racks, 4 rails: 72 NICs per rail -> ceil(72 / 32) = 3 leaves per rail, 12 leaves x 32 spines
    "gb200-nvl72x4": (288, {"nvswitch": 72, "switch_tray": 36, "host": 72, "nic": 288, "leaf": 12, "spine": 32},
                      {"nvlink": 4 * 1296, "pcie": 288, "net": 288 + 12 * 32}),
    # 2 servers, 8 rails: 2 NICs per rail -> 1 leaf each
    "hgx-h100-2x8": (16, {"nvswitch": 8, "host": 2, "nic": 16, "leaf": 8, "spine": 32}, {"nvlink": 16 * 4, "pcie": 16, "net": 16 + 8 * 32}),
    "hgx-h100-32x8": (256, {"nvswitch": 128, "host": 32, "nic": 256, "leaf": 8, "spine": 32}, {"nvlink": 256 * 4, "pcie": 256, "net": 256 + 8 * 32}),
    "hgx-h200-32x8": (256, {"nvswitch": 128, "host": 32, "nic": 256, "leaf": 8, "spine": 32}, {"nvlink": 256 * 4, "pcie": 256, "net": 256 + 8 * 32}),
    "hgx-b200-32x8": (256, {"nvswitch": 64, "host": 32, "nic": 256, "leaf": 8, "spine": 32}, {"nvlink": 256 * 2, "pcie": 256, "net": 256 + 8 * 32}),
    # 64 servers: 64 NICs per rail -> 2 leaves per rail (16); 2:1 -> 16 uplinks per leaf = 16 spines
    "hgx-b200-64x8-2to1": (512, {"nvswitch": 128, "host": 64, "nic": 512, "leaf": 16, "spine": 16},
                           {"nvlink": 512 * 2, "pcie": 512, "net": 512 + 16 * 16}),
    # TPU hosts: 2x2 chip blocks (4 chips each); Trainium2: one host per 16-chip server
    "tpu-v5e-16x16": (256, {"host": 64}, {"ici": 2 * 256}),
    "tpu-v6e-16x16": (256, {"host": 64}, {"ici": 2 * 256}),
    "tpu-v5p-4x4x4": (64, {"host": 16}, dict(zip(("ici", "ocs"), _torus_links((4, 4, 4))))),  # 144 + 48
    "tpu-v7-8x8x8": (512, {"host": 128}, dict(zip(("ici", "ocs"), _torus_links((8, 8, 8))))),  # 1152 + 384
    "tpu-v5p-16x16x16": (4096, {"host": 1024}, dict(zip(("ici", "ocs"), _torus_links((16, 16, 16))))),
    "tpu-v5p-pod": (8960, {"host": 2240}, dict(zip(("ici", "ocs"), _torus_links((16, 20, 28))))),  # 20160 + 6720
    "tpu-v7-pod": (9216, {"host": 2304}, dict(zip(("ici", "ocs"), _torus_links((16, 24, 24))))),  # 20736 + 6912
    "trn2-server-16": (16, {"host": 1}, {"neuronlink": 2 * 16}),
    "trn2-ultraserver-64": (64, {"host": 4}, {"neuronlink": 3 * 64}),
    # 4 UltraServers, 1 rail: 256 NICs -> 8 leaves x 32 spines
    "trn2-ultraserver-64x4": (256, {"host": 16, "nic": 256, "leaf": 8, "spine": 32}, {"neuronlink": 4 * 192, "pcie": 256, "net": 256 + 8 * 32}),
}


def test_torus_link_formula_by_hand():
    assert _torus_links((4, 4, 4)) == (144, 48)  # 192 links, 16 lines x 3 dims each with one OCS wrap
    assert _torus_links((16, 20, 28)) == (20160, 6720)


def test_every_ready_file_has_expected_counts():
    assert set(EXPECTED) == set(topology_names())  # a new file needs its counts written here


def links_by_kind(g: nx.DiGraph) -> Counter:
    return Counter(k for u, v, k in g.edges(data="kind") if k != "contains" and str(u) < str(v))


@pytest.mark.parametrize("name", topology_names())
def test_every_file_loads_validates_and_equals_its_builder(name, tmp_path):
    g = load_topology(name)
    validate_graph(g, name)
    num_chips, others, links = EXPECTED[name]
    assert len(chips(g)) == num_chips
    assert {k: n for k, n in kinds(g).items() if k != "chip"} == others
    assert links_by_kind(g) == links and num_links(g) == sum(links.values())
    rebuilt = BUILDERS[g.graph["builder"]](**g.graph["params"])
    assert same_graph(g, rebuilt)
    for key in ("step_latency_s", "chips_forward", "torus_dims", "torus_wrap"):
        assert g.graph.get(key) == rebuilt.graph.get(key)
    # explicit JSON round trip of every ready file
    back = load_topology(save_topology(g, tmp_path / f"{name}.json", "round trip", ["test"]))
    assert same_graph(g, back)
    for key in ("builder", "params", "step_latency_s", "chips_forward", "torus_dims", "torus_wrap", "num_cubes"):
        assert back.graph.get(key) == g.graph.get(key)


@pytest.mark.parametrize("g", [nvl72(), hgx("b200", 2), tpu_slice("v5p", (4, 4, 4)), trn2(64)])
def test_explicit_save_and_load_round_trip(tmp_path, g):
    path = save_topology(g, tmp_path / "t.json", "test", ["made by the test"])
    back = load_topology(path)
    assert same_graph(g, back)
    assert back.graph.get("torus_dims") == g.graph.get("torus_dims")


def write(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,needle",
    [
        ("format: clustersim-topology/1\nbuilder: nope\nparams: {}\n", "builder='nope'"),
        ("format: clustersim-topology/1\nbuilder: nvl72\nparams: {racks: 2}\n", "params.racks=2"),
        ("format: clustersim-topology/1\nbuilder: nvl72\nparams: {version: gb999}\n", "version='gb999'"),
        ("format: clustersim-topology/1\nbuilder: tpu_slice\nparams: {version: v5p, shape: [4, 4]}\n", "shape=[4, 4]"),
        ("format: other\nbuilder: nvl72\n", "format='other'"),
        ("format: clustersim-topology/1\nname: x\n", "'builder'"),
        ("- just a list\n", "mapping"),
    ],
)
def test_bad_files_name_the_file_field_and_value(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_topology(path)
    assert str(path) in str(err.value) and needle in str(err.value)


@pytest.mark.parametrize(
    "params,needles",
    [
        ("{builder: nvl72, params: {num_racks: two}}", ["num_racks='two'", "integer >= 1"]),
        ("{builder: nvl72, params: {num_racks: 2.5}}", ["num_racks=2.5", "integer >= 1"]),
        ("{builder: nvl72, params: {num_racks: 0}}", ["num_racks=0", "integer >= 1"]),
        ("{builder: nvl72, params: {num_racks: true}}", ["num_racks=True", "integer >= 1"]),
        ("{builder: nvl72, params: {num_racks: 2, oversubscription: fast}}", ["oversubscription='fast'", "number > 0"]),
        ("{builder: nvl72, params: {num_racks: 2, nic_gbit_s: 100}}", ["nic_gbit_s=100", "[400, 800]"]),
        ("{builder: hgx, params: {gpu: h200, oversubscription: 0}}", ["oversubscription=0", "number > 0"]),
        ("{builder: hgx, params: {gpu: h200, oversubscription: .inf}}", ["oversubscription=inf", "finite"]),
        ("{builder: hgx, params: {gpu: h200, nic_gbit_s: '800'}}", ["nic_gbit_s='800'", "[400, 800]"]),
        ("{builder: hgx, params: {gpu: h200, num_rails: 9}}", ["num_rails=9", "1..8"]),
        ("{builder: hgx, params: {gpu: a100}}", ["gpu='a100'", "'h200'"]),
        ("{builder: hgx, params: {gpu: h200, leaf_down_ports: 32.0}}", ["leaf_down_ports=32.0", "integer >= 1"]),
        ("{builder: tpu_slice, params: {version: v5p, shape: 4x4x4}}", ["shape='4x4x4'", "list of 3 integers", "[16, 20, 28]"]),
        ("{builder: tpu_slice, params: {version: v5p, shape: [4, 4, 4.5]}}", ["shape=[4, 4, 4.5]", "list of 3 integers"]),
        ("{builder: tpu_slice, params: {version: v5e, shape: [32, 16]}}", ["shape=[32, 16]", "[16, 16]"]),
        ("{builder: trn2, params: {num_chips: 32}}", ["num_chips=32", "16 (server) or 64"]),
        ("{builder: trn2, params: {num_ultraservers: many}}", ["num_ultraservers='many'", "integer >= 1"]),
    ],
)
def test_builder_params_of_the_wrong_type_or_range_name_field_value_and_valid(tmp_path, params, needles):
    import yaml

    doc = {"format": "clustersim-topology/1", **yaml.safe_load(params)}
    path = write(tmp_path, yaml.safe_dump(doc))
    with pytest.raises(SpecError) as err:
        load_topology(path)
    message = str(err.value)
    assert str(path) in message and all(n in message for n in needles), message
    assert "\n" not in message and "Traceback" not in message


def _edit_explicit(tmp_path: Path, g: nx.DiGraph, edit) -> Path:
    path = save_topology(g, tmp_path / "t.json", "test", [])
    doc = json.loads(path.read_text())
    edit(doc["graph"])
    path.write_text(json.dumps(doc))
    return path


def _node(graph: dict, name: str) -> dict:
    return next(n for n in graph["nodes"] if n["id"] == name)


@pytest.mark.parametrize(
    "edit,needles",
    [
        (lambda d: _node(d, "u0.c1.2").pop("coord"), ["chip 'u0.c1.2' has no 'coord'", "torus_dims=[4, 4]"]),
        (lambda d: _node(d, "u0.c1.2").update(coord=[1, 4]), ["chip 'u0.c1.2' coord=[1, 4]", "0..3, 0..3"]),
        (lambda d: _node(d, "u0.c1.2").update(coord=[1, 2, 0]), ["coord=[1, 2, 0]", "2 integers"]),
        (lambda d: _node(d, "u0.c1.2").update(coord=[0, 0]), ["'u0.c0.0' and 'u0.c1.2'", "coord=[0, 0]", "unique"]),
        (lambda d: d["graph"].update(torus_dims=[4]), ["torus_dims=[4]", "torus_wrap=[True, True]", "one entry per dimension"]),
        (lambda d: d["graph"].update(torus_dims=[4, 0]), ["torus_dims=[4, 0]", "integers >= 1"]),
        (lambda d: d["graph"].update(torus_dims="4x4"), ["torus_dims='4x4'", "integers >= 1"]),
        (lambda d: d["graph"].update(torus_wrap=[1, 1]), ["torus_wrap=[1, 1]", "booleans"]),
    ],
)
def test_bad_torus_coords_and_dims_in_explicit_file_are_named(tmp_path, edit, needles):
    path = _edit_explicit(tmp_path, trn2(16), edit)
    with pytest.raises(SpecError) as err:
        load_topology(path)
    assert str(path) in str(err.value) and all(n in str(err.value) for n in needles), str(err.value)


def test_bad_containment_edges_are_named(tmp_path):
    def reverse(d):  # a physical link back from a switch into its tray would let routes cross the tray
        d["links"].append({"source": "r0.sw0", "target": "r0.tray0", "bw_bytes_s": 1e9, "latency_s": 0.0, "kind": "nvlink"})

    with pytest.raises(SpecError, match="reverses a 'contains' edge"):
        load_topology(_edit_explicit(tmp_path, nvl72(), reverse))

    def from_chip(d):
        d["links"].append({"source": "r0.g0", "target": "r0.g1", "bw_bytes_s": 0.0, "latency_s": 0.0, "kind": "contains"})

    with pytest.raises(SpecError, match=r"starts at a 'chip' node, must start at one of \['host', 'switch_tray'\]"):
        load_topology(_edit_explicit(tmp_path, nvl72(), from_chip))

    def zero_bw_link(d):
        next(e for e in d["links"] if e["kind"] == "nvlink")["bw_bytes_s"] = 0

    with pytest.raises(SpecError, match="bw_bytes_s=0, must be a finite number > 0"):
        load_topology(_edit_explicit(tmp_path, nvl72(), zero_bw_link))


def test_cli_show_on_bad_explicit_torus_is_one_line(tmp_path, capsys):
    path = _edit_explicit(tmp_path, trn2(16), lambda d: _node(d, "u0.c0.0").pop("coord"))
    code, out, err = cli(["topology", "show", str(path)], capsys)
    assert code == 2 and "no 'coord'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_torus_bisection_counts_only_the_links_that_exist():
    g = trn2(16)  # 4x4 wrapped, 128 GB/s/dir: the x cut crosses 4 rows x 2 links
    g.remove_edge("u0.c1.0", "u0.c2.0")  # one direction of one crossing link gone
    assert torus_bisection_bytes_s(g) == pytest.approx(7 * 128e9)


def test_bad_edge_in_explicit_file_is_named(tmp_path):
    g = trn2(16)
    path = save_topology(g, tmp_path / "t.json", "test", [])
    doc = json.loads(path.read_text())
    doc["graph"]["links"][3]["bw_bytes_s"] = -1
    path.write_text(json.dumps(doc))
    with pytest.raises(SpecError, match="bw_bytes_s=-1"):
        load_topology(path)


def test_unknown_name_lists_known_names():
    with pytest.raises(SpecError, match="gb200-nvl72"):
        load_topology("no-such-topology")


# ---- show ---------------------------------------------------------------------------------
from clustersim.topology.show import (  # noqa: E402
    draw,
    mincut_bisection_bytes_s,
    show_topology,
    summarize,
    torus_bisection_bytes_s,
)


def test_summary_of_nvl72_by_hand():
    s = summarize(nvl72())
    assert s["chips"] == 72 and s["switches"] == {"nvswitch": 18, "switch_tray": 9} and s["links"] == 1296
    assert s["links_by_kind"] == {"nvlink": 1296}
    assert s["bisection_bytes_s"] == pytest.approx(36 * 900e9)  # half the GPUs, each at 900 GB/s
    assert s["diameter_hops"] == 2 and s["injection_bytes_s"] == {"nvlink": pytest.approx(900e9)}


def test_torus_bisection_analytic_matches_min_cut():
    g = trn2(16)  # 4x4 wrapped: cutting x in half crosses 4 rows x 2 cuts x 128 GB/s
    assert summarize(g)["bisection_bytes_s"] == pytest.approx(4 * 2 * 128e9)
    assert mincut_bisection_bytes_s(g) == pytest.approx(4 * 2 * 128e9)
    v6e = summarize(tpu_slice("v6e"))
    assert v6e["bisection_bytes_s"] == pytest.approx(16 * 2 * 9e10) and v6e["diameter_hops"] == 16


def test_show_prints_and_draws(tmp_path):
    text = show_topology("tpu-v5p-4x4x4", tmp_path / "cube.html")
    assert "chips      64" in text and "diameter   6 hops" in text
    page = (tmp_path / "cube.html").read_text()
    assert page.count("<circle") == 64 + 16 and "<svg" in page  # chips and their 2x2-block hosts
    draw(nvl72(num_racks=2), tmp_path / "rack.html", subset=1)
    assert (tmp_path / "rack.html").read_text().count("<circle") == 72 + 18 + 9 + 18 + 72  # GPUs, switches, trays, hosts, NICs
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="'matplotlib'.*not installed"):
            draw(nvl72(), tmp_path / "x.png")


def test_show_lines_keep_their_bracketed_methods_and_say_how_hosts_and_ocs_are_represented():
    text = show_topology("tpu-v5p-4x4x4")
    assert "[analytic: thinnest mid-cut of the torus]" in text and "[analytic (torus)]" in text
    # 48 OCS circuits (one wrap link per line of 4, 16 lines x 3 dims) in one cube
    assert "OCS        48 optical circuits between 1 cubes" in text
    rack = show_topology("gb200-nvl72")
    assert "trays      9 switch_tray nodes hold 18 switch chips" in rack
    assert "hosts      18 host nodes (compute trays / servers) of 4 chips each" in rack  # 72 GPUs / 4 per compute tray


def test_cli_show_prints_methods_and_draws_one_rack_or_cube(tmp_path, capsys):
    code, out, _ = cli(["topology", "show", "gb200-nvl72x4", "--picture", str(tmp_path / "r.html"), "--part", "2"], capsys)
    assert code == 0 and "[max-flow min cut between chip halves" in out and "[BFS from" in out
    page = (tmp_path / "r.html").read_text()
    assert page.count("<circle") == 72 + 18 + 9 + 18 + 72 and "domain 2" in page and "r2.g0" in page and "r1.g0" not in page
    code, out, _ = cli(["topology", "show", "tpu-v7-8x8x8", "--picture", str(tmp_path / "c.html"), "--part", "cube:1.0.1"], capsys)
    page = (tmp_path / "c.html").read_text()
    # cube (1, 0, 1) holds x in 4..7, y in 0..3, z in 4..7
    assert code == 0 and page.count("<circle") == 64 and "c4.0.4 " in page and "c0.0.0 " not in page


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["tpu-v7-8x8x8", "--part", "cube:2.0.0", "--picture", "x.html"], ["cube:2.0.0", "X in 0..1"]),
        (["tpu-v7-8x8x8", "--part", "cube:a.b", "--picture", "x.html"], ["cube:a.b", "cube:X.Y.Z"]),
        (["gb200-nvl72", "--part", "cube:0.0.0", "--picture", "x.html"], ["cube:0.0.0", "not a 3D TPU slice"]),
        (["gb200-nvl72x4", "--part", "7", "--picture", "x.html"], ["part=7", "domains 0..3"]),
        (["gb200-nvl72x4", "--part", "rack", "--picture", "x.html"], ["part='rack'", "domain number"]),
        (["gb200-nvl72", "--part", "0"], ["part='0'", "picture"]),
        (["gb200-nvl72", "--picture", "x.svg"], ["x.svg", "'.svg'", ".html"]),
    ],
)
def test_cli_show_bad_part_or_picture_is_one_clear_line(tmp_path, capsys, argv, needles):
    argv = [str(tmp_path / a) if a.startswith("x.") else a for a in argv]
    code, _, err = cli(["topology", "show", *argv], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert all(n in err for n in needles), err
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_png_without_matplotlib_names_the_package(tmp_path, capsys):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        code, _, err = cli(["topology", "show", "gb200-nvl72", "--picture", str(tmp_path / "x.png")], capsys)
        assert code == 2 and "'matplotlib'" in err and "not installed" in err and "Traceback" not in err
    else:
        code, _, _ = cli(["topology", "show", "gb200-nvl72", "--picture", str(tmp_path / "x.png")], capsys)
        assert code == 0 and (tmp_path / "x.png").stat().st_size > 0


def test_packaged_topology_dir_is_the_top_level_one():
    # The wheel ships topologies through clustersim/topology/ready, a link to topologies/.
    from pathlib import Path

    from clustersim.topology.files import TOPOLOGY_DIR, topology_names

    top = Path(__file__).resolve().parents[1] / "topologies"
    assert TOPOLOGY_DIR.resolve() == top.resolve()
    assert topology_names() == sorted(p.stem for p in top.iterdir() if p.suffix in (".yaml", ".json"))
