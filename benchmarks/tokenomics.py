"""Tokenomics: cost per query and $/Mtok of chat-length vs reasoning-length outputs.

Same model (Llama-3.1-70B, FP8 weights, BF16 KV), same 1,000-token prompts, offline load
(every request waiting at t = 0, so the replica runs as full as its KV cache allows),
outputs of 200 (chat) vs 4,000 and 8,000 tokens (reasoning), on one replica of each
system with the smallest TP that fits. Long outputs grow the KV footprint of each
request, so fewer fit in a batch; the weights are read once per step whatever the batch,
so each output token carries more of the step's cost: cost per query rises faster than
the output length. Default cost settings of each system (see clustersim/cost/data).

Where the cost goes (the summary's `breakdown`): capex (amortized purchase), power (energy x
PUE x $/kWh), opex, rental ($ per chip-hour, rental mode: TPU and Trainium by default); these
add up to 100%. "idle" is an overlapping view: the share of the total that paid for chip-time
that ran no step (the time-proportional cost x idle fraction), whatever its kind.

A second table serves the same requests online (Poisson arrivals at half of each offline
run's request rate): the replica idles part of the time, and the idle-capacity share shows
what that spare capacity costs.

Run: /work/venv/bin/python benchmarks/tokenomics.py   (about 20-60 s)
"""

from __future__ import annotations

import sys
import tempfile
import time

from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate

MODEL = "llama-3.1-70b"
PROMPT_TOKENS = 1000
OUTPUTS = (("chat", 200), ("reasoning-4k", 4000), ("reasoning-8k", 8000))
NUM_REQUESTS = 512
ONLINE_LOAD = 0.5
LAYOUTS = (  # (label, chip, tp)
    ("H200 HGX", "H200", 1),
    ("GB200 NVL72", "GB200", 1),
    ("Trainium2 trn2", "Trainium2", 2),
    ("TPU v6e", "TPU v6e", 4),
)


def run_one(chip: str, tp: int, output_tokens: int, rate_per_s: float | None = None) -> dict:
    """Offline (all requests at t = 0) or, with rate_per_s, Poisson arrivals at that rate."""
    workload = {"kind": "offline"} if rate_per_s is None else {"kind": "poisson", "rate_per_s": rate_per_s}
    scenario = parse_scenario({
        "name": f"tokenomics-{chip}-{output_tokens}",
        "model": MODEL,
        "deployment": {"chip": chip, "tp": tp, "weight_dtype": "fp8"},
        "workload": {**workload, "num_requests": NUM_REQUESTS,
                     "lengths": {"kind": "fixed", "prompt_tokens": PROMPT_TOKENS, "output_tokens": output_tokens}},
    })
    with tempfile.TemporaryDirectory() as out:
        return simulate(scenario, out).summary


SHARES = ("capex_share", "power_share", "opex_share", "rental_share")


def _pct(x: float | None) -> str:
    return f"{'n/a':>5}" if x is None else f"{x:>5.0%}"


def cost_split(breakdown: dict) -> str:
    """Shares of the total: capex, power, opex, rental (these sum to 1) | idle capacity (an
    overlapping view: the part of the total that paid for chip-time with no step running)."""
    return " ".join(_pct(breakdown.get(k)) for k in SHARES) + " | " + _pct(breakdown.get("idle_capacity_share"))


HEADER = (f"{'system':<15} {'workload':<13} {'mode':<6} {'$/query':>10} {'x chat':>7} {'batch':>6} {'KV-full':>7} "
          f"{'$/Mtok out':>10} {'$/Mtok all':>10} {'tok/s/chip':>10} {'Mtok/s/MW':>9} "
          f"{'capex':>5} {'power':>5} {'opex':>5} {'rent':>5} | {'idle':>5}")


def row(label: str, name: str, cost: dict, chat_cost: float) -> str:
    per_query = cost["usd_per_request"]["mean"]
    mw = cost["tokens_s_per_mw"]
    return (
        f"{label:<15} {name:<13} {cost['mode']:<6} {per_query:>10.6f} {per_query / chat_cost:>7.1f} "
        f"{cost['mean_batch_size']:>6.1f} {cost['kv_full_busy_fraction']:>7.0%} {cost['usd_per_mtok_output']:>10.3f} "
        f"{cost['usd_per_mtok_blended']:>10.3f} {cost['tokens_s_per_chip']:>10.0f} "
        f"{(mw or 0) / 1e6:>9.2f} {cost_split(cost['breakdown'])}"
    )


def table(title: str, load: float | None) -> None:
    """One row per layout and output length. load None: offline; else Poisson arrivals at
    `load` x the offline run's measured request rate (so part of the time the chips idle)."""
    print(f"\n{title}\n{HEADER}\n{'-' * len(HEADER)}")
    for label, chip, tp in LAYOUTS:
        chat_cost = None
        for name, output_tokens in OUTPUTS:
            cost = run_one(chip, tp, output_tokens)["cost"]
            if load is not None and cost.get("available"):
                cost = run_one(chip, tp, output_tokens, rate_per_s=load * NUM_REQUESTS / cost["window_s"])["cost"]
            if not cost.get("available"):
                print(f"{label:<15} {name:<13} cost unavailable: {cost.get('reason')}")
                continue
            chat_cost = cost["usd_per_request"]["mean"] if chat_cost is None else chat_cost
            print(row(label, name, cost, chat_cost))


def main() -> int:
    wall = time.perf_counter()
    table("offline: every request waiting at t = 0 (replicas as full as KV allows)", None)
    table(f"online: Poisson arrivals at {ONLINE_LOAD:.0%} of each offline run's request rate", ONLINE_LOAD)
    print(f"\noutput length ratio reasoning/chat: 4k -> {4000 / 200:.0f}x, 8k -> {8000 / 200:.0f}x; "
          f"'x chat' is the cost-per-query ratio.\n"
          "capex/power/opex/rent: shares of the total cost (sum 100%); idle: share of the total that paid for "
          "chip-time running no step (overlaps the others). Online at half the request rate the replicas still run a\n"
          "step nearly all the time, with smaller batches (a memory-bound decode step costs about the same at any\n"
          "batch), so idle stays small and the spare capacity shows as a higher $/query, not as idle share.\n"
          f"wall {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
