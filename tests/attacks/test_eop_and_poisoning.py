"""Catalogue rows S1 (model poisoning) and S2 (exception-oriented programming).

S2 — "The Art of Hide and Seek" (arXiv 2508.19774), HF manja316/modelscan-bypass-eop: a payload
followed (or preceded) by something that makes the *scanner* raise, so a scanner whose broad
``except`` turns the error into "no issues" calls the file clean.  safeload's scanner fails
closed: every variant here — a payload, then an invalid opcode, a ``STACK_GLOBAL`` on non-strings,
an undecodable name, a recursion bomb, a huge memo index, an oversized integer, a truncation —
is reported unsafe *and* names the payload's global; ``load`` refuses it, nothing runs.

S1 — Sleepy Pickle proper: a file of trusted types only whose fitted attributes were changed.
No allowlist can tell; the test pins down that this is outside the guarantee (docs/SECURITY.md):
the poisoned model loads and predicts what the attacker chose.  Payloads that *compute* the
poisoning at load time (calls of untrusted functions, BUILD on a class) are refused.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

import safeload

from ._pickle_builder import B, G, New, Ops, body, containers, dumps
from .conftest import Forbidden, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/eop"'
PAYLOAD = G("os", "system")(CMD)

#: what follows the payload's opcodes to make a parser raise
TRIGGERS = {
    "invalid-opcode": b"\xff",
    "stack-global-non-str": b"K\x01K\x02\x93",
    "undecodable-name": b"c\xff\xfe\n\xfd\n",
    "recursion": b"(" * 200_000 + b"l" * 200_000,
    "memo-index": b"r\xff\xff\xff\x7f",
    "huge-int": b"\x8b" + struct.pack("<i", 1 << 30),
    "truncated": b"\x8c\x10abc",
    "pop-empty": b"0" * 8,
    "reduce-non-callable": b"K\x01)R",
}


def _stream(trigger: bytes, protocol: int, before: bool) -> bytes:
    payload = body(dumps(PAYLOAD, protocol))
    o = Ops(protocol if protocol >= 2 else None)
    if before:
        return o.raw(trigger + payload + b".").value()
    return o.raw(payload + trigger + b".").value()


@pytest.mark.parametrize("box", ["raw", "gzip", "bz2"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_payload_then_scanner_exception(trigger, protocol, box):
    data = containers(_stream(TRIGGERS[trigger], protocol, before=False))[box]
    with pytest.raises(safeload.SafeloadError):
        safeload.loads(data)
    report = safeload.scan(data)
    assert not report.safe
    assert "os.system" in report.untrusted_types, (trigger, report.untrusted_types)


@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_scanner_exception_before_the_payload(trigger):
    """The trigger comes first: the file is still unsafe (fail closed), and refused."""
    data = _stream(TRIGGERS[trigger], 2, before=True)
    with pytest.raises(safeload.SafeloadError):
        safeload.loads(data)
    report = safeload.scan(data)
    assert not report.safe
    assert [f for f in report.findings if f.blocking], report.findings


# --------------------------------------------------------------------------- S1 poisoning
def _model():
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    return LogisticRegression().fit(X, [0, 1, 1, 0]), X


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_poisoned_weights_of_a_trusted_model_load(protocol):
    """Outside the guarantee, by design: trusted types with attacker-chosen content load."""
    model, X = _model()
    honest = model.predict(X)
    model.coef_ = np.zeros_like(model.coef_)
    model.intercept_ = np.array([50.0])  # always class 1
    data = pickle.dumps(model, protocol=protocol)
    loaded = safeload.loads(data)
    assert safeload.scan(data).safe
    np.testing.assert_array_equal(loaded.predict(X), [1, 1, 1, 1])  # the attacker's choice
    assert (loaded.predict(X) != honest).any()


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param(
            B(
                New(G("sklearn.linear_model._logistic", "LogisticRegression")),
                {"coef_": G("numpy", "negative")(G("builtins", "eval")("[[1.0, 2.0]]"))},
            ),
            Untrusted("builtins.eval", "numpy.negative"),
            id="computed-weights",
        ),  # fmt: skip
        pytest.param(
            B(G("sklearn.linear_model._logistic", "LogisticRegression"), {"predict": None}),
            Forbidden("build-on-global"),
            id="patch-the-class",
        ),
        pytest.param(
            B(G("sklearn.base", "clone"), (None, {"__code__": None})),
            Untrusted("sklearn.base.clone"),
            id="patch-a-function",
        ),
    ],
)
def test_poisoning_computed_at_load_time_is_refused(expr, expected, protocol):
    """Sleepy-Pickle payloads that *do* something at load time are refused by name or op."""
    assert_refused(dumps(expr, protocol), expected)
