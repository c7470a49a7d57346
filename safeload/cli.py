"""The ``safeload`` command line (a click group; ``python -m safeload`` runs it too).

``safeload scan PATH...`` scans files statically (see :func:`safeload.scan`) and exits with

* ``0`` — every file scanned is safe;
* ``1`` — at least one file is unsafe;
* ``2`` — a usage error, or a path that could not be read (the scan is incomplete, so this
  wins over ``1``),

the picklescan / ClamAV convention, so CI jobs and pre-commit hooks can gate on it.  Text output
is a rich table on stdout; ``--format json|sarif`` writes one document to stdout (or
``--output``) and nothing else goes to stdout.  Progress and warnings go to stderr.

Each subcommand is a function registered on :func:`main`; ``inspect``, ``convert`` and
``verify`` can be added the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

import click

from . import __version__
from .errors import PolicyError
from .policy import Policy
from .report import ScanReport, sarif_log
from .scan import scan as scan_file
from .scanners.sniff import is_model_file

__all__ = ["main", "scan_paths", "load_policy_pack", "FileError", "EXIT_CLEAN", "EXIT_UNSAFE",
           "EXIT_ERROR"]  # fmt: skip

EXIT_CLEAN = 0
EXIT_UNSAFE = 1
EXIT_ERROR = 2


@dataclass
class FileError:
    """A path that could not be scanned (missing, unreadable)."""

    path: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "error": self.error}


# --------------------------------------------------------------------------- policy
def load_policy_pack(path: str | None) -> Policy:
    """The default policy, with the JSON policy pack at ``path`` merged on top.

    The pack has the format of ``safeload/data/trusted.json`` (``groups``, optionally
    ``never``) and may carry ``aliases`` in the format of ``aliases.json`` (``modules``,
    ``globals``).  Its groups are added to the default's; nothing is removed, and a name on the
    ``never`` list can not be trusted.

    Parameters
    ----------
    path : str or None
        None for the default policy alone.

    Returns
    -------
    Policy

    Raises
    ------
    PolicyError
        The file is not a valid policy pack, or trusts a name that can never be trusted.
    OSError
        The file can not be read.
    """
    if path is None:
        return Policy.default()
    return _policy_pack(os.path.abspath(path))


@functools.lru_cache(maxsize=8)
def _policy_pack(path: str) -> Policy:
    with open(path, encoding="utf-8") as fh:
        try:
            pack = json.load(fh)
        except ValueError as exc:
            raise PolicyError(f"{path}: not a JSON document ({exc})") from exc
    if not isinstance(pack, dict) or not isinstance(pack.get("groups", []), list):
        raise PolicyError(f"{path}: a policy pack is an object with a 'groups' list")
    data = resources.files("safeload") / "data"
    trusted = json.loads((data / "trusted.json").read_text("utf-8"))
    aliases = json.loads((data / "aliases.json").read_text("utf-8"))
    trusted["groups"] = trusted["groups"] + list(pack.get("groups", []))
    never = dict(trusted.get("never", {}))
    never["groups"] = list(never.get("groups", [])) + list(pack.get("never", {}).get("groups", []))
    trusted["never"] = never
    extra = pack.get("aliases", {})
    aliases["modules"] = {**aliases.get("modules", {}), **extra.get("modules", {})}
    aliases["globals"] = {**aliases.get("globals", {}), **extra.get("globals", {})}
    try:
        return Policy.from_data(trusted, aliases)
    except PolicyError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise PolicyError(f"{path}: malformed policy pack ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- scanning
def _scan_one(
    path: str, trusted: tuple[str, ...], policy_file: str | None
) -> ScanReport | FileError:
    """Scan one file in this process (also the unit of work of ``--jobs``)."""
    try:
        return scan_file(path, trusted=list(trusted) or None, policy=load_policy_pack(policy_file))
    except OSError as exc:
        return FileError(path, f"{type(exc).__name__}: {exc}")


def collect_files(
    paths: tuple[str, ...], recursive: bool, all_files: bool
) -> tuple[list[str], list[FileError], list[str]]:
    """Expand the command-line paths into files to scan.

    Files named explicitly are always scanned.  Directories contribute the model files directly
    in them (every level below with ``recursive``), judged by content
    (:func:`~safeload.scanners.sniff.is_model_file`) unless ``all_files``.

    Returns
    -------
    files : list of str
    errors : list of FileError
        Paths that do not exist.
    skipped : list of str
        Directory entries that are not model files.
    """
    files: list[str] = []
    errors: list[FileError] = []
    skipped: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            walk = os.walk(path) if recursive else [(path, [], sorted(os.listdir(path)))]
            for root, dirs, names in walk:
                dirs.sort()
                for name in sorted(names):
                    full = os.path.join(root, name)
                    if not os.path.isfile(full) or os.path.islink(full):
                        continue
                    if all_files or is_model_file(full):
                        files.append(full)
                    else:
                        skipped.append(full)
        elif os.path.exists(path) or "://" in path:
            files.append(path)
        else:
            errors.append(FileError(path, "no such file or directory"))
    return files, errors, skipped


def scan_paths(
    files: list[str],
    *,
    trusted: tuple[str, ...] = (),
    policy_file: str | None = None,
    jobs: int = 1,
    backend: str | None = None,
    progress: Any = None,
) -> list[ScanReport | FileError]:
    """Scan ``files``, in parallel through joblib when ``jobs`` is not 1.

    Parameters
    ----------
    files : list of str
    trusted : tuple of str
        Extra trusted names.
    policy_file : str, optional
        A JSON policy pack (see :func:`load_policy_pack`); each worker reads it once.
    jobs : int
        ``joblib.Parallel(n_jobs=jobs)``; 1 scans in this process, -1 uses every core.
    backend : str, optional
        A joblib backend name (``"loky"`` by default, ``"threading"``, or ``"dask"`` inside
        ``joblib.parallel_config(backend="dask")`` with a ``dask.distributed.Client``).
    progress : callable, optional
        Called once per finished file.

    Returns
    -------
    list
        A :class:`~safeload.report.ScanReport` or a :class:`FileError` per file, in order.
    """
    results: list[ScanReport | FileError] = []
    if jobs == 1 and backend is None:
        for path in files:
            results.append(_scan_one(path, trusted, policy_file))
            if progress is not None:
                progress()
        return results
    from joblib import Parallel, delayed, parallel_config

    # parallel_config (not Parallel(backend=...)) registers external backends such as dask
    config = parallel_config(backend=backend) if backend else contextlib.nullcontext()
    with config:
        parallel = Parallel(n_jobs=jobs, return_as="generator")
        for result in parallel(delayed(_scan_one)(p, trusted, policy_file) for p in files):
            results.append(result)
            if progress is not None:
                progress()
    return results


# --------------------------------------------------------------------------- output
def _summary(reports: list[ScanReport], errors: list[FileError], skipped: list[str]) -> dict:
    return {
        "files": len(reports) + len(errors),
        "unsafe": sum(not r.safe for r in reports),
        "errors": len(errors),
        "skipped": len(skipped),
    }


def render_json(reports: list[ScanReport], errors: list[FileError], skipped: list[str]) -> str:
    """The JSON document of ``--format json``."""
    doc = {
        "tool": "safeload",
        "version": __version__,
        "safe": not errors and all(r.safe for r in reports),
        "summary": _summary(reports, errors, skipped),
        "reports": [r.to_dict() for r in reports],
        "errors": [e.to_dict() for e in errors],
        "skipped": skipped,
    }
    return json.dumps(doc, indent=2)


def render_sarif(reports: list[ScanReport], errors: list[FileError]) -> str:
    """The SARIF 2.1.0 log of ``--format sarif`` (unreadable paths as notifications)."""
    log = sarif_log(reports)
    log["runs"][0]["invocations"] = [
        {
            "executionSuccessful": not errors,
            "toolExecutionNotifications": [
                {
                    "level": "error",
                    "message": {"text": f"{e.path}: {e.error}"},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": e.path}}}],
                }
                for e in errors
            ],
        }
    ]
    return json.dumps(log, indent=2)


def render_text(
    console: Any,
    reports: list[ScanReport],
    errors: list[FileError],
    skipped: list[str],
    verbose: bool,
) -> None:
    """Print the rich table of ``--format text`` (and the details of unsafe files)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="safeload scan", show_lines=False, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("verdict")
    table.add_column("format")
    table.add_column("proto", justify="right")
    table.add_column("sklearn")
    table.add_column("globals", justify="right")
    table.add_column("why", overflow="fold")
    for r in reports:
        blocking = [f for f in r.findings if f.blocking]
        why = "; ".join(dict.fromkeys(_short(f) for f in blocking[:3]))
        if len(blocking) > 3:
            why += f"; +{len(blocking) - 3} more"
        table.add_row(
            escape(r.path or "<input>"),
            "[green]SAFE[/green]" if r.safe else "[bold red]UNSAFE[/bold red]",
            r.format,
            "" if r.protocol is None else str(r.protocol),
            r.sklearn_version or "",
            str(len(r.globals)),
            escape(why),
        )
    for e in errors:
        table.add_row(escape(e.path), "[yellow]ERROR[/yellow]", "", "", "", "", escape(e.error))
    console.print(table)
    for r in reports:
        shown = [f for f in r.findings if f.blocking or verbose]
        if not shown and not verbose:
            continue
        console.print(f"\n[bold]{escape(r.path or '<input>')}[/bold]")
        for f in shown:
            where = []
            if f.location:
                where.append(f.location)
            if f.offset is not None:
                where.append(f"offset {f.offset}")
            suffix = f" [dim]({escape(', '.join(where))})[/dim]" if where else ""
            console.print(f"  {f.rule_id} [red]{f.severity}[/red] {escape(f.message)}{suffix}")
        if verbose:
            for g in r.globals:
                color = {
                    "trusted": "green",
                    "untrusted": "red",
                    "dangerous": "bold red",
                    "removed": "yellow",
                }[g.verdict]
                console.print(f"  [{color}]{g.verdict:>9}[/{color}] {escape(g.name)}")
    s = _summary(reports, errors, skipped)
    line = f"\n{s['files']} file(s) scanned: {s['unsafe']} unsafe, {s['errors']} error(s)"
    if skipped:
        line += f", {len(skipped)} non-model file(s) skipped (--all scans them)"
    console.print(line)


def _short(finding: Any) -> str:
    if finding.rule in ("untrusted-global", "dangerous-global", "removed-global"):
        return finding.message.split(":")[0]
    return finding.rule


def _policy_options(command: Any) -> Any:
    """``-t/--trusted`` and ``--policy``: every command that reads model files takes both."""
    command = click.option(
        "--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
        help="JSON policy pack (format of safeload/data/trusted.json) merged on the default.",
    )(command)  # fmt: skip
    return click.option(
        "-t", "--trusted", multiple=True, metavar="NAME",
        help="Also trust this exact module.qualname (repeatable).",
    )(command)  # fmt: skip


# --------------------------------------------------------------------------- commands
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="safeload")
def main() -> None:
    """safeload: load and audit scikit-learn model files without running them."""


@main.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-r", "--recursive", is_flag=True, help="Scan directories recursively.")
@click.option(
    "--all", "all_files", is_flag=True,
    help="In directories, scan every file, not only those whose content is a model format.",
)  # fmt: skip
@click.option(
    "-f", "--format", "output_format", type=click.Choice(["text", "json", "sarif"]),
    default="text", show_default=True, help="Output format.",
)  # fmt: skip
@_policy_options
@click.option(
    "-j", "--jobs", type=int, default=1, show_default=True,
    help="Files scanned in parallel through joblib (-1: all cores).",
)  # fmt: skip
@click.option(
    "--backend", default=None, metavar="NAME",
    help="joblib backend for --jobs: loky (default), threading, or dask (see docs/SCANNING.md).",
)  # fmt: skip
@click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="With --backend dask: the dask.distributed scheduler (default: "
    "$DASK_SCHEDULER_ADDRESS, else a local cluster).",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
    help="Write the report to FILE instead of stdout.",
)  # fmt: skip
@click.option("-v", "--verbose", is_flag=True, help="Text: list every global and finding.")
def scan_command(
    paths: tuple[str, ...],
    recursive: bool,
    all_files: bool,
    output_format: str,
    trusted: tuple[str, ...],
    policy_file: str | None,
    jobs: int,
    backend: str | None,
    scheduler: str | None,
    output: str | None,
    verbose: bool,
) -> None:
    """Scan model files statically: nothing they name is imported or run.

    Exit status: 0 all files safe, 1 at least one unsafe, 2 usage or I/O error.
    """
    try:
        load_policy_pack(policy_file).extend(list(trusted) or None)
    except (PolicyError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    if jobs == 0:
        raise click.UsageError("--jobs must not be 0")
    if scheduler is not None and backend != "dask":
        raise click.UsageError("--scheduler needs --backend dask")
    files, errors, skipped = collect_files(paths, recursive, all_files)
    show_progress = any(os.path.isdir(p) for p in paths) and sys.stderr.isatty() and files
    with _dask_client(backend, scheduler):
        results = _run(files, trusted, policy_file, jobs, backend, bool(show_progress))
    reports = [r for r in results if isinstance(r, ScanReport)]
    errors += [r for r in results if isinstance(r, FileError)]
    for e in errors:
        click.echo(f"safeload: {e.path}: {e.error}", err=True)
    _write(output_format, output, reports, errors, skipped, verbose)
    if errors:
        code = EXIT_ERROR
    elif any(not r.safe for r in reports):
        code = EXIT_UNSAFE
    else:
        code = EXIT_CLEAN
    raise SystemExit(code)


@contextlib.contextmanager
def _dask_client(backend: str | None, scheduler: str | None):
    """A ``dask.distributed.Client`` for joblib's dask backend (nothing for other backends)."""
    if backend != "dask":
        yield None
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise click.UsageError(
            "--backend dask needs dask.distributed: pip install 'dask[distributed]'"
        ) from exc
    client = Client(scheduler) if scheduler else Client()
    try:
        yield client
    finally:
        client.close()


def _run(
    files: list[str],
    trusted: tuple[str, ...],
    policy_file: str | None,
    jobs: int,
    backend: str | None,
    show_progress: bool,
) -> list[ScanReport | FileError]:
    if not show_progress:
        return scan_paths(files, trusted=trusted, policy_file=policy_file, jobs=jobs,
                          backend=backend)  # fmt: skip
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("scanning", total=len(files))
        return scan_paths(
            files,
            trusted=trusted,
            policy_file=policy_file,
            jobs=jobs,
            backend=backend,
            progress=lambda: bar.advance(task),
        )


def _write(
    output_format: str,
    output: str | None,
    reports: list[ScanReport],
    errors: list[FileError],
    skipped: list[str],
    verbose: bool,
) -> None:
    from rich.console import Console

    try:
        fh = open(output, "w", encoding="utf-8") if output else None  # noqa: SIM115
    except OSError as exc:
        click.echo(f"safeload: cannot write {output}: {exc}", err=True)
        raise SystemExit(EXIT_ERROR) from exc
    try:
        if output_format == "json":
            text = render_json(reports, errors, skipped)
        elif output_format == "sarif":
            text = render_sarif(reports, errors)
        else:
            terminal = fh is None and sys.stdout.isatty()
            console = Console(file=fh, width=None if terminal else 160, soft_wrap=not terminal)
            render_text(console, reports, errors, skipped, verbose)
            return
        if fh is not None:
            fh.write(text + "\n")
        else:
            click.echo(text)
    finally:
        if fh is not None:
            fh.close()


# --------------------------------------------------------------------------- inspect
@main.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "-f", "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
    show_default=True, help="Output format.",
)  # fmt: skip
@click.option(
    "--show", type=click.Choice(["all", "untrusted"]), default="all", show_default=True,
    help="The whole tree, or only the paths leading to untrusted or forbidden things.",
)  # fmt: skip
@_policy_options
@click.option("--max-depth", type=click.IntRange(1, 100), default=24, show_default=True,
              help="Deepest object nesting shown.")  # fmt: skip
@click.option("--max-children", type=click.IntRange(1, 100_000), default=25, show_default=True,
              help="Most children and entries shown per object.")  # fmt: skip
def inspect_command(
    path: str,
    output_format: str,
    show: str,
    trusted: tuple[str, ...],
    policy_file: str | None,
    max_depth: int,
    max_children: int,
) -> None:
    """Show the object tree of a model file without building it.

    Class, non-default params, fitted attributes (shape and dtype, never the data), nested
    estimators and the trust verdict of every type, for pickle, joblib and skops files.

    Exit status: 0 every type trusted, 1 an untrusted type or a forbidden operation, 2 usage
    error or a file that can not be read.
    """
    from .errors import SafeloadError
    from .inspection import inspect as inspect_file

    try:
        policy = load_policy_pack(policy_file).extend(list(trusted) or None)
    except (PolicyError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        report = inspect_file(path, policy=policy, max_depth=max_depth,
                              max_children=max_children)  # fmt: skip
    except (SafeloadError, OSError, NotImplementedError) as exc:
        click.echo(f"safeload: {path}: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(EXIT_ERROR) from exc
    if output_format == "json":
        click.echo(report.to_json(show))
    else:
        from rich.console import Console

        terminal = sys.stdout.isatty()
        console = Console(width=None if terminal else 160, soft_wrap=not terminal,
                          highlight=False)  # fmt: skip
        report.render(console, show)
    raise SystemExit(EXIT_CLEAN if report.trusted else EXIT_UNSAFE)


# --------------------------------------------------------------------------- verify
def load_data(path: str) -> Any:
    """Read ``--X``/``--y`` data: ``.npy`` (``allow_pickle=False``), ``.csv`` or ``.parquet``.

    A ``.csv`` file is read with pandas when it is installed (a header row is detected: a first
    row that does not parse as numbers names the columns), else with :func:`numpy.loadtxt`;
    ``.parquet`` needs pandas (and pyarrow or fastparquet).

    Raises
    ------
    click.UsageError
        Another extension, a missing reader, or a file that can not be parsed.
    """
    import numpy as np

    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        if ext == ".csv":
            with open(path, encoding="utf-8") as fh:
                first = fh.readline().strip()
            cells = [c.strip() for c in first.split(",")] if first else []
            numeric = all(_is_number(c) for c in cells)
            try:
                import pandas as pd
            except ImportError:
                return np.loadtxt(path, delimiter=",", skiprows=0 if numeric else 1, ndmin=1)
            return pd.read_csv(path, header=None if numeric else "infer")
        if ext == ".parquet":
            try:
                import pandas as pd
            except ImportError as exc:
                raise click.UsageError(f"{path}: reading .parquet needs pandas") from exc
            return pd.read_parquet(path)
    except click.UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, parser errors
        raise click.UsageError(f"{path}: cannot read data: {type(exc).__name__}: {exc}") from exc
    raise click.UsageError(f"{path}: data must be .npy, .csv or .parquet")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@main.command("verify")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--X", "x_path", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="Input data (.npy, .csv, .parquet) to recompute the recorded cv_score.")  # fmt: skip
@click.option("--y", "y_path", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="Targets for --X (.npy, .csv, .parquet).")  # fmt: skip
@click.option(
    "-f", "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
    show_default=True, help="Output format.",
)  # fmt: skip
@_policy_options
def verify_command(
    path: str,
    x_path: str | None,
    y_path: str | None,
    output_format: str,
    trusted: tuple[str, ...],
    policy_file: str | None,
) -> None:
    """Check a model file: member hashes, manifest, producer versions, stored probe, cv_score.

    Safe-format files: every member's SHA-256 (each changed member is named), the manifest
    against its JSON Schema, the producer's versions against the running ones, the stored probe
    re-run (labels exactly, floats within the recorded tolerance), and, with --X and --y, the
    recorded cv_score recomputed.  Pickle, joblib and skops files have no hashes: they pass
    when they load through the policy.

    Exit status: 0 everything holds, 1 a check failed (a corrupt or changed file included),
    2 usage error, a file that cannot be opened, or a check that could not run.
    """
    import warnings

    from .errors import SafeloadError, VersionMismatchWarning
    from .verify import verify

    if (x_path is None) != (y_path is None):
        raise click.UsageError("--X and --y go together")
    try:
        policy = load_policy_pack(policy_file).extend(list(trusted) or None)
    except (PolicyError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    X = load_data(x_path) if x_path else None
    y = load_data(y_path) if y_path else None
    try:
        with warnings.catch_warnings():  # the report lists the versions that differ
            warnings.simplefilter("ignore", VersionMismatchWarning)
            report = verify(path, X=X, y=y, policy=policy)
    except (SafeloadError, OSError) as exc:
        click.echo(f"safeload: {path}: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(EXIT_ERROR) from exc
    click.echo(report.to_json() if output_format == "json" else report.to_text(), nl=False)
    if output_format == "json":
        click.echo()
    raise SystemExit(report.exit_code)


# --------------------------------------------------------------------------- convert
@main.command("convert")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(path_type=str), metavar="OUT",
    help="Output directory (directories are mirrored into it); for one file, the output file.",
)  # fmt: skip
@click.option(
    "-j", "--jobs", type=int, default=1, show_default=True,
    help="Files converted in parallel processes through joblib (-1: all cores).",
)  # fmt: skip
@click.option(
    "--probe", "probe_path", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
    help="Probe rows (.npy or .csv) for every file: stored in the output, reload compared on them.",
)  # fmt: skip
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), metavar="FILE.json",
    help="Write the JSON report there, and the Markdown report next to it (.md).",
)  # fmt: skip
@_policy_options
def convert_command(
    sources: tuple[str, ...],
    out: str,
    jobs: int,
    probe_path: str | None,
    report_path: str | None,
    trusted: tuple[str, ...],
    policy_file: str | None,
) -> None:
    """Convert pickle, joblib and .skops files into verified safe-format files.

    Each SOURCE is a file or a directory tree (mirrored into OUT, each output named
    <source name>.safeload).  Outputs are compared with the sidecar <stem>.probe.json next to
    the source when there is one (verified), and always reloaded and compared with the migrated
    estimator before being renamed into place.  A refused file never stops the batch and never
    leaves an output behind.

    Exit status: 0 every file converted, 1 at least one refused, 2 usage error or a source
    that does not exist.
    """
    import time

    from rich.console import Console

    from .convert import convert_batch, load_probe_input, plan_batch
    from .convert_report import print_summary, render_json, render_markdown

    if jobs == 0:
        raise click.UsageError("--jobs must not be 0")
    try:
        load_policy_pack(policy_file).extend(list(trusted) or None)
    except (PolicyError, OSError) as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        probe = load_probe_input(probe_path) if probe_path else None
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"--probe: {exc}") from exc
    pairs, errors, skipped = plan_batch(sources, out)
    for path, error in errors:
        click.echo(f"safeload: {path}: {error}", err=True)
    err_console = Console(stderr=True)
    start = time.perf_counter()
    if err_console.is_terminal and len(pairs) > 1:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                      transient=True) as bar:  # fmt: skip
            task = bar.add_task("converting", total=len(pairs))
            reports = convert_batch(pairs, jobs=jobs, probe=probe, trusted=trusted,
                                    policy_file=policy_file,
                                    progress=lambda _r: bar.advance(task))  # fmt: skip
    else:
        reports = convert_batch(pairs, jobs=jobs, probe=probe, trusted=trusted,
                                policy_file=policy_file)  # fmt: skip
    wall = time.perf_counter() - start
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else 160, soft_wrap=not terminal, highlight=False)
    print_summary(console, reports, errors=errors, wall_seconds=wall)
    if skipped:
        console.print(f"{len(skipped)} non-model file(s) skipped")
    if report_path:
        md_path = os.path.splitext(report_path)[0] + ".md"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
            with open(report_path, "w", encoding="utf-8") as fh:
                fh.write(render_json(reports, errors=errors, skipped=skipped,
                                     wall_seconds=wall, jobs=jobs) + "\n")  # fmt: skip
            with open(md_path, "w", encoding="utf-8") as fh:
                fh.write(render_markdown(reports, errors=errors, wall_seconds=wall, jobs=jobs))
        except OSError as exc:
            click.echo(f"safeload: cannot write the report: {exc}", err=True)
            raise SystemExit(EXIT_ERROR) from exc
        console.print(f"reports: {report_path}, {md_path}")
    if errors:
        raise SystemExit(EXIT_ERROR)
    raise SystemExit(EXIT_UNSAFE if any(not r.ok for r in reports) else EXIT_CLEAN)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="safeload")
