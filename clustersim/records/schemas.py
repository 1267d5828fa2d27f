"""Declared Arrow schemas of the record files a run writes, with units in column names.

Times are seconds of simulated time since the start of the run (`_s`); missing times are
NaN, never null. Each field also carries its description in the field metadata
(`b"description"`), so a reader of the file sees the same text as this table.

``requests.arrow`` — one row per request, written when the request reaches a terminal
status (`clustersim.serving.request.Status`):

==================== ======= ==================================================================
column               type    meaning
==================== ======= ==================================================================
request_id           int64   id from the workload, unique in a run
client_id            int64   closed-loop client that sent it, -1 for open-loop arrivals
replica              int32   replica that last held it, -1 if it never reached one
status               string  finished, rejected, failed or unfinished (the `Status` values)
arrival_s            float64 time it arrived at the router
first_token_s        float64 time its first output token was produced; NaN if none was
finish_s             float64 time its last output token was produced; NaN unless finished
num_prompt_tokens    int64   prompt length in tokens
num_output_tokens    int64   output tokens requested by the workload
num_generated_tokens int64   output tokens actually produced (< requested unless finished)
num_preemptions      int32   times its KV cache was evicted and recomputed
num_retries          int32   times it lost computed KV to a failure and was resent
ttft_s               float64 time to first token: first_token_s - arrival_s (NaN if none)
tpot_s               float64 time per output token after the first:
                             (finish_s - first_token_s) / (num_generated_tokens - 1);
                             NaN when unfinished or when fewer than 2 tokens were generated
e2e_s                float64 end-to-end latency: finish_s - arrival_s (NaN unless finished)
==================== ======= ==================================================================

``steps.arrow`` — one row per batch step of a replica (a multi-step jump of k steps writes k
rows):

==================== ======= ==================================================================
column               type    meaning
==================== ======= ==================================================================
start_s              float64 time the step started
replica              int32   replica that ran it
step_s               float64 duration of the step
num_seqs             int32   requests in the batch
num_prefill_tokens   int32   prompt tokens computed in the step (chunked prefill included)
num_decode_tokens    int32   output tokens generated in the step (one per decoding request)
flops                float64 floating-point operations of the step, summed over the replica
hbm_bytes            float64 bytes moved to/from HBM in the step, summed over the replica
compute_util         float32 flops / (peak FLOP/s of the replica x step_s), in [0, 1]
hbm_util             float32 hbm_bytes / (HBM bandwidth of the replica x step_s), in [0, 1]
kv_blocks_used       int32   KV-cache blocks held at the end of the step
kv_blocks_total      int32   KV-cache blocks the replica has
num_waiting          int32   requests queued at the replica, not in the batch, at step start
num_sampled          int32   output tokens sampled in the step: one per decoding request, one per
                             request whose prompt (or recomputation) finished in the step
==================== ======= ==================================================================
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from clustersim.serving.request import Request, Status

STATUS_VALUES: tuple[str, ...] = tuple(s.value for s in Status)


def _schema(columns: list[tuple[str, pa.DataType, str]], name: str) -> pa.Schema:
    fields = [pa.field(n, t, metadata={"description": d}) for n, t, d in columns]
    return pa.schema(fields, metadata={"clustersim.table": name})


REQUESTS: pa.Schema = _schema(
    [
        ("request_id", pa.int64(), "id from the workload, unique in a run"),
        ("client_id", pa.int64(), "closed-loop client that sent it, -1 for open-loop arrivals"),
        ("replica", pa.int32(), "replica that last held it, -1 if it never reached one"),
        ("status", pa.string(), "terminal status: " + ", ".join(STATUS_VALUES)),
        ("arrival_s", pa.float64(), "time it arrived at the router"),
        ("first_token_s", pa.float64(), "time its first output token was produced; NaN if none"),
        ("finish_s", pa.float64(), "time its last output token was produced; NaN unless finished"),
        ("num_prompt_tokens", pa.int64(), "prompt length in tokens"),
        ("num_output_tokens", pa.int64(), "output tokens requested by the workload"),
        ("num_generated_tokens", pa.int64(), "output tokens actually produced"),
        ("num_preemptions", pa.int32(), "times its KV cache was evicted and recomputed"),
        ("num_retries", pa.int32(), "times it lost computed KV to a replica failure and was resent"),
        ("ttft_s", pa.float64(), "first_token_s - arrival_s; NaN if no token"),
        (
            "tpot_s",
            pa.float64(),
            "(finish_s - first_token_s) / (num_generated_tokens - 1); NaN unless finished "
            "with >= 2 tokens",
        ),
        ("e2e_s", pa.float64(), "finish_s - arrival_s; NaN unless finished"),
    ],
    "requests",
)

STEPS: pa.Schema = _schema(
    [
        ("start_s", pa.float64(), "time the step started"),
        ("replica", pa.int32(), "replica that ran it"),
        ("step_s", pa.float64(), "duration of the step"),
        ("num_seqs", pa.int32(), "requests in the batch"),
        ("num_prefill_tokens", pa.int32(), "prompt tokens computed in the step"),
        ("num_decode_tokens", pa.int32(), "output tokens generated in the step"),
        ("flops", pa.float64(), "floating-point operations of the step on the replica"),
        ("hbm_bytes", pa.float64(), "bytes moved to/from HBM in the step on the replica"),
        ("compute_util", pa.float32(), "flops / (replica peak FLOP/s x step_s)"),
        ("hbm_util", pa.float32(), "hbm_bytes / (replica HBM bandwidth x step_s)"),
        ("kv_blocks_used", pa.int32(), "KV-cache blocks held at the end of the step"),
        ("kv_blocks_total", pa.int32(), "KV-cache blocks the replica has"),
        ("num_waiting", pa.int32(), "requests queued at the replica at step start"),
        ("num_sampled", pa.int32(), "output tokens sampled in the step (decodes, last prefill chunks, recomputed requests)"),
    ],
    "steps",
)


def request_row(req: Request) -> dict[str, Any]:
    """One `REQUESTS` row from a request whose terminal `status` the caller has set.

    `finish_s` (and so `tpot_s`, `e2e_s`) is NaN unless the status is FINISHED, whatever
    the request object holds; `tpot_s` needs at least two generated tokens.

    >>> from clustersim.serving.request import RequestSpec
    >>> r = Request(RequestSpec(7, arrival_s=1.0, num_prompt_tokens=100, num_output_tokens=5),
    ...             replica=2, num_generated=5, first_token_s=1.5, finish_s=2.3,
    ...             status=Status.FINISHED)
    >>> row = request_row(r)
    >>> row["status"], row["ttft_s"], round(row["tpot_s"], 12), round(row["e2e_s"], 12)
    ('finished', 0.5, 0.2, 1.3)
    """
    return dict(zip(REQUESTS.names, request_values(req)))


def request_values(req: Request) -> tuple:
    """request_row's values in REQUESTS column order (what the run loop appends per request)."""
    if req.status is None:
        raise ValueError(
            f"request_values: request {req.request_id} has status=None; set a terminal status "
            f"({', '.join(STATUS_VALUES)}) before recording it"
        )
    spec = req.spec
    status = req.status if req.status.__class__ is Status else Status(req.status)
    finish_s = float(req.finish_s) if status is Status.FINISHED else math.nan
    first_token_s = float(req.first_token_s)
    generated = req.num_generated
    tpot_s = (finish_s - first_token_s) / (generated - 1) if generated >= 2 else math.nan
    arrival_s = float(spec.arrival_s)
    return (spec.request_id, spec.client_id, req.replica, status.value, arrival_s, first_token_s, finish_s,
            spec.num_prompt_tokens, spec.num_output_tokens, generated, req.num_preemptions, req.num_retries,
            first_token_s - spec.arrival_s, tpot_s, finish_s - spec.arrival_s)
