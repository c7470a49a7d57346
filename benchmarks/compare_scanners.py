"""Compare pickle scanners on the malicious-file corpus: ``python -m benchmarks.compare_scanners``.

Runs picklescan, modelscan and fickling (from a separate venv, ``benchmarks/.scanners-venv``,
created with ``--install``: they pull dependencies we do not want in the project venv) and
``safeload.scan`` (when it exists) over every file of the corpus manifest, one subprocess per
(tool, file), with a timeout and an address-space limit. Nothing here unpickles a corpus file:
the tools are static scanners, each runs in a throw-away working directory with
``SAFELOAD_CANARY_DIR`` pointing into it, and a canary that appears anyway is reported as
``FIRED``.

Every run is reduced to one verdict (see ``benchmarks/README.md`` for how each tool's exit code
and output map to it):

``flagged``  the tool says the file is unsafe
``clean``    the tool scanned the file and says it is safe
``error``    the tool tried and failed (parse error, scan error) without flagging anything
``skipped``  the tool did not scan the file (unsupported format or extension)
``timeout``  killed after ``--timeout`` seconds
``crash``    unexpected exit code / traceback / memory limit
``FIRED``    a payload canary appeared (the tool executed file content)

Outputs: ``<out>/scanners.md`` (a summary table per tool, then the per-file matrix) and
``<out>/scanners.json`` (tool versions, every raw result).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".scanners-venv"
CORPUS = ROOT.parent / "shared" / "corpus" / "malicious"
PACKAGES = ("picklescan", "modelscan", "fickling")
#: fickling 0.1.12 imports typing_extensions without declaring it (ModuleNotFoundError).
EXTRA_PACKAGES = ("typing_extensions",)
MEMORY_LIMIT = 4 * 2**30  # bytes of address space per scanner process

_SAFELOAD_SNIPPET = r"""
import json, sys
def out(verdict, detail=""):
    print(json.dumps({"verdict": verdict, "detail": str(detail)[:400]}))
    raise SystemExit(0)
try:
    import safeload
except Exception as exc:
    out("error", f"import safeload: {exc!r}")
if not hasattr(safeload, "scan"):
    out("unavailable", "safeload.scan does not exist")
try:
    report = safeload.scan(sys.argv[1])
except NotImplementedError as exc:
    out("unavailable", f"NotImplementedError: {exc}")
except safeload.SafeloadError as exc:
    out("flagged", f"{type(exc).__name__}: {exc}")
except BaseException as exc:
    out("crash", f"{type(exc).__name__}: {exc}")
if not isinstance(getattr(report, "safe", None), bool):
    out("unknown", "cannot interpret the scan report: " + repr(report))
why = "; ".join(f"{f.rule_id} {f.message}" for f in report.findings if f.blocking)
out("clean" if report.safe else "flagged", why or repr(report))
"""


@dataclass
class Result:
    """One tool's answer on one file."""

    verdict: str
    exit_code: int | None
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Tool:
    """A scanner: how to call it on one file and how to read its answer.

    Attributes
    ----------
    name : str
        Column name.
    argv : callable
        ``argv(file, workdir) -> list of str``.
    interpret : callable
        ``interpret(exit_code, stdout, stderr, workdir) -> (verdict, detail)``.
    available : callable
        ``available() -> str or None``: None when usable, else why not.
    version : callable
        ``version() -> str``.
    """

    name: str
    argv: Callable[[Path, Path], list[str]]
    interpret: Callable[[int, str, str, Path], tuple[str, str]]
    available: Callable[[], str | None]
    version: Callable[[], str]


# --------------------------------------------------------------------------- tools


def _venv_bin(name: str) -> Path:
    return VENV / "bin" / name


def _venv_available(name: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if _venv_bin(name).exists():
            return None
        return f"not installed in {VENV.relative_to(ROOT)} (run with --install)"

    return check


def _venv_version(package: str) -> Callable[[], str]:
    def get() -> str:
        py = _venv_bin("python")
        if not py.exists():
            return "?"
        code = f"import importlib.metadata as m; print(m.version({package!r}))"
        out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "?"

    return get


def _tail(text: str, n: int = 300) -> str:
    return " ".join(text.split())[-n:]


def _interpret_picklescan(code: int, out: str, err: str, work: Path) -> tuple[str, str]:
    # cli.py: 0 = no dangerous globals, 1 = dangerous globals found, 2 = scan error or
    # exception. The summary ("Dangerous globals: N") is printed before the scan-error exit,
    # so a file that has both is flagged.
    m = re.search(r"Dangerous globals: (\d+)", out)
    dangerous = int(m.group(1)) if m else 0
    s = re.search(r"Suspicious globals: (\d+)", out)
    detail = f"dangerous={dangerous}" + (f" suspicious={s.group(1)}" if s else "")
    if code == 1 or dangerous > 0:
        return "flagged", detail
    if code == 0:
        return "clean", detail
    if code == 2:
        return "error", _tail(out + " " + err)
    return "crash", f"exit {code}: {_tail(err)}"


def _interpret_modelscan(code: int, out: str, err: str, work: Path) -> tuple[str, str]:
    # cli.py: 0 = scanned, no issues; 1 = issues; 2 = scan errors; 3 = nothing scanned
    # (unsupported format/extension, or a parse error: then "errors" is set); 4 = usage error.
    # 2 and 3 take precedence over issues, so the JSON report decides.
    report: dict[str, Any] = {}
    path = work / "modelscan.json"
    if path.exists():
        try:
            report = json.loads(path.read_text())
        except ValueError:
            report = {}
    issues = report.get("issues") or []
    errors = report.get("errors") or []
    detail = "; ".join(
        f"{i.get('severity')}:{i.get('operator') or i.get('description', '')}" for i in issues
    )[:300]
    if code == 1 or issues:
        return "flagged", detail
    if code == 0:
        return "clean", ""
    if errors or code == 2:
        msgs = "; ".join(str(e.get("description", e)) for e in errors)
        return "error", _tail(msgs or out + " " + err)
    if code == 3:
        skipped = report.get("summary", {}).get("skipped", {}).get("skipped_files", [])
        why = "; ".join(str(s.get("description", s)) for s in skipped if isinstance(s, dict))
        return "skipped", _tail(why or "no supported file scanned")
    return "crash", f"exit {code}: {_tail(out + ' ' + err)}"


def _interpret_fickling(code: int, out: str, err: str, work: Path) -> tuple[str, str]:
    # cli.py / constants.py: 0 = EXIT_CLEAN (severity <= LIKELY_SAFE), 1 = EXIT_UNSAFE,
    # 2 = EXIT_ERROR (parse failure; fickling then says "DO NOT TRUST" but gives no verdict).
    if code == 1:
        try:
            report = json.loads((work / "fickling.json").read_text())
            return "flagged", str(report.get("severity", ""))
        except (OSError, ValueError):
            return "flagged", _tail(out, 200)
    if code == 0:
        return "clean", ""
    if code == 2:
        return "error", _tail(err)
    return "crash", f"exit {code}: {_tail(err)}"


def _interpret_safeload(code: int, out: str, err: str, work: Path) -> tuple[str, str]:
    lines = out.strip().splitlines()
    if code != 0 or not lines:
        return "crash", f"exit {code}: {_tail(err)}"
    try:
        res = json.loads(lines[-1])
    except ValueError:
        return "crash", _tail(out)
    return res["verdict"], res.get("detail", "")


def _safeload_available() -> str | None:
    code = "import safeload, sys; sys.exit(0 if hasattr(safeload, 'scan') else 3)"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    if proc.returncode == 0:
        return None
    return "safeload.scan does not exist yet" if proc.returncode == 3 else "safeload not importable"


def _safeload_version() -> str:
    code = "import safeload; print(getattr(safeload, '__version__', '?'))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return proc.stdout.strip() or "?"


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in [
        Tool(
            "picklescan",
            lambda f, w: [str(_venv_bin("picklescan")), "--path", str(f)],
            _interpret_picklescan,
            _venv_available("picklescan"),
            _venv_version("picklescan"),
        ),
        Tool(
            "picklescan-strict",
            lambda f, w: [str(_venv_bin("picklescan")), "--strict", "--path", str(f)],
            _interpret_picklescan,
            _venv_available("picklescan"),
            _venv_version("picklescan"),
        ),
        Tool(
            "modelscan",
            lambda f, w: [
                str(_venv_bin("modelscan")), "-p", str(f), "-r", "json", "--show-skipped",
                "-o", str(w / "modelscan.json"),
            ],
            _interpret_modelscan,
            _venv_available("modelscan"),
            _venv_version("modelscan"),
        ),
        Tool(
            "fickling",
            lambda f, w: [
                str(_venv_bin("fickling")), "--check-safety",
                "--json-output", str(w / "fickling.json"), str(f),
            ],
            _interpret_fickling,
            _venv_available("fickling"),
            _venv_version("fickling"),
        ),
        Tool(
            "safeload-scan",
            lambda f, w: [sys.executable, "-c", _SAFELOAD_SNIPPET, str(f)],
            _interpret_safeload,
            _safeload_available,
            _safeload_version,
        ),
    ]
}  # fmt: skip


# --------------------------------------------------------------------------- running


def install(log=print) -> None:
    """Create ``benchmarks/.scanners-venv`` and pip-install picklescan, modelscan, fickling.

    Raises
    ------
    subprocess.CalledProcessError
        When venv creation or pip fails.
    """
    if not _venv_bin("python").exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log(f"pip install {' '.join(PACKAGES)} into {VENV}")
    subprocess.run(
        [
            str(_venv_bin("python")),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--upgrade",
            *PACKAGES,
            *EXTRA_PACKAGES,
        ],
        check=True,
    )


def _limit_memory() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_tool(tool: Tool, file: Path, timeout: float) -> Result:
    """Run ``tool`` on ``file`` in a throw-away directory and return its verdict.

    Parameters
    ----------
    tool : Tool
    file : Path
        Corpus file (never opened by this process beyond what the tool does).
    timeout : float
        Seconds before the tool is killed.

    Returns
    -------
    Result
    """
    with tempfile.TemporaryDirectory(prefix="scan-") as tmp:
        work = Path(tmp)
        canary = work / "canary"
        canary.mkdir()
        env = dict(os.environ, SAFELOAD_CANARY_DIR=str(canary), PYTHONPATH=str(ROOT))
        env.pop("PYTHONSTARTUP", None)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                tool.argv(file, work),
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                preexec_fn=_limit_memory,
            )
        except subprocess.TimeoutExpired:
            return Result("timeout", None, time.perf_counter() - t0, f"> {timeout:.0f} s")
        seconds = time.perf_counter() - t0
        fired = [p.name for p in canary.iterdir()] + [
            p.name for p in work.iterdir() if p.name.startswith("safeload_canary")
        ]
        if fired:
            return Result("FIRED", proc.returncode, seconds, f"canary: {fired}")
        if proc.returncode < 0:
            return Result("crash", proc.returncode, seconds, f"signal {-proc.returncode}")
        if "MemoryError" in proc.stderr and proc.returncode != 0:
            return Result("crash", proc.returncode, seconds, "MemoryError (4 GiB limit)")
        if "Traceback (most recent call last)" in proc.stderr and proc.returncode != 0:
            # an uncaught exception exits 1, which would read as "unsafe" for fickling
            last = proc.stderr.strip().splitlines()[-1]
            return Result("crash", proc.returncode, seconds, f"uncaught: {last[:250]}")
        verdict, detail = tool.interpret(proc.returncode, proc.stdout, proc.stderr, work)
        return Result(verdict, proc.returncode, seconds, detail)


def load_manifest(corpus: Path) -> list[dict[str, Any]]:
    """Return the ``files`` entries of ``corpus/manifest.json`` whose file exists.

    Parameters
    ----------
    corpus : Path
        Folder with ``manifest.json`` and ``files/``.

    Returns
    -------
    list of dict
        Manifest entries (``id``, ``file``, ``family``, ``expected``, ``format``, ...).
    """
    manifest = json.loads((corpus / "manifest.json").read_text())
    return [f for f in manifest["files"] if (corpus / "files" / f["file"]).is_file()]


def summarize(entries: list[dict[str, Any]], results: dict[str, dict[str, Result]]) -> dict:
    """Count per tool: flagged must_block, fail-closed blocks, false positives, errors.

    Parameters
    ----------
    entries : list of dict
        Manifest entries.
    results : dict of str to dict of str to Result
        tool -> file id -> result.

    Returns
    -------
    dict
        tool -> counts: ``must_block_total``, ``flagged``, ``fail_closed``, ``missed_clean``,
        ``must_load_total``, ``false_positives``, ``must_load_errors``, ``foreign``, ``errors``,
        ``crashes``, ``fired``, ``median_s``.
    """
    out: dict[str, dict[str, Any]] = {}
    for tool, by_file in results.items():
        rows = [(e, by_file[e["id"]]) for e in entries if e["id"] in by_file]
        block = [r for e, r in rows if e["expected"] == "must_block"]
        load = [r for e, r in rows if e["expected"] == "must_load"]
        foreign = [r for e, r in rows if e["expected"] == "foreign_format"]
        out[tool] = {
            "must_block_total": len(block),
            "flagged": sum(r.verdict == "flagged" for r in block),
            "fail_closed": sum(r.verdict not in ("clean", "FIRED") for r in block),
            "missed_clean": sum(r.verdict == "clean" for r in block),
            "must_load_total": len(load),
            "false_positives": sum(r.verdict == "flagged" for r in load),
            "must_load_errors": sum(r.verdict not in ("clean", "flagged") for r in load),
            "foreign": ", ".join(r.verdict for r in foreign),
            "errors": sum(r.verdict in ("error", "skipped") for _, r in rows),
            "crashes": sum(r.verdict in ("crash", "timeout") for _, r in rows),
            "fired": sum(r.verdict == "FIRED" for _, r in rows),
            "median_s": sorted(r.seconds for _, r in rows)[len(rows) // 2] if rows else None,
        }
    return out


SHORT = {"flagged": "F", "clean": "·", "error": "E", "skipped": "S", "timeout": "T",
         "crash": "C", "FIRED": "**FIRED**", "unknown": "?", "unavailable": "n/a"}  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    """Return Markdown: environment, one summary row per tool, then the per-file matrix.

    Parameters
    ----------
    report : dict
        The report that ``main`` also writes as ``scanners.json``.

    Returns
    -------
    str
    """
    summ, tools = report["summary"], list(report["summary"])
    lines = [
        "## Scanner comparison on the malicious corpus",
        "",
        f"{report['date']}; corpus `{report['corpus']}` ({len(report['files'])} files); "
        f"timeout {report['timeout']:.0f} s, address space {MEMORY_LIMIT // 2**30} GiB. "
        "Versions: " + ", ".join(f"{t} {report['versions'].get(t, '?')}" for t in tools) + ".",
        "",
        "`flagged` = the tool reports the file unsafe; `fail-closed` also counts errors, skips, "
        "timeouts and crashes as blocks (a gate that refuses on any non-zero exit); `missed` = "
        "must_block files the tool called clean; `false pos.` = must_load files flagged.",
        "",
        "| tool | must_block flagged | fail-closed | missed (clean) | must_load false pos. "
        "| must_load errors | foreign_format | errors/skips | crashes/timeouts | fired "
        "| median s/file |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for t in tools:
        s = summ[t]
        lines.append(
            f"| {t} | {s['flagged']}/{s['must_block_total']} | {s['fail_closed']}/"
            f"{s['must_block_total']} | {s['missed_clean']} | {s['false_positives']}/"
            f"{s['must_load_total']} | {s['must_load_errors']} | {s['foreign'] or '—'} | "
            f"{s['errors']} | {s['crashes']} | {s['fired']} | "
            f"{s['median_s']:.2f} |"
        )
    for t, why in report["unavailable"].items():
        lines.append(f"| {t} | not run: {why} |" + " |" * 9)
    lines += [
        "",
        "### Per file",
        "",
        "F flagged, · clean, E error, S skipped (not scanned), T timeout, C crash.",
        "",
        "| id | expected | family | " + " | ".join(tools) + " |",
        "|---|---|---|" + "---|" * len(tools),
    ]
    for f in report["files"]:
        cells = [SHORT.get(report["results"][t][f["id"]]["verdict"], "?") for t in tools]
        lines.append(f"| {f['id']} | {f['expected']} | {f['family']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: see ``--help``; returns 0 (2 on bad options or a missing corpus)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_scanners",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--install",
        action="store_true",
        help=f"create {VENV.name} and pip-install {', '.join(PACKAGES)} first",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        default=CORPUS,
        help="folder with manifest.json and files/ (default: %(default)s)",
    )
    p.add_argument("--tools", help=f"comma-separated subset of {', '.join(TOOLS)}")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per scan (%(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="scans run at once (%(default)s)")
    p.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="folder for scanners.md / scanners.json (default: %(default)s)",
    )
    args = p.parse_args(argv)

    if not (args.corpus / "manifest.json").is_file():
        print(f"no manifest.json in {args.corpus}", file=sys.stderr)
        return 2
    names = [t.strip() for t in (args.tools or ",".join(TOOLS)).split(",") if t.strip()]
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        print(f"unknown tool(s) {unknown}; known: {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    if args.install:
        install()
    entries = load_manifest(args.corpus)
    tools, unavailable = [], {}
    for n in names:
        why = TOOLS[n].available()
        if why:
            unavailable[n] = why
            print(f"skipping {n}: {why}")
        else:
            tools.append(TOOLS[n])
    t0 = time.perf_counter()
    jobs = [(t, e) for t in tools for e in entries]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(
            pool.map(
                lambda te: run_tool(te[0], args.corpus / "files" / te[1]["file"], args.timeout),
                jobs,
            )
        )
    results: dict[str, dict[str, Result]] = {t.name: {} for t in tools}
    for (t, e), r in zip(jobs, done, strict=True):
        results[t.name][e["id"]] = r
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": str(args.corpus),
        "timeout": args.timeout,
        "versions": {t.name: t.version() for t in tools},
        "unavailable": unavailable,
        "summary": summarize(entries, results),
        "files": [
            {k: e[k] for k in ("id", "file", "family", "expected", "format")} for e in entries
        ],
        "results": {t: {i: vars(r) for i, r in rs.items()} for t, rs in results.items()},
        "wall_s": time.perf_counter() - t0,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scanners.json").write_text(json.dumps(report, indent=1))
    (args.out / "scanners.md").write_text(markdown(report))
    print(markdown(report).split("### Per file")[0])
    print(
        f"wrote {args.out / 'scanners.md'} and {args.out / 'scanners.json'} "
        f"({report['wall_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
