"""Run the suite: build/cache models, dump with every method, load each file in fresh processes.

Order (so drift on a noisy machine hits every method alike): for each model, ``runs`` rounds of
dumps (method A, B, C, ... then again), then ``runs`` rounds of loads in the same interleaved
order, each load in its own process (:mod:`benchmarks.measure`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks import arrays, measure
from benchmarks.methods import BASELINE, NOT_AVAILABLE, Method, unavailable_reason
from benchmarks.models import CACHE_DIR, get_bundle


def file_path(files_dir: Path, method: Method, member: str) -> Path:
    """Path of ``member``'s file for ``method`` (the file of its ``source`` if it has one)."""
    from benchmarks.methods import METHODS

    writer = METHODS[method.file_method]
    return files_dir / writer.name / f"{member}{writer.suffix}"


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _dump_all(bundle, methods, files_dir, runs, skip, log) -> dict[str, dict[str, Any]]:
    """Dump every member with every writing method, ``runs`` interleaved rounds."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"dump_runs": []})
    writers = [m for m in methods if m.dump is not None and m.name not in skip]
    for est in bundle.members.values():  # warm-up: lazy imports and reduce caches of pickling
        pickle.dumps(est, protocol=5)
    for _ in range(runs):
        for m in writers:
            if out[m.name].get("status"):
                continue
            total = 0.0
            try:
                for member, est in bundle.members.items():
                    path = file_path(files_dir, m, member)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    # every dump starts with no dirty pages of the earlier ones: the kernel
                    # throttles a writer once enough are waiting for write-back, and the
                    # methods dump in a fixed order, so the later ones (252 MB each for knn)
                    # paid for the earlier ones' writes
                    _flush_writes()
                    t0 = time.perf_counter()
                    m.dump(est, path)
                    total += time.perf_counter() - t0
            except NOT_AVAILABLE as exc:
                kind = "n/a" if m.requires else "error"
                out[m.name].update(status=kind, reason=f"dump: {type(exc).__name__}: {exc}"[:300])
                continue
            except Exception as exc:  # noqa: BLE001 - reported, never crashes the suite
                log(f"  dump {m.name} failed: {type(exc).__name__}: {exc}")
                out[m.name].update(
                    status="error", reason=f"dump: {type(exc).__name__}: {exc}"[:300]
                )
                continue
            out[m.name]["dump_runs"].append(total)
    return out


def _flush_writes() -> None:
    """Write back every dirty page now (``sync(2)``; nothing where it is missing)."""
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def warm_up_writers(methods: list[Method], folder: Path) -> None:
    """Dump a tiny fitted estimator once with every writer, untimed.

    The first dump of a library pays its lazy imports and caches (skops: ~1 s); without this
    they would land on whichever model and round comes first.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    tiny = LogisticRegression().fit(np.arange(40.0).reshape(20, 2), np.arange(20) % 2)
    folder.mkdir(parents=True, exist_ok=True)
    for m in methods:
        if m.dump is None or unavailable_reason(m):
            continue
        # a failing writer is reported by the real dumps
        with contextlib.suppress(Exception):
            m.dump(tiny, folder / f"warm-{m.name}{m.suffix}")


def run_model(name: str, methods: list[Method], opts: dict[str, Any], runner, log) -> dict:
    """Build (or load from the cache) model ``name`` and measure every method on it.

    Parameters
    ----------
    name : str
        Model name (key of :data:`benchmarks.models.SPECS`).
    methods : list of Method
        Methods to measure (``pickle`` must be among them).
    opts : dict
        ``quick``, ``runs``, ``profile_dir`` (Path or None) and ``cache_dir``.
    runner : ForkRunner or SpawnRunner
        Runs one load task in a fresh process.
    log : callable
        Progress messages.

    Returns
    -------
    dict
        Description, array statistics and per-method figures with ratios to pickle.
    """
    cache_dir: Path = opts["cache_dir"]
    runs: int = opts["runs"]
    bundle = get_bundle(name, opts["quick"], cache_dir, log=log)
    key = bundle.meta["key"]
    files_dir = cache_dir / "files" / key
    arrs = arrays.model_arrays(bundle.members)
    modules = arrays.model_modules(bundle.members)
    n_members = len(bundle.members)
    members = list(bundle.members)
    reasons = {m.name: unavailable_reason(m) for m in methods}
    skip = {n for n, r in reasons.items() if r}
    log(f"{name}: dumping ({len(methods) - len(skip)} methods, {runs} round(s))")
    dumps = _dump_all(bundle, methods, files_dir, runs, skip, log)
    model = {
        "description": bundle.meta["description"],
        "key": key,
        "fit_s": bundle.meta["fit_s"],
        "members": n_members,
        "array_bytes": arrays.array_nbytes(arrs),
        "n_arrays": sum(len(a) for a in arrs.values()),
        "modules": modules,
        "methods": {},
    }
    del bundle, arrs
    gc.collect()
    if hasattr(os, "sync"):
        os.sync()  # flush the dumped files now, so write-back does not run during the loads

    rows: dict[str, dict[str, Any]] = {}
    for m in methods:
        row: dict[str, Any] = {"method": m.name, "status": "ok", "reason": "", "load_runs": []}
        writer = dumps.get(m.file_method, {})
        if reasons[m.name]:
            row.update(status="n/a", reason=reasons[m.name])
        elif writer.get("status"):
            row.update(status=writer["status"], reason=writer.get("reason", ""))
        rows[m.name] = row

    def task_for(m: Method, **extra: Any) -> dict[str, Any]:
        files = {mem: str(file_path(files_dir, m, mem)) for mem in members}
        return {"method": m.name, "files": files, "modules": modules, "key": None, **extra}

    log(f"{name}: loading ({runs} round(s), a fresh process per load)")
    for _ in range(runs):
        for m in methods:
            row = rows[m.name]
            if row["status"] != "ok":
                continue
            task = task_for(m, key=key if m.kind == "load" else None, cache_dir=str(cache_dir))
            t_child = time.perf_counter()
            res = runner.run(task)
            res["child_wall_s"] = time.perf_counter() - t_child
            row["load_runs"].append(res)
            if res["status"] != "ok":
                row.update(status=res["status"], reason=res.get("error", ""))
                log(f"  {m.name}: {res['status']}: {res.get('error', '')}")

    # one more load per load (and limit) method under tracemalloc: allocation peaks are
    # deterministic, so one untimed round is enough (tracing slows allocation: never mixed
    # with the timed rounds)
    for m in methods:
        row = rows[m.name]
        if row["status"] != "ok" or m.kind == "scan":
            continue
        res = runner.run(task_for(m, trace=True))
        row["traced_peak_mib"] = res.get("traced_peak_mib") if res["status"] == "ok" else None
        if res["status"] != "ok":
            log(f"  {m.name}: traced load {res['status']}: {res.get('error', '')}")

    for m in methods:
        row = rows[m.name]
        _aggregate(row, dumps.get(m.name, {}), file_path(files_dir, m, members[0]).parent, m)
    _add_ratios(rows)
    model["methods"] = rows

    if opts.get("profile_dir") is not None:
        _profile(name, methods, rows, files_dir, members, modules, runner, opts, log)
    return model


def _aggregate(row: dict[str, Any], dump: dict[str, Any], folder: Path, method: Method) -> None:
    loads = [r for r in row["load_runs"] if r.get("status") == "ok"]
    ok = row["status"] == "ok"
    row["dump_runs"] = dump.get("dump_runs", [])
    row["dump_s"] = _median(row["dump_runs"]) if method.dump else None
    row["size_bytes"] = _size(folder) if ok else None
    row["load_s"] = _median([r["load_s"] for r in loads]) if ok else None
    row["load_cpu_s"] = _median([r.get("load_cpu_s") for r in loads]) if ok else None
    per_file = [s for r in loads for s in r.get("member_s", {}).values()]
    row["per_file_s"] = _median(per_file) if ok else None
    for k in ("rss_base_mib", "rss_peak_mib", "rss_delta_mib", "rss_private_mib"):
        values = [r.get(k) for r in loads]
        row[k] = _median(values) if ok and None not in values else None
    checks = [r.get("correct") for r in loads]
    row["correct"] = None if not checks or None in checks else all(checks)
    row["detail"] = next((r.get("detail") for r in loads if r.get("correct") is False), "")
    if method.kind == "scan" and loads:
        row["scan"] = loads[-1].get("scan")


def _add_ratios(rows: dict[str, dict[str, Any]]) -> None:
    """Ratios to pickle: median over rounds of the per-round ratio (same round, same run)."""
    base = rows.get(BASELINE)
    if base is None or base["status"] != "ok":
        return
    base_loads = base["load_runs"]
    for row in rows.values():
        if row["status"] != "ok":
            continue
        ratios: dict[str, float | None] = {}
        for key, field in (
            ("load", "load_s"),
            ("rss_delta", "rss_delta_mib"),
            ("rss_private", "rss_private_mib"),
            ("rss_peak", "rss_peak_mib"),
        ):
            pairs = [
                r[field] / b[field]
                for r, b in zip(row["load_runs"], base_loads, strict=False)
                if r.get(field) is not None and b.get(field)
            ]
            ratios[key] = _median(pairs)
        pairs = [d / b for d, b in zip(row["dump_runs"], base["dump_runs"], strict=False) if b]
        ratios["dump"] = _median(pairs) if row.get("dump_s") is not None else None
        ratios["size"] = (
            row["size_bytes"] / base["size_bytes"]
            if row.get("size_bytes") and base.get("size_bytes")
            else None
        )
        ratios["traced_peak"] = (
            row["traced_peak_mib"] / base["traced_peak_mib"]
            if row.get("traced_peak_mib") and base.get("traced_peak_mib")
            else None
        )
        row["ratios"] = ratios


def _profile(name, methods, rows, files_dir, members, modules, runner, opts, log) -> None:
    """Profile the slowest safeload method that ran on this model."""
    cands = [m for m in methods if m.name.startswith("safeload") and rows[m.name]["status"] == "ok"]
    if not cands:
        log(f"{name}: --profile: no safeload method ran, nothing to profile")
        return
    slowest = max(cands, key=lambda m: rows[m.name]["load_s"] or 0.0)
    out: Path = opts["profile_dir"] / f"profile-{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    task = {
        "method": slowest.name,
        "files": {mem: str(file_path(files_dir, slowest, mem)) for mem in members},
        "modules": modules,
        "key": None,
        "profile": str(out),
    }
    res = runner.run(task)
    log(f"{name}: profiled {slowest.name} -> {out} ({res['status']})")


def run_suite(
    models: list[str],
    methods: list[Method],
    *,
    quick: bool,
    runs: int,
    isolation: str = "fork",
    timeout: float = 900.0,
    profile_dir: Path | None = None,
    cache_dir: Path = CACHE_DIR,
    log=print,
) -> dict[str, Any]:
    """Run the benchmark suite and return the results (see ``benchmarks/README.md``).

    Parameters
    ----------
    models : list of str
        Model names, in order.
    methods : list of Method
        Methods to measure; must include ``pickle``.
    quick : bool
        Scaled-down models.
    runs : int
        Interleaved rounds; figures are medians over rounds.
    isolation : {"fork", "spawn"}
        How fresh load processes are made (:mod:`benchmarks.measure`).
    timeout : float
        Seconds before a load process is killed.
    profile_dir : Path or None
        Write ``profile-<model>.txt`` there for the slowest safeload method of each model.
    cache_dir : Path
        Model and file cache.
    log : callable
        Progress messages.

    Returns
    -------
    dict
        ``env``, ``config`` and ``models`` (see :mod:`benchmarks.report`).
    """
    from benchmarks.environment import environment

    t0 = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    runner = measure.make_runner(isolation, timeout)
    opts = {"quick": quick, "runs": runs, "profile_dir": profile_dir, "cache_dir": cache_dir}
    results: dict[str, Any] = {
        "env": environment(),
        "config": {
            "size": "quick" if quick else "full",
            "runs": runs,
            "isolation": isolation,
            "baseline": BASELINE,
            "models": models,
            "methods": [m.name for m in methods],
        },
        "models": {},
    }
    warm_up_writers(methods, cache_dir / "files" / "warm-up")
    try:
        for name in models:
            t_model = time.perf_counter()
            results["models"][name] = run_model(name, methods, opts, runner, log)
            log(f"{name}: done in {time.perf_counter() - t_model:.0f} s")
    finally:
        runner.close()
    results["config"]["wall_s"] = time.perf_counter() - t0
    results["config"]["loadavg_start"] = load_start
    results["config"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return results
