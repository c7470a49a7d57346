"""Turn suite results into Markdown, JSON, a console table and a README section."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks.methods import BASELINE, METHODS

MARK_START = "<!-- bench:start -->"
MARK_END = "<!-- bench:end -->"
MIB = 1024 * 1024


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if x == 0:
        return f"0{unit}"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    return f"{x:.3g}{unit}"


def _ratio(r: float | None) -> str:
    return "" if r is None else f" ({r:.2f}×)"


def _cell(value: float | None, ratio: float | None, unit: str = "") -> str:
    return _num(value, unit) + _ratio(ratio)


def _status_cell(row: dict[str, Any]) -> str | None:
    """Text for a row that has no figures (n/a, error, ...), or None."""
    if row["status"] == "ok":
        return None
    return row["status"]


def _outputs(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return row["status"]
    kind = METHODS[row["method"]].kind if row["method"] in METHODS else "load"
    if kind == "scan":
        return "scan only"
    if kind == "limit":
        return "arrays only"
    if row.get("correct") is True:
        return "same"
    if row.get("correct") is False:
        return "**DIFFERENT**"
    return "—"


def model_table(name: str, model: dict[str, Any]) -> str:
    """Markdown table of one model: one row per method, value and ratio to pickle per cell.

    Parameters
    ----------
    name : str
        Model name.
    model : dict
        ``results["models"][name]`` as built by :func:`benchmarks.suite.run_suite`.

    Returns
    -------
    str
        A heading, a one-line description and the table, then notes for n/a and errors.
    """
    multi = model["members"] > 1
    head = [
        "method",
        "load s",
        *(["per file s"] if multi else []),
        "dump s",
        "file MiB",
        "load ΔRSS MiB",
        "ΔRSS excl. file pages MiB",
        "peak RSS MiB",
        "traced peak MiB",
        "outputs",
    ]
    lines = [
        f"### {name}",
        "",
        f"{model['description']}. Arrays: {model['n_arrays']:,} ndarrays, "
        f"{model['array_bytes'] / MIB:,.1f} MiB"
        + (f"; {model['members']} files, load = sum over the files" if multi else "")
        + ".",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|",
    ]
    notes = []
    for meth, row in model["methods"].items():
        r = row.get("ratios", {})
        if row["status"] != "ok":
            cells = [meth, row["status"], *([""] * (len(head) - 2))]
            notes.append(f"- `{meth}`: {row['status']}: {row.get('reason') or row.get('error')}")
        else:
            own_file = METHODS[meth].source is None if meth in METHODS else True
            cells = [
                f"**{meth}**" if meth == BASELINE else meth,
                _cell(row.get("load_s"), r.get("load")),
                *([_num(row.get("per_file_s"))] if multi else []),
                _cell(row.get("dump_s"), r.get("dump")) if own_file else "(same file)",
                _cell(_mib(row.get("size_bytes")), r.get("size")),
                _cell(row.get("rss_delta_mib"), r.get("rss_delta")),
                _cell(row.get("rss_private_mib"), r.get("rss_private")),
                _cell(row.get("rss_peak_mib"), r.get("rss_peak")),
                _cell(row.get("traced_peak_mib"), r.get("traced_peak")),
                _outputs(row),
            ]
            if row.get("correct") is False:
                notes.append(f"- `{meth}`: outputs differ: {row.get('detail')}")
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _mib(nbytes: int | None) -> float | None:
    return None if nbytes is None else nbytes / MIB


def summary_table(results: dict[str, Any]) -> str:
    """Return a Markdown matrix: models x methods, load time as a ratio to pickle.

    Parameters
    ----------
    results : dict
        As returned by :func:`benchmarks.suite.run_suite`.

    Returns
    -------
    str
        The table; the ``pickle load s`` column gives pickle's own median in seconds.
    """
    methods = results["config"]["methods"]
    cols = [m for m in methods if m != BASELINE]
    lines = [
        "| model | pickle load s | " + " | ".join(cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
    for name, model in results["models"].items():
        rows = model["methods"]
        base = rows.get(BASELINE, {})
        cells = [name, _num(base.get("load_s"))]
        for m in cols:
            row = rows.get(m)
            if row is None:
                cells.append("")
            elif row["status"] != "ok":
                cells.append(row["status"])
            else:
                ratio = row.get("ratios", {}).get("load")
                cells.append("—" if ratio is None else f"{ratio:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def env_line(results: dict[str, Any]) -> str:
    """Return one Markdown paragraph: size, runs, isolation, machine, versions, load average.

    Parameters
    ----------
    results : dict
        As returned by :func:`benchmarks.suite.run_suite`.

    Returns
    -------
    str
    """
    env, cfg = results["env"], results["config"]
    vers = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')}" for b in env.get("blas", []))
    return (
        f"Size **{cfg['size']}**, medians of {cfg['runs']} interleaved run(s), "
        f"isolation `{cfg['isolation']}`, {env['date']}. {env['cpu']} ({env['cores']} cores, "
        f"{env['memory_gib']} GiB), Python {env['python']}, {vers}"
        + (f"; BLAS {blas}" if blas else "")
        + (f"; THP {env['thp']}" if env.get("thp") else "")
        + (f"; commit {env['commit']}" if env.get("commit") else "")
        + f". Suite wall time {cfg.get('wall_s', 0):.0f} s"
        + (
            f"; load average {cfg['loadavg_start'][0]:.1f} at start, "
            f"{cfg['loadavg_end'][0]:.1f} at end (> {env['cores']} means other work competed)."
            if cfg.get("loadavg_start") and cfg.get("loadavg_end")
            else "."
        )
    )


def markdown(results: dict[str, Any]) -> str:
    """Return the full Markdown report: environment, summary matrix and one table per model.

    Parameters
    ----------
    results : dict
        As returned by :func:`benchmarks.suite.run_suite`.

    Returns
    -------
    str
    """
    parts = [
        "## Benchmark results",
        "",
        env_line(results),
        "",
        "Every ratio (×) is to `pickle` protocol 5 measured in the same run (median over rounds "
        "of the per-round ratio). `load ΔRSS` is peak RSS during the load minus the RSS after "
        "imports, in a fresh process per load; `ΔRSS excl. file pages` subtracts the "
        "file-backed pages the load added (shared-library code run for the first time, mapped "
        "files); `peak RSS` is absolute; `traced peak` is the peak of the bytes the load "
        "allocated through Python's and numpy's allocators (`tracemalloc`, one more untimed "
        "load per method), whatever free pages the allocator reused. See `benchmarks/README.md`.",
        "",
        "### Load time ÷ pickle",
        "",
        summary_table(results),
    ]
    for name, model in results["models"].items():
        parts += ["", model_table(name, model)]
    return "\n".join(parts) + "\n"


def write_outputs(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``latest.md`` and ``latest.json`` to ``out_dir`` and a copy of the JSON to ``raw/``.

    A ``--quick`` run writes ``latest-quick.md`` / ``latest-quick.json`` instead, so a smoke run
    never overwrites the full-size results.

    Parameters
    ----------
    results : dict
        As returned by :func:`benchmarks.suite.run_suite`.
    out_dir : Path
        Created if missing.

    Returns
    -------
    tuple of Path
        The Markdown and JSON paths.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "latest-quick" if results["config"]["size"] == "quick" else "latest"
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(markdown(results))
    text = json.dumps(results, indent=1, default=str)
    js.write_text(text)
    raw = out_dir / "raw"
    raw.mkdir(exist_ok=True)
    stamp = re.sub(r"[^0-9T]", "", results["env"]["date"])[:15]
    (raw / f"{stamp}-{results['config']['size']}.json").write_text(text)
    return md, js


def update_readme(readme: Path, results: dict[str, Any]) -> bool:
    """Replace the text between the bench markers of ``readme`` with the tables.

    Parameters
    ----------
    readme : Path
        A Markdown file with ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
    results : dict

    Returns
    -------
    bool
        False (file untouched) when the file or either marker is missing or out of order.
    """
    if not readme.is_file():
        return False
    text = readme.read_text()
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < 0 or end < start:
        return False
    body = markdown(results).replace("## Benchmark results\n\n", "", 1)
    new = text[: start + len(MARK_START)] + "\n" + body + text[end:]
    readme.write_text(new)
    return True


def print_console(results: dict[str, Any]) -> None:
    """Print load seconds (× pickle) as methods x models with rich, or the Markdown summary.

    Parameters
    ----------
    results : dict
        As returned by :func:`benchmarks.suite.run_suite`.
    """
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(summary_table(results))
        return
    models = list(results["models"])
    table = Table(title=f"load time: seconds (× pickle), {results['config']['size']} size")
    table.add_column("method")
    for name in models:
        table.add_column(name, justify="right")
    for m in results["config"]["methods"]:
        cells = [m]
        for name in models:
            row = results["models"][name]["methods"].get(m)
            if row is None:
                cells.append("")
            elif row["status"] != "ok":
                cells.append(row["status"])
            else:
                cells.append(_cell(row.get("load_s"), row.get("ratios", {}).get("load")))
        table.add_row(*cells)
    Console(width=max(100, 18 + 20 * len(models))).print(table)
