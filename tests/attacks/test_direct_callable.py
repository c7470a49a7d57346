"""Family *direct-callable*: a code-running callable reached by a global and called.

The classic payload: ``GLOBAL``/``STACK_GLOBAL`` (or ``INST``/``OBJ``) names ``os.system``,
``builtins.exec``/``eval``, ``getattr`` + ``__import__`` or ``subprocess.*`` and ``REDUCE`` calls
it.  Every spelling must be refused by the audit, before anything is imported, with the exact
names in ``UntrustedTypesError.types`` — in every protocol, with every way of naming and calling
the global, and inside every container (raw, joblib-compressed, gzip/bz2/xz pickles).

Public sources (CATALOG.md): A01-A05 (constructed baseline payloads); Python docs "Restricting
Globals" (pickle module documentation).
"""

from __future__ import annotations

import pytest

from ._pickle_builder import G, R, containers, dumps, variants
from .conftest import Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/direct"'
PY = "import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'direct'), 'w').close()"

#: name -> (payload expression, the exact untrusted names it must be refused for)
GADGETS = {
    "os.system": (G("os", "system")(CMD), ["os.system"]),
    "posix.system": (G("posix", "system")(CMD), ["posix.system"]),
    "os.popen": (G("os", "popen")(CMD), ["os.popen"]),
    "builtins.exec": (G("builtins", "exec")(PY), ["builtins.exec"]),
    "builtins.eval": (G("builtins", "eval")(f"exec({PY!r})"), ["builtins.eval"]),
    "compile+exec": (
        G("builtins", "exec")(G("builtins", "compile")(PY, "<x>", "exec")),
        ["builtins.compile", "builtins.exec"],
    ),
    "getattr+__import__": (
        R(G("builtins", "getattr")(G("builtins", "__import__")("os"), "system"), (CMD,)),
        ["builtins.__import__", "builtins.getattr"],
    ),
    "subprocess.call": (G("subprocess", "call")(["sh", "-c", CMD]), ["subprocess.call"]),
    "subprocess.Popen": (G("subprocess", "Popen")(["sh", "-c", CMD]), ["subprocess.Popen"]),
    "subprocess.check_output": (
        G("subprocess", "check_output")(["sh", "-c", CMD]),
        ["subprocess.check_output"],
    ),
    "subprocess.run": (G("subprocess", "run")(["sh", "-c", CMD]), ["subprocess.run"]),
}

CASES = [
    pytest.param(expr, types, stream, id=f"{name}-{label}")
    for name, (expr, types) in GADGETS.items()
    for label, stream in variants(expr).items()
]


@pytest.mark.parametrize(("expr", "types", "data"), CASES)
def test_every_protocol_and_spelling_is_refused(expr, types, data):
    assert_refused(data, Untrusted(*types))


CONTAINED = [
    pytest.param(data, types, id=f"{name}-{box}")
    for name, (expr, types) in GADGETS.items()
    for box, data in containers(dumps(expr, 4, frame=True)).items()
]


@pytest.mark.parametrize(("data", "types"), CONTAINED)
def test_every_container_is_refused(data, types):
    assert_refused(data, Untrusted(*types))


def test_every_untrusted_global_of_a_file_is_listed():
    """All payloads in one file: one error lists every one of them, sorted."""
    everything = [expr for expr, _ in GADGETS.values()]
    names = sorted({n for _, types in GADGETS.values() for n in types})
    for protocol in (0, 2, 4, 5):
        assert_refused(dumps(everything, protocol), Untrusted(*names))


def test_payload_hidden_among_trusted_objects():
    """An untrusted call nested in the state of an ordinary estimator."""
    from ._pickle_builder import B, New

    est = New(G("sklearn.linear_model._logistic", "LogisticRegression"))
    expr = B(est, {"C": 1.0, "classes_": G("os", "system")(CMD)})
    for protocol in (2, 3, 4, 5):
        assert_refused(dumps(expr, protocol), Untrusted("os.system"))
