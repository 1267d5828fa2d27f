"""How close clustersim comes to published measurements, per hardware family.

    /work/venv/bin/python benchmarks/fidelity.py                 # evaluate with the packaged factors
    /work/venv/bin/python benchmarks/fidelity.py --cv            # + 5-fold cross-validated error of the fit
    /work/venv/bin/python benchmarks/fidelity.py --fit --write   # refit efficiency.yaml, then evaluate
    /work/venv/bin/python benchmarks/fidelity.py --fit --write --family aws-neuron   # refit one family only

Prints the per-row table, the median absolute % error per family (NVIDIA, AMD, TPU, Neuron)
and overall, coverage, and with --cv the cross-validated median error over the fit rows
(offline, batch, prefill, decode) beside the in-sample error over the same rows.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clustersim.catalog import load_catalog
from clustersim.fidelity import default_workers, evaluate, read_rows
from clustersim.fidelity.calibrate import cross_validate, efficiency_yaml, fit, fit_data, num_params, predict, prior_table
from clustersim.fidelity.evaluate import map_rows, median_abs_error
from clustersim.fidelity.mapping import hardware_group
from clustersim.fidelity.report import print_report
from clustersim.perf.efficiency import DEFAULT_PATH, load_efficiency_table, parse_efficiency_table

DEFAULT_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration.csv"


def _median_by_group(pairs, key=lambda m: hardware_group(m.setup.family)) -> dict[str, float | None]:
    groups: dict[str, list[float]] = {}
    for item, value in pairs:
        if value:
            err = abs(100.0 * (value - item.row.value) / item.row.value)
            groups.setdefault(key(item), []).append(err)
            groups.setdefault("overall", []).append(err)
    return {g: statistics.median(v) for g, v in groups.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--fit", action="store_true", help="refit the efficiency factors on the fit rows")
    parser.add_argument("--write", action="store_true", help="with --fit: write the fitted factors to efficiency.yaml")
    parser.add_argument("--cv", action="store_true", help="5-fold cross-validated error of the fit")
    parser.add_argument("--family", action="append", default=None,
                        help="with --fit: refit only this chip family (repeatable); the others keep efficiency.yaml")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--quiet", action="store_true", help="summary tables only")
    args = parser.parse_args()
    console = Console(width=160)
    start = time.perf_counter()
    rows = read_rows(args.csv)
    catalog = load_catalog()
    table = load_efficiency_table()
    mapped = map_rows(rows, catalog, table)
    priors = prior_table(DEFAULT_PATH.read_text(), table)
    data = None
    if args.fit or args.cv:
        data = fit_data(mapped, catalog, priors)
    if args.fit:
        if args.family:
            unknown = sorted(set(args.family) - set(data))
            if unknown:
                parser.error(f"--family {unknown}: no fit rows; families with fit rows: {sorted(data)}")
            data = {f: d for f, d in data.items() if f in args.family}
        fitted = fit(mapped, catalog, priors, data)
        fitted = {f: (e if f in data else table[f]) for f, e in fitted.items()}
        today = datetime.date.today().isoformat()
        provenance = {}
        for family, d in data.items():
            provenance[family] = (
                f"benchmarks/fidelity.py --fit on {args.csv.name}: {len(d.items)} offline/batch/prefill/decode rows, "
                f"{len({i.setup for i in d.items})} setups, {num_params(len({i.setup for i in d.items}))} parameter(s); "
                "Cauchy loss on log error, Nelder-Mead from the priors"
            )
        for family, eff in sorted(fitted.items()):
            if family in provenance:
                console.print(f"fitted {family}: compute={eff.compute:.3f} memory={eff.memory:.3f} "
                              f"attention_compute={eff.attention_compute:.3f} step_overhead_s={eff.step_overhead_s:.4g}")
        text = efficiency_yaml(DEFAULT_PATH.read_text(), fitted, today, provenance)
        table = parse_efficiency_table(__import__("yaml").safe_load(text), "efficiency.yaml (fitted)")
        if args.write:
            tmp = DEFAULT_PATH.with_suffix(".yaml.tmp")
            tmp.write_text(text)
            tmp.replace(DEFAULT_PATH)
            console.print(f"wrote {DEFAULT_PATH}")
    results = evaluate(rows, catalog, table, args.workers)
    if args.quiet:
        from clustersim.fidelity.report import skipped_table, summary_table

        console.print(summary_table(results))
        skipped = skipped_table(results)
        if skipped is not None:
            console.print(skipped)
    else:
        print_report(results, console)
    if args.cv:
        assert data is not None
        held_out = cross_validate(mapped, catalog, priors, k=5, data=data)
        in_sample = [pair for d in data.values() for pair in predict(d, catalog, table[d.family])]
        cv, ins = _median_by_group(held_out), _median_by_group(in_sample)
        out = Table(title="5-fold cross-validation over the fit rows (median |error| %)")
        for column in ("family", "in-sample", "cross-validated", "ratio", "rows"):
            out.add_column(column, justify="left" if column == "family" else "right")
        counts: dict[str, int] = {}
        for item, value in held_out:
            if value:
                counts[hardware_group(item.setup.family)] = counts.get(hardware_group(item.setup.family), 0) + 1
        counts["overall"] = sum(counts.values())
        for group in ("NVIDIA", "AMD", "TPU", "Neuron", "overall"):
            if group in cv:
                ratio = cv[group] / ins[group] if ins.get(group) else float("nan")
                out.add_row(group, f"{ins.get(group, float('nan')):.1f}", f"{cv[group]:.1f}", f"{ratio:.2f}", str(counts.get(group, 0)))
        console.print(out)
    overall = median_abs_error(results)
    console.print(f"overall median |error| {overall:.1f}% over {sum(r.status == 'ok' for r in results)}/{len(results)} rows; "
                  f"{time.perf_counter() - start:.0f} s wall")
    console.print(f"reproduce: /work/venv/bin/python benchmarks/fidelity.py{' --cv' if args.cv else ''} --csv {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
