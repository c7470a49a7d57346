"""``safeload.convert`` and ``safeload convert`` (issue 5 "Legacy conversion"), on small inputs.

One real legacy file per source kind (protocol-0 and protocol-2 pickles, a zlib joblib file),
a ``.skops`` file written here, a hostile pickle, failures at each stage (nothing is left
behind), and the command line on a small directory tree mirrored into the output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import safeload
from safeload.cli import main
from safeload.convert import (
    REFERENCE_ATOL,
    REFERENCE_RTOL,
    SAFE_SUFFIX,
    convert,
    load_probe_input,
    plan_batch,
    sidecar_path,
)

from ._probes import check_probe
from .conftest import LEGACY, ROOT, corpus_or_skip, load_json

HOSTILE = ROOT / "examples" / "models" / "malicious__os_system.pkl"
#: (environment, file) — one legacy source per kind the issue names
SOURCES = {
    "p0": ("py36_skl0213", "RandomForestClassifier.p0.pkl"),
    "p2": ("py27_skl0204", "MLPClassifier.p2.pkl"),
    "joblib-zlib": ("py39_skl132", "TfidfVectorizer.jl-zlib3.joblib"),
}


def _legacy(kind: str):
    env, name = SOURCES[kind]
    return corpus_or_skip(LEGACY / env / name)


def _manifest(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def _leftovers(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


def _copy_with_probe(src, dest_dir):
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest_dir / src.name)
    shutil.copyfile(sidecar_path(src), dest_dir / os.path.basename(sidecar_path(src)))
    return dest_dir / src.name


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_legacy_source_is_verified_against_its_sidecar_probe(kind, tmp_path):
    src = _legacy(kind)
    dst = tmp_path / "out" / "model.safeload"
    report = convert(src, dst)
    assert report.status == "verified", report
    assert report.reason is None and report.output == os.fspath(dst)
    assert report.reference == "sidecar" and report.reference_path == sidecar_path(src)
    assert report.checks and all(c.ok for c in report.checks)
    assert report.reload_checks and all(
        c.ok and c.kind == "identical" for c in report.reload_checks
    )
    assert report.source_sklearn_version == load_json(src.parent / "ENV.json")["sklearn"]
    assert (report.rtol, report.atol) == (REFERENCE_RTOL, REFERENCE_ATOL)
    for method, diff in report.max_abs_diff.items():
        assert diff <= 1e-6, (method, diff)

    import hashlib

    assert report.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    manifest = _manifest(dst)
    origin = manifest["converted_from"]
    assert origin["sha256"] == report.sha256
    assert origin["source_sklearn_version"] == report.source_sklearn_version
    assert origin["source_format"] == report.source_format
    assert [m["rule"] for m in origin["migrations"]] == [m["rule"] for m in report.migrations]
    assert origin["verification"]["status"] == "verified"
    assert "probe" in manifest  # the reference rows are stored for `safeload verify`

    # the safe file reproduces the outputs the old environment recorded
    model = safeload.load(dst)
    assert check_probe(model, load_json(sidecar_path(src))) is None
    assert safeload.verify(dst).ok
    assert _leftovers(dst.parent) == []


def test_joblib_source_records_its_format(tmp_path):
    report = convert(_legacy("joblib-zlib"), tmp_path / "t.safeload")
    assert report.source_format == "joblib+zlib"
    assert any(m["rule"] == "text.tfidf_idf_diag" for m in report.migrations)


def test_report_renders_as_text_and_json(tmp_path):
    report = convert(_legacy("p0"), tmp_path / "rf.safeload")
    text = str(report)
    assert "verified" in text and report.sha256 in text and "predict_proba" in text
    doc = json.loads(report.to_json())
    assert doc["status"] == "verified"
    assert set(doc["max_abs_diff"]) == {"predict_proba"}
    assert doc["tolerance"] == {"rtol": REFERENCE_RTOL, "atol": REFERENCE_ATOL}


@pytest.fixture
def skops_file(tmp_path):
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "src" / "model.skops"
    path.parent.mkdir()
    sio.dump(model, path)
    return path, model, X


def test_skops_source_with_expected_outputs_is_verified(skops_file, tmp_path):
    import sklearn

    path, model, X = skops_file
    expected = {"predict": model.predict(X), "predict_proba": model.predict_proba(X)}
    report = convert(path, tmp_path / "m.safeload", probe=X, expected=expected)
    assert report.status == "verified", report
    assert report.source_format == "skops"
    assert report.source_sklearn_version == sklearn.__version__
    assert report.reference == "expected"
    assert {c.method for c in report.checks} == {"predict", "predict_proba"}
    loaded = safeload.load(tmp_path / "m.safeload")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_without_reference_the_output_is_converted_unverified(skops_file, tmp_path):
    path, model, X = skops_file
    npy = tmp_path / "rows.npy"
    np.save(npy, X[:10])
    report = convert(path, tmp_path / "m.safeload", probe=npy, metadata={"team": "risk"})
    assert report.status == "converted-unverified", report
    assert report.reference is None and report.checks == []
    assert report.reload_checks and all(c.ok for c in report.reload_checks)
    manifest = _manifest(tmp_path / "m.safeload")
    assert manifest["metadata"] == {"team": "risk"}
    assert manifest["converted_from"]["verification"]["status"] == "converted-unverified"
    assert manifest["probe"]["rows"] == 10


def test_without_any_rows_the_reload_is_still_compared(skops_file, tmp_path):
    path, _model, _X = skops_file
    report = convert(path, tmp_path / "m.safeload")
    assert report.status == "converted-unverified"
    assert report.reload_checks and all(c.ok for c in report.reload_checks)
    assert any("random rows" in note for note in report.notes)


def test_hostile_file_is_refused_and_nothing_is_written(tmp_path, canary_sandbox):
    out = tmp_path / "out"
    report = convert(HOSTILE, out / "evil.safeload")
    assert report.status == "refused" and report.reason == "untrusted-types"
    assert report.untrusted_types == ["os.system"]
    assert "os.system" in report.detail
    assert report.output is None
    assert not out.exists() or os.listdir(out) == []


def test_wrong_expected_outputs_refuse_the_file(skops_file, tmp_path):
    path, model, X = skops_file
    wrong = {"predict_proba": model.predict_proba(X) + 1e-3}
    report = convert(path, tmp_path / "m.safeload", probe=X, expected=wrong)
    assert report.status == "refused" and report.reason == "probe-mismatch"
    assert report.max_abs_diff["predict_proba"] == pytest.approx(1e-3)
    assert not (tmp_path / "m.safeload").exists()
    assert _leftovers(tmp_path) == []
    labels = {"predict": 1 - model.predict(X)}
    report = convert(path, tmp_path / "m.safeload", probe=X, expected=labels)
    assert report.reason == "probe-mismatch" and report.checks[0].kind == "labels"


def test_reload_mismatch_deletes_the_output_and_keeps_the_old_one(skops_file, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    path, model, X = skops_file
    dst = tmp_path / "m.safeload"
    dst.write_bytes(b"previous version")
    real_load = sys.modules["safeload.api"].load

    def tampered(*args, **kwargs):
        obj = real_load(*args, **kwargs)
        obj.coef_ = obj.coef_ * 2
        return obj

    monkeypatch.setattr(sys.modules["safeload.api"], "load", tampered)
    report = convert(path, dst, probe=X)
    assert report.status == "refused" and report.reason == "reload-mismatch", report
    assert dst.read_bytes() == b"previous version"
    assert _leftovers(tmp_path) == []


def test_failure_while_writing_leaves_no_partial_output(skops_file, tmp_path, monkeypatch):
    path, _model, X = skops_file
    dump_module = sys.modules["safeload.dump"]

    def broken_dump(obj, file, **kwargs):
        with open(file, "wb") as fh:
            fh.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dump_module, "dump", broken_dump)
    out = tmp_path / "out"
    report = convert(path, out / "m.safeload", probe=X)
    assert report.status == "refused" and report.reason == "write-failed"
    assert os.listdir(out) == []


def test_plain_pickle_is_never_used(monkeypatch, tmp_path):
    import pickle

    import joblib

    def forbidden(*args, **kwargs):
        raise AssertionError("plain pickle/joblib loading was called")

    for module, name in ((pickle, "load"), (pickle, "loads"), (joblib, "load")):
        monkeypatch.setattr(module, name, forbidden)
    report = convert(_legacy("p2"), tmp_path / "m.safeload")
    assert report.status == "verified", report


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="probe"):
        convert(HOSTILE, tmp_path / "x", expected={"predict": [1]})
    with pytest.raises(TypeError):
        convert(b"bytes", tmp_path / "x")
    with pytest.raises(safeload.PolicyError):
        convert(HOSTILE, tmp_path / "x", trusted=True)
    with pytest.raises(ValueError, match="overwrite"):
        convert(HOSTILE, HOSTILE)


def test_a_safe_file_or_a_missing_file_is_refused(skops_file, tmp_path):
    path, _model, X = skops_file
    first = convert(path, tmp_path / "m.safeload", probe=X)
    again = convert(first.output, tmp_path / "n.safeload")
    assert again.reason == "already-safe-format"
    missing = convert(tmp_path / "nope.pkl", tmp_path / "o.safeload")
    assert missing.reason == "unreadable"


def test_sidecar_path_and_probe_rows(tmp_path):
    assert sidecar_path("d/RF.p2.pkl") == os.path.join("d", "RF.probe.json")
    assert sidecar_path("py36__RF.skjl-zlib3.joblib") == "py36__RF.probe.json"
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    np.testing.assert_array_equal(load_probe_input(csv), [[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        load_probe_input(tmp_path / "rows.txt")


# --------------------------------------------------------------------------- command line
@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "models"
    _copy_with_probe(_legacy("p2"), src / "a")
    _copy_with_probe(_legacy("joblib-zlib"), src / "b" / "c")
    shutil.copyfile(HOSTILE, src / "b" / "evil.pkl")
    (src / "b" / "README.txt").write_text("not a model\n")
    return src


def test_cli_mirrors_a_directory_tree_and_writes_reports(tree, tmp_path):
    out = tmp_path / "safe"
    report_json = tmp_path / "reports" / "report.json"
    result = CliRunner().invoke(
        main, ["convert", str(tree), "-o", str(out), "--report", str(report_json)]
    )
    assert result.exit_code == 1, result.output  # one file refused
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        f"a/MLPClassifier.p2.pkl{SAFE_SUFFIX}",
        f"b/c/TfidfVectorizer.jl-zlib3.joblib{SAFE_SUFFIX}",
    ]
    assert "safeload convert" in result.output and "untrusted-types" in result.output

    doc = json.loads(report_json.read_text())
    assert doc["summary"]["files"] == 3
    assert doc["summary"]["verified"] == 2 and doc["summary"]["refused"] == 1
    assert doc["summary"]["refused_by_reason"] == {"untrusted-types": 1}
    assert doc["summary"]["differ_from_reference"] == 0
    by_name = {os.path.basename(r["source"]): r for r in doc["reports"]}
    assert by_name["evil.pkl"]["untrusted_types"] == ["os.system"]
    assert by_name["evil.pkl"]["output"] is None
    mlp = by_name["MLPClassifier.p2.pkl"]
    assert mlp["status"] == "verified" and mlp["source_sklearn_version"] == "0.20.4"
    assert len(mlp["sha256"]) == 64 and "predict_proba" in mlp["max_abs_diff"]
    assert any(p.endswith("README.txt") for p in doc["skipped"])

    markdown = report_json.with_suffix(".md").read_text()
    assert "| verified | 2 |" in markdown and "| refused: `untrusted-types` | 1 |" in markdown
    assert "## By folder" in markdown and "evil.pkl" in markdown and "os.system" in markdown


def test_cli_single_file_and_parallel_jobs(tree, tmp_path):
    src = tree / "a" / "MLPClassifier.p2.pkl"
    dst = tmp_path / "one.safeload"
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(dst)])
    assert result.exit_code == 0, result.output
    assert safeload.load(dst).predict_proba is not None
    out = tmp_path / "par"
    result = CliRunner().invoke(
        main, ["convert", str(tree / "a"), str(tree / "b"), "-o", str(out), "--jobs", "2"]
    )
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in out.rglob("*.safeload")) == [
        f"MLPClassifier.p2.pkl{SAFE_SUFFIX}",
        f"TfidfVectorizer.jl-zlib3.joblib{SAFE_SUFFIX}",
    ]


def test_cli_usage_errors(tree, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["convert", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert missing.exit_code == 2
    bad_jobs = runner.invoke(main, ["convert", str(tree), "-o", str(tmp_path / "o"), "-j", "0"])
    assert bad_jobs.exit_code == 2


def test_plan_batch_reports_colliding_outputs(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        shutil.copyfile(HOSTILE, tmp_path / folder / "m.pkl")
    pairs, errors, _ = plan_batch([tmp_path / "x", tmp_path / "y"], tmp_path / "out")
    assert len(pairs) == 1 and len(errors) == 1 and "also the output" in errors[0][1]
