"""Run one fuzz input through ``load`` and ``scan`` and say whether the outcome is allowed.

The contract of issue 8: a load either returns an object or raises a
:class:`safeload.SafeloadError`; no other exception, no crash, no hang, no canary, no file written.
On top of it, the scanner's soundness: ``scan`` never raises on bytes, and a file that loads is
one ``scan`` calls safe ("everything scan reports unsafe, load refuses").

Crashes (a signal) can only be seen from another process: ``tools/fuzz.py`` runs the targets in
child processes and ``tests/test_content_fuzz.py`` runs each case in one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import traceback
from pathlib import Path

import safeload
from safeload.report import ScanReport

from .targets import FUZZ_LIMITS, Target

__all__ = ["Sandbox", "Verdict", "run_one", "save_failure"]

#: Seconds one input may take (load + scan) before it counts as a hang.
PER_INPUT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """Where payloads would leave marks: ``$SAFELOAD_CANARY_DIR`` and the current directory.

    Both must be empty directories, set up by the caller (the ``fuzz_sandbox`` fixture, the
    fuzz driver); :meth:`written` lists what appeared and :meth:`clear` removes it.
    """

    canary: Path
    cwd: Path

    def written(self) -> list[str]:
        return sorted(str(p) for d in (self.canary, self.cwd) for p in d.iterdir())

    def clear(self) -> None:
        for d in (self.canary, self.cwd):
            for p in d.iterdir():
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


@dataclasses.dataclass
class Verdict:
    """What one input did.

    Attributes
    ----------
    outcome : str
        ``"loaded"`` or ``"refused:<ErrorClass>"`` (or ``"error:<Class>"`` when not allowed).
    failures : list of str
        Every broken rule, empty when the outcome is allowed.
    seconds : float
        Time of the load and the scan.
    """

    outcome: str
    failures: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failures


def run_one(
    target: Target,
    data: bytes,
    sandbox: Sandbox,
    *,
    limits: safeload.Limits = FUZZ_LIMITS,
    scan: bool = True,
    per_input_seconds: float = PER_INPUT_SECONDS,
) -> Verdict:
    """Load (and scan) ``data`` as ``target`` does and check the allowed outcomes.

    Parameters
    ----------
    target : Target
        Its ``load`` is used.
    data : bytes
        The file.
    sandbox : Sandbox
        Must be empty before the call; emptied again after it.
    limits : Limits
        For both the load and the scan.
    scan : bool
        Also run :func:`safeload.scan` and check it against the load.
    per_input_seconds : float
        More than this counts as a hang.

    Returns
    -------
    Verdict
    """
    failures: list[str] = []
    t0 = time.perf_counter()
    loaded = False
    try:
        target.load(data, limits)
        loaded = True
        outcome = "loaded"
    except safeload.SafeloadError as exc:
        outcome = f"refused:{type(exc).__name__}"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the bug this harness looks for
        outcome = f"error:{type(exc).__name__}"
        failures.append(
            f"load raised {type(exc).__name__} (not a SafeloadError): {str(exc)[:300]}\n"
            + traceback.format_exc()[-2500:]
        )
    if scan:
        try:
            report = safeload.scan(data, limits=limits)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001
            failures.append(
                f"scan raised {type(exc).__name__}: {str(exc)[:300]}\n"
                + traceback.format_exc()[-2500:]
            )
        else:
            if not isinstance(report, ScanReport):
                failures.append(f"scan returned {type(report).__name__}")
            elif loaded and not report.safe:
                blocking = [f"{f.rule_id} {f.message[:200]}" for f in report.findings if f.blocking]
                failures.append(f"load accepted a file scan reports unsafe: {blocking}")
    seconds = time.perf_counter() - t0
    if seconds > per_input_seconds:
        failures.append(f"took {seconds:.1f} s (more than {per_input_seconds} s): a hang")
    written = sandbox.written()
    if written:
        failures.append(f"files appeared (a payload ran or the loader wrote): {written}")
        sandbox.clear()
    return Verdict(outcome, failures, seconds)


def save_failure(directory: Path | str, target: str, data: bytes, verdict: Verdict) -> Path:
    """Write the failing input and its report as ``<directory>/<target>-<hash>.bin`` / ``.txt``.

    Returns
    -------
    Path
        The ``.bin`` reproducer (``safeload.loads(path.read_bytes())`` replays it).
    """
    import hashlib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{target}-{hashlib.sha1(data).hexdigest()[:12]}"
    path = directory / f"{stem}.bin"
    path.write_bytes(data)
    (directory / f"{stem}.txt").write_text(
        f"target: {target}\noutcome: {verdict.outcome}\n\n" + "\n\n".join(verdict.failures)
    )
    return path


def sandbox_from_env() -> Sandbox:
    """The sandbox of a fuzz worker: ``$SAFELOAD_CANARY_DIR`` and the current directory."""
    return Sandbox(Path(os.environ["SAFELOAD_CANARY_DIR"]), Path.cwd())
