"""Family *copyreg-ext*: ``EXT1``/``EXT2``/``EXT4`` fetch a global by integer code.

``copyreg.add_extension("os", "system", code)`` registers a code; afterwards ``EXT1 code`` in
any stream yields ``os.system`` without a ``GLOBAL`` naming it (and the C unpickler caches the
object, bypassing ``find_class``).  The registration may come from the same stream (a
``copyreg.add_extension`` call, D06) or from other code in the process (D07).  safeload never
resolves extension codes: the raw-pickle reader refuses the stream before the C unpickler sees
it, the joblib/compressed reader records the opcode as forbidden; in both cases the refusal does
not depend on the registry's content, and nothing registered is ever returned.

Public sources (CATALOG.md): D06/D07 pickle ``EXT1/2/4`` + the ``copyreg`` extension registry
(brief, constructed).
"""

from __future__ import annotations

import copyreg
import pickle
import struct

import pytest

from ._pickle_builder import Ops, compress, dumps, joblib_array
from .conftest import Forbidden, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/ext"'
EXT = {
    "EXT1": lambda code: pickle.EXT1 + struct.pack("<B", code),
    "EXT2": lambda code: pickle.EXT2 + struct.pack("<H", code),
    "EXT4": lambda code: pickle.EXT4 + struct.pack("<I", code),
}
CODES = {"EXT1": 0xF1, "EXT2": 0xF1F2, "EXT4": 0x7FFFFFF1}
BOXES = ["raw", "zlib", "gzip", "bz2", "xz", "lzma", "lz4"]


def _box(data: bytes, box: str) -> bytes:
    return data if box == "raw" else compress(data, box)


@pytest.fixture
def registered():
    """Register ``os.system``/``builtins.exec`` under the codes for the duration of a test."""
    pairs = {
        CODES["EXT1"]: ("os", "system"),
        CODES["EXT2"]: ("builtins", "exec"),
        CODES["EXT4"]: ("posix", "system"),
    }
    done = []
    try:
        for code, (module, name) in pairs.items():
            copyreg.add_extension(module, name, code)
            done.append((module, name, code))
        yield
    finally:
        for module, name, code in done:
            copyreg.remove_extension(module, name, code)
        copyreg.clear_extension_cache()


def ext_call(kind: str, protocol: int) -> bytes:
    """``EXT<n> code`` then ``REDUCE`` it with the canary command."""
    return Ops(protocol).raw(EXT[kind](CODES[kind])).unicode(CMD).tuple_(1).reduce().done()


def ext_stored(kind: str, protocol: int) -> bytes:
    """``EXT<n> code`` kept as a value in a list (``APPEND``)."""
    return Ops(protocol).empty_list().raw(EXT[kind](CODES[kind])).append().done()


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("kind", list(EXT))
def test_ext_code_is_forbidden_without_registration(kind, protocol, box):
    assert_refused(_box(ext_stored(kind, protocol), box), Forbidden("extension-code"))


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("kind", list(EXT))
def test_ext_code_is_forbidden_with_a_registered_extension(registered, kind, protocol, box):
    """D07: the code is registered in this process; it must still never be resolved."""
    assert_refused(_box(ext_stored(kind, protocol), box), Forbidden("extension-code"))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("kind", list(EXT))
def test_ext_code_called(registered, kind, protocol):
    assert_refused(ext_call(kind, protocol), Forbidden("extension-code"))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz"])
def test_ext_code_called_compressed(registered, box):
    assert_refused(compress(ext_call("EXT1", 4), box), Forbidden("extension-code"))


@pytest.mark.parametrize("kind", list(EXT))
def test_ext_code_in_memo_and_dupd(registered, kind):
    o = Ops(4).raw(EXT[kind](CODES[kind])).memoize().pop().binget(0).dup().pop()
    assert_refused(o.unicode(CMD).tuple_(1).reduce().done(), Forbidden("extension-code"))


@pytest.mark.parametrize("protocol", [2, 4])
def test_d06_registration_in_the_same_stream(protocol):
    """D06: ``copyreg.add_extension`` called by the stream, then EXT1: refused by name."""
    o = Ops(protocol).global_("copyreg", "add_extension")
    o.unicode("os").unicode("system").int_(0xF1).tuple_(3).reduce().pop()
    called = o.value() + EXT["EXT1"](0xF1) + Ops().unicode(CMD).tuple_(1).reduce().done()
    stored = o.value() + Ops().empty_list().raw(EXT["EXT1"](0xF1)).append().done()
    # the raw reader refuses at the EXT opcode; the compressed reader audits the names too
    assert_refused(called, Forbidden("extension-code"))
    assert_refused(stored, Forbidden("extension-code"))
    exc = assert_refused(compress(stored, "gzip"), Untrusted("copyreg.add_extension"))
    assert "extension-code" in str(exc)
    assert copyreg._extension_registry.get(("os", "system")) is None


@pytest.mark.parametrize("kind", list(EXT))
def test_ext_inside_joblib_object_array_inner_stream(registered, kind):
    inner = ext_stored(kind, 4)
    data = dumps([joblib_array("O", (1,), inner)], 4)
    assert_refused(data, Forbidden("extension-code"))
    assert_refused(compress(data, "zlib"), Forbidden("extension-code"))


@pytest.mark.parametrize("code", [0, 2**31 - 1, 2**32 - 1])
def test_ext4_edge_codes(code):
    data = Ops(4).raw(pickle.EXT4 + struct.pack("<I", code)).done()
    assert_refused(data, Forbidden("extension-code"))
    assert_refused(compress(data, "bz2"), Forbidden("extension-code"))


def test_registry_untouched():
    assert ("os", "system") not in copyreg._extension_registry
    assert 0xF1 not in copyreg._inverted_registry
    assert not copyreg._extension_cache
