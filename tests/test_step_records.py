"""steps.arrow: utilization derived from each row's flops and bytes and the replica's peaks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from clustersim.catalog import load_catalog
from clustersim.scenario import parse_scenario
from clustersim.simulate import simulate


def test_utilization_is_flops_and_bytes_over_step_time_and_peak(tmp_path):
    scenario = parse_scenario({
        "name": "u", "seed": 2, "model": "llama-3.1-8b",
        "deployment": {"chip": "H100", "num_replicas": 2, "tp": 2, "weight_dtype": "bf16"},
        "workload": {"kind": "poisson", "rate_per_s": 20, "num_requests": 80,
                     "lengths": {"kind": "fixed", "prompt_tokens": 300, "output_tokens": 60}},
    })
    simulate(scenario, tmp_path / "run")
    with pa.OSFile(str(tmp_path / "run" / "steps.arrow")) as f:
        steps = pa.ipc.open_file(f).read_all()
    h100 = load_catalog().chip("H100")
    peak_flops = h100.bf16_flops_s * 2  # 989 TFLOP/s dense BF16 per chip, TP2
    peak_bytes = h100.hbm_bw_bytes_s * 2  # HBM3 bandwidth per chip (catalog figure), TP2
    step_s = steps.column("step_s").to_numpy()
    flops = steps.column("flops").to_numpy()
    hbm = steps.column("hbm_bytes").to_numpy()
    assert np.array_equal(steps.column("compute_util").to_numpy(), (flops / (step_s * peak_flops)).astype(np.float32))
    assert np.array_equal(steps.column("hbm_util").to_numpy(), (hbm / (step_s * peak_bytes)).astype(np.float32))
    util = steps.column("hbm_util").to_numpy()
    assert np.all((util > 0) & (util <= 1))
    # both kinds of rows are present: single steps (prefills) and fast-forwarded decode spans
    prefill = steps.column("num_prefill_tokens").to_numpy()
    assert (prefill > 0).any() and (prefill == 0).sum() > (prefill > 0).sum()
