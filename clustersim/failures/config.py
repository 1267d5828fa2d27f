"""The `failures:` section of a scenario (pydantic), validated at the boundary.

Reload defaults (shared/data/reliability.md s6): Llama 2 70B (140 GB bf16) loaded in 20 s
with S3 -> CPU -> GPU streaming on an 8-GPU p4de node, i.e. 7 GB/s per node; we take it as
shared evenly by the node's 8 GPUs: 0.875 GB/s per chip (ASSUMPTION on the split). Engine
init (CUDA graph capture, KV allocation) is "typically tens of seconds": 30 s (ASSUMPTION
inside that range). OCS reconfiguration ~10 s (TPU v4, reliability.md s3).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

RELOAD_BW_BYTES_S = 140e9 / 20.0 / 8  # reliability.md s6: 140 GB in 20 s per 8-GPU node
ENGINE_INIT_S = 30.0  # reliability.md s6: "tens of seconds" (ASSUMPTION: 30)
OCS_RECONFIG_S = 10.0  # reliability.md s3: TPU v4 OCS reconfigures in ~10 s


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptedFault(_Strict):
    """A what-if fault: `component` (an id from components_of, e.g. 'r0.g5', 'c0.0.0|c1.0.0',
    'ocs:0.x.1.2') dies at at_s (before run.max_sim_s) and is fixed duration_s later.
    Checked against the deployment by failures.plan when the scenario is built."""

    at_s: Annotated[float, Field(ge=0)]
    component: str
    duration_s: Annotated[float, Field(ge=0)]


class FailuresConfig(_Strict):
    """Failure injection. Off by default; `random: false` keeps only the scripted faults."""

    enabled: bool = False
    random: bool = True  # sample faults from the class rates (else scripted only)
    classes: dict[str, dict[str, Any]] = {}  # per-class overrides of data/components.yaml fields
    scripted: list[ScriptedFault] = []
    max_retries: Annotated[int, Field(ge=0)] = 3
    reload_bw_bytes_s: Annotated[float, Field(gt=0)] = RELOAD_BW_BYTES_S
    engine_init_s: Annotated[float, Field(ge=0)] = ENGINE_INIT_S
    reconfig_s: Annotated[float, Field(ge=0)] = OCS_RECONFIG_S
    horizon_s: Annotated[float, Field(gt=0)] | None = None  # sample faults up to here (default: run.max_sim_s, else the workload span)
