"""Declared Arrow schema of ``cost.arrow``: cost, power and tokens of the whole deployment per
time bucket (units in column names; each field's description rides in its metadata).

One row per bucket ``[start_s, start_s + duration_s)`` of width ``cost.bucket_s`` from t = 0
to the end of the run (the last bucket may be shorter). Rows cover every billed chip,
busy or idle.

===================== ======= =================================================================
column                type    meaning
===================== ======= =================================================================
start_s               float64 bucket start
duration_s            float64 bucket length (the last one may be shorter)
system                string  system the chips are billed in (systems.yaml name)
mode                  string  capex or rental
num_chips             float64 chips billed (whole systems when cost.whole_systems)
busy_chip_s           float64 chip-seconds spent running steps (step overlap x chips/replica)
active_chip_s         float64 busy chip-seconds weighted by activity (cost.utilization)
it_power_w            float64 mean IT draw: chips (idle + dynamic) + fixed draw of systems
facility_power_w      float64 it_power_w x PUE
energy_j              float64 facility energy in the bucket (facility_power_w x duration_s)
capex_usd             float64 amortized capex (capital recovery factor), capex mode
power_usd             float64 facility energy x $/kWh, capex mode (in the rate when renting)
opex_usd              float64 yearly opex share, capex mode
rental_usd            float64 chip-hours x $/chip-hour, rental mode
idle_usd              float64 part of the time-proportional cost (capex, opex, rental, idle
                              and fixed power) falling on idle chip-seconds
total_usd             float64 capex_usd + power_usd + opex_usd + rental_usd
tokens_in             int64   prompt tokens whose prefill completed in the bucket (counted at
                              the step that finished the prompt and sampled the first token)
tokens_out            int64   output tokens sampled in the bucket: first tokens at the end of
                              the prefill step (first_token_s), the rest at the end of the
                              decode step that produced them
num_steps             int64   engine steps that ended in the bucket
===================== ======= =================================================================
"""

from __future__ import annotations

import pyarrow as pa

_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("start_s", pa.float64(), "bucket start"),
    ("duration_s", pa.float64(), "bucket length (the last may be shorter)"),
    ("system", pa.string(), "system the chips are billed in"),
    ("mode", pa.string(), "capex or rental"),
    ("num_chips", pa.float64(), "chips billed"),
    ("busy_chip_s", pa.float64(), "chip-seconds running steps"),
    ("active_chip_s", pa.float64(), "busy chip-seconds weighted by activity"),
    ("it_power_w", pa.float64(), "mean IT draw (chips idle + dynamic, fixed draw)"),
    ("facility_power_w", pa.float64(), "it_power_w x PUE"),
    ("energy_j", pa.float64(), "facility energy in the bucket"),
    ("capex_usd", pa.float64(), "amortized capex (capital recovery factor)"),
    ("power_usd", pa.float64(), "facility energy x $/kWh (capex mode)"),
    ("opex_usd", pa.float64(), "yearly opex share (capex mode)"),
    ("rental_usd", pa.float64(), "chip-hours x $/chip-hour (rental mode)"),
    ("idle_usd", pa.float64(), "time-proportional cost falling on idle chip-seconds"),
    ("total_usd", pa.float64(), "capex + power + opex + rental"),
    ("tokens_in", pa.int64(), "prompt tokens whose prefill completed in the bucket"),
    ("tokens_out", pa.int64(), "output tokens sampled in the bucket"),
    ("num_steps", pa.int64(), "engine steps that ended in the bucket"),
]

COST: pa.Schema = pa.schema(
    [pa.field(n, t, metadata={"description": d}) for n, t, d in _COLUMNS],
    metadata={"clustersim.table": "cost"},
)
