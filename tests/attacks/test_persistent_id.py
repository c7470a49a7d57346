"""Family *persistent-id*: ``PERSID``/``BINPERSID`` hand a value to application code.

``BINPERSID`` passes the object on top of the stack to ``persistent_load``; a plain
``pickle.load`` raises "no persistent_load" only *after* the payload that produced that object
ran (D08).  The pid can also be any trusted-looking value, or the text line of protocol-0
``PERSID``.  safeload never resolves persistent ids: they are recorded as the forbidden
operation ``persistent-id`` while parsing, and when the stream also names untrusted globals,
those are reported (with the forbidden operation in the message).

Public sources (CATALOG.md): D08 ``persistent_load`` (PERSID/BINPERSID) abuse (brief,
constructed).
"""

from __future__ import annotations

import pickle

import pytest

from ._pickle_builder import G, Ops, compress, dumps, joblib_array
from .conftest import Forbidden, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/persid"'
BOXES = ["raw", "zlib", "gzip", "bz2", "xz", "lzma", "lz4"]


def _box(data: bytes, box: str) -> bytes:
    return data if box == "raw" else compress(data, box)


PIDS = {
    "str": lambda o: o.unicode("storage/0"),
    "tuple": lambda o: o.unicode("storage").unicode("cpu").int_(0).tuple_(3),
    "int": lambda o: o.int_(7),
    "bytes": lambda o: o.binbytes(b"\x00" * 16),
    "trusted-global": lambda o: o.global_("numpy", "log1p"),
    "trusted-instance": lambda o: o.global_("collections", "OrderedDict").tuple_(0).reduce(),
}


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [1, 2, 4, 5])
@pytest.mark.parametrize("pid", list(PIDS))
def test_binpersid_is_forbidden(pid, protocol, box):
    o = Ops(protocol if protocol >= 2 else None).empty_list()
    PIDS[pid](o)
    data = o.op(pickle.BINPERSID).append().done()
    assert_refused(_box(data, box), Forbidden("persistent-id"))


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("pid", [b"0", b"storage/0", b"os.system", b""])
def test_text_persid_is_forbidden(pid, box):
    data = Ops().mark().op(pickle.PERSID, pid + b"\n").op(pickle.LIST).done()
    assert_refused(_box(data, box), Forbidden("persistent-id"))


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_d08_payload_result_fed_to_binpersid(protocol, box):
    """The untrusted call is reported; the forbidden operation is named too."""
    data = Ops(protocol).global_("os", "system").unicode(CMD).tuple_(1).reduce()
    data = data.op(pickle.BINPERSID).done()
    exc = assert_refused(_box(data, box), Untrusted("os.system"))
    assert "persistent-id" in str(exc)


@pytest.mark.parametrize("box", ["raw", "gzip", "bz2"])
def test_persistent_id_after_many_trusted_objects(box):
    """The persistent id is at the very end, after an ordinary estimator."""
    from ._pickle_builder import B, New

    est = B(New(G("sklearn.linear_model._logistic", "LogisticRegression")), {"C": 1.0})
    body = dumps(est, 4)[:-1]  # drop STOP
    data = body + Ops().unicode("x").op(pickle.BINPERSID).op(pickle.TUPLE2).done()
    assert_refused(_box(data, box), Forbidden("persistent-id"))


def test_persistent_id_inside_joblib_object_array():
    inner = Ops(4).empty_list().unicode("x").op(pickle.BINPERSID).append().done()
    data = dumps([joblib_array("O", (1,), inner)], 4)
    assert_refused(data, Forbidden("persistent-id"))
    assert_refused(compress(data, "xz"), Forbidden("persistent-id"))


@pytest.mark.parametrize("box", ["raw", "gzip", "bz2"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_persistent_id_result_called(protocol, box):
    """REDUCE on what ``persistent_load`` would return."""
    data = Ops(protocol).unicode("x").op(pickle.BINPERSID).unicode(CMD).tuple_(1).reduce().done()
    assert_refused(_box(data, box), Forbidden("persistent-id"))
