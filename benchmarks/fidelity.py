"""How close clustersim comes to published measurements, per hardware family.

    /work/venv/bin/python benchmarks/fidelity.py                 # evaluate with the packaged factors
    /work/venv/bin/python benchmarks/fidelity.py --cv            # + 5-fold cross-validated error of the fit
    /work/venv/bin/python benchmarks/fidelity.py --fit --write   # refit efficiency.yaml, then evaluate
    /work/venv/bin/python benchmarks/fidelity.py --fit --write --family aws-neuron   # refit one family only
    /work/venv/bin/python benchmarks/fidelity.py --fit --write --family google-tpu --family google-tpu/jetstream
                                                    # refit a family and a serving stack of it (new or existing)
    /work/venv/bin/python benchmarks/fidelity.py --csv a.csv --csv b.csv --group TPU  # chosen files, TPU rows only

The measurements are the union of every `--csv` file (default: shared/data/calibration.csv and,
when present, benchmarks/calibration_extra.csv; row ids must be unique across files). Fitting
and cross-validation use the union's fit rows (offline, batch, prefill, decode, concurrency;
folds by setup). Prints the per-row table, then the median absolute % error per family
(NVIDIA, AMD, TPU, Neuron) and overall with coverage, once per file and once for the union,
and with --cv the cross-validated median error over the fit rows beside the in-sample error
over the same rows (union, then per file), and the median error per serving stack.

A `--family FAMILY/STACK` fits that stack's rows (fidelity.mapping.stack_of) apart from the
family, starting from the family's factors (refitted in the same run when `--family FAMILY`
is given too, else as in efficiency.yaml); stacks already in efficiency.yaml are always kept
apart from their family, and refitted by a plain `--fit`.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clustersim.catalog import load_catalog
from clustersim.fidelity import default_workers, evaluate, read_rows, write_results_csv
from clustersim.fidelity.calibrate import cross_validate, efficiency_yaml, fit, fit_data, fitted_names, predict, prior_table
from clustersim.fidelity.evaluate import GROUPS, map_rows, median_abs_error
from clustersim.fidelity.mapping import Mapped, hardware_group
from clustersim.fidelity.report import rows_table, skipped_table, summary_table
from clustersim.fidelity.rows import Row
from clustersim.perf.efficiency import DEFAULT_PATH, Efficiency, load_stack_table, parse_efficiency_table, parse_stack_table, resolve

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "calibration.csv"
EXTRA_CSV = ROOT / "benchmarks" / "calibration_extra.csv"


def default_csvs() -> list[Path]:
    """The shared calibration file, plus the extra rows when the file exists."""
    return [DEFAULT_CSV] + ([EXTRA_CSV] if EXTRA_CSV.is_file() else [])


def read_files(paths: Sequence[Path]) -> tuple[list[Row], list[str]]:
    """Rows of every file in order, and for each row the name of the file it came from.
    A row id seen in two files is an error naming both (ids key the fit and the reports)."""
    rows: list[Row] = []
    origin: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        for row in read_rows(path):
            if row.id in seen:
                raise SystemExit(f"{path}: line {row.line}: row id {row.id!r} also in {seen[row.id]}; ids must be unique across --csv files")
            seen[row.id] = str(path)
            rows.append(row)
            origin.append(path.name)
    return rows, origin


def _median_by_group(pairs, key=lambda m: hardware_group(m.setup.family)) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for item, value in pairs:
        if value:
            err = abs(100.0 * (value - item.row.value) / item.row.value)
            groups.setdefault(key(item), []).append(err)
            groups.setdefault("overall", []).append(err)
    return {g: statistics.median(v) for g, v in groups.items()}


def parse_stacked(text: str, source: str) -> dict[str, Efficiency]:
    """Family and `family/stack` entries of an efficiency.yaml text in one table."""
    doc = __import__("yaml").safe_load(text)
    families = parse_efficiency_table(doc, source)
    return {**families, **parse_stack_table(doc, families, source)}


def stack_summary(results) -> Table:
    """Per hardware family and serving stack: rows simulated, median |error| and median signed error."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in results:
        if r.error_pct is not None and r.setup is not None:
            groups.setdefault((r.group, r.setup.stack or "(none)"), []).append(r.error_pct)
    out = Table(title="median error per serving stack (union)")
    for column in ("family", "stack", "rows", "median |error| %", "median signed %"):
        out.add_column(column, justify="left" if column in ("family", "stack") else "right")
    for (group, stack), errs in sorted(groups.items(), key=lambda kv: (GROUPS.index(kv[0][0]) if kv[0][0] in GROUPS else 9, kv[0][1])):
        out.add_row(group, stack, str(len(errs)), f"{statistics.median(abs(e) for e in errs):.1f}", f"{statistics.median(errs):+.1f}")
    return out


def cv_table(title: str, held_out, in_sample, keep: Callable[[Mapped], bool] = lambda m: True) -> Table | None:
    """Per family: in-sample and cross-validated median |error| over the same fit rows, their
    ratio and the number of rows (None when no fit row passes `keep`)."""
    held = [(m, v) for m, v in held_out if keep(m)]
    if not held:
        return None
    ins_pairs = [(m, v) for m, v in in_sample if keep(m)]
    cv, ins = _median_by_group(held), _median_by_group(ins_pairs)
    counts: dict[str, int] = {}
    setups: dict[str, set] = {}
    for item, value in held:
        if value:
            g = hardware_group(item.setup.family)
            for key in (g, "overall"):
                counts[key] = counts.get(key, 0) + 1
                setups.setdefault(key, set()).add(item.setup)
    out = Table(title=title)
    for column in ("family", "in-sample", "cross-validated", "ratio", "rows", "setups"):
        out.add_column(column, justify="left" if column == "family" else "right")
    for group in (*GROUPS, "overall"):
        if group in cv:
            ratio = cv[group] / ins[group] if ins.get(group) else float("nan")
            out.add_row(group, f"{ins.get(group, float('nan')):.1f}", f"{cv[group]:.1f}", f"{ratio:.2f}",
                        str(counts.get(group, 0)), str(len(setups.get(group, ()))))
    return out


def cv_columns(held_out: list) -> dict[str, dict[str, str]]:
    """cv_predicted and cv_error_pct of each cross-validated row, by row id."""
    out = {}
    for item, value in held_out:
        if value:
            out[item.row.id] = {"cv_predicted": f"{value:.6g}",
                                "cv_error_pct": f"{100.0 * (value - item.row.value) / item.row.value:.2f}"}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, action="append", default=None,
                        help="measurements file (repeatable; default: calibration.csv + benchmarks/calibration_extra.csv)")
    parser.add_argument("--fit", action="store_true", help="refit the efficiency factors on the fit rows")
    parser.add_argument("--write", action="store_true", help="with --fit: write the fitted factors to efficiency.yaml")
    parser.add_argument("--cv", action="store_true", help="5-fold cross-validated error of the fit")
    parser.add_argument("--family", action="append", default=None,
                        help="with --fit: refit only this chip family (repeatable); the others keep efficiency.yaml")
    parser.add_argument("--group", action="append", default=None, choices=GROUPS,
                        help="keep only rows of this hardware family (repeatable; for quick iterations)")
    parser.add_argument("--out", type=Path, default=None, help="write every row of the union with predicted and error_pct (with --cv also cv_predicted, cv_error_pct)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--quiet", action="store_true", help="summary tables only")
    args = parser.parse_args()
    paths: list[Path] = args.csv or default_csvs()
    console = Console(width=160)
    start = time.perf_counter()
    rows, origin = read_files(paths)
    catalog = load_catalog()
    table = load_stack_table()
    if args.group:
        keep = [i for i, m in enumerate(map_rows(rows, catalog, table))
                if (hardware_group(m.setup.family) if m.setup else "other") in args.group]
        rows, origin = [rows[i] for i in keep], [origin[i] for i in keep]
    file_of = {row.id: name for row, name in zip(rows, origin)}
    mapped = map_rows(rows, catalog, table)
    priors = prior_table(DEFAULT_PATH.read_text(), table)
    new_stacks = [f for f in args.family or [] if "/" in f]
    bad = [f for f in new_stacks if f.partition("/")[0] not in table]
    if bad:
        parser.error(f"--family {bad}: unknown family before '/'; families: {sorted(k for k in table if '/' not in k)}")
    data = None
    if args.fit or args.cv:
        data = fit_data(mapped, catalog, priors, stacks=new_stacks)
    if args.fit:
        assert data is not None
        if args.family:
            unknown = sorted(set(args.family) - set(data))
            if unknown:
                parser.error(f"--family {unknown}: no fit rows; families with fit rows: {sorted(data)}")
            data = {f: d for f, d in data.items() if f in args.family}
        fitted = fit(mapped, catalog, priors, data, current=table)
        fitted = {f: (e if f in data else table[f]) for f, e in fitted.items()}
        today = datetime.date.today().isoformat()
        names = " + ".join(p.name for p in paths)
        provenance = {}
        for family, d in data.items():
            fitted_params = fitted_names(d.items, catalog, priors.get(family) or priors[family.partition("/")[0]])
            provenance[family] = (
                f"benchmarks/fidelity.py --fit on {names}: {len(d.items)} offline/batch/prefill/decode/concurrency rows, "
                f"{len({i.setup for i in d.items})} setups, {len(fitted_params)} parameter(s) ({', '.join(fitted_params)}); "
                "Cauchy loss on log error, Nelder-Mead from the priors"
            )
        for family, eff in sorted(fitted.items()):
            if family in provenance:
                console.print(f"fitted {family}: compute={eff.compute:.3f} memory={eff.memory:.3f} "
                              f"attention_compute={eff.attention_compute:.3f} step_overhead_s={eff.step_overhead_s:.4g} "
                              f"comm_latency_s={eff.comm_latency_s:.4g} context_overhead_s={eff.context_overhead_s:.4g} "
                              f"expert_compute={eff.expert_compute:.3f}")
        text = efficiency_yaml(DEFAULT_PATH.read_text(), fitted, today, provenance)
        table = parse_stacked(text, "efficiency.yaml (fitted)")
        if args.write:
            tmp = DEFAULT_PATH.with_suffix(".yaml.tmp")
            tmp.write_text(text)
            tmp.replace(DEFAULT_PATH)
            console.print(f"wrote {DEFAULT_PATH}")
    results = evaluate(rows, catalog, table, args.workers)
    if not args.quiet:
        console.print(rows_table(results))
    names = list(dict.fromkeys(origin))
    if len(names) > 1:
        for name in names:
            part = [r for r, o in zip(results, origin) if o == name]
            console.print(summary_table(part), f"  ({name}: {len(part)} rows)")
    console.print(summary_table(results), f"  (union of {', '.join(names)}: {len(results)} rows)")
    console.print(stack_summary(results))
    skipped = skipped_table(results)
    if skipped is not None:
        console.print(skipped)
    if args.out is not None and not args.cv:
        write_results_csv(results, args.out)
        console.print(f"wrote {args.out}")
    if args.cv:
        assert data is not None
        held_out = cross_validate(mapped, catalog, priors, k=5, data=data)
        if args.out is not None:  # each fit row's held-out prediction beside its in-sample one
            write_results_csv(results, args.out, cv_columns(held_out))
            console.print(f"wrote {args.out} (with cv_predicted, cv_error_pct)")
        in_sample = [pair for d in data.values() for pair in predict(d, catalog, resolve(table, d.family, d.stack))]
        union = cv_table("5-fold cross-validation over the union's fit rows (median |error| %)", held_out, in_sample)
        if union is not None:
            console.print(union)
        if len(names) > 1:
            for name in names:
                part = cv_table(f"  the same folds, rows of {name}", held_out, in_sample,
                                lambda m, name=name: file_of[m.row.id] == name)
                if part is not None:
                    console.print(part)
    overall = median_abs_error(results)
    console.print(f"overall median |error| {overall:.1f}% over {sum(r.status == 'ok' for r in results)}/{len(results)} rows; "
                  f"{time.perf_counter() - start:.0f} s wall")
    csv_args = "".join(f" --csv {p}" for p in paths)
    console.print(f"reproduce: /work/venv/bin/python benchmarks/fidelity.py{' --cv' if args.cv else ''}{csv_args}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
