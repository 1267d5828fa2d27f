"""The `clustersim` command line: parse, call a library function, print where results went.

Every input error (ClusterSimError) becomes one red line per problem on stderr and exit
code 2; never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clustersim.errors import ClusterSimError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulate LLM-serving clusters.")
topology_app = typer.Typer(no_args_is_help=True, help="Look at interconnect topologies.")
app.add_typer(topology_app, name="topology")
out = Console(width=None if sys.stdout.isatty() else 160)  # piped output: wide tables, no wrapped names
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "default.yaml"


@app.command()
def run(
    scenario: Path = typer.Argument(DEFAULT_SCENARIO, help="Scenario YAML (default: the bundled one)."),
    out_dir: Path = typer.Option(Path("runs/latest"), "--out", help="Run directory to write."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the scenario's seed."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run one scenario and write requests.arrow, steps.arrow, summary.json, manifest.json."""
    from clustersim.scenario import load_scenario
    from clustersim.simulate import simulate

    if seed is not None and seed < 0:
        raise ClusterSimError(f"--seed={seed}, must be an integer >= 0")
    loaded = load_scenario(scenario, {"seed": seed} if seed is not None else None)
    if quiet:
        result = simulate(loaded, out_dir, where=str(scenario))
    else:
        with Progress(TextColumn("simulated"), BarColumn(), TextColumn("{task.fields[now]}"), TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("sim", total=1.0, now="")
            result = simulate(
                loaded,
                out_dir,
                progress=lambda now, total: bar.update(task, completed=now / total if total else 1.0, now=f"{now:,.1f} s"),
                where=str(scenario),
            )
    _print_summary(result.summary)
    out.print(f"wrote {result.out_dir}  ({result.num_requests} requests, {result.num_steps} engine steps, {result.wall_s:.1f} s wall)")


def _print_summary(summary: dict) -> None:
    table = Table(title="summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    dep = summary.get("deployment", {})
    table.add_row("deployment", f"{dep.get('num_replicas')} x {dep.get('chips_per_replica')} {dep.get('chip')} serving {dep.get('model')}")
    counts = summary.get("num_requests", {})
    table.add_row("requests", ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    latency = summary.get("latency", {})
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "end-to-end")):
        stats = latency.get(key) or {}
        if stats.get("p50") is not None:
            table.add_row(f"{label} p50 / p99", f"{stats['p50'] * 1e3:,.1f} / {stats['p99'] * 1e3:,.1f} ms")
    throughput = summary.get("throughput", {})
    for key, label in (("output_tokens_s", "output tokens/s"), ("output_tokens_s_per_chip", "output tokens/s per chip")):
        if throughput.get(key) is not None:
            table.add_row(label, f"{throughput[key]:,.0f}")
    slo = summary.get("slo", {})
    if slo.get("attainment") is not None:
        table.add_row("SLO attainment", f"{slo['attainment']:.1%}")
    cost = summary.get("cost") or {}
    for key, label in (("usd_per_mtok_output", "$ per M output tokens"), ("usd_per_mtok_blended", "$ per M tokens (blended)")):
        if isinstance(cost.get(key), (int, float)):
            table.add_row(label, f"{cost[key]:,.3f}")
    out.print(table)


@app.command()
def compare(
    comparison: Path = typer.Argument(None, help="Comparison YAML (base + layouts); default: the built-in NVL72 vs TPU vs Trainium."),
    out_dir: Path = typer.Option(Path("runs/compare"), "--out", help="Folder for one run directory per layout."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override every layout's seed."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel runs (default: one per CPU)."),
    size: Optional[float] = typer.Option(
        None, "--size", help="Size each layout: fewest replicas whose SLO attainment reaches this fraction (e.g. 0.99)."
    ),
) -> None:
    """Run the same traffic on several layouts and compare throughput, latency and cost."""
    from clustersim.compare import DEFAULT_COMPARISON, run_comparison

    if seed is not None and seed < 0:
        raise ClusterSimError(f"--seed={seed}, must be an integer >= 0")
    if workers is not None and workers < 1:
        raise ClusterSimError(f"--workers={workers}, must be an integer >= 1")
    if size is not None and not 0 < size <= 1:
        raise ClusterSimError(f"--size={size}, must be an SLO attainment in (0, 1], e.g. 0.99")
    name, rows = run_comparison(comparison or DEFAULT_COMPARISON, out_dir, seed, workers, size_to=size)
    table = Table(title=name)
    columns = (
        ("layout", "layout", "{}"), ("chips", "chips", "{}"), ("SLO sizing", "sizing", "{}"), ("out tok/s/chip", "output_tokens_s_per_chip", "{:,.0f}"),
        ("TTFT p50/p99 ms", ("ttft_p50_ms", "ttft_p99_ms"), "{:,.0f} / {:,.0f}"),
        ("TPOT p50/p99 ms", ("tpot_p50_ms", "tpot_p99_ms"), "{:,.1f} / {:,.1f}"),
        ("SLO met", "slo_attainment", "{:.1%}"), ("batch", "mean_batch", "{:.1f}"), ("pricing", "pricing", "{}"),
        ("$/M out tok", "usd_per_mtok_output", "{:,.3f}"), ("$/M tok", "usd_per_mtok_blended", "{:,.3f}"),
        ("tok/s per MW", "tokens_s_per_mw", "{:,.0f}"),
    )
    if size is None:
        columns = tuple(c for c in columns if c[1] != "sizing")
    for title, _, _ in columns:
        table.add_column(title, justify="left" if title in ("layout", "pricing") else "right")
    for row in rows:
        cells = []
        for _, key, fmt in columns:
            values = [row.get(k) for k in key] if isinstance(key, tuple) else [row.get(key)]
            cells.append("n/a" if any(v is None for v in values) else fmt.format(*values))
        table.add_row(*cells)
    out.print(table)
    out.print(f"wrote {out_dir}/comparison.json and one run directory per layout (rerun to resume)")


@app.command()
def validate(scenario: Path = typer.Argument(..., help="Scenario YAML to check.")) -> None:
    """Check a scenario as `run` would before simulating (schema, catalog names, parallelism,
    memory fit, every trace row), without writing anything."""
    from clustersim.checks import check_inputs
    from clustersim.scenario import load_scenario

    built = check_inputs(load_scenario(scenario), str(scenario))
    out.print(
        f"{scenario}: ok — {built.scenario.deployment.num_replicas} x {built.replica.num_chips} {built.chip.name} "
        f"serving {built.model.name}, KV capacity {built.kv_capacity_tokens:,} tokens per replica"
    )


@app.command()
def catalog(
    catalog_dir: list[Path] = typer.Option([], "--dir", help="Extra directory of chip/model specs."),
) -> None:
    """List the chips and models clustersim knows, with their key figures."""
    from clustersim.catalog import load_catalog
    from clustersim.perf import active_param_count, kv_bytes_per_token, param_count

    cat = load_catalog(catalog_dir)
    chips = Table(title="chips")
    for column in ("name", "family", "HBM GB", "HBM TB/s", "BF16 TFLOPS", "FP8 TFLOPS", "FP4 TFLOPS", "scale-up GB/s", "domain"):
        chips.add_column(column, justify="left" if column in ("name", "family") else "right")
    for chip in sorted(cat.chips.values(), key=lambda c: c.name):
        chips.add_row(
            chip.name, chip.family, f"{chip.hbm_bytes / 1e9:,.0f}", f"{chip.hbm_bw_bytes_s / 1e12:.2f}",
            f"{chip.bf16_flops_s / 1e12:,.0f}", f"{chip.fp8_flops_s / 1e12:,.0f}", f"{chip.fp4_flops_s / 1e12:,.0f}",
            f"{chip.scaleup_bw_bytes_s / 1e9:,.0f}", str(chip.scaleup_domain),
        )
    out.print(chips)
    models = Table(title="models")
    for column in ("name", "attention", "layers", "params B", "active B", "KV kB/token (bf16)", "weights"):
        models.add_column(column, justify="left" if column in ("name", "attention", "weights") else "right")
    for model in sorted(cat.models.values(), key=lambda m: m.name):
        moe = f" MoE {model.num_experts}x top-{model.num_experts_per_tok}" if model.is_moe else ""
        models.add_row(
            model.name, model.attention + moe, str(model.num_layers), f"{param_count(model) / 1e9:,.1f}",
            f"{active_param_count(model) / 1e9:,.1f}", f"{kv_bytes_per_token(model, 'bf16') / 1e3:,.1f}", model.weight_dtype,
        )
    out.print(models)


@topology_app.command("show")
def topology_show(
    name: str = typer.Argument(..., help="Topology name (see topologies/) or file path."),
    picture: Optional[Path] = typer.Option(None, "--picture", help="Write a picture here: .html (self-contained) or .png (needs matplotlib)."),
    part: Optional[str] = typer.Option(
        None, "--part", help="Draw one part only: a domain number (NVL72 rack, HGX server, UltraServer) or cube:X.Y.Z (a 4x4x4 TPU cube)."
    ),
) -> None:
    """Summarize a topology: chips, links, bisection bandwidth, diameter; optionally draw it."""
    from clustersim.topology.show import show_topology

    out.print(show_topology(name, picture, part), markup=False, highlight=False, soft_wrap=True)


@app.command()
def fidelity(
    csv_path: Path = typer.Argument(..., help="Measurements CSV (schema of shared/data/calibration.csv)."),
    result: Optional[Path] = typer.Option(None, "--out", help="Write every row with predicted and error_pct columns."),
    models: Optional[Path] = typer.Option(None, "--models", help="Directory of extra model specs (YAML or HF config.json)."),
) -> None:
    """Simulate each published measurement and report the signed error per row and family."""
    from clustersim.fidelity import run_fidelity_cli

    run_fidelity_cli(csv_path, result, models, out)


@app.command()
def plan(
    scenario: Path = typer.Argument(..., help="Scenario YAML whose measured throughput is scaled up."),
    power_mw: float = typer.Option(..., "--power-mw", help="Facility power budget in MW (including cooling, via PUE)."),
    target_load: float = typer.Option(1.0, "--target-load", help="Average fraction of the measured throughput used."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Keep the run directory here (default: a temporary one)."),
) -> None:
    """How many systems fit a power budget, and the facility's throughput and $ per M tokens."""
    from clustersim.cost.report import plan_scenario, plan_table

    cost, facility = plan_scenario(scenario, power_mw, target_load, out_dir)
    out.print(plan_table(cost, facility))


def main() -> None:
    """Entry point: run the typer app, turning input errors into clean messages."""
    try:
        app()
    except ClusterSimError as exc:
        for line in str(exc).splitlines() or ["error"]:
            err.print(f"[red]error:[/red] {escape(line)}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
