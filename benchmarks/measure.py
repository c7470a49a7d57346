"""Load measurements, each in a fresh process.

A *task* is one load of one model's files by one method. It runs in a new process that has
already imported every library (numpy, scipy, pandas, scikit-learn, joblib, skops, safeload and
the modules of the model's classes), so the clock covers the load call alone. The child:

1. imports, runs ``gc.collect()``, resets the kernel's peak-RSS counter (``/proc/self/clear_refs``
   with ``5``; falls back to ``ru_maxrss`` where that is not allowed) and reads the baseline RSS;
2. times ``method.load(path)`` for each of the model's files with ``time.perf_counter``;
3. reads the peak RSS (``VmHWM``), then checks the outputs of the loaded estimators on the probe
   against the in-memory reference (after the memory reading, so the probe does not count).

Two isolations (``--isolation``): ``fork`` (default) forks each child from a multiprocessing
*forkserver* that imported the libraries once (a new process per load, ~10 ms to start);
``spawn`` starts a new interpreter per load (``python -m benchmarks.measure``, task as JSON on
stdin, result as JSON on stdout) and pays ~1.6 s of imports before every load.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

#: Imported by every child before the clock starts.
PRELOAD = [
    "numpy",
    "scipy.sparse",
    "pandas",
    "sklearn",
    "sklearn.compose",
    "sklearn.decomposition",
    "sklearn.ensemble",
    "sklearn.feature_extraction.text",
    "sklearn.linear_model",
    "sklearn.naive_bayes",
    "sklearn.neighbors",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.svm",
    "sklearn.tree",
    "joblib",
    "skops.io",
    "safeload",
    "benchmarks.methods",
    "benchmarks.models",
]

MIB = 1024 * 1024


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0).

    Returns
    -------
    bool
        False when ``/proc/self/clear_refs`` is not writable (the peak then includes imports).
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_rss_mib() -> float:
    """Current resident set size (MiB), from ``/proc`` or psutil."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib / 1024
    import psutil

    return psutil.Process().memory_info().rss / MIB


def file_rss_mib() -> float | None:
    """Resident file-backed pages (``RssFile``, MiB): shared-library code and mapped files.

    Returns
    -------
    float or None
        None where ``/proc/self/status`` has no ``RssFile`` (not Linux, or Linux < 4.5).
    """
    kib = _status_kib("RssFile")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float:
    """Peak resident set size since start or the last :func:`reset_peak_rss` (MiB)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


# --------------------------------------------------------------------------- child


def preload(extra: list[str] = ()) -> list[str]:
    """Import :data:`PRELOAD` and ``extra``.

    Parameters
    ----------
    extra : list of str
        More module names (the model's estimator modules).

    Returns
    -------
    list of str
        Names that failed to import (a missing optional library only disables its methods).
    """
    failed = []
    for name in [*PRELOAD, *extra]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional library disables its methods
            failed.append(name)
    return failed


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one load task in the current (fresh) process and return its figures.

    Parameters
    ----------
    task : dict
        ``method`` (name in :data:`benchmarks.methods.METHODS`), ``files`` (member -> path),
        ``modules`` (to import first), ``key`` (bundle cache key, for the probe; None to skip
        the output check) and optionally ``profile`` (path of a text file: profile the loads
        with pyinstrument, or cProfile when it is missing, and write the report there).

    Returns
    -------
    dict
        ``status`` ("ok", "n/a" or "error"), ``error``, ``load_s`` (sum over files),
        ``member_s`` (seconds per file), ``load_cpu_s`` (CPU seconds of the process during the
        loads: much less than ``load_s`` means waiting, e.g. for a busy machine), ``rss_base_mib``, ``rss_peak_mib``, ``rss_delta_mib``,
        ``peak_reset`` (bool), ``correct`` (bool or None), ``detail``, for scans ``scan``
        (the report's ``repr``, truncated) and, with ``trace`` in the task (a separate, untimed
        run: tracing slows allocation), ``traced_peak_mib``: the peak of the bytes allocated
        through Python's and numpy's allocators during the loads (``tracemalloc``).
    """
    from benchmarks.methods import METHODS, NOT_AVAILABLE

    preload(task.get("modules", []))
    method = METHODS[task["method"]]
    out: dict[str, Any] = {"status": "ok", "error": "", "correct": None, "detail": ""}
    objs: dict[str, Any] = {}
    member_s: dict[str, float] = {}
    cpu_s = 0.0
    gc.collect()
    out["peak_reset"] = reset_peak_rss()
    base = current_rss_mib()
    file_base = file_rss_mib()
    profiler = _start_profiler() if task.get("profile") else None
    if task.get("trace"):
        tracemalloc.start()
    try:
        for member, path in task["files"].items():
            c0, t0 = time.process_time(), time.perf_counter()
            objs[member] = method.load(Path(path))
            member_s[member] = time.perf_counter() - t0
            cpu_s += time.process_time() - c0
    except NOT_AVAILABLE as exc:
        kind = "n/a" if method.requires else "error"
        out.update(status=kind, error=f"{type(exc).__name__}: {exc}"[:300])
    except Exception as exc:  # noqa: BLE001 - reported in the table, never crashes the suite
        out.update(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
        out["traceback"] = traceback.format_exc()[-2000:]
    peak = peak_rss_mib()
    file_end = file_rss_mib()
    if task.get("trace"):
        # every allocation through Python's allocators, numpy's array data included (numpy
        # reports it to tracemalloc), whatever pages the allocator reused: the load's own
        # allocation peak, without the heap state the RSS readings depend on
        out["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    if profiler is not None:
        _stop_profiler(profiler, Path(task["profile"]), task)
    out.update(
        load_s=sum(member_s.values()) if out["status"] == "ok" else None,
        load_cpu_s=cpu_s,
        member_s=member_s,
        rss_base_mib=base,
        rss_peak_mib=peak,
        rss_delta_mib=max(0.0, peak - base),
        # the peak's growth less the file-backed pages gained by the end of the load: the code
        # of shared libraries first run by this load (libcrypto's SHA-256, ~1 MiB) and files
        # still mapped, shared page cache rather than memory the load allocated
        rss_private_mib=(
            None
            if file_base is None or file_end is None
            else max(0.0, peak - base - max(0.0, file_end - file_base))
        ),
    )
    if out["status"] == "ok" and method.kind == "scan":
        out["scan"] = "; ".join(repr(o)[:200] for o in objs.values())[:1000]
    if out["status"] == "ok" and method.kind == "load" and task.get("key"):
        out["correct"], out["detail"] = _check(objs, task["key"], task.get("cache_dir"))
    return out


def _check(objs: dict[str, Any], key: str, cache_dir: str | None) -> tuple[bool, str]:
    from benchmarks.models import CACHE_DIR, compare_outputs, load_probe, reference_outputs

    probe = load_probe(key, Path(cache_dir) if cache_dir else CACHE_DIR)
    for member, est in objs.items():
        try:
            got = reference_outputs(est, probe["probes"][member])
        except Exception as exc:  # noqa: BLE001
            return False, f"{member}: {type(exc).__name__}: {exc}"[:300]
        ok, detail = compare_outputs(probe["expected"][member], got)
        if not ok:
            return False, f"{member}: {detail}"
    return True, ""


def _start_profiler():
    try:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
    except ImportError:
        import cProfile

        prof = cProfile.Profile()
    prof.start() if hasattr(prof, "start") else prof.enable()
    return prof


def _stop_profiler(prof, path: Path, task: dict[str, Any]) -> None:
    """Write the call tree (top 80 lines) and the top 40 functions by self time."""
    header = f"# profile of {task['method']} loading {', '.join(task['files'])}\n"
    if hasattr(prof, "output_text"):
        prof.stop()
        tree = prof.output_text(unicode=False, color=False, show_all=False)
        flat = prof.output_text(unicode=False, color=False, flat=True, flat_time="self")
        flat_lines = flat.splitlines()
        start = next((i + 1 for i, ln in enumerate(flat_lines) if ln.startswith("Profile at")), 0)
        flat = "\n".join(flat_lines[start:]).strip("\n")
        text = (
            header
            + "# tool: pyinstrument (call tree, library frames folded)\n"
            + "\n".join(tree.splitlines()[:80])
            + "\n\n# top functions by self time\n"
            + "\n".join(flat.splitlines()[:48])
        )
    else:
        import io
        import pstats

        prof.disable()
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(30)
        text = header + "# tool: cProfile (pyinstrument not installed)\n" + buf.getvalue()
    path.write_text(text + "\n")


def _child_main(task: dict[str, Any], conn) -> None:
    try:
        result = run_task(task)
    except BaseException as exc:  # noqa: BLE001 - always answer the parent
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    conn.send(result)
    conn.close()


# --------------------------------------------------------------------------- runners


class ForkRunner:
    """Run each task in a process forked from a forkserver that preloaded the libraries.

    Parameters
    ----------
    timeout : float
        Seconds before a child is killed (status ``timeout``).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        """Run ``task`` (see :func:`run_task`) in a new forked process and return its result."""
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_child_main, args=(task, send), daemon=True)
        proc.start()
        send.close()
        result = None
        if recv.poll(self.timeout):
            with contextlib.suppress(EOFError):
                result = recv.recv()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        if result is None:
            status = "timeout" if proc.exitcode in (None, -9) else "crash"
            return {"status": status, "error": f"child exit code {proc.exitcode}"}
        return result

    def close(self) -> None:
        """Nothing to release: the forkserver exits with the parent."""


class SpawnRunner:
    """Run each task in a new interpreter: ``python -m benchmarks.measure`` (JSON in/out).

    Parameters
    ----------
    timeout : float
        Seconds before a child is killed (status ``timeout``).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        """Run ``task`` (see :func:`run_task`) in a new interpreter and return its result."""
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        )
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.measure"],
                input=json.dumps(task),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=env,
                cwd=root,
            )
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "error": f"killed after {self.timeout:.0f} s"}
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            return {"status": "crash", "error": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
        return json.loads(lines[-1])

    def close(self) -> None:
        """Nothing to release."""


def make_runner(isolation: str, timeout: float):
    """Return a :class:`ForkRunner` (``"fork"``) or :class:`SpawnRunner` (``"spawn"``)."""
    if isolation == "fork":
        return ForkRunner(timeout)
    if isolation == "spawn":
        return SpawnRunner(timeout)
    raise ValueError(f"unknown isolation {isolation!r}")


if __name__ == "__main__":
    _task = json.loads(sys.stdin.read())
    print(json.dumps(run_task(_task)))
