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


def kinds(g: nx.DiGraph) -> Counter:
    return Counter(k for _, k in g.nodes(data="kind"))


def out_bw(g: nx.DiGraph, node: str, kind: str) -> float:
    return sum(d["bw_bytes_s"] for _, _, d in g.out_edges(node, data=True) if d["kind"] == kind)


def test_nvl72_has_72_gpus_with_18_links_each_to_18_switches_in_9_trays():
    g = nvl72("gb200")
    assert kinds(g) == {"chip": 72, "nvswitch": 18}
    assert num_links(g) == 72 * 18  # each GPU one NVLink5 to each switch chip
    for gpu in chips(g):
        assert g.out_degree(gpu) == 18
        assert out_bw(g, gpu, "nvlink") == pytest.approx(18 * 50e9)  # 900 GB/s/dir
    trays = Counter(d["tray"] for _, d in g.nodes(data=True) if d["kind"] == "nvswitch")
    assert len(trays) == 9 and set(trays.values()) == {2}


def test_nvl72_racks_get_one_nic_per_gpu_on_a_rail_fabric():
    g = nvl72("gb300", num_racks=2)
    k = kinds(g)
    assert k["chip"] == 144 and k["nic"] == 144 and k["nvswitch"] == 36
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


@pytest.mark.parametrize("name", topology_names())
def test_every_file_loads_validates_and_equals_its_builder(name):
    g = load_topology(name)
    validate_graph(g, name)
    rebuilt = BUILDERS[g.graph["builder"]](**g.graph["params"])
    assert same_graph(g, rebuilt)
    for key in ("step_latency_s", "chips_forward", "torus_dims", "torus_wrap"):
        assert g.graph.get(key) == rebuilt.graph.get(key)


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
from clustersim.topology.show import draw, mincut_bisection_bytes_s, show_topology, summarize  # noqa: E402


def test_summary_of_nvl72_by_hand():
    s = summarize(nvl72())
    assert s["chips"] == 72 and s["switches"] == {"nvswitch": 18} and s["links"] == 1296
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
    assert page.count("<circle") == 64 and "<svg" in page
    draw(nvl72(num_racks=2), tmp_path / "rack.html", subset=1)
    assert (tmp_path / "rack.html").read_text().count("<circle") == 72 + 18 + 72  # GPUs, switches, NICs
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="matplotlib"):
            draw(nvl72(), tmp_path / "x.png")


def test_packaged_topology_dir_is_the_top_level_one():
    # The wheel ships topologies through clustersim/topology/ready, a link to topologies/.
    from pathlib import Path

    from clustersim.topology.files import TOPOLOGY_DIR, topology_names

    top = Path(__file__).resolve().parents[1] / "topologies"
    assert TOPOLOGY_DIR.resolve() == top.resolve()
    assert topology_names() == sorted(p.stem for p in top.iterdir() if p.suffix in (".yaml", ".json"))
