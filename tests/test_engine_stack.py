"""A scenario may name the serving stack its replicas run (engine.stack): the replica then
uses that stack's efficiency entry; a stack the chip's family has no entry for is a clean error."""

from __future__ import annotations

import pytest

from clustersim.build import build
from clustersim.errors import ScenarioError
from clustersim.perf.efficiency import load_efficiency_table, load_stack_table, stacks_of
from clustersim.scenario import parse_scenario


def _scenario(chip: str, stack: str) -> dict:
    return {"name": "s", "model": "llama-3.1-8b", "deployment": {"chip": chip, "tp": 1},
            "engine": {"stack": stack}, "workload": {"kind": "poisson", "rate_per_s": 1, "num_requests": 5}}


def test_named_stack_gives_its_factors_and_none_gives_the_family():
    table = load_stack_table()
    stack = stacks_of(table, "google-tpu")[0]  # the packaged table has TPU stacks
    built = build(parse_scenario(_scenario("TPU v6e", stack)))
    assert built.replica.efficiency == table[f"google-tpu/{stack}"]
    plain = build(parse_scenario(_scenario("TPU v6e", "")))
    assert plain.replica.efficiency == load_efficiency_table()["google-tpu"]
    assert built.replica.efficiency.compute != plain.replica.efficiency.compute


def test_unknown_stack_names_the_field_the_value_and_the_valid_ones():
    with pytest.raises(ScenarioError) as error:
        build(parse_scenario(_scenario("H100", "jetstream")))
    message = str(error.value)
    assert "engine.stack='jetstream'" in message and "nvidia-hopper" in message and "valid:" in message
