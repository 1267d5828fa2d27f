"""Requests: what arrives (`RequestSpec`, immutable) and what a replica tracks (`Request`).

Batching follows vLLM v1: no prefill/decode phases. A request knows `num_tokens`
(prompt + tokens generated so far) and `num_computed_tokens` (tokens whose KV is in the
cache); a step lets the second catch up under a token budget. Chunked prefill is a
partial catch-up; preemption (recompute) resets `num_computed_tokens` to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    """Terminal status of a request record."""

    FINISHED = "finished"
    REJECTED = "rejected"  # can never fit on any replica (prompt + output > KV capacity or context)
    FAILED = "failed"  # lost to a failure after its retries ran out
    UNFINISHED = "unfinished"  # still queued or running when the simulation horizon ended


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request as the workload produces it: when it arrives and how long it is."""

    request_id: int
    arrival_s: float
    num_prompt_tokens: int
    num_output_tokens: int
    client_id: int = -1  # closed-loop client that sent it, -1 for open loop


@dataclass(slots=True)
class Request:
    """A request's live state inside the serving system (owned by one replica at a time)."""

    spec: RequestSpec
    replica: int = -1
    num_computed_tokens: int = 0
    num_generated: int = 0
    first_token_s: float = float("nan")
    finish_s: float = float("nan")
    num_preemptions: int = 0
    num_retries: int = 0
    status: Status | None = None
    num_kv_blocks: int = 0  # KV blocks it holds on its replica (kept by KVCache)
    lazy_base: int = -1  # -1, or its replica's DecodeGroup clock its counts are stored at

    @property
    def request_id(self) -> int:
        return self.spec.request_id

    @property
    def num_tokens(self) -> int:
        """Tokens known so far: the prompt plus every generated token."""
        return self.spec.num_prompt_tokens + self.num_generated

    @property
    def is_prefilling(self) -> bool:
        return self.num_computed_tokens < self.spec.num_prompt_tokens

    @property
    def done(self) -> bool:
        return self.num_generated >= self.spec.num_output_tokens
