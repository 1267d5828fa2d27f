"""Cost, power and tokenomics (clustersim.cost): hand arithmetic, properties, whole runs."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.catalog import load_catalog
from clustersim.cost import (
    CostConfig,
    capital_recovery_factor,
    load_systems,
    plan_facility,
    system_hour_usd,
    write_cost_trace,
)
from clustersim.errors import ScenarioError
from clustersim.records import REQUESTS, STEPS, ArrowWriter
from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate
from cli_harness import cli

# A made-up 8-chip system with round numbers (every figure overridden).
HAND = {
    "capex_chips_usd": 315576.0, "capex_hosts_usd": 0.0, "capex_switches_usd": 0.0, "capex_network_usd": 0.0,
    "capex_rack_usd": 0.0, "lifetime_years": 5, "cost_of_capital": 0.0, "chip_idle_w": 100.0, "chip_max_w": 700.0,
    "fixed_w": 2000.0, "opex_usd_per_year": 0.0, "rental_usd_per_chip_hour": 2.0,
}


def _cfg(**kw) -> CostConfig:
    base = {"system": "hgx-h100", "mode": "capex", "pue": 1.25, "electricity_usd_per_kwh": 0.1, "bucket_s": 3600.0, "overrides": HAND}
    return CostConfig.model_validate(base | kw)


def _built(num_replicas: int = 1, tp: int = 8, chip: str = "H100") -> SimpleNamespace:
    scenario = parse_scenario({"deployment": {"chip": chip, "tp": tp, "num_replicas": num_replicas}, "model": "llama-3.1-8b"})
    return SimpleNamespace(
        scenario=scenario, chip=load_catalog().chip(chip), replica=SimpleNamespace(num_chips=tp),
    )


def _write_run(run_dir: Path, steps: list[tuple[float, int, float, float]], requests: list[tuple[float, int, int]] = ()) -> None:
    """steps: (start_s, replica, step_s, util); requests: (first_token_s, prompt, generated)."""
    n = len(steps)
    with ArrowWriter(run_dir / "steps.arrow", STEPS) as w:
        if n:
            start, replica, dur, util = (np.array(c) for c in zip(*steps, strict=True))
            w.extend({
                "start_s": start, "replica": replica.astype(np.int32), "step_s": dur, "num_seqs": np.ones(n, np.int32),
                "num_prefill_tokens": np.zeros(n, np.int32), "num_decode_tokens": np.ones(n, np.int32),
                "flops": np.zeros(n), "hbm_bytes": np.zeros(n), "compute_util": util.astype(np.float32),
                "hbm_util": util.astype(np.float32), "kv_blocks_used": np.zeros(n, np.int32),
                "kv_blocks_total": np.full(n, 10, np.int32), "num_waiting": np.zeros(n, np.int32),
                "num_sampled": np.ones(n, np.int32),
            })
    with ArrowWriter(run_dir / "requests.arrow", REQUESTS) as w:
        for i, (first, prompt, generated) in enumerate(requests):
            w.append(request_id=i, client_id=-1, replica=0, status="finished", arrival_s=0.0, first_token_s=first,
                     finish_s=first, num_prompt_tokens=prompt, num_output_tokens=generated, num_generated_tokens=generated,
                     num_preemptions=0, num_retries=0, ttft_s=first, tpot_s=math.nan, e2e_s=first)


def _table(run_dir: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(run_dir / "cost.arrow"))).read_all()


# -- hand arithmetic ---------------------------------------------------------------------------

def test_capital_recovery_factor_by_hand():
    # r (1+r)^n / ((1+r)^n - 1) with r = 0.08, n = 5: 1.08^5 = 1.4693280768
    assert capital_recovery_factor(0.08, 5) == pytest.approx(0.08 * 1.4693280768 / 0.4693280768, rel=1e-9)
    assert capital_recovery_factor(0.0, 4) == 0.25


def test_one_system_hour_by_hand():
    # capex: $315,576 over 5 years at 0 % = $63,115.2 a year / 8,766 h = $7.20 an hour.
    # power at activity 0.5: 8 x (100 + 600 x 0.5) W + 2,000 W fixed = 5,200 W; x PUE 1.25 = 6.5 kW;
    # 6.5 kWh x $0.10 = $0.65.
    c = system_hour_usd(capex_usd=315576.0, cost_of_capital=0.0, lifetime_years=5, num_chips=8, chip_idle_w=100.0,
                        chip_max_w=700.0, fixed_w=2000.0, activity=0.5, pue=1.25, usd_per_kwh=0.1)
    assert c["capex_usd"] == pytest.approx(7.2, rel=1e-12)
    assert c["power_usd"] == pytest.approx(0.65, rel=1e-12)
    assert c["energy_j"] == pytest.approx(6500 * 3600, rel=1e-12)


def test_trace_one_system_hour_half_busy_by_hand(tmp_path):
    # one 8-chip replica, busy at utilization 1.0 for the first 1,800 s of a 3,600 s bucket:
    # chips 8 x 100 W x 3,600 s + 8 x 600 W x 1,800 s = 2.88 MJ + 8.64 MJ; fixed 2,000 W x 3,600 s = 7.2 MJ
    # IT 18.72 MJ x 1.25 = 23.4 MJ = 6.5 kWh -> $0.65; capex $7.20.
    # idle: half the chip-seconds idle x (capex 7.20 + idle+fixed power (0.8 + 2.0) kW x 1.25 x 1 h x $0.1 = 0.35) = 3.775
    _write_run(tmp_path, [(float(t), 0, 1.0, 1.0) for t in range(1800)])
    cost = write_cost_trace(tmp_path, _built(), _cfg(), end_s=3600.0)
    row = _table(tmp_path).to_pylist()
    assert len(row) == 1
    assert row[0]["energy_j"] == pytest.approx(23.4e6, rel=1e-9)
    assert row[0]["power_usd"] == pytest.approx(0.65, rel=1e-9)
    assert row[0]["capex_usd"] == pytest.approx(7.2, rel=1e-9)
    assert row[0]["idle_usd"] == pytest.approx(3.775, rel=1e-9)
    assert row[0]["facility_power_w"] == pytest.approx(6500.0, rel=1e-9)
    assert cost["busy_fraction"] == pytest.approx(0.5)
    assert cost["usd_total"] == pytest.approx(7.85, rel=1e-9)


def test_plan_facility_by_hand():
    # GB200 NVL72: peak 72 x 1,200 W + 45,600 W = 132 kW, x PUE 1.2 = 158.4 kW -> floor(50 MW / 158.4 kW) = 315 racks
    gb = load_systems()[0]["gb200-nvl72"]
    plan = plan_facility(50.0, gb, tokens_s_per_system=1e5, target_load=0.5, activity=1.0)
    assert plan.num_systems == 315 and plan.num_chips == 315 * 72
    assert plan.tokens_s == pytest.approx(315 * 1e5 * 0.5)
    # at half load each chip draws 240 + 960 x 0.5 = 720 W
    assert plan.it_power_w_at_load == pytest.approx(315 * (72 * 720 + 45600))


# -- properties --------------------------------------------------------------------------------

step_lists = st.lists(
    st.tuples(st.floats(0.0, 3.0), st.floats(0.001, 2.5), st.floats(0.0, 1.0), st.integers(0, 1)), min_size=0, max_size=40,
)


def _steps_from(spec: list[tuple[float, float, float, int]]) -> list[tuple[float, int, float, float]]:
    clock = [0.0, 0.0]
    out = []
    for gap, dur, util, replica in spec:
        start = clock[replica] + gap
        out.append((start, replica, dur, util))
        clock[replica] = start + dur
    return out


@settings(max_examples=40, deadline=None)
@given(spec=step_lists, bucket_s=st.floats(0.3, 20.0), price=st.floats(0.0, 0.5), mode=st.sampled_from(["capex", "rental"]))
def test_cost_nonnegative_additive_and_monotone_in_price(spec, bucket_s, price, mode):
    steps = _steps_from(spec)
    end_s = max([s + d for s, _, d, _ in steps], default=0.0) + 1.0
    built = _built(num_replicas=2, tp=4)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        _write_run(run, steps)
        fine = write_cost_trace(run, built, _cfg(mode=mode, bucket_s=bucket_s, electricity_usd_per_kwh=price), end_s=end_s)
        table = _table(run)
        whole = write_cost_trace(run, built, _cfg(mode=mode, bucket_s=10 * end_s, electricity_usd_per_kwh=price), end_s=end_s)
        dear = write_cost_trace(run, built, _cfg(mode=mode, bucket_s=bucket_s, electricity_usd_per_kwh=2 * price), end_s=end_s)
    for col in ("capex_usd", "power_usd", "opex_usd", "rental_usd", "idle_usd", "total_usd", "energy_j"):
        assert min(table.column(col).to_pylist()) >= 0.0
    assert sum(table.column("duration_s").to_pylist()) == pytest.approx(end_s)
    assert fine["usd_total"] == pytest.approx(whole["usd_total"], rel=1e-9, abs=1e-15)
    assert fine["energy_j"] == pytest.approx(whole["energy_j"], rel=1e-9)
    assert dear["usd_total"] >= fine["usd_total"]


@settings(max_examples=25, deadline=None)
@given(spec=step_lists, rate=st.floats(0.01, 20.0), num_replicas=st.integers(1, 3))
def test_rental_cost_is_chip_hours_times_rate(spec, rate, num_replicas):
    steps = [s for s in _steps_from(spec) if s[1] < num_replicas]
    end_s = max([s + d for s, _, d, _ in steps], default=0.0) + 0.5
    cfg = _cfg(mode="rental", overrides=HAND | {"rental_usd_per_chip_hour": rate}, bucket_s=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        _write_run(Path(tmp), steps)
        cost = write_cost_trace(Path(tmp), _built(num_replicas=num_replicas, tp=4), cfg, end_s=end_s)
    chip_hours = num_replicas * 4 * end_s / 3600.0
    assert cost["usd_total"] == pytest.approx(chip_hours * rate, rel=1e-12)
    assert cost["breakdown"]["rental_usd"] == pytest.approx(cost["usd_total"], rel=1e-12)
    assert cost["breakdown"]["power_usd"] == 0.0


def _run(tmp: str, scenario: dict) -> dict:
    return simulate(parse_scenario(scenario), tmp).summary


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31), bucket_s=st.floats(0.05, 5.0), horizon=st.sampled_from([None, 3.0]))
def test_bucket_tokens_sum_to_requests_table(seed, bucket_s, horizon):
    scenario = {
        "seed": seed, "model": "llama-3.1-8b", "deployment": {"chip": "H100", "num_replicas": 2},
        "workload": {"kind": "poisson", "rate_per_s": 20, "num_requests": 60,
                     "lengths": {"kind": "lognormal", "prompt_tokens": 500, "output_tokens": 100, "cv": 1.0}},
        "run": {"max_sim_s": horizon}, "cost": {"bucket_s": bucket_s},
    }
    with tempfile.TemporaryDirectory() as tmp:
        summary = _run(tmp, scenario)
        cost = pa.ipc.open_file(pa.memory_map(f"{tmp}/cost.arrow")).read_all()
        req = pa.ipc.open_file(pa.memory_map(f"{tmp}/requests.arrow")).read_all()
    first = np.isfinite(req.column("first_token_s").to_numpy())
    assert sum(cost.column("tokens_in").to_pylist()) == int(np.asarray(req.column("num_prompt_tokens"))[first].sum())
    assert sum(cost.column("tokens_out").to_pylist()) == sum(req.column("num_generated_tokens").to_pylist())
    if sum(req.column("num_preemptions").to_pylist()) == 0:
        assert summary["cost"]["tokens_out_resampled"] == 0  # every token found at its step


def test_without_steps_cost_comes_from_engine_busy_time(tmp_path):
    scenario = {"deployment": {"chip": "H200"}, "run": {"record_steps": False},
                "workload": {"kind": "offline", "num_requests": 20}}
    summary = _run(str(tmp_path), scenario)
    cost = summary["cost"]
    assert cost["available"] and cost["num_buckets"] == 1
    assert cost["tokens_out"] == 20 * 256
    assert 0 < cost["busy_fraction"] <= 1


# -- scenario boundary -------------------------------------------------------------------------

def test_cost_config_errors_name_the_field():
    with pytest.raises(ScenarioError, match="cost.*nope"):
        parse_scenario({"cost": {"system": "nope"}})
    with pytest.raises(ScenarioError, match="rental"):
        parse_scenario({"cost": {"system": "tpu-v6e-host", "mode": "capex"}})
    assert parse_scenario({"cost": {"system": "tpu-v6e-host", "mode": "capex", "overrides": HAND}}).cost.mode == "capex"


def test_every_default_has_a_source_and_date():
    systems, chip_map = load_systems()
    for system in systems.values():
        assert {f for f, _, _, _ in system.sources} >= {"lifetime_years", "chip_max_w", "rental_usd_per_chip_hour"}
        assert all(src and date for _, _, src, date in system.sources)
    for name in ("tpu-v5e-host", "tpu-v6e-host", "tpu-v7-host", "trn2-server"):
        assert systems[name].default_mode == "rental" and systems[name].rental_usd_per_chip_hour
    assert set(chip_map) >= {"H200", "GB200", "Trainium2", "TPU v6e"}


# -- tokenomics --------------------------------------------------------------------------------

def test_reasoning_costs_more_per_query_than_output_ratio_when_kv_limits_batch(tmp_path):
    # Llama-3.1-8B on one H100 (~420k KV tokens): 256 chat requests (1k in / 200 out) fit in one
    # batch; reasoning requests (1k in / 4k out) do not, so the batch shrinks and the weights
    # read per step are shared by fewer output tokens.
    def one(output_tokens: int, where: str) -> dict:
        return _run(str(tmp_path / where), {
            "model": "llama-3.1-8b", "deployment": {"chip": "H100"},
            "workload": {"kind": "offline", "num_requests": 256,
                         "lengths": {"kind": "fixed", "prompt_tokens": 1000, "output_tokens": output_tokens}},
        })["cost"]

    chat, reasoning = one(200, "chat"), one(4000, "reasoning")
    ratio = reasoning["usd_per_request"]["mean"] / chat["usd_per_request"]["mean"]
    assert ratio > 4000 / 200
    assert reasoning["mean_batch_size"] < chat["mean_batch_size"]
    assert reasoning["kv_full_busy_fraction"] > chat["kv_full_busy_fraction"]
    assert reasoning["usd_per_mtok_output"] > chat["usd_per_mtok_output"]


def test_whole_systems_bill_unused_chips_as_idle_capacity(tmp_path):
    # one 8-chip replica busy all the time, billed as a whole 72-chip NVL72 rack:
    # busy fraction 8 / 72; idle share of the time-proportional cost 64 / 72.
    _write_run(tmp_path, [(float(t), 0, 1.0, 1.0) for t in range(100)])
    cfg = CostConfig.model_validate({"system": "gb200-nvl72", "whole_systems": True, "bucket_s": 1000.0})
    cost = write_cost_trace(tmp_path, _built(chip="GB200"), cfg, end_s=100.0)
    assert cost["num_chips_billed"] == 72 and cost["num_systems"] == 1
    assert cost["busy_fraction"] == pytest.approx(8 / 72)
    shared = CostConfig.model_validate({"system": "gb200-nvl72", "bucket_s": 1000.0})
    pro_rata = write_cost_trace(tmp_path, _built(chip="GB200"), shared, end_s=100.0)
    assert pro_rata["num_chips_billed"] == 8 and pro_rata["busy_fraction"] == pytest.approx(1.0)
    assert cost["usd_total"] > 8 * pro_rata["usd_total"]  # 9x the capex, more than 8x the power


# ---------------------------------------------------------------- bad inputs: one clear line, before simulating


def test_system_chip_must_match_the_deployment_chip(tmp_path):
    from clustersim.cost import resolve_system

    h100 = load_catalog().chip("H100")
    with pytest.raises(ScenarioError) as err:
        resolve_system(CostConfig.model_validate({"system": "tpu-v7-host"}), h100, 8)
    message = str(err.value)
    assert "cost.system='tpu-v7-host'" in message and "TPU v7" in message and "deployment.chip='H100'" in message
    assert "hgx-h100" in message  # the valid choice for this chip
    _write_run(tmp_path, [(0.0, 0, 1.0, 1.0)])
    cfg = CostConfig.model_validate({"system": "tpu-v7-host", "mode": "rental"})
    with pytest.raises(ScenarioError, match="holds TPU v7 chips but deployment.chip='H100'"):
        write_cost_trace(tmp_path, _built(), cfg, end_s=1.0)  # never billed at the TPU rate
    assert resolve_system(CostConfig.model_validate({"system": "hgx-h100"}), h100, 8).system.name == "hgx-h100"


def test_power_budget_holding_no_system_is_an_error():
    from clustersim.cost.systems import check_power_budget

    h200 = load_systems()[0]["hgx-h200"]
    # one system: (8 x 700 W + 4,600 W) x PUE 1.3 = 13,260 W = 0.01326 MW
    assert check_power_budget(0.01326, h200, 1.3, "x") == 1
    assert check_power_budget(1.0, h200, 1.3, "x") == 75  # floor(1e6 / 13,260)
    with pytest.raises(ScenarioError, match=r"x=0.0132 holds no hgx-h200 system: one needs 0.01326 MW"):
        check_power_budget(0.0132, h200, 1.3, "x")
    for bad in (math.inf, math.nan, 0.0, -1.0):
        with pytest.raises(ScenarioError, match=r"must be a finite number of MW > 0"):
            check_power_budget(bad, h200, 1.3, "x")
    with pytest.raises(ScenarioError, match="holds no"):
        plan_facility(1e-9, h200, tokens_s_per_system=1.0)


def test_scenario_facility_budget_must_be_finite_and_hold_a_system():
    with pytest.raises(ScenarioError, match="cost.facility_power_mw"):
        parse_scenario({"cost": {"facility_power_mw": math.inf}})
    with pytest.raises(ScenarioError, match=r"facility_power_mw=1e-06 holds no hgx-h200 system"):
        parse_scenario({"deployment": {"chip": "H200"}, "cost": {"system": "hgx-h200", "facility_power_mw": 1e-6}})


@pytest.mark.parametrize(
    "power,needles",
    [
        ("inf", ["--power-mw=inf", "finite"]),
        ("nan", ["--power-mw=nan", "finite"]),
        ("0", ["--power-mw=0", "> 0"]),
        ("1e-9", ["--power-mw=1e-09 holds no hgx-h200 system", "0.01326 MW"]),  # 13.26 kW per system, as above
    ],
)
def test_plan_cli_checks_the_budget_before_simulating(tmp_path, capsys, monkeypatch, power, needles):
    import clustersim.simulate

    def no_run(*args, **kwargs):
        raise AssertionError("simulated before checking --power-mw")

    monkeypatch.setattr(clustersim.simulate, "simulate", no_run)
    path = tmp_path / "s.yaml"
    path.write_text("model: llama-3.1-8b\ndeployment: {chip: H200}\nworkload: {kind: offline, num_requests: 4}\n")
    code, out, err = cli(["plan", str(path), "--power-mw", power], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert all(n in err for n in needles), err


def test_plan_cli_rejects_a_system_of_another_chip_before_simulating(tmp_path, capsys, monkeypatch):
    import clustersim.simulate

    monkeypatch.setattr(clustersim.simulate, "simulate", lambda *a, **k: pytest.fail("simulated"))
    path = tmp_path / "s.yaml"
    path.write_text("model: llama-3.1-8b\ndeployment: {chip: H100}\nworkload: {kind: offline, num_requests: 4}\n"
                    "cost: {system: tpu-v7-host}\n")
    code, _, err = cli(["plan", str(path), "--power-mw", "1"], capsys)
    assert code == 2 and "cost.system='tpu-v7-host' holds TPU v7 chips but deployment.chip='H100'" in err


def test_plan_cli_good_budget_plans_the_facility(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("model: llama-3.1-8b\ndeployment: {chip: H200}\nworkload: {kind: offline, num_requests: 8, "
                    "lengths: {kind: fixed, prompt_tokens: 100, output_tokens: 10}}\n")
    code, out, err = cli(["plan", str(path), "--power-mw", "1"], capsys)
    assert code == 0, err
    assert "75 / 600" in out  # floor(1 MW / 13.26 kW) = 75 HGX H200 systems x 8 GPUs
