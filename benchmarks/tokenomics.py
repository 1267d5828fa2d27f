"""Tokenomics: cost per query and $/Mtok of chat-length vs reasoning-length outputs.

Same model (Llama-3.1-70B, FP8 weights, BF16 KV), same 1,000-token prompts, offline load
(every request waiting at t = 0, so the replica runs as full as its KV cache allows),
outputs of 200 (chat) vs 4,000 and 8,000 tokens (reasoning), on one replica of each
system with the smallest TP that fits. Long outputs grow the KV footprint of each
request, so fewer fit in a batch; the weights are read once per step whatever the batch,
so each output token carries more of the step's cost: cost per query rises faster than
the output length. Default cost settings of each system (see clustersim/cost/data).

Run: /work/venv/bin/python benchmarks/tokenomics.py   (about 10-30 s)
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
LAYOUTS = (  # (label, chip, tp)
    ("H200 HGX", "H200", 1),
    ("GB200 NVL72", "GB200", 1),
    ("Trainium2 trn2", "Trainium2", 2),
    ("TPU v6e", "TPU v6e", 4),
)


def run_one(chip: str, tp: int, output_tokens: int) -> dict:
    scenario = parse_scenario({
        "name": f"tokenomics-{chip}-{output_tokens}",
        "model": MODEL,
        "deployment": {"chip": chip, "tp": tp, "weight_dtype": "fp8"},
        "workload": {"kind": "offline", "num_requests": NUM_REQUESTS,
                     "lengths": {"kind": "fixed", "prompt_tokens": PROMPT_TOKENS, "output_tokens": output_tokens}},
    })
    with tempfile.TemporaryDirectory() as out:
        return simulate(scenario, out).summary


def main() -> int:
    wall = time.perf_counter()
    header = (f"{'system':<15} {'workload':<13} {'mode':<6} {'$/query':>10} {'x chat':>7} {'batch':>6} {'KV-full':>7} "
              f"{'$/Mtok out':>10} {'$/Mtok all':>10} {'tok/s/chip':>10} {'Mtok/s/MW':>9} {'power':>5}")
    print(header)
    print("-" * len(header))
    for label, chip, tp in LAYOUTS:
        chat_cost = None
        for name, output_tokens in OUTPUTS:
            summary = run_one(chip, tp, output_tokens)
            cost = summary["cost"]
            if not cost.get("available"):
                print(f"{label:<15} {name:<13} cost unavailable: {cost.get('reason')}")
                continue
            per_query = cost["usd_per_request"]["mean"]
            chat_cost = per_query if chat_cost is None else chat_cost
            mw = cost["tokens_s_per_mw"]
            print(
                f"{label:<15} {name:<13} {cost['mode']:<6} {per_query:>10.6f} {per_query / chat_cost:>7.1f} "
                f"{cost['mean_batch_size']:>6.1f} {cost['kv_full_busy_fraction']:>7.0%} {cost['usd_per_mtok_output']:>10.3f} "
                f"{cost['usd_per_mtok_blended']:>10.3f} {cost['tokens_s_per_chip']:>10.0f} "
                f"{(mw or 0) / 1e6:>9.2f} {cost['breakdown']['power_share']:>5.0%}"
            )
    print(f"\noutput length ratio reasoning/chat: 4k -> {4000 / 200:.0f}x, 8k -> {8000 / 200:.0f}x; "
          f"'x chat' is the cost-per-query ratio. wall {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
