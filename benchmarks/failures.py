"""Failures checked against arithmetic, then the same fault rates on three deployments.

Run: python benchmarks/failures.py   (part (a) takes a few seconds)

(a) Closed form vs the injector: replicas of n chips, each chip failing at rate lambda =
    1/MTTF (exponential) and repaired in MTTR, no reload. A replica then fails at n x lambda
    (replica MTTF = MTTF / n) and its availability is MTTF_r / (MTTF_r + MTTR) when chips of
    a replica that is already down do not fail; our renewal model keeps every chip's clock
    running, so the exact figure is the product of chip availabilities (MTTF/(MTTF+MTTR))^n.
    Both are printed next to the simulated values over a long horizon.
(b) The same (accelerated) fault rates on a GB200 NVL72 rack, a TPU v7 8x8x8 slice and a
    Trainium2 UltraServer serving the same trace; goodput and availability side by side.
    Each runs through simulate() with the scenario's `failures:` section and reads
    summary["failures"].
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import simpy

from clustersim.failures import EVENTS, FailureClass, ReplicaBlast, failure_summary, sample_faults, start_failures


class _Engine:
    def __init__(self) -> None:
        self.down = False


class _Cluster:
    """Just enough of serving.Cluster for the injector: engines with a down flag."""

    def __init__(self, num_replicas: int) -> None:
        self.engines = [_Engine() for _ in range(num_replicas)]

    def fail(self, r: int) -> None:
        self.engines[r].down = True

    def restore(self, r: int) -> None:
        self.engines[r].down = False


def closed_form_check(num_replicas: int = 50, num_chips: int = 8, mttf_s: float = 1e6, mttr_s: float = 2e4,
                      horizon_s: float = 2e8, seed: int = 1) -> dict[str, float]:
    """Simulated replica MTTF and availability vs closed forms (see module docstring)."""
    chip = FailureClass("chip", "exponential", mttf_s, mttr_s, 0, 0.0)
    blast = ReplicaBlast(num_replicas, num_chips)
    comps = [(c, k) for c, k in blast.components() if k == "chip"]
    faults = sample_faults(seed, comps, {"chip": chip}, horizon_s)
    env = simpy.Environment()
    rows: list[dict] = []
    start_failures(env, _Cluster(num_replicas), faults, blast.effect, lambda r: 0.0, rows.append)
    env.run(until=horizon_s)
    events = pa.Table.from_pylist(rows, schema=EVENTS)
    empty = pa.table({"status": pa.array([], pa.string()), "num_prompt_tokens": pa.array([], pa.int64()),
                      "num_output_tokens": pa.array([], pa.int64())})
    s = failure_summary(events, empty, num_replicas, horizon_s)
    replica_mttf = mttf_s / num_chips
    return {
        "faults": len(faults),
        "replica_mttf_closed_s": replica_mttf,
        "replica_mttf_sim_s": s["observed_replica_mttf_s"],
        "availability_closed_mttf_mttr": replica_mttf / (replica_mttf + mttr_s),
        "availability_closed_product": (mttf_s / (mttf_s + mttr_s)) ** num_chips,
        "availability_sim": s["mean_capacity_online"],
    }


DEPLOYMENTS = {
    # name: (chip, topology file name, tp)  -- same model, same trace, 8 replicas of tp=4
    "GB200 NVL72": ("GB200", "gb200-nvl72", 4),
    "TPU v7 8x8x8": ("TPU v7", "tpu-v7-8x8x8", 4),
    "Trainium2 UltraServer": ("Trainium2", "trn2-ultraserver-64", 4),
}
ACCELERATION = 2000.0  # divide every MTTF by this so an hour of traffic sees faults


def accelerated_classes() -> dict[str, dict[str, float]]:
    """Class overrides: default MTTFs / ACCELERATION, MTTRs of minutes (what-if, not data)."""
    from clustersim.failures.spec import default_class_fields

    return {name: {"mttf_h": f["mttf_h"] / ACCELERATION, "mttr_h": 0.1} for name, f in default_class_fields().items()}


def scenario_for(chip: str, topology: str, tp: int, seed: int = 0) -> dict:
    """Scenario on `topology` with a `failures:` section of accelerated (what-if) rates."""
    return {
        "name": f"failures-{topology}",
        "seed": seed,
        "model": "llama-3.1-70b",
        "deployment": {"chip": chip, "num_replicas": 8, "tp": tp},
        "topology": {"name": topology, "policy": "pack", "within": "domain"},
        "workload": {"kind": "poisson", "rate_per_s": 4.0, "duration_s": 1800.0,
                     "lengths": {"kind": "fixed", "prompt_tokens": 1024, "output_tokens": 256}},
        "run": {"max_sim_s": 1800.0, "record_steps": False},
        "failures": {"enabled": True, "classes": accelerated_classes(), "max_retries": 3},
    }


def run_deployment(data: dict, out: Path) -> tuple[dict, dict]:
    """(summary, failures summary) of one scenario, through simulate()."""
    from clustersim.scenario import parse_scenario
    from clustersim.simulate import simulate

    result = simulate(parse_scenario(data), out)
    return result.summary, result.summary.get("failures", {})


def _goodput(summary: dict) -> float:
    for key in ("slo", "goodput"):
        if isinstance(summary.get(key), dict) and "goodput_output_tokens_s" in summary[key]:
            return summary[key]["goodput_output_tokens_s"] or 0.0
    return math.nan


def deployments_side_by_side() -> None:
    print(f"\n(b) same fault rates (MTTF / {ACCELERATION:g}, MTTR 6 min), llama-3.1-70b, 8 x tp4, Poisson 4/s, 30 min")
    print(f"{'deployment':24s} {'faults':>6s} {'svc avail':>9s} {'capacity':>8s} {'effective':>9s} {'failed req':>10s} "
          f"{'goodput out tok/s':>17s} {'recomputed':>10s}")
    for name, (chip, topology, tp) in DEPLOYMENTS.items():
        with tempfile.TemporaryDirectory() as out:
            summary, f = run_deployment(scenario_for(chip, topology, tp), Path(out) / "run")
        print(f"{name:24s} {f.get('num_faults', 0):6d} {f.get('service_availability', math.nan):9.4f} "
              f"{f.get('mean_capacity_online', math.nan):8.4f} {f.get('mean_effective_capacity', math.nan):9.4f} "
              f"{f.get('num_failed_requests', 0):10d} "
              f"{_goodput(summary):17.1f} {f.get('tokens_recomputed', 0):10d}")
        print(f"{'':24s} faults by class: {f.get('faults_by_class')}")


def main() -> None:
    t0 = time.perf_counter()
    print("(a) replica of n chips, per-chip MTTF 1e6 s, MTTR 2e4 s, 50 replicas x 8 chips, horizon 2e8 s")
    r = closed_form_check()
    print(f"  faults sampled            {r['faults']}")
    print(f"  replica MTTF  closed form {r['replica_mttf_closed_s']:12.1f} s   simulated {r['replica_mttf_sim_s']:12.1f} s")
    print(f"  availability  MTTF/(MTTF+MTTR) {r['availability_closed_mttf_mttr']:.5f}   "
          f"(MTTF_c/(MTTF_c+MTTR))^n {r['availability_closed_product']:.5f}   simulated {r['availability_sim']:.5f}")
    print(f"  ({time.perf_counter() - t0:.1f} s)")
    deployments_side_by_side()


if __name__ == "__main__":
    main()
