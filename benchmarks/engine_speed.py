"""How fast the simulator runs, and whether its memory grows with trace length.

Replays the bundled Azure LLM inference 2023 conversation trace (19,366 real requests,
traces/README.md) `--repeat` times back to back (workload.repeat; 6 copies = 116,196
requests), its arrival gaps scaled so each of `--replicas` replicas (Llama-3.1-8B, H100,
TP1, FP8) gets `--rate-per-replica` requests/s. Prints:

- simulated requests per wall-second (the issue's target: >= 20,000 on one core);
- engine events (SimPy events processed) per wall-second, beside a bare heapq event loop
  doing the same number of events in the same process; their ratio is the simulator's
  overhead per event over the cheapest possible event loop;
- peak RSS of each run, each in a fresh process, for 1x and `--repeat`x the trace: memory
  must not grow with trace length beyond the requests in flight.

These runs write the request records (requests.arrow, summary, cost), as a sweep does. One
more run (skipped with `--no-steps`) also writes steps.arrow, one row per engine step, and
prints its rate: that record costs about as much as the simulation itself.

Usage:

    python benchmarks/engine_speed.py                    # 64 replicas, 6 copies (116k requests)
    python benchmarks/engine_speed.py --replicas 128 --repeat 12 --no-steps
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRACE = Path(__file__).resolve().parent.parent / "traces" / "azure_llm_2023_conv.csv"
TRACE_RATE_PER_S = 19366 / 3501.7  # the trace's own mean arrival rate (traces/README.md)


def scenario_dict(replicas: int, repeat: int, rate_per_replica: float, steps: bool, fast_forward: bool) -> dict:
    return {
        "name": "engine-speed",
        "seed": 1,
        "model": "llama-3.1-8b",
        "deployment": {"chip": "H100", "num_replicas": replicas, "tp": 1, "weight_dtype": "fp8", "kv_dtype": "fp8"},
        "router": {"policy": "least_outstanding_tokens"},
        "engine": {"fast_forward": fast_forward},
        "workload": {"kind": "trace", "path": str(TRACE), "repeat": repeat,
                     "time_scale": TRACE_RATE_PER_S / (rate_per_replica * replicas)},
        "run": {"record_steps": steps},
    }


def bare_heapq_events_per_s(num_events: int) -> float:
    """The cheapest discrete-event loop: a heap of (time, id, callback), one pop and one push
    per event, a no-op callback; the same count of events as the simulation processed."""
    rng = random.Random(0)
    heap = [(rng.random(), i, None) for i in range(1024)]
    heapq.heapify(heap)
    next_id = len(heap)
    start = time.perf_counter()
    for _ in range(num_events):
        now, _, callback = heapq.heappop(heap)
        if callback is not None:
            callback()
        heapq.heappush(heap, (now + rng.random(), next_id, None))
        next_id += 1
    return num_events / (time.perf_counter() - start)


def run_once(args: argparse.Namespace, repeat: int) -> dict:
    """One simulation in this process; returns its figures."""
    from clustersim.scenario import parse_scenario
    from clustersim.simulate import simulate
    import simpy

    scenario = parse_scenario(scenario_dict(args.replicas, repeat, args.rate_per_replica, args.child_steps,
                                            not args.no_fast_forward))
    events = {"count": 0}
    original_step = simpy.Environment.step

    def counting_step(env: simpy.Environment) -> None:
        events["count"] += 1
        original_step(env)

    simpy.Environment.step = counting_step  # counts every event the run processes
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = simulate(scenario, out)
            wall = time.perf_counter() - start
    finally:
        simpy.Environment.step = original_step
    summary = result.summary
    return {
        "repeat": repeat,
        "requests": result.num_requests,
        "wall_s": wall,
        "simulated_s": summary["simulated_s"],
        "steps": result.num_steps,
        "events": events["count"],
        "out_tok_s_per_chip": summary["throughput"]["output_tokens_s_per_chip"],
        "ttft_p50_ms": summary["latency"]["ttft_s"]["p50"] * 1e3,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_fresh_process(args: argparse.Namespace, repeat: int, record_steps: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", "--replicas", str(args.replicas), "--repeat", str(repeat),
               "--rate-per-replica", str(args.rate_per_replica)]
    command += ["--child-steps"] * record_steps + ["--no-fast-forward"] * args.no_fast_forward
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=6, help="copies of the 19,366-request trace")
    parser.add_argument("--rate-per-replica", type=float, default=8.0, help="requests/s per replica")
    parser.add_argument("--no-fast-forward", action="store_true")
    parser.add_argument("--no-steps", action="store_true",
                        help="skip the extra run that also writes steps.arrow (one row per engine step)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-steps", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args, args.repeat)))
        return
    print(f"{args.replicas} replicas (Llama-3.1-8B FP8, H100 TP1), {args.rate_per_replica} req/s each, "
          f"fast_forward={not args.no_fast_forward}; request records (requests.arrow, summary, cost)")
    runs = [in_fresh_process(args, 1)] + ([in_fresh_process(args, args.repeat)] if args.repeat > 1 else [])
    for run in runs:
        print(f"  trace x{run['repeat']}: {run['requests']:,} requests, {run['simulated_s']:,.0f} simulated s in "
              f"{run['wall_s']:.2f} s wall; {run['out_tok_s_per_chip']:,.0f} output tok/s per chip, "
              f"TTFT p50 {run['ttft_p50_ms']:.0f} ms; peak RSS {run['peak_rss_mib']:,.0f} MiB")
    big = runs[-1]
    heapq_rate = bare_heapq_events_per_s(big["events"])
    sim_rate = big["events"] / big["wall_s"]
    print(f"simulated requests per wall-second: {big['requests'] / big['wall_s']:,.0f}  (target >= 20,000)")
    print(f"engine steps {big['steps']:,} -> {big['steps'] / big['wall_s']:,.0f} per wall-second")
    print(f"events: simulator {sim_rate:,.0f}/s vs bare heapq loop {heapq_rate:,.0f}/s over {big['events']:,} events "
          f"-> ratio {heapq_rate / sim_rate:,.1f}x")
    if len(runs) > 1:
        growth = runs[-1]["peak_rss_mib"] - runs[0]["peak_rss_mib"]
        print(f"peak RSS x1 {runs[0]['peak_rss_mib']:,.0f} MiB -> x{args.repeat} {runs[-1]['peak_rss_mib']:,.0f} MiB "
              f"({growth:+,.0f} MiB for {runs[-1]['requests'] - runs[0]['requests']:,} more requests)")
    if not args.no_steps:
        steps = in_fresh_process(args, args.repeat, record_steps=True)
        print(f"with steps.arrow too ({steps['steps']:,} step rows): {steps['requests'] / steps['wall_s']:,.0f} "
              f"simulated requests per wall-second; peak RSS {steps['peak_rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()
