"""The safe format's contract (issue 4): layout, manifest, determinism, atomic writes, mmap,
compression, versioning, and ``.skops`` files.

Hostile and tampered files are in ``test_format_hostile.py``; value encodings in
``test_format_values.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import mmap
import os
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

import safeload
from safeload.errors import FormatError, UntrustedTypesError

from . import _safezip as sz

CREATED = dt.datetime(2024, 5, 6, 7, 8, 9)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 4)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    return X, y


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


@pytest.fixture(scope="module")
def forest(data):
    X, y = data
    return RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def big_model():
    """Arrays of at least 64 KiB are stored as their own members (mmap-able)."""
    rng = np.random.RandomState(1)
    return {
        "weights": rng.rand(200, 100),
        "fortran": np.asfortranarray(rng.rand(90, 100)),
        "bigendian": np.arange(20000, dtype=">i4"),
        "small": np.arange(5),
        "sparse": sp.random(300, 300, density=0.1, format="csr", random_state=0),
    }


# ---------------------------------------------------------------------------- layout


def test_archive_holds_only_json_and_npy_members_in_order(forest):
    data = safeload.dumps(forest, created=CREATED)
    names = list(sz.read_members(data))
    arrays = [n for n in names if n.startswith("arrays/")]
    assert names == arrays + ["graph.json", "manifest.json"]
    assert arrays == [f"arrays/{i:06d}.npy" for i in range(len(arrays))]
    assert arrays, "a forest has array members"


def test_sparse_matrix_is_stored_as_component_arrays():
    m = sp.random(400, 300, density=0.2, format="csr", random_state=0, dtype=np.float64)
    data = safeload.dumps(m, created=CREATED)
    names = list(sz.read_members(data))
    assert not any(n.endswith(".npz") for n in names)
    arrays = [np.load(io.BytesIO(sz.read_members(data)[n])) for n in names if n.endswith(".npy")]
    assert any(np.array_equal(a, m.data) for a in arrays)
    assert any(np.array_equal(a, m.indices) for a in arrays)
    out = safeload.load(data)
    assert type(out) is sp.csr_matrix and (out != m).nnz == 0


def test_no_member_contains_a_pickle_and_every_npy_loads_without_pickle(forest, big_model):
    data = safeload.dumps([forest, big_model], created=CREATED)
    for name, raw in sz.read_members(data).items():
        if name.endswith(".json"):
            json.loads(raw)
        else:
            assert name.endswith(".npy")
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
            assert not arr.dtype.hasobject
        assert not raw.startswith(b"\x80")  # no member is a pickle stream


def test_whole_member_arrays_equal_loaded_values(big_model):
    data = safeload.dumps(big_model, created=CREATED)
    members = sz.read_members(data)
    root = sz.read_graph(data)["root"]["v"]
    loaded = safeload.load(data)
    for key in ("weights", "fortran", "bigendian"):
        tag = root[key]
        assert "at" not in tag
        from_numpy = np.load(io.BytesIO(members[f"arrays/{tag['i']:06d}.npy"]), allow_pickle=False)
        assert from_numpy.dtype == big_model[key].dtype
        assert np.array_equal(from_numpy, big_model[key])
        assert np.array_equal(loaded[key], from_numpy)
        assert from_numpy.flags.f_contiguous == big_model[key].flags.f_contiguous


def test_stdlib_zipfile_accepts_every_dump(forest, big_model):
    for obj in (forest, big_model, None, [1, "a"]):
        for compression in (None, "deflate"):
            data = safeload.dumps(obj, created=CREATED, compression=compression)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                assert zf.testzip() is None
                for info in zf.infolist():
                    assert info.date_time == (1980, 1, 1, 0, 0, 0)
                    assert info.compress_type == (
                        zipfile.ZIP_DEFLATED if compression else zipfile.ZIP_STORED
                    )
                    assert info.flag_bits & 0x8 == 0  # no data descriptor


def test_stored_array_data_is_64_byte_aligned(big_model):
    data = safeload.dumps(big_model, created=CREATED)
    offsets = sz.member_offsets(data)
    for name, raw in sz.read_members(data).items():
        if name.endswith(".npy"):
            start, _ = offsets[name]
            assert start % 64 == 0, name
            header_len = len(raw) - np.load(io.BytesIO(raw)).nbytes
            assert header_len % 64 == 0, name


# ---------------------------------------------------------------------------- determinism


def test_dumps_twice_is_byte_identical(forest, big_model):
    a = safeload.dumps([forest, big_model], created=CREATED)
    b = safeload.dumps([forest, big_model], created=CREATED)
    assert a == b


def test_dump_to_path_twice_is_byte_identical(tmp_path, forest):
    safeload.dump(forest, tmp_path / "a.safe", created=CREATED)
    safeload.dump(forest, tmp_path / "b.safe", created=CREATED)
    assert (tmp_path / "a.safe").read_bytes() == (tmp_path / "b.safe").read_bytes()
    assert (tmp_path / "a.safe").read_bytes() == safeload.dumps(forest, created=CREATED)


def test_source_date_epoch_gives_reproducible_files(monkeypatch, model):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = safeload.dumps(model)
    b = safeload.dumps(model)
    assert a == b
    assert sz.read_manifest(a)["created"] == "2023-11-14T22:13:20Z"


def test_created_is_utc_whole_seconds_with_z():
    aware = dt.datetime(2024, 1, 1, 12, 0, 30, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    man = sz.read_manifest(safeload.dumps(None, created=aware))
    assert man["created"] == "2024-01-01T10:00:30Z"
    now = sz.read_manifest(safeload.dumps(None))["created"]
    parsed = dt.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - parsed).total_seconds()) < 120


def test_member_names_do_not_depend_on_object_ids():
    def make():
        return [np.full(20000, i, dtype=np.float64) for i in range(3)]

    graphs = {
        sz.read_members(safeload.dumps(make(), created=CREATED))["graph.json"] for _ in range(3)
    }
    assert len(graphs) == 1


def test_sets_of_strings_dump_identically_across_hash_seeds(tmp_path):
    import subprocess

    code = (
        "import sys, datetime, safeload;"
        "sys.stdout.buffer.write(safeload.dumps({'s': set('abcdefghij'), 'f': frozenset(['x','y','z'])},"
        " created=datetime.datetime(2024,1,1)))"
    )
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, check=True, cwd=ROOT
            ).stdout
        )
    assert len(outs) == 1


# ---------------------------------------------------------------------------- manifest


def test_manifest_records_format_versions_hashes_and_provenance(model):
    data = safeload.dumps(
        model,
        created=CREATED,
        metadata={"team": "ml", "ticket": "T-1"},
        training_data="s3://bucket/train.parquet?version=3",
        source="https://git.example/repo/commit/abc123",
        cv_score={"value": 0.91, "scoring": "accuracy", "cv": 5},
    )
    members = sz.read_members(data)
    man = json.loads(members["manifest.json"])
    assert man["format"] == "safeload" and man["format_version"] == 2
    assert man["created"] == "2024-05-06T07:08:09Z"
    import numpy
    import scipy
    import sklearn

    assert man["producer"]["scikit-learn"] == sklearn.__version__
    assert man["producer"]["numpy"] == numpy.__version__
    assert man["producer"]["scipy"] == scipy.__version__
    assert man["producer"]["safeload"] == safeload.__version__
    assert man["producer"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert man["training_data"] == "s3://bucket/train.parquet?version=3"
    assert man["source"] == "https://git.example/repo/commit/abc123"
    assert man["cv_score"] == {"value": 0.91, "scoring": "accuracy", "cv": 5}
    assert man["metadata"] == {"team": "ml", "ticket": "T-1"}
    assert set(man["members"]) == set(members) - {"manifest.json"}
    for name, entry in man["members"].items():
        assert entry == {
            "size": len(members[name]),
            "sha256": hashlib.sha256(members[name]).hexdigest(),
        }


def test_dump_returns_the_manifest_it_wrote(tmp_path, model):
    path = tmp_path / "m.safe"
    returned = safeload.dump(model, path, created=CREATED, cv_score=0.5)
    assert returned == sz.read_manifest(path.read_bytes())
    assert returned["cv_score"] == {"value": 0.5}


def test_every_dumped_manifest_matches_the_published_schema(model):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "safeload" / "data" / "manifest.schema.json").read_text())
    for kwargs in (
        {},
        {"metadata": {"a": "b"}, "training_data": {"train": "hash:1"}, "source": "x"},
        {"cv_score": {"value": 1, "scoring": "r2", "cv": "KFold(5)"}},
    ):
        man = sz.read_manifest(safeload.dumps(model, created=CREATED, **kwargs))
        jsonschema.validate(man, schema)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metadata": {"a": 1}},
        {"metadata": {1: "a"}},
        {"metadata": "x"},
        {"training_data": 5},
        {"source": ["x"]},
        {"cv_score": "good"},
        {"cv_score": {"scoring": "r2"}},
        {"cv_score": {"value": 1, "unknown": 2}},
        {"created": "2024-01-01"},
    ],
)
def test_bad_provenance_arguments_raise_type_error_and_write_nothing(tmp_path, kwargs):
    path = tmp_path / "m.safe"
    with pytest.raises(TypeError):
        safeload.dump([1], path, **kwargs)
    assert os.listdir(tmp_path) == []


def test_metadata_never_changes_how_a_file_loads(model, data):
    X, _ = data
    a = safeload.dumps(model, created=CREATED)
    b = safeload.dumps(model, created=CREATED, metadata={"k": "v" * 1000, "format_version": "9"})
    ma, mb = sz.read_members(a), sz.read_members(b)
    assert {k: v for k, v in ma.items() if k != "manifest.json"} == {
        k: v for k, v in mb.items() if k != "manifest.json"
    }
    la, lb = safeload.load(a), safeload.load(b)
    assert np.array_equal(la.predict_proba(X), lb.predict_proba(X))
    # metadata edited after the fact (it is not hashed): still loads the same
    edited = sz.edit(a, manifest=lambda m: m["metadata"].update(trusted="os.system"))
    assert np.array_equal(safeload.load(edited).predict_proba(X), la.predict_proba(X))


# ---------------------------------------------------------------------------- round trips


def test_estimators_round_trip_with_identical_predictions(data, model, forest):
    X, y = data
    vect = CountVectorizer().fit(["a b c", "b c d", "the cat sat"])
    objs = {"pipe": model, "forest": forest, "tree": DecisionTreeClassifier().fit(X, y)}
    out = safeload.load(safeload.dumps({**objs, "vect": vect}, created=CREATED))
    for key, est in objs.items():
        assert type(out[key]) is type(est)
        assert np.array_equal(out[key].predict(X), est.predict(X))
        assert np.array_equal(out[key].predict_proba(X), est.predict_proba(X))
    assert out["vect"].vocabulary_ == vect.vocabulary_
    docs = ["the b c", "d d a"]
    assert (out["vect"].transform(docs) != vect.transform(docs)).nnz == 0


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_load_accepts_path_bytes_and_file_object(tmp_path, model, data, compression):
    X, _ = data
    path = tmp_path / "m.safe"
    safeload.dump(model, path, created=CREATED, compression=compression)
    expected = model.predict_proba(X)
    with open(path, "rb") as fh:
        from_file = safeload.load(fh)
    for out in (
        safeload.load(path),
        safeload.load(str(path)),
        safeload.load(path.read_bytes()),
        from_file,
    ):
        assert np.array_equal(out.predict_proba(X), expected)


def test_dump_to_file_object(model, data):
    buf = io.BytesIO()
    manifest = safeload.dump(model, buf, created=CREATED)
    assert buf.getvalue() == safeload.dumps(model, created=CREATED)
    assert manifest["format"] == "safeload"


def test_deflate_is_smaller_and_round_trips(big_model):
    plain = safeload.dumps(big_model, created=CREATED)
    packed = safeload.dumps(big_model, created=CREATED, compression="deflate")
    assert len(packed) < len(plain)
    out = safeload.load(packed)
    for key in ("weights", "fortran", "bigendian", "small"):
        assert np.array_equal(out[key], big_model[key]) and out[key].dtype == big_model[key].dtype
    assert (out["sparse"] != big_model["sparse"]).nnz == 0
    with zipfile.ZipFile(io.BytesIO(packed)) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="compression"):
        safeload.dumps([1], compression="lzma")


# ---------------------------------------------------------------------------- dump refuses


class _MainClass:
    pass


@pytest.fixture
def main_class(monkeypatch):
    monkeypatch.setattr(_MainClass, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "_MainClass", _MainClass, raising=False)
    return _MainClass


def test_dump_refuses_lambdas_and_main_classes_listing_all(tmp_path, main_class):
    path = tmp_path / "x.safe"
    value = {"f": lambda x: x, "obj": main_class(), "ok": np.arange(3)}
    with pytest.raises(UntrustedTypesError) as info:
        safeload.dump(value, path)
    assert any("<lambda>" in t for t in info.value.types)
    assert "__main__._MainClass" in info.value.types
    assert info.value.types == sorted(info.value.types)
    assert os.listdir(tmp_path) == []


def test_dump_refuses_function_transformer_with_untrusted_function():
    with pytest.raises(UntrustedTypesError) as info:
        safeload.dumps(FunctionTransformer(func=os.getcwd))
    assert info.value.types == ["posix.getcwd"] or info.value.types == ["os.getcwd"]


def test_dump_refuses_local_function():
    def local(x):
        return x

    with pytest.raises(UntrustedTypesError) as info:
        safeload.dumps(FunctionTransformer(func=local))
    assert "<locals>" in info.value.types[0]


def test_dump_with_trusted_extra_loads_with_the_same_trust():
    value = dt.datetime(2020, 1, 2, 3, 4, 5)
    data = safeload.dumps(value, trusted=["datetime.datetime"], created=CREATED)
    with pytest.raises(UntrustedTypesError):
        safeload.load(data)
    assert safeload.load(data, trusted=["datetime.datetime"]) == value


def test_atomic_write_keeps_old_file_when_dump_fails_halfway(tmp_path, model, main_class):
    path = tmp_path / "model.safe"
    safeload.dump(model, path, created=CREATED)
    before = path.read_bytes()
    big = np.random.RandomState(0).rand(300, 300)  # written to the temp file before the failure
    with pytest.raises(UntrustedTypesError):
        safeload.dump({"a": big, "deep": [[[{"x": main_class()}]]], "b": big + 1}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safe"]


def test_atomic_write_on_format_error_leaves_no_temp_file(tmp_path):
    path = tmp_path / "x.safe"
    path.write_bytes(b"old")
    with pytest.raises(FormatError):
        safeload.dump([np.arange(300000.0), threading.Lock()], path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.safe"]


# ---------------------------------------------------------------------------- mmap


def _reaches_mmap(arr: np.ndarray) -> bool:
    obj = arr
    for _ in range(20):
        if isinstance(obj, mmap.mmap):
            return True
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
        if obj is None:
            return False
    return False


def test_mmap_returns_read_only_zero_copy_views(tmp_path, big_model):
    path = tmp_path / "big.safe"
    safeload.dump(big_model, path, created=CREATED)
    out = safeload.load(path, mmap_mode="r")
    for key in ("weights", "fortran", "bigendian", "small"):
        arr = out[key]
        assert np.array_equal(arr, big_model[key]) and arr.dtype == big_model[key].dtype
        assert not arr.flags.writeable, key
        assert _reaches_mmap(arr), key
        with pytest.raises(ValueError):
            arr[...] = 0
    assert out["fortran"].flags.f_contiguous
    assert out["weights"].ctypes.data % 64 == 0
    assert (out["sparse"] != big_model["sparse"]).nnz == 0


def test_mmap_views_point_into_the_file(tmp_path, big_model):
    path = tmp_path / "big.safe"
    safeload.dump(big_model, path, created=CREATED)
    raw = path.read_bytes()
    out = safeload.load(path, mmap_mode="r")
    arr = out["weights"]
    offset = raw.index(arr.tobytes()[:4096])
    assert raw[offset : offset + arr.nbytes] == arr.tobytes()
    assert offset % 64 == 0


def test_mmap_refuses_deflated_files_clearly(tmp_path, big_model):
    path = tmp_path / "packed.safe"
    safeload.dump(big_model, path, compression="deflate", created=CREATED)
    with pytest.raises(FormatError, match="mmap_mode needs stored"):
        safeload.load(path, mmap_mode="r")


def test_mmap_refuses_other_modes_and_non_files(tmp_path, big_model):
    path = tmp_path / "big.safe"
    safeload.dump(big_model, path, created=CREATED)
    with pytest.raises(ValueError):
        safeload.load(path, mmap_mode="r+")
    with pytest.raises(ValueError, match="local file"):
        safeload.load(path.read_bytes(), mmap_mode="r")


def test_mmap_with_verify_true_checks_hashes(tmp_path, big_model):
    path = tmp_path / "big.safe"
    safeload.dump(big_model, path, created=CREATED)
    out = safeload.load(path, mmap_mode="r", verify=True)
    assert np.array_equal(out["weights"], big_model["weights"])


def test_mmap_empty_arrays_are_read_only_too(tmp_path):
    path = tmp_path / "e.safe"
    safeload.dump({"e": np.zeros((0, 3)), "big": np.zeros(20000)}, path, created=CREATED)
    out = safeload.load(path, mmap_mode="r")
    assert not out["big"].flags.writeable
    assert not out["e"].flags.writeable


# ---------------------------------------------------------------------------- versioning


def test_newer_format_version_is_refused_with_upgrade_advice():
    data = sz.edit(
        safeload.dumps([1], created=CREATED), manifest=lambda m: m.update(format_version=3)
    )
    with pytest.raises(FormatError, match="upgrade"):
        safeload.load(data)


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True, None, [1]])
def test_invalid_format_versions_are_refused(version):
    data = sz.edit(
        safeload.dumps([1], created=CREATED), manifest=lambda m: m.update(format_version=version)
    )
    with pytest.raises(FormatError, match="format_version"):
        safeload.load(data)


def test_format_name_must_be_safeload():
    data = sz.edit(
        safeload.dumps([1], created=CREATED), manifest=lambda m: m.update(format="skops")
    )
    with pytest.raises(FormatError, match="M2"):
        safeload.load(data)


# ---------------------------------------------------------------------------- skops


def test_skops_pipeline_loads_with_identical_predictions(model, data):
    sio = pytest.importorskip("skops.io")
    X, _ = data
    out = safeload.load(sio.dumps(model))
    assert type(out) is Pipeline
    assert np.array_equal(out.predict_proba(X), model.predict_proba(X))


def test_skops_file_on_disk_loads(tmp_path, forest, data):
    sio = pytest.importorskip("skops.io")
    X, _ = data
    path = tmp_path / "m.skops"
    sio.dump(forest, path)
    out = safeload.load(path)
    assert np.array_equal(out.predict_proba(X), forest.predict_proba(X))
    with pytest.raises(ValueError):
        safeload.load(path, mmap_mode="r")


def test_skops_file_naming_untrusted_function_is_refused_before_skops_runs(monkeypatch):
    sio = pytest.importorskip("skops.io")
    data = sio.dumps(FunctionTransformer(func=os.getcwd))
    called = []
    monkeypatch.setattr(sio, "loads", lambda *a, **k: called.append(1))
    with pytest.raises(UntrustedTypesError) as info:
        safeload.load(data)
    assert info.value.types in (["posix.getcwd"], ["os.getcwd"])
    assert called == []


def test_skops_untrusted_type_in_schema_is_refused():
    sio = pytest.importorskip("skops.io")
    data = sio.dumps({"x": np.arange(3)})
    members = sz.read_members(data)
    schema = json.loads(members["schema.json"])
    schema["content"]["x"] = {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "FunctionNode",
        "__id__": 1,
    }
    members["schema.json"] = json.dumps(schema).encode()
    hostile = _plain_zip(members)
    with pytest.raises(UntrustedTypesError) as info:
        safeload.load(hostile)
    assert info.value.types == ["os.system"]


def test_skops_bound_method_of_trusted_class_is_audited(data):
    sio = pytest.importorskip("skops.io")
    X, _ = data
    scaler = StandardScaler().fit(X)
    blob = sio.dumps(FunctionTransformer(func=scaler.transform))
    assert "sklearn.preprocessing._data.StandardScaler.transform" in sio.get_untrusted_types(
        data=blob
    )
    with pytest.raises(UntrustedTypesError) as info:
        safeload.load(blob)
    assert "sklearn.preprocessing._data.StandardScaler.transform" in info.value.types


def _plain_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


def test_foreign_zip_is_refused():
    with pytest.raises(FormatError):
        safeload.load(_plain_zip({"model.pkl": b"\x80\x04N."}))


def test_atomic_write_gives_normal_file_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "new.safe"
    safeload.dump([1], fresh, created=CREATED)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    existing = tmp_path / "old.safe"
    existing.write_bytes(b"old")
    existing.chmod(0o644)
    safeload.dump([1], existing, created=CREATED)
    assert existing.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- scan and listing
def _forest_file() -> bytes:
    X = np.random.RandomState(0).rand(80, 4)
    y = (X[:, 0] > 0.5).astype(int)
    return safeload.dumps(RandomForestClassifier(3, max_depth=3, random_state=0).fit(X, y))


def test_scan_of_a_safe_file_is_the_loaders_verdict():
    """scan runs load's checks before the build (structure, manifest, graph hash, globals,
    array headers, the static call rules on the inert graph) and calls a fresh dump safe."""
    report = safeload.scan(_forest_file())
    assert report.safe and report.format == "safeload"
    assert report.sklearn_version == __import__("sklearn").__version__
    assert {g.name for g in report.globals} == {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
    assert safeload.get_untrusted_types(_forest_file()) == []


def test_scan_and_listing_name_an_untrusted_call_in_graph_json():
    def add_system_call(doc: dict) -> None:
        doc["globals"].append(["os", "system"])
        doc["root"] = {"$": "call", "g": len(doc["globals"]) - 1, "args": ["echo hi"]}

    hostile = sz.edit(_forest_file(), graph=add_system_call)
    report = safeload.scan(hostile)
    assert not report.safe
    assert report.untrusted_types == ["os.system"]
    assert safeload.get_untrusted_types(hostile) == ["os.system"]
    with pytest.raises(UntrustedTypesError) as info:
        safeload.load(hostile)
    assert info.value.types == ["os.system"]


def test_listing_types_reads_no_array_data():
    """Issue "Safe format": listing a safe file's types reads no array data — the names come
    back even when every array member's data is garbage (load then refuses the file)."""
    data = bytearray(_forest_file())
    for name, (offset, size) in sz.member_offsets(bytes(data)).items():
        if name.startswith("arrays/"):
            data[offset + 128 : offset + size] = b"\xff" * (size - 128)  # keep the headers
    assert safeload.get_untrusted_types(bytes(data)) == []
    with pytest.raises(safeload.IntegrityError):
        safeload.load(bytes(data))


def test_listing_types_does_not_trust_a_second_globals_key():
    """A graph.json with two "globals" keys is parsed whole (as load parses it), so the listing
    can not show one table while load audits another."""
    raw = sz.read_members(_forest_file())["graph.json"]
    doubled = raw[:-1] + b',"globals":[["os","system"]]}'
    hostile = sz.edit(_forest_file(), members=lambda t: t.update({"graph.json": doubled}))
    assert safeload.get_untrusted_types(hostile) == ["os.system"]


def test_arrays_read_for_a_load_are_freed_with_it():
    """Tree.__setstate__ copies its node arrays; the copies read from the file must die with the
    load, not wait for the cyclic GC (the decoder's handler table is a reference cycle)."""
    import gc
    import tracemalloc

    rng = np.random.RandomState(0)
    X = rng.rand(8000, 6)
    y = rng.randint(0, 2, 8000)  # noise: deep trees with many nodes
    forest = RandomForestClassifier(6, random_state=0).fit(X, y)
    node_bytes = sum(t.tree_.__getstate__()["nodes"].nbytes for t in forest.estimators_)
    data = safeload.dumps(forest)
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        loaded = safeload.loads(data)
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        gc.enable()
    assert node_bytes > 1_000_000
    assert current < node_bytes / 2, (current, node_bytes)
    np.testing.assert_array_equal(loaded.predict(X), forest.predict(X))
