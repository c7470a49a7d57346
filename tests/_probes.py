"""Replaying the probe calls stored next to each legacy file (``<Est>.probe.json``).

Each call is ``{method, input, input_kind, output}`` recorded in the *old* environment; a correct
load reproduces it: labels exactly, floats with ``np.allclose(rtol=1e-5, atol=1e-8)`` (the
tolerance stated in the corpus README).
"""

from __future__ import annotations

import numpy as np


def probe_input(call: dict):
    """Turn the JSON input of a probe call into what the estimator method expects."""
    kind = call["input_kind"]
    data = call["input"]
    if kind == "text":
        return list(data)
    if kind in ("mixed", "cat"):
        return np.asarray(data, dtype=object)
    return np.asarray(data)


def check_probe(estimator, probe: dict) -> str | None:
    """Replay every call; return None when all match, else a message naming the first miss."""
    for call in probe["calls"]:
        method = call["method"]
        try:
            out = getattr(estimator, method)(probe_input(call))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return f"{method} raised {type(exc).__name__}: {exc}"
        out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
        expected = call["output"]
        values = np.asarray(expected["values"]).reshape(expected["shape"])
        if out.shape != values.shape:
            return f"{method}: shape {out.shape} != recorded {values.shape}"
        if expected["kind"] == "num":
            if not np.allclose(out.astype(float), values.astype(float), rtol=1e-5, atol=1e-8):
                diff = np.max(np.abs(out.astype(float) - values.astype(float)))
                return f"{method}: max abs diff {diff:.3g}"
        elif [str(v) for v in out.ravel()] != [str(v) for v in values.ravel()]:
            return f"{method}: labels differ"
    return None
