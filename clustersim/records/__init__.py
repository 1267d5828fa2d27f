"""Run records: declared Arrow schemas, streaming atomic writers and the run summary.

A run directory holds `requests.arrow` and `steps.arrow` (schemas in `schemas`), then
`summary.json` and, last, `manifest.json`; every file appears whole or not at all.
"""

from clustersim.records.schemas import REQUESTS, STATUS_VALUES, STEPS, request_row, request_values
from clustersim.records.summary import latency_stats, littles_law, summarize
from clustersim.records.writer import ArrowWriter, WriteStats, to_jsonable, write_json_atomic

__all__ = [
    "REQUESTS",
    "STATUS_VALUES",
    "STEPS",
    "ArrowWriter",
    "WriteStats",
    "latency_stats",
    "littles_law",
    "request_row",
    "request_values",
    "summarize",
    "to_jsonable",
    "write_json_atomic",
]
