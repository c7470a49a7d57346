"""Reports of a batch of conversions: a JSON document, a Markdown document, rich tables.

Used by ``safeload convert`` (:mod:`safeload.cli`); each takes the
:class:`~safeload.convert.ConversionReport` list of :func:`safeload.convert.convert_batch`.
Files are grouped by the folder that holds them (for the shared legacy corpus: one folder per
Python / scikit-learn environment).
"""

from __future__ import annotations

import collections
import json
import os
import statistics
from typing import Any

from .convert import STATUSES, ConversionReport

__all__ = ["summarize", "render_json", "render_markdown", "print_summary"]


def _folder(report: ConversionReport) -> str:
    return os.path.basename(os.path.dirname(os.path.abspath(report.source))) or "."


def _reason_counts(reports: list[ConversionReport]) -> dict[str, int]:
    counts = collections.Counter(r.reason for r in reports if r.status == "refused")
    return {str(k): v for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def summarize(reports: list[ConversionReport], wall_seconds: float | None = None) -> dict[str, Any]:
    """Counts by status and by refusal reason, and the time per file.

    Parameters
    ----------
    reports : list of ConversionReport
    wall_seconds : float, optional
        Wall time of the whole batch (with ``--jobs``, less than the sum of the files' times).

    Returns
    -------
    dict
        ``files``, one count per status, ``refused_by_reason``, ``differ_from_reference``
        (always 0 for written files: a difference refuses the file), ``seconds_per_file``
        (``mean``, ``median``, ``max`` of each file's own time), ``wall_seconds`` and
        ``wall_seconds_per_file``.
    """
    times = [r.seconds for r in reports]
    out: dict[str, Any] = {"files": len(reports)}
    for status in STATUSES:
        out[status] = sum(r.status == status for r in reports)
    out["verified_fraction"] = out["verified"] / len(reports) if reports else 0.0
    out["refused_by_reason"] = _reason_counts(reports)
    out["differ_from_reference"] = sum(r.reason == "probe-mismatch" for r in reports)
    out["seconds_per_file"] = {
        "mean": statistics.fmean(times) if times else 0.0,
        "median": statistics.median(times) if times else 0.0,
        "max": max(times, default=0.0),
    }
    if wall_seconds is not None:
        out["wall_seconds"] = wall_seconds
        out["wall_seconds_per_file"] = wall_seconds / len(reports) if reports else 0.0
    return out


def render_json(
    reports: list[ConversionReport],
    *,
    errors: list[tuple[str, str]] = (),  # type: ignore[assignment]
    skipped: list[str] = (),  # type: ignore[assignment]
    wall_seconds: float | None = None,
    jobs: int | None = None,
) -> str:
    """The JSON report of ``safeload convert --report``.

    Returns
    -------
    str
        ``{"tool", "version", "scikit-learn", "jobs", "summary", "reports", "errors",
        "skipped"}``; ``reports`` holds :meth:`ConversionReport.to_dict` of every file.
    """
    import sklearn  # type: ignore[import-untyped]

    from . import __version__

    doc = {
        "tool": "safeload convert",
        "version": __version__,
        "scikit-learn": sklearn.__version__,
        "jobs": jobs,
        "summary": summarize(reports, wall_seconds),
        "reports": [r.to_dict() for r in reports],
        "errors": [{"path": p, "error": e} for p, e in errors],
        "skipped": list(skipped),
    }
    return json.dumps(doc, indent=2)


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _by_folder(reports: list[ConversionReport]) -> dict[str, list[ConversionReport]]:
    groups: dict[str, list[ConversionReport]] = {}
    for r in reports:
        groups.setdefault(_folder(r), []).append(r)
    return dict(sorted(groups.items()))


def _reasons_text(reports: list[ConversionReport]) -> str:
    return ", ".join(f"{k} {v}" for k, v in _reason_counts(reports).items()) or "—"


def _diff_text(report: ConversionReport) -> str:
    diffs = report.max_abs_diff
    return ", ".join(f"{m} {d:.2g}" for m, d in diffs.items()) if diffs else ""


def render_markdown(
    reports: list[ConversionReport],
    *,
    errors: list[tuple[str, str]] = (),  # type: ignore[assignment]
    wall_seconds: float | None = None,
    jobs: int | None = None,
) -> str:
    """The Markdown report of ``safeload convert --report``: summary, per folder, per file.

    Returns
    -------
    str
    """
    import sklearn  # type: ignore[import-untyped]

    from . import __version__

    s = summarize(reports, wall_seconds)
    lines = [
        "# safeload convert report",
        "",
        f"safeload {__version__}, scikit-learn {sklearn.__version__}; {s['files']} file(s)"
        + (f", --jobs {jobs}" if jobs else "")
        + ".",
        "",
        "| | files |",
        "|---|---:|",
    ]
    for status in STATUSES:
        lines.append(f"| {status} | {s[status]} |")
    for reason, n in s["refused_by_reason"].items():
        lines.append(f"| refused: `{_md(reason)}` | {n} |")
    lines.append(f"| outputs differ from the reference | {s['differ_from_reference']} |")
    lines.append("")
    per = s["seconds_per_file"]
    timing = (f"Time per file (each file's own conversion): mean {per['mean'] * 1000:.0f} ms, "
              f"median {per['median'] * 1000:.0f} ms, max {per['max'] * 1000:.0f} ms")  # fmt: skip
    if wall_seconds is not None:
        timing += (f"; wall time {wall_seconds:.1f} s, {s['wall_seconds_per_file'] * 1000:.0f} ms "
                   "per file")  # fmt: skip
    lines += [timing + ".", "", "## By folder", "",
              "| folder | files | verified | converted-unverified | refused | refusal reasons |",
              "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for folder, group in _by_folder(reports).items():
        counts = collections.Counter(r.status for r in group)
        lines.append(
            f"| {_md(folder)} | {len(group)} | {counts['verified']} | "
            f"{counts['converted-unverified']} | {counts['refused']} | {_md(_reasons_text(group))} |"
        )
    lines += ["", "## Files", "",
              "| source | status | reason | format | written by | migrations | max abs diff | ms |",
              "|---|---|---|---|---|---:|---|---:|"]  # fmt: skip
    for r in reports:
        lines.append(
            f"| {_md(r.source)} | {r.status} | {_md(r.reason or '')} | {_md(r.source_format or '')}"
            f" | {_md(r.source_sklearn_version or '')} | {len(r.migrations)} | "
            f"{_md(_diff_text(r))} | {r.seconds * 1000:.0f} |"
        )
    refused = [r for r in reports if r.status == "refused"]
    if refused:
        lines += ["", "## Refusals", ""]
        for r in refused:
            lines.append(f"* `{_md(r.source)}` — **{_md(r.reason)}**: {_md(r.detail[:500])}")
    if errors:
        lines += ["", "## Not converted", ""]
        lines += [f"* `{_md(p)}`: {_md(e)}" for p, e in errors]
    return "\n".join(lines) + "\n"


def print_summary(
    console: Any,
    reports: list[ConversionReport],
    *,
    errors: list[tuple[str, str]] = (),  # type: ignore[assignment]
    wall_seconds: float | None = None,
    max_rows: int = 20,
) -> None:
    """Print the end-of-batch tables: files not verified (at most ``max_rows``), counts.

    Parameters
    ----------
    console : rich.console.Console
    reports : list of ConversionReport
    errors : list of (str, str)
        Paths that could not be planned (missing, colliding outputs).
    wall_seconds : float, optional
    max_rows : int
        Most per-file rows shown (the JSON and Markdown reports list every file).
    """
    from rich.markup import escape
    from rich.table import Table

    style = {"verified": "green", "converted-unverified": "yellow", "refused": "bold red"}
    shown = [r for r in reports if r.status != "verified"]
    if shown:
        table = Table(title="files not verified", header_style="bold")
        for col in ("file", "status", "reason", "detail"):
            table.add_column(col, overflow="fold")
        for r in shown[:max_rows]:
            if r.untrusted_types:
                why = ", ".join(r.untrusted_types)
            else:
                why = r.detail.splitlines()[0][:120] if r.detail else ""
            table.add_row(escape(r.source), f"[{style[r.status]}]{r.status}[/]",
                          escape(r.reason or ""), escape(why))  # fmt: skip
        if len(shown) > max_rows:
            table.caption = f"+{len(shown) - max_rows} more (see the JSON/Markdown report)"
        console.print(table)
    s = summarize(reports, wall_seconds)
    summary = Table(title="safeload convert", header_style="bold")
    summary.add_column("folder", overflow="fold")
    summary.add_column("files", justify="right")
    for status in STATUSES:
        summary.add_column(status, justify="right")
    summary.add_column("refusal reasons", overflow="fold")
    for folder, group in _by_folder(reports).items():
        counts = collections.Counter(r.status for r in group)
        summary.add_row(escape(folder), str(len(group)),
                        *(str(counts[st]) for st in STATUSES), escape(_reasons_text(group)))  # fmt: skip
    summary.add_row("[bold]total[/bold]", str(s["files"]), *(str(s[st]) for st in STATUSES),
                    escape(_reasons_text(reports)), end_section=True)  # fmt: skip
    console.print(summary)
    per = s["seconds_per_file"]
    line = f"{s['files']} file(s): {s['verified']} verified"
    if reports:
        line += f" ({100 * s['verified_fraction']:.1f} %)"
    line += (f", {s['converted-unverified']} converted-unverified, {s['refused']} refused; "
             f"{per['mean'] * 1000:.0f} ms per file")  # fmt: skip
    if wall_seconds is not None:
        line += f", wall {wall_seconds:.1f} s"
    if errors:
        line += f"; {len(errors)} path(s) not converted"
    console.print(line)
