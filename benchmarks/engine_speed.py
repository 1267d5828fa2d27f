"""How fast the simulator runs: simulated seconds per wall second and engine steps per second.

Scenario (DESIGN.md's scale arithmetic): Llama-3.1-70B in FP8 on GB200, TP4 replicas,
Poisson chat traffic sized to keep the replicas busy, for `--sim-s` simulated seconds.
Prints wall time, engine steps, SimPy waits saved by fast-forward, requests/s simulated and
peak memory (ru_maxrss). Usage:

    python benchmarks/engine_speed.py                       # 1,152 chips (288 TP4 replicas), 120 s
    python benchmarks/engine_speed.py --replicas 16 --sim-s 600 --no-fast-forward
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=288)
    parser.add_argument("--sim-s", type=float, default=120.0)
    parser.add_argument("--rate-per-replica", type=float, default=1.5, help="requests/s per replica")
    parser.add_argument("--no-fast-forward", action="store_true")
    parser.add_argument("--no-steps", action="store_true", help="do not write steps.arrow")
    args = parser.parse_args()
    scenario = parse_scenario({
        "name": "speed",
        "seed": 1,
        "model": "llama-3.1-70b",
        "deployment": {"chip": "GB200", "num_replicas": args.replicas, "tp": 4, "weight_dtype": "fp8", "kv_dtype": "fp8"},
        "router": {"policy": "least_outstanding_tokens"},
        "engine": {"fast_forward": not args.no_fast_forward},
        "workload": {"kind": "poisson", "rate_per_s": args.rate_per_replica * args.replicas, "duration_s": args.sim_s,
                     "lengths": {"kind": "lognormal", "prompt_tokens": 1155, "output_tokens": 211, "cv": 1.0,
                                 "prompt_tokens_max": 14000, "output_tokens_max": 2000}},
        "run": {"record_steps": not args.no_steps},
    })
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = simulate(scenario, out)
        wall = time.perf_counter() - start
    summary = result.summary
    sim_s = summary["simulated_s"]
    print(f"chips={args.replicas * 4} replicas={args.replicas} fast_forward={not args.no_fast_forward} record_steps={not args.no_steps}")
    print(f"simulated {sim_s:,.1f} s in {wall:,.2f} s wall -> {sim_s / wall:,.1f} simulated s per wall s")
    print(f"engine steps {result.num_steps:,} -> {result.num_steps / wall:,.0f} steps per wall s")
    print(f"requests {result.num_requests:,} -> {result.num_requests / wall:,.0f} per wall s")
    batch = (summary.get("steps") or {}).get("mean_num_seqs_time_weighted")
    print(f"output tokens/s per chip {summary['throughput']['output_tokens_s_per_chip']:,.0f}; "
          f"mean batch {'n/a (no steps.arrow)' if batch is None else f'{batch:.1f}'}; "
          f"TTFT p50 {summary['latency']['ttft_s']['p50'] * 1e3:.0f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    hour_wall = wall * 3600 / sim_s
    print(f"extrapolated: one simulated hour of this cluster takes ~{hour_wall / 60:,.1f} wall minutes")


if __name__ == "__main__":
    main()
