"""Families *zip-slip* / *zip-duplicate*: archive member names that escape or disagree.

A member named ``../x`` or ``/abs/x`` is written outside the extraction folder by a naive
extractor (Z07/Z08, ``os.path.join(dest, '/x') == '/x'``); two central-directory entries with
the same name and different bodies make two readers see two different files (Z09).  safeload
neither extracts nor reads zip archives (any zip is a ``FormatError``), and the one place it
opens a file by a name taken from the file — joblib < 0.10 side files (``NDArrayWrapper``) —
accepts only a plain name in the pickle's own folder.  No file may be created anywhere.

Public sources (CATALOG.md): Z07 zip-slip (Snyk 2018), CVE-2025-1944; Z08 zip-slip;
Z09 zip parser differentials (CVE-2025-1944 family).
"""

from __future__ import annotations

import os

import pytest

from ._pickle_builder import B, G, New, dumps, make_zip, npy_bytes
from .conftest import Format, assert_refused

PAYLOAD = dumps(G("os", "system")('touch "$SAFELOAD_CANARY_DIR/slip"'), 2)
ABS_TARGET = "/tmp/safeload_canary_zipslip_abs"

SLIP_NAMES = [
    "../safeload_canary_slip",
    "../../../../../../tmp/safeload_canary_zipslip_rel",
    ABS_TARGET,
    "archive/../../safeload_canary_slip",
    "..\\..\\safeload_canary_slip",
    "C:/safeload_canary_slip",
    "./././../safeload_canary_slip",
]


@pytest.fixture(autouse=True)
def nothing_written():
    for p in (ABS_TARGET, "/tmp/safeload_canary_zipslip_rel"):
        if os.path.exists(p):
            os.remove(p)
    yield
    assert not os.path.exists(ABS_TARGET)
    assert not os.path.exists("/tmp/safeload_canary_zipslip_rel")


@pytest.mark.parametrize("name", SLIP_NAMES)
@pytest.mark.parametrize("body", ["pickle", "npy"])
def test_escaping_member_names(name, body, tmp_path):
    data = PAYLOAD if body == "pickle" else npy_bytes("<f8", (1,), b"\0" * 8)
    archive = make_zip([("manifest.json", b"{}"), (name, data)])
    path = tmp_path / "model.zip"
    path.write_bytes(archive)
    assert_refused(path, Format("zip"))
    assert_refused(archive, Format("zip"))
    assert os.listdir(tmp_path) == ["model.zip"]


@pytest.mark.parametrize(
    "members",
    [
        [("manifest.json", b'{"a": 1}'), ("manifest.json", b'{"a": 2}')],
        [("data.pkl", dumps([1], 2)), ("data.pkl", PAYLOAD)],
        [("data.pkl", PAYLOAD), ("DATA.PKL", dumps([1], 2))],
        [("w.npy", npy_bytes("<f8", (1,), b"\0" * 8)), ("w.npy", npy_bytes("|O", (1,), PAYLOAD))],
    ],
    ids=["manifest", "pickle", "case", "npy"],
)
def test_duplicate_member_names(members):
    assert_refused(make_zip(members), Format("zip"))


def side_file_pickle(filename: str) -> bytes:
    wrapper = New(G("joblib.numpy_pickle", "NDArrayWrapper"))
    state = {"filename": filename, "subclass": G("numpy", "ndarray"), "allow_mmap": False}
    return dumps([B(wrapper, state)], 2)


@pytest.mark.parametrize(
    "name",
    [
        "../outside.npy",
        "sub/../../outside.npy",
        "/tmp/safeload_side_abs.npy",
        ".",
        "..",
        "",
        "sub/inside.npy",
        "./inside.npy",
    ],
)
def test_joblib_side_file_name_must_be_a_plain_name(name, tmp_path):
    """joblib < 0.10 names its ``.npy`` side files in the pickle: refuse anything but a plain
    file name, even when the named file exists and is harmless."""
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    harmless = npy_bytes("<f8", (1,), b"\0" * 8)
    for target in (tmp_path / "outside.npy", folder / "sub" / "inside.npy", folder / "inside.npy"):
        target.write_bytes(harmless)
    (folder / "m.pkl").write_bytes(side_file_pickle(name))
    assert_refused(folder / "m.pkl", Format("plain file name"))


def test_side_file_symlink_to_a_device_is_refused(tmp_path):
    """A side file that is not a regular file (``/dev/zero``) is never read."""
    os.symlink("/dev/zero", tmp_path / "z.npy")
    (tmp_path / "m.pkl").write_bytes(side_file_pickle("z.npy"))
    assert_refused(tmp_path / "m.pkl", Format())
