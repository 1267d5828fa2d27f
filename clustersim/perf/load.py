"""What one engine step asks of the hardware, in aggregate.

The batcher sums per-request quantities into a `BatchLoad`, so the step-time model is
O(1) in the number of requests. For a request computing `n` new tokens on top of `c`
tokens already in its KV cache (a prefill chunk has n >= 1, a decode step n = 1):

- num_tokens          += n                       (rows through every linear layer)
- attn_pairs          += n*c + n*(n+1)/2         (query-key pairs, causal, summed over layers later)
- kv_read_tokens      += c + n                   (KV entries read by attention, per layer)
- num_seqs            += 1
- num_sampled         += 1 if the step ends with a new token for it (decode, or last prefill chunk)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BatchLoad:
    """Aggregate work of one step on one replica (see module docstring for the sums)."""

    num_tokens: int = 0
    num_prefill_tokens: int = 0
    num_seqs: int = 0
    num_sampled: int = 0
    attn_pairs: float = 0.0
    kv_read_tokens: int = 0

    @staticmethod
    def of_request(num_new: int, num_cached: int, is_prefill: bool, samples: bool) -> "BatchLoad":
        """The load of one request computing num_new tokens after num_cached cached ones.

        >>> BatchLoad.of_request(num_new=3, num_cached=10, is_prefill=True, samples=True)
        BatchLoad(num_tokens=3, num_prefill_tokens=3, num_seqs=1, num_sampled=1, attn_pairs=36.0, kv_read_tokens=13)
        """
        pairs = num_new * num_cached + num_new * (num_new + 1) / 2
        return BatchLoad(
            num_tokens=num_new,
            num_prefill_tokens=num_new if is_prefill else 0,
            num_seqs=1,
            num_sampled=int(samples),
            attn_pairs=pairs,
            kv_read_tokens=num_cached + num_new,
        )
