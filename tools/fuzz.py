"""``make fuzz``: run every fuzz target of ``tests/fuzz/targets.py`` for a while.

Each target runs in its own child process (so a crash is a signal the driver sees, and a hang is
a child that does not finish), from an empty working directory, with ``SAFELOAD_CANARY_DIR``
pointing at an empty directory and an address-space limit.  Engines:

* ``atheris`` — coverage-guided (libFuzzer) with the safeload package instrumented and the
  target's structure-aware mutators as custom mutator (mixed with libFuzzer's own);
* ``random`` — the same mutators driven by ``random.Random`` (no coverage feedback);
* ``auto`` (default) — atheris when it imports, random otherwise.

Every input that breaks the contract (an exception other than ``SafeloadError``, more than
10 s, a canary or a written file, a file loaded that ``scan`` calls unsafe) is written to
``<artifacts>/<target>-<hash>.bin`` with a ``.txt`` report; a crash or a hang of the child keeps
the input it was running as ``crash-...``/``hang-...``.  Exit status 1 when anything was found.

Usage::

    python tools/fuzz.py --seconds 60                 # every target, 60 s each
    python tools/fuzz.py --targets pickle,joblib-gzip --engine random --seconds 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CURRENT = "current-{target}.bin"


def _engine(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "random"
    return "atheris"


# --------------------------------------------------------------------------- worker
def _worker_random(target, seconds: float, artifacts: Path, seed: int) -> dict:
    from tests.fuzz.harness import run_one, sandbox_from_env, save_failure

    box = sandbox_from_env()
    rng = random.Random(seed)
    current = artifacts / CURRENT.format(target=target.name)
    outcomes: dict[str, int] = {}
    found: list[str] = []
    deadline = time.monotonic() + seconds
    execs = 0
    while time.monotonic() < deadline:
        data = target.mutant(rng)
        current.write_bytes(data)
        verdict = run_one(target, data, box)
        execs += 1
        outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
        if not verdict.ok:
            found.append(str(save_failure(artifacts, target.name, data, verdict)))
    current.unlink(missing_ok=True)
    return {"execs": execs, "outcomes": outcomes, "found": found}


def _worker_atheris(target_name: str, seconds: float, artifacts: Path, seed: int) -> dict:
    import atheris

    with atheris.instrument_imports(include=["safeload"]):
        import safeload  # noqa: F401

    from tests.fuzz.harness import run_one, sandbox_from_env, save_failure
    from tests.fuzz.targets import TARGETS

    target = TARGETS[target_name]
    box = sandbox_from_env()
    corpus = Path(tempfile.mkdtemp(prefix=f"corpus-{target_name}-"))
    files = target.seed_files()
    for i, data in enumerate(files):
        (corpus / f"seed-{i}").write_bytes(data)
    found: list[str] = []
    stats = {"execs": 0}
    (artifacts / f"found-{target_name}.txt").unlink(missing_ok=True)

    def test_one_input(data: bytes) -> None:
        stats["execs"] += 1
        verdict = run_one(target, data, box)
        if not verdict.ok:
            found.append(str(save_failure(artifacts, target.name, data, verdict)))
            with open(artifacts / f"found-{target_name}.txt", "a") as fh:
                fh.write(found[-1] + "\n")

    def custom_mutator(data: bytes, max_size: int, mseed: int) -> bytes:
        rng = random.Random(mseed)
        if rng.random() < 0.3:
            return atheris.Mutate(data, max_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return target.mutate_file(data, rng)[:max_size]

    max_len = max(len(d) for d in files) * 2 + 4096
    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={int(seconds)}",
        "-timeout=20",
        "-rss_limit_mb=3072",
        f"-max_len={max_len}",
        f"-seed={seed}",
        f"-artifact_prefix={artifacts}/libfuzzer-{target_name}-",
        "-print_final_stats=1",
    ]
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    with contextlib.suppress(SystemExit):
        atheris.Fuzz()
    return {"execs": stats["execs"], "outcomes": {}, "found": found}


def worker(target_name: str, seconds: float, engine: str, artifacts: Path, seed: int) -> int:
    """Run one target in this process (the child side of :func:`main`)."""
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT))
    if engine == "atheris":
        summary = _worker_atheris(target_name, seconds, artifacts, seed)
    else:
        from tests.fuzz.targets import TARGETS

        summary = _worker_random(TARGETS[target_name], seconds, artifacts, seed)
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 1 if summary["found"] else 0


# --------------------------------------------------------------------------- driver
def _limit_memory(gib: int):
    def apply() -> None:  # pragma: no cover - runs in the child
        limit = gib << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_target(name: str, seconds: float, engine: str, artifacts: Path, seed: int) -> dict:
    """Fuzz target ``name`` in a child process; report its summary, crash or hang."""
    work = Path(tempfile.mkdtemp(prefix=f"safeload-fuzz-{name}-"))
    canary = work / "canary"
    cwd = work / "cwd"
    canary.mkdir()
    cwd.mkdir()
    env = dict(os.environ, SAFELOAD_CANARY_DIR=str(canary), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    cmd += ["--seconds", str(seconds), "--engine", engine, "--artifacts", str(artifacts)]
    cmd += ["--seed", str(seed)]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_limit_memory(4 if engine == "random" else 8),
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 120)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        status = "hang"
    result: dict = {"target": name, "engine": engine, "seconds": round(time.monotonic() - t0, 1)}
    summary = next((line for line in out.splitlines() if line.startswith("SUMMARY {")), None)
    if summary:
        result.update(json.loads(summary[len("SUMMARY ") :]))
    elif engine == "atheris":  # libFuzzer exits the process itself: read its statistics
        for line in out.splitlines():
            if line.startswith("stat::number_of_executed_units:"):
                result["execs"] = int(line.split(":")[-1])
        listing = artifacts / f"found-{name}.txt"
        result["found"] = listing.read_text().split() if listing.exists() else []
        status = status if status != 0 or "ERROR: libFuzzer" not in out else 1
    current = artifacts / CURRENT.format(target=name)
    if status == "hang" or (isinstance(status, int) and status < 0):
        kind = "hang" if status == "hang" else f"crash-{signal.Signals(-status).name}"
        result["problem"] = kind
        if current.exists():
            keep = artifacts / f"{kind}-{name}-{int(time.time())}.bin"
            current.replace(keep)
            result["input"] = str(keep)
        result["tail"] = out[-3000:]
    elif status not in (0, 1) or "ERROR: libFuzzer" in out:
        result["problem"] = f"exit status {status}"
        result["tail"] = out[-3000:]
    written = sorted(str(p) for d in (canary, cwd) for p in d.iterdir())
    if written:
        result["problem"] = f"files appeared: {written}"
    shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line of ``make fuzz``; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--targets", default="", help="comma-separated (default: all)")
    parser.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    parser.add_argument("--artifacts", default=str(ROOT / ".fuzz"), help="reproducers go here")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    artifacts = Path(args.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    engine = _engine(args.engine)
    if args.worker:
        return worker(args.worker, args.seconds, engine, artifacts, seed)

    sys.path.insert(0, str(ROOT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tests.fuzz.targets import TARGETS

    names = [n for n in args.targets.split(",") if n] or list(TARGETS)
    bad = 0
    print(f"engine {engine}, seed {seed}, {args.seconds:g} s per target, artifacts {artifacts}")
    for name in names:
        reason = TARGETS[name].unavailable()
        if reason:
            print(f"{name:14s} skipped: {reason}")
            continue
        res = run_target(name, args.seconds, engine, artifacts, seed)
        found = res.get("found", [])
        problem = res.get("problem")
        line = f"{name:14s} {res.get('execs', 0):8d} inputs in {res['seconds']:6.1f} s"
        line += f"  found {len(found)}" + (f"  PROBLEM {problem}" if problem else "")
        print(line, flush=True)
        for path in found[:10]:
            print(f"    {path}")
        if problem:
            print(f"    {res.get('input', '')}\n" + res.get("tail", "")[-1500:])
        bad += bool(found or problem)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
