"""Collective costs against hand arithmetic, and invariants under link changes (hypothesis).

Figures used below: NVLink5 50 GB/s/dir per link, 18 links per GPU (900 GB/s/dir);
NVLink link latency 0.25 us, GPU step latency 0.5 us; NIC 400 Gb/s = 50 GB/s; TPU v5e ICI
link 45 GB/s/dir, 1 us per hop, TPU step latency 1 us (clustersim/topology/figures.py).
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustersim.collectives import GraphComm, PartitionError, Router, collective
from clustersim.collectives.algorithms import _a2a_torus_load
from clustersim.collectives.routing import add_load
from clustersim.errors import PlacementError
from clustersim.topology import hgx, nvl72, tpu_slice, trn2
from clustersim.topology.figures import NVLS_REDUCTION_EFFICIENCY
from clustersim.topology.graph import chips

B = 1e9
NV_LAT, GPU_STEP = 0.25e-6, 0.5e-6
ICI_BW, ICI_LAT, TPU_STEP = 4.5e10, 1e-6, 1e-6

NVL72 = nvl72()
V5E = tpu_slice("v5e")


def test_ring_all_reduce_on_nvl72_is_2_n_minus_1_over_n_bytes_over_gpu_bandwidth():
    n = 8
    cost = collective(NVL72, "all_reduce", chips(NVL72)[:n], B, algorithm="ring")
    # each hop spreads over the 18 switch planes: the GPU's 900 GB/s is the ring link
    expected = 2 * (n - 1) / n * B / 900e9 + 2 * (n - 1) * (2 * NV_LAT + GPU_STEP)
    assert cost.time_s == pytest.approx(expected, rel=1e-12)
    assert cost.num_steps == 14
    assert cost.max_link_bytes == pytest.approx(2 * (n - 1) / n * B / 18)


def test_nvls_halves_the_all_reduce_traffic():
    n = 72
    ring = collective(NVL72, "all_reduce", chips(NVL72), B, algorithm="ring")
    nvls = collective(NVL72, "all_reduce", chips(NVL72), B)
    assert nvls.algorithm == "nvls"
    assert nvls.max_link_bytes == pytest.approx(B / 18)  # B up and B down per GPU, over 18 planes
    assert ring.max_link_bytes / nvls.max_link_bytes == pytest.approx(2 * (n - 1) / n)
    assert nvls.time_s == pytest.approx(B / (900e9 * NVLS_REDUCTION_EFFICIENCY) + 2 * (NV_LAT + GPU_STEP))


def test_bidirectional_ring_on_a_wrapped_torus_row():
    row = [f"c{x}.0" for x in range(16)]  # a full 16-chip axis of the v5e pod wraps
    cost = collective(V5E, "all_reduce", row, B)
    n = 16  # each half of the buffer goes one way round: the ring formula over 2 links
    expected = 2 * (n - 1) / n * B / (2 * ICI_BW) + 2 * (n - 1) * (ICI_LAT + TPU_STEP)
    assert cost.algorithm == "torus_rings"
    assert cost.time_s == pytest.approx(expected, rel=1e-12)


def test_ring_on_a_line_without_wraparound_pays_the_way_back():
    g = tpu_slice("v5e", (4, 1))  # a 4-chip mesh line, no wrap-around
    line = [f"c{x}.0" for x in range(4)]
    cost = collective(g, "all_reduce", line, B, algorithm="ring")
    # hop 3 -> 0 crosses 3 links backwards: every link carries 2(n-1)/n B in each direction
    expected = 2 * 3 / 4 * B / ICI_BW + 2 * 3 * (3 * ICI_LAT + TPU_STEP)
    assert cost.time_s == pytest.approx(expected, rel=1e-12)
    assert len(cost.per_link_bytes) == 6
    assert all(x == pytest.approx(1.5 * B) for x in cost.per_link_bytes.values())


def test_all_to_all_on_a_16x16_torus_is_bisection_bound():
    cost = collective(V5E, "all_to_all", chips(V5E), B)
    # cut the pod in half across x: 16 rows x 2 cut points = 32 links per direction carry the
    # (n/2)(n/2)(B/n) = 64 B that crosses: 2 B per link, the same on every link by symmetry
    assert cost.max_link_bytes == pytest.approx(64 * B / 32)
    assert min(cost.per_link_bytes.values()) == pytest.approx(2 * B)
    assert cost.time_s == pytest.approx(2 * B / ICI_BW, rel=1e-3)


@pytest.mark.parametrize("g", [tpu_slice("v5p", (4, 4, 4)), tpu_slice("v5e", (4, 3)), trn2(64), tpu_slice("v5e", (16, 2))])
def test_line_by_line_all_to_all_equals_routing_every_pair(g):
    group = chips(g)
    router = Router(g)
    axes = [sorted({router.coord(c)[d] for c in group}) for d in range(len(router.dims))]
    fast = _a2a_torus_load(router, group, axes)
    slow, _ = add_load(router, [(a, b, 1 / len(group)) for a in group for b in group if a != b])
    assert fast.keys() == slow.keys()
    assert all(fast[e] == pytest.approx(slow[e]) for e in slow)


def test_all_to_all_inside_nvl72_is_bound_by_each_gpus_nvlink():
    n = 72
    cost = collective(NVL72, "all_to_all", chips(NVL72), B)
    # a GPU keeps B/n and sends (n-1)/n B out over its 900 GB/s
    assert cost.time_s == pytest.approx((n - 1) / n * B / 900e9 + 2 * NV_LAT + GPU_STEP, rel=1e-12)


HGX = hgx("h100", num_servers=2)


def test_group_across_servers_is_bound_by_the_nic():
    cost = collective(HGX, "all_reduce", ["s0.g0", "s1.g0"], B)
    # 2 ranks: each sends 2(n-1)/n B = B through its 50 GB/s NIC
    assert cost.max_link_bytes == pytest.approx(B)
    assert cost.time_s == pytest.approx(B / 50e9, rel=1e-3)
    a2a = collective(HGX, "all_to_all", chips(HGX), B)
    # each GPU sends 8 of its 16 shares (B/2) to the other server through its own NIC
    assert a2a.time_s == pytest.approx(B / 2 / 50e9, rel=1e-3)


def test_hierarchical_all_reduce_uses_every_rail():
    cost = collective(HGX, "all_reduce", chips(HGX), B)
    assert cost.algorithm == "hierarchical"
    # intra reduce-scatter + all-gather (7/8 B over 450 GB/s each) + B/8 over each NIC
    floor = 2 * 7 / 8 * B / 450e9 + B / 8 / 50e9
    assert floor <= cost.time_s <= floor * 1.01
    ring = collective(HGX, "all_reduce", chips(HGX), B, algorithm="ring")
    assert ring.time_s > 3 * cost.time_s


def test_small_messages_pick_fewer_steps_large_ones_bandwidth():
    group = chips(tpu_slice("v5e"))
    small = collective(V5E, "all_reduce", group, 1e3)
    large = collective(V5E, "all_reduce", group, 1e10)
    assert large.algorithm == "torus_rings"
    assert small.num_steps < large.num_steps


def test_one_rank_costs_nothing_and_bad_groups_are_named():
    assert collective(NVL72, "all_reduce", ["r0.g0"], B).time_s == 0.0
    with pytest.raises(PlacementError, match="r0.sw0"):
        collective(NVL72, "all_reduce", ["r0.g0", "r0.sw0"], B)
    with pytest.raises(PlacementError, match="repeats"):
        collective(NVL72, "all_reduce", ["r0.g0", "r0.g0"], B)


def test_isolated_chip_reports_partition():
    g = tpu_slice("v5p", (4, 4, 4))
    g.remove_edges_from(list(g.in_edges("c0.0.0")) + list(g.out_edges("c0.0.0")))
    with pytest.raises(PartitionError, match="c0.0.0"):
        collective(g, "all_reduce", ["c0.0.0", "c1.0.0"], B)


def test_graph_comm_matches_the_pure_functions_and_is_hashable():
    group = chips(NVL72)[:8]
    comm = GraphComm.build(NVL72, group, stage_size=4)
    for size in (2, 4, 8):
        for nbytes in (1e3, 1e6, 1e9):
            ar = collective(NVL72, "all_reduce", group[:size], nbytes).time_s
            a2a = collective(NVL72, "all_to_all", group[:size], nbytes).time_s
            assert comm.all_reduce_s(nbytes, size) == pytest.approx(ar)
            assert comm.all_to_all_s(nbytes, size) == pytest.approx(a2a)
    assert comm.all_reduce_s(1e9, 1) == 0.0
    assert comm.send_s(1e9) == pytest.approx(collective(NVL72, "send", [group[0], group[4]], 1e9).time_s)
    assert hash(comm) == hash(GraphComm.build(NVL72, group, stage_size=4))
    full = collective(NVL72, "all_reduce", group, 1e9)
    assert comm.link_bytes("all_reduce", 1e9, 8) == pytest.approx(dict(full.per_link_bytes))
    # whichever algorithm wins, every GPU sends at least (n-1)/n of its buffer into the fabric
    assert sum(b for (u, _), b in full.per_link_bytes.items() if u in group) >= 8 * 7 / 8 * 1e9 * (1 - 1e-9)
    with pytest.raises(ValueError, match="group_size=3"):
        comm.all_reduce_s(1e9, 3)


# ---- properties ----------------------------------------------------------------------------

SMALL = {
    "nvl72": lambda: nvl72(),
    "hgx": lambda: hgx("h100", 2),
    "v5p": lambda: tpu_slice("v5p", (4, 4, 4)),
    "v5e-mesh": lambda: tpu_slice("v5e", (4, 4)),
    "trn2": lambda: trn2(16),
}
KIND = st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "all_to_all"])


@st.composite
def graph_and_group(draw):
    name = draw(st.sampled_from(sorted(SMALL)))
    g = SMALL[name]()
    pool = chips(g)
    group = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=8, unique=True))
    return g, group


def time_or_none(g, kind, group, nbytes):
    try:
        return collective(g, kind, group, nbytes).time_s
    except PartitionError:
        return None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gg=graph_and_group(), kind=KIND, nbytes=st.floats(1e2, 1e10), data=st.data())
def test_raising_a_bandwidth_never_slows_a_collective(gg, kind, nbytes, data):
    g, group = gg
    before = collective(g, kind, group, nbytes).time_s
    edges = list(g.edges)
    u, v = edges[data.draw(st.integers(0, len(edges) - 1))]
    g.edges[u, v]["bw_bytes_s"] *= data.draw(st.floats(1.0, 100.0))
    assert collective(g, kind, group, nbytes).time_s <= before * (1 + 1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["v5p", "v5e-mesh", "trn2"]), kind=KIND, nbytes=st.floats(1e2, 1e10), data=st.data())
def test_adding_a_link_never_slows_a_collective(name, kind, nbytes, data):
    g = SMALL[name]()
    pool = chips(g)
    group = data.draw(st.lists(st.sampled_from(pool), min_size=2, max_size=8, unique=True))
    before = collective(g, kind, group, nbytes).time_s
    a, b = data.draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True))
    if not g.has_edge(a, b):
        g.add_edge(a, b, bw_bytes_s=data.draw(st.floats(1e6, 1e12)), latency_s=1e-6, kind="ici")
    assert collective(g, kind, group, nbytes).time_s <= before * (1 + 1e-12)


def structured_groups(g):
    """Groups a placement would produce: the whole system, or the first 4/8/16 chips."""
    pool = chips(g)
    return [pool[:k] for k in (4, 8, 16) if k < len(pool)] + [pool]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SMALL)), kind=KIND, data=st.data())
def test_removing_a_link_slows_the_collective_or_reports_partition(name, kind, data):
    g = SMALL[name]()
    random_group = st.lists(st.sampled_from(chips(g)), min_size=2, max_size=8, unique=True)
    group = data.draw(st.one_of(st.sampled_from(structured_groups(g)), random_group))
    before = collective(g, kind, group, 1e8).time_s
    links = sorted({tuple(sorted(e)) for e in g.edges})
    u, v = links[data.draw(st.integers(0, len(links) - 1))]
    g.remove_edges_from([(u, v), (v, u)])
    after = time_or_none(g, kind, group, 1e8)
    assert after is None or after >= before * (1 - 1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gg=graph_and_group(), kind=KIND, data=st.data())
def test_removing_links_never_crashes(gg, kind, data):
    g, group = gg
    edges = list(g.edges)
    for i in data.draw(st.lists(st.integers(0, len(edges) - 1), max_size=20)):
        g.remove_edges_from([edges[i], edges[i][::-1]])
    t = time_or_none(g, kind, group, 1e6)
    assert t is None or t > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gg=graph_and_group(), data=st.data())
def test_bytes_are_conserved_along_every_route(gg, data):
    g, group = gg
    edges = list(g.edges)
    for i in data.draw(st.lists(st.integers(0, len(edges) - 1), max_size=5)):
        g.remove_edges_from([edges[i], edges[i][::-1]])
    src, dst = group[0], group[1]
    try:
        route = Router(g).route(src, dst)
    except PartitionError:
        return
    net: dict[str, float] = {}
    for (u, v), share in route.share.items():
        assert g.has_edge(u, v) and 0 < share <= 1 + 1e-12
        net[u] = net.get(u, 0.0) - share
        net[v] = net.get(v, 0.0) + share
    for node, flow in net.items():
        expected = -1.0 if node == src else 1.0 if node == dst else 0.0
        assert flow == pytest.approx(expected, abs=1e-9)
    hops = nx.shortest_path_length(g, src, dst)
    assert sum(route.share.values()) >= hops - 1e-9  # every byte crosses at least `hops` links


def test_groups_repeat_so_routes_are_cached():
    router = Router(V5E)
    group = chips(V5E)[:16]
    first = collective(router, "all_reduce", group, B)
    assert collective(router, "all_reduce", group, B) == first
    assert len(router._routes) > 0 and all(isinstance(k, tuple) for k in itertools.islice(router._routes, 3))
