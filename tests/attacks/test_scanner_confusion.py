"""Families *scanner-confusion* / *memo-confusion*: hide which global a stream names.

Static scanners guess the operands of ``STACK_GLOBAL`` from nearby literals.  Attacks: operands
fetched from the memo after decoy literals (D04), ``BINPUT``/``MEMOIZE``/``PUT`` mixed so a
scanner numbering the memo itself gets it wrong (D03), operands computed at load time by a
trusted call (``_codecs.encode(..., 'rot13')``, D05) or planted by ``BUILD`` (C08), no ``PROTO``
with the module operand as opcode 0 (D13), escaped ``UNICODE`` names (D14), a callable parked in
the memo and ``DUP``'d far from its ``REDUCE`` (D15).  safeload does not guess: the real
unpickler hands every resolved ``(module, name)`` to an inert ``find_class``, so the names
reported are the ones the stream really names; operands that are not ``str`` at parse time
are a ``FormatError``; ``_codecs.encode`` with a non-text codec is forbidden.

Public sources (CATALOG.md): D03 https://github.com/mmaitre314/picklescan/issues/14 and
/issues/22; D04 https://github.com/msaad00/agent-bom/pull/3326; D05
https://github.com/protectai/modelscan/issues/331; C08
https://github.com/protectai/modelscan/issues/85; D13 HF manja316/modelscan-bypass-eop,
CVE-2025-71325; D14 constructed (string-grep scanners); D15 memo abuse (brief).
"""

from __future__ import annotations

import pickle

import pytest

from ._pickle_builder import Ops, compress
from .conftest import Forbidden, Format, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/confusion"'
BOXES = ["raw", "gzip", "bz2", "xz"]


def _box(data: bytes, box: str) -> bytes:
    return data if box == "raw" else compress(data, box)


def _call(o: Ops, arg: str = CMD) -> Ops:
    return o.unicode(arg).tuple_(1).reduce()


# ------------------------------------------------------------ memo tricks
def memo_after_decoys(protocol: int, put: str) -> bytes:
    """D04: operands stored in the memo, decoys pushed, operands fetched back."""
    o = Ops(protocol)
    store = {"BINPUT": o.binput, "PUT": o.put, "LONG_BINPUT": None}[put]
    for i, text in enumerate(["os", "system"]):
        o.unicode(text)
        if put == "LONG_BINPUT":
            o.op(pickle.LONG_BINPUT, i.to_bytes(4, "little"))
        else:
            store(i)
        o.pop()
    for decoy in ("collections", "OrderedDict", "sklearn.base", "BaseEstimator"):
        o.unicode(decoy).pop()
    o.binget(0).binget(1).op(pickle.STACK_GLOBAL)
    return _call(o).done()


def memo_mix(protocol: int) -> bytes:
    """D03: MEMOIZE and BINPUT interleaved; memo[0..1] are not what MEMOIZE-counting says."""
    o = Ops(protocol)
    o.stack_global("collections", "OrderedDict").memoize()  # memo[0]
    o.stack_global("os", "system").binput(0)  # overwrite memo[0]
    o.pop().pop()
    o.unicode("collections").memoize().pop()  # memo[1]
    return _call(o.binget(0)).done()


def parked_and_dupd(protocol: int) -> bytes:
    """D15: callable parked in the memo, DUP'd, called far from its global."""
    o = Ops(protocol).stack_global("os", "system").binput(7).pop()
    for i in range(50):
        o.int_(i).pop()
    o.binget(7).dup().pop()
    return _call(o).done()


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("put", ["BINPUT", "PUT", "LONG_BINPUT"])
def test_operands_from_memo_after_decoys(put, protocol, box):
    assert_refused(_box(memo_after_decoys(protocol, put), box), Untrusted("os.system"))


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [4, 5])
def test_memoize_binput_mix(protocol, box):
    assert_refused(_box(memo_mix(protocol), box), Untrusted("os.system"))


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [4, 5])
def test_parked_and_dupd_callable(protocol, box):
    assert_refused(_box(parked_and_dupd(protocol), box), Untrusted("os.system"))


# ------------------------------------------------------------ computed operands
def rot13_operands(protocol: int) -> bytes:
    """D05: STACK_GLOBAL operands are the results of ``_codecs.encode(x, 'rot13')``."""
    o = Ops(protocol)
    for text in ("bf", "flfgrz"):
        o.stack_global("_codecs", "encode").unicode(text).unicode("rot13").tuple_(2).reduce()
    return _call(o.op(pickle.STACK_GLOBAL)).done()


def latin1_operands(protocol: int) -> bytes:
    """Operands computed by an *allowed* codec call: bytes, not str."""
    o = Ops(protocol)
    for text in ("os", "system"):
        o.stack_global("_codecs", "encode").unicode(text).unicode("latin1").tuple_(2).reduce()
    return _call(o.op(pickle.STACK_GLOBAL)).done()


def build_planted_operands(protocol: int) -> bytes:
    """C08: strings planted in an object by BUILD, then the object used as an operand."""
    o = Ops(protocol)
    o.stack_global("sklearn.utils._bunch", "Bunch").tuple_(0).newobj().binput(0)
    o.empty_dict().unicode("m").unicode("os").setitem().build().pop()
    o.binget(0).unicode("system").op(pickle.STACK_GLOBAL)
    return _call(o).done()


def int_operands(protocol: int) -> bytes:
    return _call(Ops(protocol).int_(1).int_(2).op(pickle.STACK_GLOBAL)).done()


COMPUTED = {
    "rot13": rot13_operands,
    "latin1-bytes": latin1_operands,
    "build-planted": build_planted_operands,
    "ints": int_operands,
}


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("kind", list(COMPUTED))
def test_operands_computed_at_load_time_are_a_format_error(kind, protocol, box):
    """The parse needs str operands now; a value that only exists after a call is not one."""
    assert_refused(_box(COMPUTED[kind](protocol), box), Format("STACK_GLOBAL"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("codec", ["rot13", "rot_13", "hex", "base64", "zlib", "bz2", "uu"])
def test_codecs_encode_with_a_computing_codec_is_forbidden(codec, protocol):
    """D05 as a value: ``_codecs.encode`` is trusted for latin1 text only."""
    o = Ops(protocol).global_("_codecs", "encode").unicode("bf").unicode(codec).tuple_(2)
    assert_refused(o.reduce().done(), Forbidden("untrusted-argument"))


@pytest.mark.parametrize("protocol", [2, 4])
def test_codecs_encode_on_bytes_is_forbidden(protocol):
    o = Ops(protocol).global_("_codecs", "encode").binbytes(b"x").unicode("latin1").tuple_(2)
    assert_refused(o.reduce().done(), Forbidden("bad-arguments"))


# ------------------------------------------------------------ no PROTO, escaped names
@pytest.mark.parametrize("first", ["BINUNICODE", "UNICODE", "SHORT_BINUNICODE"])
def test_no_proto_module_operand_at_offset_0(first):
    """D13: the stream starts with the module operand; scanners walking back miss it."""
    o = Ops()
    if first == "BINUNICODE":
        o.binunicode("os").binunicode("system")
    elif first == "UNICODE":
        o.text_unicode("os").text_unicode("system")
    else:
        o.unicode("os").unicode("system")
    data = _call(o.op(pickle.STACK_GLOBAL)).done()
    if first == "SHORT_BINUNICODE":
        # no protocol 0/1 pickler starts a stream with a protocol-4 opcode
        assert_refused(data, Format("unknown file format"))
    else:
        assert_refused(data, Untrusted("os.system"))
        assert_refused(compress(data, "gzip"), Untrusted("os.system"))


@pytest.mark.parametrize(
    ("module_bytes", "name_bytes", "expected"),
    [
        (b"\\u0070osix", b"\\u0073ystem", "posix.system"),
        (b"\\u006fs", b"sy\\u0073tem", "os.system"),
        (b"\\x6fs", b"system", "\\x6fs.system"),
        (b"o\\u0073", b"\\u0073\\u0079\\u0073\\u0074\\u0065\\u006d", "os.system"),
    ],
)
def test_escaped_unicode_names(module_bytes, name_bytes, expected):
    """D14: raw-unicode-escape in UNICODE; the bytes never spell the name."""
    o = Ops().op(pickle.UNICODE, module_bytes + b"\n").op(pickle.UNICODE, name_bytes + b"\n")
    data = _call(o.op(pickle.STACK_GLOBAL)).done()
    if name_bytes != b"system":
        assert b"system" not in data  # nothing for a byte-pattern scanner to find
    assert_refused(data, Untrusted(expected))
    assert_refused(compress(data, "bz2"), Untrusted(expected))


@pytest.mark.parametrize("protocol", [0, 2])
def test_global_names_with_unusual_bytes(protocol):
    """GLOBAL lines are decoded as UTF-8/ASCII: a non-ASCII look-alike is a different name."""
    o = Ops(protocol).op(pickle.GLOBAL, "os\nsyst\u0435m\n".encode())  # Cyrillic e
    assert_refused(_call(o).done(), Untrusted("os.syst\u0435m"))


def test_mark_confusion_with_pop_mark():
    """Values hidden under a MARK that is then popped: the global is still named."""
    o = Ops(4).mark().stack_global("os", "system").unicode(CMD).pop_mark()
    o.stack_global("collections", "OrderedDict").tuple_(0).reduce()
    assert_refused(o.done(), Untrusted("os.system"))
