"""What the numbers were measured on: library versions, CPU, memory, Python, BLAS."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

LIBRARIES = ("numpy", "scipy", "sklearn", "joblib", "skops", "pandas", "safeload", "pyinstrument")


def _version(name: str) -> str | None:
    try:
        mod = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - absent or broken: reported as None
        return None
    return getattr(mod, "__version__", "installed")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _thp() -> str | None:
    """Transparent-huge-page mode (``enabled`` / ``defrag``): large numpy allocations stall on it."""
    base = Path("/sys/kernel/mm/transparent_hugepage")
    try:
        picks = [re.search(r"\[(\w+)\]", (base / f).read_text()) for f in ("enabled", "defrag")]
    except OSError:
        return None
    return "/".join(m.group(1) if m else "?" for m in picks)


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info

        return [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for d in threadpool_info()
        ]
    except Exception:  # noqa: BLE001
        return []


def environment() -> dict[str, Any]:
    """Return the environment of this run as a JSON-serializable dict.

    Returns
    -------
    dict
        ``date`` (UTC, ISO 8601), ``python``, ``implementation``, ``platform``, ``cpu``,
        ``cores`` (logical), ``memory_gib``, ``versions`` (library -> version or None),
        ``blas`` (threadpoolctl), ``thp`` (transparent huge pages ``enabled/defrag``), ``env`` (OPENBLAS_* / OMP_* variables) and ``commit``.
    """
    import numpy  # noqa: F401 - so threadpoolctl sees the BLAS

    root = Path(__file__).resolve().parent.parent
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "versions": {name: _version(name) for name in LIBRARIES},
        "blas": _blas(),
        "thp": _thp(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
        "commit": _git_commit(root),
    }
