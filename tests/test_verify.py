"""``safeload.verify``, ``safeload verify`` and probes (issue 7 "Inspect and verify"), on real
files: fresh dumps pass, a changed byte anywhere fails naming the member, a manifest claiming
another scikit-learn version warns with both versions, a recorded cv_score is recomputed."""

from __future__ import annotations

import io
import json
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from click.testing import CliRunner
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import safeload
from safeload.cli import main
from safeload.errors import FormatError, IntegrityError, SafeloadError, VersionMismatchWarning
from safeload.probe import ATOL, MAX_ROWS, RTOL, make_probe, run_probe, tolerance_for
from safeload.verify import manifest_schema, splitter_from_record

from ._archive_tools import member_bytes, members, rebuild
from .attacks._pickle_builder import G, canary_shell, dumps

SKLEARN_VERSION = sklearn.__version__


def _data(n=60):
    rng = np.random.RandomState(0)
    X = rng.rand(n, 3)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    return X, y


@pytest.fixture(scope="module")
def pipeline():
    X, y = _data()
    return Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.5))]).fit(X, y)


@pytest.fixture(scope="module")
def safe_file(pipeline):
    X, y = _data()
    score = cross_val_score(pipeline, X, y, scoring="accuracy", cv=5).mean()
    return safeload.dumps(pipeline, probe=X,
                          cv_score={"value": score, "scoring": "accuracy", "cv": 5})  # fmt: skip


def _statuses(report):
    return {c.name: c.status for c in report.checks}


# --------------------------------------------------------------------------- fresh files pass
def test_fresh_dump_with_probe_verifies(safe_file):
    report = safeload.verify(safe_file)
    assert report.ok and report.exit_code == 0 and report.format == "safeload"
    assert _statuses(report) == {
        "structure": "ok",
        "hashes": "ok",
        "manifest": "ok",
        "versions": "ok",
        "load": "ok",
        "probe": "ok",
        "cv_score": "skipped",
    }
    probe = report.check("probe")
    assert [m["method"] for m in probe.figures["methods"]] == [
        "predict",
        "predict_proba",
        "decision_function",
    ]
    assert all(m["mismatches"] == 0 for m in probe.figures["methods"])
    assert (probe.figures["rtol"], probe.figures["atol"]) == (RTOL, ATOL)
    doc = json.loads(report.to_json())
    assert doc["ok"] is True and doc["failed"] == []
    text = report.to_text()
    assert "VERIFIED" in text and "predict_proba: ok" in text


def test_manifest_records_the_probe(safe_file):
    manifest = json.loads(member_bytes(safe_file, "manifest.json"))
    assert manifest["probe"] == {
        "rows": 60,
        "input": "ndarray",
        "methods": ["predict", "predict_proba", "decision_function"],
        "tolerance": {"rtol": 1e-7, "atol": 1e-9},
    }
    assert "probe" in json.loads(member_bytes(safe_file, "graph.json"))


def _frame():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(1)
    return pd.DataFrame({"a": rng.rand(30), "c": pd.Categorical(rng.choice(["x", "y"], 30))})


def test_probe_of_a_dataframe_is_rebuilt_as_a_dataframe():
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    frame = _frame()
    y = (frame["a"] > 0.5).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["c"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, y)
    data = safeload.dumps(model, probe=frame)
    assert json.loads(member_bytes(data, "manifest.json"))["probe"]["input"] == "dataframe"
    assert safeload.verify(data).ok


def test_probe_of_text_and_sparse_inputs():
    docs = ["good movie", "bad movie", "great film", "awful film"] * 5
    labels = [1, 0, 1, 0] * 5
    text_model = make_pipeline(TfidfVectorizer(), LinearSVC()).fit(docs, labels)
    data = safeload.dumps(text_model, probe=docs)
    manifest = json.loads(member_bytes(data, "manifest.json"))
    assert manifest["probe"]["input"] == "text"
    assert manifest["probe"]["methods"] == ["predict", "decision_function"]
    assert safeload.verify(data).ok
    X, y = _data()
    sparse_model = LogisticRegression().fit(sp.csr_matrix(X), y)
    data = safeload.dumps(sparse_model, probe=sp.csr_matrix(X))
    assert json.loads(member_bytes(data, "manifest.json"))["probe"]["input"] == "sparse"
    assert safeload.verify(data).ok


def test_probe_is_capped_in_rows_and_bytes(pipeline):
    X, y = _data(500)
    _, info = make_probe(pipeline, X)
    assert info["rows"] == MAX_ROWS
    wide = np.random.RandomState(0).rand(50, 20_000)  # 160,000 bytes a row
    model = LogisticRegression(max_iter=20).fit(wide, np.arange(50) % 2)
    roots, info = make_probe(model, wide)
    assert info["rows"] == 6  # 6 * 160,000 <= 1 MiB < 7 * 160,000
    assert roots["probe"]["input"]["value"].shape == (6, 20_000)
    with pytest.raises(ValueError, match="more than"):
        make_probe(model, np.zeros((2, 200_000)))


def test_run_probe_reports_labels_and_float_differences(pipeline):
    X, y = _data()
    roots, _ = make_probe(pipeline, X)
    other = Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.01))]).fit(X, y)
    results = {r.method: r for r in run_probe(other, roots["probe"])}
    assert not results["predict_proba"].ok
    assert results["predict_proba"].kind == "float"
    assert results["predict_proba"].max_abs_diff > 0.01
    assert results["predict"].kind == "labels"
    assert results["predict"].mismatches == int((other.predict(X) != pipeline.predict(X)).sum())
    same = run_probe(pipeline, roots["probe"])
    assert all(r.ok and (r.max_abs_diff in (None, 0.0)) for r in same)


def test_tolerance_is_raised_for_low_precision_outputs():
    assert tolerance_for(np.dtype(np.float64)) == (RTOL, ATOL)
    rtol, atol = tolerance_for(np.dtype(np.float32))
    assert rtol == atol == pytest.approx(64 * np.finfo(np.float32).eps)


def test_probe_detects_a_changed_model_with_consistent_hashes():
    X, y = _data()
    model = LogisticRegression().fit(X, y)
    data = safeload.dumps(model, probe=X)
    graph = json.loads(member_bytes(data, "graph.json"))
    coef = graph["root"]["state"]["v"]["coef_"]["i"]
    name = f"arrays/{coef:06d}.npy"

    def nudge(raw: bytes) -> bytes:  # add 0.5 to the last coefficient (a float64 at the end)
        value = np.frombuffer(raw[-8:], "<f8")[0] + 0.5
        return raw[:-8] + np.array([value], "<f8").tobytes()

    changed = rebuild(data, {name: nudge})
    report = safeload.verify(changed)
    assert _statuses(report)["hashes"] == "ok"  # the hashes were recomputed: a "valid" file
    probe = report.check("probe")
    assert probe.status == "failed" and report.exit_code == 1
    by_method = {m["method"]: m for m in probe.figures["methods"]}
    assert not by_method["decision_function"]["ok"]
    assert by_method["decision_function"]["max_abs_diff"] > 1e-3
    assert "decision_function: DIFFERS" in report.to_text()


# --------------------------------------------------------------------------- changed bytes
def _flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


@pytest.mark.parametrize("which", ["array", "graph.json", "manifest.json"])
def test_flipped_byte_in_a_member_names_it(safe_file, which):
    index = members(safe_file)
    arrays = [n for n in index if n.startswith("arrays/")]
    name = arrays[-1] if which == "array" else which
    m = index[name]
    if which == "manifest.json":  # a digit of the creation time: still valid JSON
        raw = member_bytes(safe_file, name)
        offset = m.data_offset + raw.index(b'"created":"') + len('"created":"') + 3
    else:
        offset = m.data_offset + m.compressed_size - 3
    tampered = _flip(safe_file, offset)
    report = safeload.verify(tampered)
    hashes = report.check("hashes")
    assert hashes.status == "failed" and hashes.figures["members"] == [name]
    assert name in hashes.detail and report.exit_code == 1
    assert _statuses(report)["load"] == "skipped"
    assert f"FAILED   hashes     1 member(s) changed since the file was written: {name}" in (
        report.to_text()
    )
    if which != "manifest.json":
        with pytest.raises(IntegrityError) as info:
            safeload.load(tampered)
        assert info.value.members == [name]


def test_flipped_bytes_in_several_members_are_all_named(safe_file):
    index = members(safe_file)
    arrays = [n for n in index if n.startswith("arrays/")]
    names = [arrays[0], arrays[-1], "graph.json"]
    assert len(set(names)) == 3
    tampered = safe_file
    for name in names:
        m = index[name]
        tampered = _flip(tampered, m.data_offset + m.compressed_size - 1)
    report = safeload.verify(tampered)
    assert report.check("hashes").figures["members"] == names
    with pytest.raises(IntegrityError):
        safeload.load(tampered)


def test_every_flipped_byte_is_reported():
    model = StandardScaler().fit(np.random.RandomState(0).rand(10, 3))
    data = safeload.dumps(model)
    assert safeload.verify(data).ok
    for offset in range(len(data)):
        for mask in (0x01, 0x80):
            report = safeload.verify(_flip(data, offset, mask))
            assert not report.ok and report.exit_code == 1, (offset, mask)


def test_load_refuses_every_flipped_byte():
    """Issue "Inspect and verify": a flipped byte anywhere in a safe file makes load refuse it
    (members by SHA-256, the manifest by its CRC-32, headers and directory by rules Z1-Z9)."""
    model = StandardScaler().fit(np.random.RandomState(0).rand(10, 3))
    data = safeload.dumps(model)
    index = members(data)
    for offset in range(len(data)):
        for mask in (0x01, 0x80):
            with pytest.raises(SafeloadError):
                safeload.load(_flip(data, offset, mask))
    # verify=False skips the hashes on request: a changed array value then loads
    arr = index["arrays/000000.npy"]
    quiet = _flip(data, arr.data_offset + arr.compressed_size - 1, 0x80)
    with pytest.raises(IntegrityError):
        safeload.load(quiet)
    loaded = safeload.load(quiet, verify=False)
    attrs = ("mean_", "var_", "scale_")
    assert any(not np.array_equal(getattr(loaded, a), getattr(model, a)) for a in attrs)


def test_load_refuses_a_changed_manifest_value(safe_file):
    raw = member_bytes(safe_file, "manifest.json")
    m = members(safe_file)["manifest.json"]
    offset = m.data_offset + raw.index(b'"created":"') + len('"created":"') + 3
    with pytest.raises(SafeloadError):
        safeload.load(_flip(safe_file, offset))


def test_flipped_header_byte_is_a_format_error(safe_file):
    tampered = _flip(safe_file, 8)  # compression method of the first local header
    report = safeload.verify(tampered)
    assert report.check("structure").status == "failed" and report.exit_code == 1
    with pytest.raises(FormatError):
        safeload.load(tampered)


# --------------------------------------------------------------------------- versions, schema
def _claim_version(data: bytes, version: str) -> bytes:
    def edit(doc: dict) -> dict:
        doc["producer"]["scikit-learn"] = version
        return doc

    return rebuild(data, manifest=edit)


def test_manifest_claiming_another_sklearn_version_warns(safe_file):
    old = _claim_version(safe_file, "1.5.2")
    with pytest.warns(VersionMismatchWarning) as record:
        report = safeload.verify(old)
    message = str(record[0].message)
    assert f"scikit-learn: file 1.5.2, runtime {SKLEARN_VERSION}" in message
    versions = report.check("versions")
    assert versions.status == "warning"
    assert versions.figures["differences"] == {
        "scikit-learn": {"file": "1.5.2", "runtime": SKLEARN_VERSION}
    }
    assert report.ok and report.exit_code == 0  # the probe still reproduces the outputs
    assert _statuses(report)["hashes"] == "ok"


def test_same_versions_do_not_warn(safe_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error", VersionMismatchWarning)
        safeload.verify(safe_file)


def test_schema_is_draft_2020_12_and_accepts_every_field():
    jsonschema = pytest.importorskip("jsonschema")
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    X, y = _data()
    data = safeload.dumps(
        LogisticRegression().fit(X, y),
        probe=X,
        metadata={"owner": "team"},
        training_data={"train": "s3://bucket/train.parquet?version=3"},
        source="https://example.invalid/commit/abc",
        cv_score={"value": 0.9, "scoring": "accuracy", "cv": 5, "std": 0.01, "n_splits": 5},
    )
    jsonschema.validate(json.loads(member_bytes(data, "manifest.json")), schema,
                        cls=jsonschema.Draft202012Validator)  # fmt: skip
    assert safeload.verify(data).check("manifest").status == "ok"


def test_schema_violation_fails(safe_file):
    pytest.importorskip("jsonschema")

    def edit(doc: dict) -> dict:
        doc["created"] = "yesterday"
        doc["cv_score"]["folds"] = 3
        return doc

    report = safeload.verify(rebuild(safe_file, manifest=edit))
    check = report.check("manifest")
    assert check.status == "failed" and report.exit_code == 1
    assert any(line.startswith("created:") for line in check.figures["lines"])
    assert any(line.startswith("cv_score:") for line in check.figures["lines"])


# --------------------------------------------------------------------------- cv_score
def test_cv_score_is_recomputed(safe_file):
    X, y = _data()
    report = safeload.verify(safe_file, X=X, y=y)
    check = report.check("cv_score")
    assert check.status == "ok" and report.exit_code == 0
    assert check.figures["abs_diff"] <= 1e-6 and check.figures["tolerance"] == 1e-6
    shuffled = np.random.RandomState(3).permutation(y)
    report = safeload.verify(safe_file, X=X, y=shuffled)
    check = report.check("cv_score")
    assert check.status == "failed" and report.exit_code == 1
    assert check.figures["abs_diff"] > 0.1
    assert f"differs by {check.figures['abs_diff']:.6g}" in check.detail


def test_cv_score_that_can_not_run_is_an_error(safe_file):
    X, y = _data()
    report = safeload.verify(safe_file, X=X, y=y[:10])
    assert report.check("cv_score").status == "error" and report.exit_code == 2


def test_splitter_records():
    assert splitter_from_record(5) == 5 and splitter_from_record("3") == 3
    assert splitter_from_record(None) is None
    kfold = splitter_from_record("KFold(n_splits=3, random_state=0, shuffle=True)")
    assert (kfold.n_splits, kfold.shuffle, kfold.random_state) == (3, True, 0)
    for hostile in ("__import__('os').system('x')", "os.system('x')", "KFold(n_splits=f())",
                    "eval('1')", "KFold(**{'n_splits': 2})"):  # fmt: skip
        with pytest.raises(ValueError):
            splitter_from_record(hostile)


# --------------------------------------------------------------------------- other formats
def test_pickle_and_joblib_files_load_restricted(pipeline):
    buf = io.BytesIO()
    joblib.dump(pipeline, buf, compress=3)
    for data, fmt in ((pickle.dumps(pipeline), "pickle"), (buf.getvalue(), "joblib+zlib")):
        report = safeload.verify(data)
        assert report.ok and report.exit_code == 0 and report.format == fmt
        assert report.check("hashes").status == "skipped"
        assert "no manifest or hashes" in report.check("hashes").detail
        assert report.check("load").status == "ok"


def test_hostile_pickle_fails(canary_sandbox):
    report = safeload.verify(dumps(G("os", "system")(canary_shell("verify")), 2))
    load = report.check("load")
    assert load.status == "failed" and load.figures["types"] == ["os.system"]
    assert report.exit_code == 1


# --------------------------------------------------------------------------- command line
def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def files(tmp_path, safe_file):
    X, y = _data()
    (tmp_path / "model.safe").write_bytes(safe_file)
    m = members(safe_file)["arrays/000000.npy"]
    (tmp_path / "tampered.safe").write_bytes(_flip(safe_file, m.data_offset + 5))
    (tmp_path / "old.safe").write_bytes(_claim_version(safe_file, "1.5.2"))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "y_shuffled.npy", np.random.RandomState(3).permutation(y))
    header = "a,b,c\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n"
    (tmp_path / "X.csv").write_text(header)
    (tmp_path / "y.csv").write_text("\n".join(str(v) for v in y) + "\n")
    (tmp_path / "X.txt").write_text("1,2,3\n")
    return tmp_path


def test_cli_exit_codes(files):
    ok = run("verify", str(files / "model.safe"))
    assert ok.exit_code == 0 and "VERIFIED" in ok.stdout
    bad = run("verify", str(files / "tampered.safe"))
    assert bad.exit_code == 1
    assert "FAILED   hashes" in bad.stdout and "arrays/000000.npy" in bad.stdout
    assert run("verify", str(files / "missing.safe")).exit_code == 2
    assert run("verify", "--X", str(files / "X.npy"), str(files / "model.safe")).exit_code == 2
    wrong = run("verify", "--X", str(files / "X.txt"), "--y", str(files / "y.npy"),
                str(files / "model.safe"))  # fmt: skip
    assert wrong.exit_code == 2


def test_cli_cv_score_and_json(files):
    good = run("verify", "-f", "json", "--X", str(files / "X.npy"), "--y", str(files / "y.npy"),
               str(files / "model.safe"))  # fmt: skip
    assert good.exit_code == 0
    doc = json.loads(good.stdout)
    assert doc["ok"] is True
    cv = next(c for c in doc["checks"] if c["name"] == "cv_score")
    assert cv["status"] == "ok"
    shuffled = run("verify", "--X", str(files / "X.npy"), "--y", str(files / "y_shuffled.npy"),
                   str(files / "model.safe"))  # fmt: skip
    assert shuffled.exit_code == 1
    assert "FAILED   cv_score" in shuffled.stdout and "differs by" in shuffled.stdout


def test_cli_csv_data(files):
    pytest.importorskip("pandas")
    result = run("verify", "--X", str(files / "X.csv"), "--y", str(files / "y.csv"),
                 str(files / "model.safe"))  # fmt: skip
    assert result.exit_code == 0, result.stdout


def test_cli_version_mismatch(files):
    result = run("verify", str(files / "old.safe"))
    assert result.exit_code == 0
    assert f"scikit-learn: file 1.5.2, runtime {SKLEARN_VERSION}" in result.stdout
