"""Family *npy-object*: ``.npy`` data with an object dtype, whose body is a pickle.

``numpy.load(allow_pickle=True)`` unpickles the body of an object-dtype ``.npy`` (CVE-2019-6446),
inside a "safe" JSON+npy zip (Z05), standalone (N01), or hidden in a structured dtype with an
object field whose ``descr`` is not ``'|O'`` (Z06, ``dtype.hasobject``).  safeload reads no
standalone ``.npy`` (``FormatError``: not a model file) and no zip; the one place it reads
``.npy`` data is joblib < 0.10's side files next to a pickle (``NDArrayWrapper``), where object
dtypes — including any structured dtype with ``hasobject`` — are refused without unpickling.

Public sources (CATALOG.md): Z05/N01 numpy CVE-2019-6446; Z06 numpy format ``hasobject`` check.
"""

from __future__ import annotations

import numpy as np
import pytest

import safeload

from ._pickle_builder import B, G, New, dumps, make_zip, npy_bytes
from .conftest import Format, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/npy"'
BODY = dumps(G("os", "system")(CMD), 2)

OBJECT_DESCRS = {
    "|O": "|O",
    "O": "O",
    "object-record": [("a", "<f8"), ("b", "|O")],
    "nested-record": [("a", [("x", "<i4"), ("y", "|O")])],
    "subarray-object": [("a", "|O", (2,))],
    "object-first": [("o", "|O"), ("f", "<f8")],
}


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("descr", list(OBJECT_DESCRS))
def test_standalone_object_npy_is_a_format_error(descr, version, tmp_path):
    data = bytearray(npy_bytes(OBJECT_DESCRS[descr], (1,), BODY))
    data[6:8] = bytes(version)
    if version != (1, 0):  # v2/v3 headers have a 4-byte length
        header_len = int.from_bytes(data[8:10], "little")
        data[8:10] = b""
        data[8:8] = (header_len - 2).to_bytes(4, "little")
    assert_refused(bytes(data), Format())
    path = tmp_path / "array.npy"
    path.write_bytes(bytes(data))
    assert_refused(path, Format())


@pytest.mark.parametrize("descr", list(OBJECT_DESCRS))
def test_object_npy_in_a_safe_format_zip(descr):
    """Z05/Z06: a JSON + .npy zip is not a format ``load`` reads."""
    zipped = make_zip(
        [
            ("manifest.json", b'{"arrays": ["w.npy"]}'),
            ("w.npy", npy_bytes(OBJECT_DESCRS[descr], (1,), BODY)),
        ]
    )
    assert_refused(zipped, Format("zip"))


def side_file_pickle(filename: str) -> bytes:
    """A joblib < 0.10 pickle whose array lives in the side file ``filename``."""
    wrapper = New(G("joblib.numpy_pickle", "NDArrayWrapper"))
    state = {"filename": filename, "subclass": G("numpy", "ndarray"), "allow_mmap": False}
    return dumps([B(wrapper, state)], 2)


@pytest.mark.parametrize("descr", list(OBJECT_DESCRS))
def test_object_dtype_side_file_is_refused(descr, tmp_path):
    (tmp_path / "model.pkl_01.npy").write_bytes(npy_bytes(OBJECT_DESCRS[descr], (1,), BODY))
    (tmp_path / "model.pkl").write_bytes(side_file_pickle("model.pkl_01.npy"))
    exc = assert_refused(tmp_path / "model.pkl", Format("holds Python objects"))
    assert "model.pkl_01.npy" in str(exc)


@pytest.mark.parametrize(
    "descr",
    ["<f8", ">i4", "<U3", [("a", "<f8"), ("b", "<i2")]],
    ids=["f8", "i4-be", "U3", "record"],
)
def test_numeric_side_file_control(descr, tmp_path):
    dt = np.dtype(descr)
    (tmp_path / "model.pkl_01.npy").write_bytes(npy_bytes(descr, (2,), b"\0" * (2 * dt.itemsize)))
    (tmp_path / "model.pkl").write_bytes(side_file_pickle("model.pkl_01.npy"))
    [arr] = safeload.load(tmp_path / "model.pkl")
    assert arr.dtype == dt and arr.shape == (2,)


def test_side_file_without_a_path_is_refused():
    """Loaded from bytes there is no folder to find side files in."""
    assert_refused(side_file_pickle("model.pkl_01.npy"), Format("side file"))
