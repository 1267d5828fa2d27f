"""Placement maps replicas onto disjoint chips: inside a domain, as torus boxes, or across
servers when asked; it refuses what does not fit, naming the values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.collectives import GraphComm, collective
from clustersim.errors import PlacementError
from clustersim.topology import hgx, nvl72, tpu_slice, trn2
from clustersim.topology.placement import ReplicaPlacement, check_disjoint, place_replicas, used_chips


def test_nvl72_packs_tp8_replicas_in_one_rack():
    ps = place_replicas(nvl72(), 9, tp=8)
    assert [p.chips[0] for p in ps] == [f"r0.g{8 * i}" for i in range(9)]
    with pytest.raises(PlacementError, match="num_replicas=10 of 8 chips"):
        place_replicas(nvl72(), 10, tp=8)


def test_spread_deals_replicas_over_racks():
    ps = place_replicas(nvl72(num_racks=2), 3, tp=4, policy="spread")
    assert [p.chips[0] for p in ps] == ["r0.g0", "r1.g0", "r0.g4"]


def test_torus_replica_is_a_box_and_its_stages_are_slabs():
    g = tpu_slice("v5p", (8, 8, 8))
    (p,) = place_replicas(g, 1, tp=16, pp=2)
    coords = [g.nodes[c]["coord"] for c in p.chips]
    spans = [len({c[d] for c in coords}) for d in range(3)]
    assert sorted(spans) == [2, 4, 4]  # 32 chips: a 2x4x4 box (most cubic that tiles 8x8x8)
    for k in range(2):
        stage = [g.nodes[c]["coord"] for c in p.stage(k)]
        assert len(stage) == 16 and min(len({c[d] for c in stage}) for d in range(3)) == 1


def test_torus_placement_tiles_the_pod_and_tp_gets_torus_rings():
    g = tpu_slice("v5e")
    ps = place_replicas(g, 16, tp=16)
    assert len(used_chips(ps)) == 256
    cost = collective(g, "all_reduce", list(ps[5].chips), 1e9)
    assert cost.algorithm == "torus_rings"  # a 4x4 box: rings in both dimensions


def test_across_servers_only_when_asked():
    g = hgx("h100", num_servers=4)
    with pytest.raises(PlacementError, match=r"needs 16 chips \(tp=16, ep=1, pp=1\).*largest domain has 8"):
        place_replicas(g, 1, tp=16)
    (p,) = place_replicas(g, 1, tp=16, within="any")
    assert {g.nodes[c]["domain"] for c in p.chips} == {0, 1}


def test_ep_and_tp_groups():
    (p,) = place_replicas(trn2(64), 1, tp=4, ep=16)
    assert p.stage_size == 16 and len(p.tp_groups()) == 4 and len(p.ep_groups()) == 1
    with pytest.raises(PlacementError, match="tp=4, ep=6"):
        place_replicas(trn2(64), 1, tp=4, ep=6)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(num_replicas=0, tp=1), "num_replicas=0"),
    (dict(num_replicas=1, tp=3, policy="random"), "policy='random'"),
    (dict(num_replicas=1, tp=2, within="rack"), "within='rack'"),
])
def test_bad_arguments_are_named(kwargs, needle):
    with pytest.raises(PlacementError, match=needle):
        place_replicas(nvl72(), **kwargs)


def test_overlap_is_refused_and_exclude_places_a_second_pool_beside_the_first():
    g = nvl72()
    first = place_replicas(g, 4, tp=8)
    second = place_replicas(g, 2, tp=16, exclude=used_chips(first))
    assert not used_chips(first) & used_chips(second)
    clash = ReplicaPlacement(9, first[0].chips, 8, 1, 1)
    with pytest.raises(PlacementError, match="r0.g0.*replica 0 and replica 9"):
        check_disjoint(first + [clash])


def test_graph_comm_of_a_placed_replica_sees_the_nic_when_spanning_servers():
    g = hgx("h100", num_servers=2)
    inside = GraphComm.build(g, place_replicas(g, 1, tp=8)[0].chips)
    across = GraphComm.build(g, place_replicas(g, 1, tp=16, within="any")[0].chips)
    assert across.all_reduce_s(1e9, 16) > inside.all_reduce_s(1e9, 8)


SYSTEMS = {"nvl72x2": lambda: nvl72(num_racks=2), "hgx4": lambda: hgx("b200", 4),
           "v5p": lambda: tpu_slice("v5p", (8, 8, 4)), "trn2x2": lambda: trn2(64, 2)}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SYSTEMS)), n=st.integers(1, 12), tp=st.sampled_from([1, 2, 4, 8, 16]),
       pp=st.sampled_from([1, 2]), policy=st.sampled_from(["pack", "spread"]), within=st.sampled_from(["domain", "any"]))
def test_placements_are_disjoint_sized_and_on_chips_or_refused(name, n, tp, pp, policy, within):
    g = SYSTEMS[name]()
    try:
        ps = place_replicas(g, n, tp=tp, pp=pp, policy=policy, within=within)
    except PlacementError as err:
        assert str(n) in str(err) or f"tp={tp}" in str(err)
        return
    assert len(ps) == n and all(len(p.chips) == tp * pp for p in ps)
    assert len(used_chips(ps)) == n * tp * pp
    assert all(g.nodes[c]["kind"] == "chip" for p in ps for c in p.chips)
    if within == "domain":
        assert all(len({g.nodes[c]["domain"] for c in p.chips}) == 1 for p in ps)
