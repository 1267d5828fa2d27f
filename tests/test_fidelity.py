"""The fidelity command on tiny hand-made CSVs, row mapping, and a deterministic fit."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from clustersim.catalog import load_catalog
from clustersim.errors import ClusterSimError
from clustersim.fidelity import read_rows
from clustersim.fidelity.calibrate import factors_from, fit, fit_data, nelder_mead
from clustersim.fidelity.evaluate import evaluate, map_rows, signed_error_pct
from clustersim.fidelity.mapping import dtypes_of, map_row, padded_model, parse_parallelism
from clustersim.perf import ReplicaPerf, step_time_s
from clustersim.perf.efficiency import load_efficiency_table
from clustersim.perf.load import BatchLoad

HEADER = ["id", "chip", "chips", "model", "precision", "isl", "osl", "mode", "load",
          "ttft_p99_limit_ms", "tpot_p99_limit_ms", "parallelism", "metric", "value", "source"]

GOOD = [
    ["R1", "H100", "2", "llama-3.1-8b", "bf16", "128", "64", "batch", "4", "", "", "TP2", "tpot_p50_ms", "10", "hand"],
    ["R2", "H100", "2", "llama-3.1-8b", "bf16", "128", "64", "batch", "4", "", "", "TP2", "output_tok_s_total", "300", "hand"],
    ["R3", "NoSuchChip", "8", "llama-3.1-8b", "bf16", "128", "64", "offline", "", "", "", "", "output_tok_s_total", "1000", "hand"],
    ["R4", "H100", "1", "llama-3.1-8b", "fp8", "512", "1", "prefill", "", "", "", "", "input_tok_s_per_chip", "20000", "hand"],
]


def _write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from clustersim import cli

    monkeypatch.setattr(sys, "argv", ["clustersim", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rows_parse_with_units(tmp_path: Path) -> None:
    rows = read_rows(_write(tmp_path / "m.csv", GOOD))
    assert [r.id for r in rows] == ["R1", "R2", "R3", "R4"]
    assert rows[0].num_chips == 2 and rows[0].load == 4.0 and rows[0].ttft_limit_s is None
    assert rows[0].line == 2 and rows[3].line == 5  # header is line 1


def test_server_limits_are_seconds(tmp_path: Path) -> None:
    row = ["S1", "H100", "8", "llama-2-70b", "fp8", "294", "300", "server", "", "2000", "200", "", "output_tok_s_total", "1", "x"]
    (r,) = read_rows(_write(tmp_path / "s.csv", [row]))
    assert r.ttft_limit_s == pytest.approx(2.0) and r.tpot_limit_s == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("column", "bad"),
    [("chips", "eight"), ("mode", "burst"), ("metric", "tokens_per_joule"), ("value", "-3"), ("isl", "")],
)
def test_malformed_row_names_row_column_value(tmp_path: Path, column: str, bad: str) -> None:
    rows = [list(r) for r in GOOD]
    rows[1][HEADER.index(column)] = bad
    with pytest.raises(ClusterSimError) as info:
        read_rows(_write(tmp_path / "bad.csv", rows))
    message = str(info.value)
    assert "line 3" in message and "R2" in message and column in message and repr(bad) in message


def test_command_reports_and_writes_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "m.csv", GOOD)
    out_csv = tmp_path / "result.csv"
    code, out, _ = _run_cli(monkeypatch, capsys, "fidelity", str(path), "--out", str(out_csv))
    assert code == 0
    assert "NoSuchChip" in out and "unknown chip" in out  # skipped, with its reason
    assert "coverage" in out and "3/4" in out
    written = list(csv.DictReader(open(out_csv)))
    assert [r["id"] for r in written] == ["R1", "R2", "R3", "R4"]
    by_id = {r["id"]: r for r in written}
    assert by_id["R3"]["status"] == "skipped" and "unknown chip" in by_id["R3"]["reason"]
    assert by_id["R3"]["predicted"] == "" and by_id["R3"]["source"] == "hand"
    for rid in ("R1", "R2", "R4"):
        predicted, measured = float(by_id[rid]["predicted"]), float(by_id[rid]["value"])
        assert float(by_id[rid]["error_pct"]) == pytest.approx(100 * (predicted - measured) / measured, abs=0.01)


def test_command_malformed_row_exit_2_without_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rows = [list(r) for r in GOOD]
    rows[2][HEADER.index("osl")] = "lots"
    code, _, err = _run_cli(monkeypatch, capsys, "fidelity", str(_write(tmp_path / "bad.csv", rows)))
    assert code == 2
    assert "R3" in err and "osl" in err and "'lots'" in err and "line 4" in err
    assert "Traceback" not in err


def test_batch_of_one_matches_hand_arithmetic(tmp_path: Path) -> None:
    """A static batch of 1 request, isl 128, osl 3: TTFT is one prefill step of the perf model,
    TPOT the mean of two decode steps at contexts 128 and 129 (then 130 tokens computed)."""
    row = ["B1", "H100", "1", "llama-3.1-8b", "bf16", "128", "3", "batch", "1", "", "", "TP1", "ttft_p50_ms", "1", "x"]
    rows = read_rows(_write(tmp_path / "b.csv", [row, ["B2", *row[1:12], "tpot_p50_ms", "1", "x"]]))
    catalog, table = load_catalog(), load_efficiency_table()
    results = evaluate(rows, catalog, table)
    model, chip = catalog.model("llama-3.1-8b"), catalog.chip("H100")
    replica = ReplicaPerf(chip=chip, model=model, tp=1, weight_dtype="bf16", kv_dtype="bf16", efficiency=table[chip.family])
    prefill_s = step_time_s(replica, BatchLoad.of_request(128, 0, True, True))
    decode_s = [step_time_s(replica, BatchLoad.of_request(1, c, False, True)) for c in (128, 129)]
    assert results[0].predicted == pytest.approx(prefill_s * 1e3, rel=1e-9)
    assert results[1].predicted == pytest.approx(sum(decode_s) / 2 * 1e3, rel=1e-9)


def test_mapping_choices() -> None:
    assert parse_parallelism("TP24") == (24, None)
    assert parse_parallelism("DEP8") == (8, 8)
    assert parse_parallelism("PD disaggregation; DP-attention + large EP (EP32-class prefill)") == (32, 32)
    assert parse_parallelism("PD disaggregation (no degrees)") == (None, None)
    assert dtypes_of("nvfp4", None) == ("fp4", "fp8")
    assert dtypes_of("mystery", None) is None
    catalog, table = load_catalog(), load_efficiency_table()
    # Neuron TP24 on 12 Inferentia2 chips: 2 NeuronCores per chip -> tp 12, 64 heads padded to 72
    model = catalog.model("llama-2-70b")
    assert padded_model(model, 12).num_heads == 72
    (row,) = _rows_of([["N1", "Inferentia2", "12", "llama-2-70b", "bf16", "128", "128", "batch", "1", "", "", "TP24",
                        "tpot_p50_ms", "30", "x"]])
    mapped = map_row(row, catalog, table)
    assert mapped.setup is not None and mapped.setup.tp == 12 and mapped.setup.num_replicas == 1
    assert mapped.setup.num_heads == 72


def test_wide_ep_across_nodes_maps_to_a_dep_pool() -> None:
    catalog, table = load_catalog(), load_efficiency_table()
    rows = _rows_of([
        ["W1", "H100", "96", "deepseek-r1", "fp8", "2000", "100", "decode", "", "", "",
         "PD disaggregation; DP-attention + large EP (EP72-class decode)", "output_tok_s_per_chip", "2000", "x"],
        ["W2", "H100", "96", "deepseek-r1", "fp8", "2000", "100", "offline", "", "", "", "TP16",
         "output_tok_s_per_chip", "2000", "x"],
    ])
    decode, plain_tp = (map_row(r, catalog, table) for r in rows)
    # a 72-GPU decode pool of a 96-GPU deployment: 9 HGX nodes, DEP72, one pool
    assert decode.setup is not None
    assert (decode.setup.tp, decode.setup.ep, decode.setup.attn_dp, decode.setup.num_replicas) == (72, 72, 72, 1)
    # plain TP may not leave the 8-GPU NVLink domain
    assert plain_tp.setup is None and "scale-up domain" in plain_tp.reason


def _rows_of(rows: list[list[str]]):  # type: ignore[no-untyped-def]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return read_rows(_write(Path(d) / "r.csv", rows))


def test_signed_error() -> None:
    assert signed_error_pct(90.0, 100.0) == pytest.approx(-10.0)


def test_nelder_mead_finds_quadratic_minimum() -> None:
    x, fx = nelder_mead(lambda v: float((v[0] - 0.3) ** 2 + 2 * (v[1] - 1.5) ** 2 + 1.0), [0.0, 0.0], max_evals=500)
    assert abs(x[0] - 0.3) < 1e-3 and abs(x[1] - 1.5) < 1e-3 and fx == pytest.approx(1.0, abs=1e-6)


def test_factors_stay_physical() -> None:
    prior = load_efficiency_table()["nvidia-hopper"]
    for x in ([50.0, 50.0, 50.0], [-50.0, -50.0, -50.0], [3.0]):
        eff = factors_from(prior, x)
        assert 0.05 <= eff.compute <= 0.95 and 0.05 <= eff.memory <= 0.95
        assert 0 < eff.step_overhead_s <= 0.05 and 0 < eff.attention_compute <= 1.0


def test_calibration_is_deterministic(tmp_path: Path) -> None:
    """Same data, same factors; and the fit moves a family toward rows it was made to match."""
    rows = []
    for n, (isl, osl, load) in enumerate([(128, 64, 1), (512, 64, 4), (128, 128, 8), (1024, 32, 2)]):
        for metric, value in (("tpot_p50_ms", 8.0 + n), ("ttft_p50_ms", 40.0 + 10 * n)):
            rows.append([f"D{n}{metric[:4]}", "H100", "1", "llama-3.1-8b", "bf16", str(isl), str(osl), "batch", str(load),
                         "", "", "TP1", metric, str(value), "hand"])
    parsed = read_rows(_write(tmp_path / "fit.csv", rows))
    catalog, table = load_catalog(), load_efficiency_table()
    mapped = map_rows(parsed, catalog, table)
    data = fit_data(mapped, catalog, table)
    first = fit(mapped, catalog, table, data)["nvidia-hopper"]
    second = fit(mapped, catalog, table, fit_data(mapped, catalog, table))["nvidia-hopper"]
    assert first == second
    assert first != table["nvidia-hopper"]
    assert all(math.isfinite(v) for v in (first.compute, first.memory, first.step_overhead_s))
    assert np.isclose(first.attention_compute / first.compute, table["nvidia-hopper"].attention_compute / table["nvidia-hopper"].compute)


def test_offline_first_wave_is_staggered_so_replacements_run_desynchronized():
    from clustersim.fidelity.runner import _staggered
    from clustersim.serving.request import RequestSpec

    specs = [RequestSpec(i, 0.0, 100, 8) for i in range(6)]
    # batch 4, osl 8: request j of the first wave stops after ceil(8 (j + 1) / 4) tokens
    assert [s.num_output_tokens for s in _staggered(specs, 4)] == [2, 4, 6, 8, 8, 8]
    assert [s.num_prompt_tokens for s in _staggered(specs, 4)] == [100] * 6


def test_window_token_rate_counts_first_tokens_and_spreads_the_rest():
    import numpy as np

    from clustersim.fidelity.runner import window_token_rate

    # request A: first token at 1 s, 10 more up to 11 s (1/s); B: first at 4 s, 4 more up to 8 s
    arrival = np.zeros(2)
    first, finish, num_out = np.array([1.0, 4.0]), np.array([11.0, 8.0]), np.array([11.0, 5.0])
    # window [2, 6): A makes 4 tokens, B its first token plus 2 of its 4 -> 7 tokens in 4 s
    assert window_token_rate(arrival, first, finish, num_out, 2.0, 6.0) == pytest.approx(7 / 4)


def test_fitted_memory_efficiency_never_drops_below_the_physical_floor():
    from clustersim.fidelity.calibrate import MEMORY_LO, factors_from
    from clustersim.perf.efficiency import load_efficiency_table

    prior = load_efficiency_table()["nvidia-hopper"]
    for x in ([-50.0, -50.0, -5.0], [0.0, -1e9, -5.0], [3.0, 50.0, -5.0]):
        eff = factors_from(prior, x)
        assert MEMORY_LO <= eff.memory <= 0.95


def test_results_csv_extra_columns_by_row_id(tmp_path: Path) -> None:
    """Cross-validated predictions ride along as extra columns: blank for rows without them."""
    from clustersim.catalog import load_catalog
    from clustersim.fidelity.evaluate import evaluate
    from clustersim.fidelity.report import write_results_csv
    from clustersim.perf.efficiency import load_stack_table

    rows = read_rows(_write(tmp_path / "m.csv", GOOD))
    results = evaluate(rows, load_catalog(), load_stack_table())
    out = tmp_path / "r.csv"
    write_results_csv(results, out, {"R1": {"cv_predicted": "12", "cv_error_pct": "-3.50"}})
    written = {r["id"]: r for r in csv.DictReader(open(out))}
    assert list(written["R1"])[-2:] == ["cv_predicted", "cv_error_pct"]
    assert (written["R1"]["cv_predicted"], written["R1"]["cv_error_pct"]) == ("12", "-3.50")
    assert written["R2"]["cv_predicted"] == "" and written["R3"]["status"] == "skipped"


def test_published_spellings_of_chips_precisions_and_layouts(tmp_path: Path) -> None:
    """Names as MLPerf and vendor tables write them map to the catalog's parts; other
    variants and pipeline layouts are skipped with the reason, never simulated as something else."""
    from clustersim.catalog import load_catalog
    from clustersim.fidelity.evaluate import map_rows
    from clustersim.perf.efficiency import load_stack_table

    def row(rid: str, chip: str, precision: str, parallelism: str, chips: str = "8") -> list[str]:
        return [rid, chip, chips, "llama-3.1-8b", precision, "128", "64", "batch", "4", "", "", parallelism,
                "output_tok_s_total", "100", "hand"]

    rows = read_rows(_write(tmp_path / "spell.csv", [
        row("A", "H100-SXM-80GB", "bfloat16", "tp=8"),
        row("B", "MI300X-192GB", "W8A8", "tensor-parallel-size 8"),
        row("C", "B200-SXM-180GB", "AWQ", "TP8"),
        row("D", "A100 40GB", "bf16", "TP8"),
        row("E", "H100 PCIe", "bf16", "TP8"),
        row("F", "H100", "bf16", "TP4xPP2"),
        row("G", "H100", "float8_e4m3", "TP8 PP2"),
    ]))
    by_id = {m.row.id: m for m in map_rows(rows, load_catalog(), load_stack_table())}
    assert (by_id["A"].setup.chip, by_id["A"].setup.weight_dtype, by_id["A"].setup.tp) == ("H100", "bf16", 8)
    assert (by_id["B"].setup.chip, by_id["B"].setup.weight_dtype, by_id["B"].setup.tp) == ("MI300X", "int8", 8)
    assert (by_id["C"].setup.chip, by_id["C"].setup.weight_dtype) == ("B200", "int4")
    assert by_id["D"].setup is None and "80 GB" in by_id["D"].reason and "40 GB" in by_id["D"].reason
    assert by_id["E"].setup is None and "unknown chip" in by_id["E"].reason  # a PCIe card is another chip
    for rid in ("F", "G"):
        assert by_id[rid].setup is None and "pipeline parallelism" in by_id[rid].reason
