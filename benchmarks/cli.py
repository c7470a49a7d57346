"""Command line of the benchmark suite: ``python -m benchmarks [options]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import report
from benchmarks.methods import METHODS, select
from benchmarks.models import CACHE_DIR, SPECS

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (options are described in ``benchmarks/README.md``)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Dump/load time, file size, peak memory and output checks of scikit-learn "
        "models for pickle, joblib, skops and safeload. Every ratio is to pickle (protocol 5) "
        "measured in the same run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models:\n"
        + "\n".join(f"  {n:10s} {s.describe(False)}" for n, s in SPECS.items())
        + "\nmethods:\n"
        + "\n".join(f"  {n:16s} {m.help}" for n, m in METHODS.items()),
    )
    p.add_argument("--models", type=_csv, help="comma-separated models (default: all)")
    p.add_argument(
        "--methods",
        type=_csv,
        help="comma-separated methods (default: all; pickle and the limit rows are always added)",
    )
    p.add_argument(
        "--quick", action="store_true", help="scaled-down models (CI smoke run, well under 2 min)"
    )
    p.add_argument(
        "--runs", type=int, help="interleaved rounds, medians reported (default 3; 1 with --quick)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="folder for latest.md, latest.json and profiles (default: %(default)s)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the slowest safeload method per model -> OUT/profile-<model>.txt",
    )
    p.add_argument(
        "--readme",
        type=Path,
        help="replace the text between <!-- bench:start --> and <!-- bench:end --> "
        "of this file with the tables (untouched if the markers are absent)",
    )
    p.add_argument(
        "--isolation",
        choices=["fork", "spawn"],
        default="fork",
        help="fresh load process: fork from a preloaded forkserver (default) or a new "
        "interpreter per load (slower, ~1.6 s of imports each)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds before a load process is killed (default: %(default)s)",
    )
    p.add_argument("--cache", type=Path, default=CACHE_DIR, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the suite from the command line; return the exit status (0, or 2 on bad options)."""
    from benchmarks.suite import run_suite

    args = build_parser().parse_args(argv)
    models = args.models or list(SPECS)
    unknown = [m for m in models if m not in SPECS]
    if unknown:
        print(f"unknown model(s) {unknown}; known: {', '.join(SPECS)}", file=sys.stderr)
        return 2
    try:
        methods = select(args.methods)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        print("--runs must be >= 1", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    size = "QUICK (scaled-down models)" if args.quick else "FULL"
    print(f"benchmarks: {size} size, {runs} run(s), models {', '.join(models)}", flush=True)
    results = run_suite(
        models,
        methods,
        quick=args.quick,
        runs=runs,
        isolation=args.isolation,
        timeout=args.timeout,
        profile_dir=args.out if args.profile else None,
        cache_dir=args.cache,
        log=lambda msg: print(msg, flush=True),
    )
    md, js = report.write_outputs(results, args.out)
    report.print_console(results)
    print(f"wrote {md} and {js}")
    if args.readme is not None:
        if report.update_readme(args.readme, results):
            print(f"updated {args.readme}")
        else:
            print(f"{args.readme}: no bench markers (or no such file); left untouched")
    print(f"benchmarks: {size} size finished in {time.perf_counter() - t0:.1f} s")
    return 0
