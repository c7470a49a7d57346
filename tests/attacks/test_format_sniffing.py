"""Family *format-sniffing*: the reader is chosen by name or by a magic test an attacker controls.

A protocol-0 text pickle has no ``\\x80`` magic (D11); a pickle saved as ``.bin``/``.pt``/
``.txt`` skips scanners routed by extension (D12); a pickle with a valid zip appended is a zip
for ``zipfile.is_zipfile`` and a pickle for ``pickle.load`` (F08).  safeload detects the format
from the content only, so the verdict is the same for every file name; a stream followed by
anything is refused, whatever follows — also after the end of a compressed stream; a zip, a
bare ``.npy`` or unknown bytes are a ``FormatError`` (safeload does not read zip members).

Public sources (CATALOG.md): D11 CVE-2025-10155, https://github.com/promptfoo/modelaudit/pull/605;
D12 CVE-2025-1889; F08 parser differential (nullifAI lesson; CVE-2025-1944 zip name
confusion).
"""

from __future__ import annotations

import pytest

from ._pickle_builder import G, Ops, compress, dumps, make_zip, npy_bytes
from .conftest import Format, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/sniff"'
EXTENSIONS = ["pkl", "bin", "pt", "pth", "joblib", "npy", "zip", "txt", "json", "gz", "", "h5"]

STREAMS = {
    "p0-text": dumps(G("os", "system")(CMD), 0),
    "p0-INST": dumps(G("os", "system")(CMD), 0, call_style="INST"),
    "p1-OBJ": dumps(G("os", "system")(CMD), 1, call_style="OBJ"),
    "p2": dumps(G("os", "system")(CMD), 2),
    "p4-frame": dumps(G("os", "system")(CMD), 4, frame=True),
    "p2-no-proto": dumps(G("os", "system")(CMD), 2, header=False),
    "gzip": compress(dumps(G("os", "system")(CMD), 4), "gzip"),
    "bz2": compress(dumps(G("os", "system")(CMD), 4), "bz2"),
    "zlib": compress(dumps(G("os", "system")(CMD), 4), "zlib"),
}


@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("stream", list(STREAMS))
def test_verdict_does_not_depend_on_the_file_name(stream, ext, tmp_path):
    path = tmp_path / (f"model.{ext}" if ext else "model")
    path.write_bytes(STREAMS[stream])
    assert_refused(path, Untrusted("os.system"))
    assert_refused(str(path), Untrusted("os.system"))


@pytest.mark.parametrize("stream", list(STREAMS))
def test_file_object_and_bytes_agree(stream, tmp_path):
    import io

    import safeload

    data = STREAMS[stream]
    for source in (data, io.BytesIO(data)):
        with pytest.raises(safeload.UntrustedTypesError) as info:
            if isinstance(source, bytes):
                safeload.loads(source)
            else:
                safeload.load(source)
        assert info.value.types == ["os.system"]


ZIP = make_zip([("archive/data.pkl", dumps([1], 2)), ("archive/version", b"3\n")])

POLYGLOTS = {
    "pickle+zip": STREAMS["p2"] + ZIP,
    "text-pickle+zip": STREAMS["p0-text"] + ZIP,
    "benign-pickle+zip": dumps([1, 2], 2) + ZIP,
    "benign+malicious": dumps([1], 2) + STREAMS["p2"],
    "pickle+npy": STREAMS["p2"] + npy_bytes("<f8", (1,), b"\0" * 8),
    "pickle+gzip": dumps([1], 2) + compress(STREAMS["p2"], "gzip"),
    "pickle+newline": STREAMS["p2"] + b"\n",
    "pickle+nul": STREAMS["p2"] + b"\0",
}


@pytest.mark.parametrize("name", list(POLYGLOTS))
def test_trailing_data_after_stop_is_refused(name, tmp_path):
    path = tmp_path / "polyglot.pkl"
    path.write_bytes(POLYGLOTS[name])
    assert_refused(path, Format("trailing data"))
    assert_refused(POLYGLOTS[name], Format("trailing data"))


FOREIGN = {
    "zip-with-pickle": ZIP,
    "zip-stored-payload": make_zip([("data.pkl", STREAMS["p2"])]),
    "zip+pickle-appended": ZIP + STREAMS["p2"],
    "empty-zip": make_zip([]),
    "npy-object": npy_bytes("|O", (1,), STREAMS["p2"]),
    "npy-float": npy_bytes("<f8", (1,), b"\0" * 8),
    "text": b"hello, I am not a model\n",
    "json": b'{"py/reduce": [{"py/function": "os.system"}, ["true"]]}',
    "html": b"<html><body>404</body></html>",
    "elf": b"\x7fELF\x02\x01\x01" + b"\0" * 57,
    "joblib-ZF": b"ZF0x" + b"\0" * 60,
    "single-nul": b"\0",
    "empty": b"",
}


@pytest.mark.parametrize("ext", ["pkl", "joblib", "zip", "npy"])
@pytest.mark.parametrize("name", list(FOREIGN))
def test_foreign_or_unknown_formats_are_format_errors(name, ext, tmp_path):
    data = FOREIGN[name]
    path = tmp_path / f"model.{ext}"
    path.write_bytes(data)
    assert_refused(path, Format())
    if data:
        assert_refused(data, Format())


def test_gzip_of_gzip_is_not_unwrapped_twice():
    """Only one compression layer is read; a second one is unknown content."""
    inner = compress(STREAMS["p2"], "gzip")
    assert_refused(compress(inner, "gzip"), Format())


@pytest.mark.parametrize("first", ["(", "]", "}", ")", "N", "I0\n", "c", "S'x'\n"])
def test_protocol_0_and_1_streams_starting_with_any_value_opcode(first):
    """Sniffing must accept any opcode a protocol 0/1 pickler starts with (so the audit runs)."""
    if first == "c":
        data = Ops().global_("os", "system").unicode(CMD).tuple_(1).reduce().done()
    else:
        head = first.encode()
        data = head + Ops().global_("os", "system").op(b"0").done()
        if first == "(":
            data = b"(" + Ops().global_("os", "system").op(b"l").done()
    assert_refused(data, Untrusted("os.system"))


@pytest.mark.parametrize(
    ("comp", "tail"),
    [
        pytest.param(c, t)
        for c in ("zlib", "gzip", "bz2", "xz", "lzma", "lz4")
        for t in ("zip", "garbage")
    ],
)
def test_trailing_data_after_a_compressed_stream(comp, tail):
    """F08 inside a compressor: a benign pickle compressed, then a zip (or junk) appended.

    Regression: bytes after a zlib/bz2/xz/lzma stream used to be ignored (the file loaded) and
    lz4 raised a bare RuntimeError; every compressed stream now refuses trailing data.
    """
    extra = ZIP if tail == "zip" else b"garbage"
    assert_refused(compress(dumps([1, 2], 2), comp) + extra, Format())
