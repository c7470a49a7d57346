"""``safeload.inspect`` and ``safeload inspect``: the object tree of pickle, joblib and skops
files, the same for every format, built without running anything the file names."""

from __future__ import annotations

import io
import json
import pickle
import sys
import time
import zipfile

import joblib
import numpy as np
import pytest
import sklearn
from click.testing import CliRunner
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import safeload
from safeload.cli import main
from safeload.errors import FormatError, PolicyError
from safeload.inspection import INSPECTORS, InspectNode, InspectReport, register_inspector

from .attacks._pickle_builder import B, G, New, canary_shell, dumps, make_zip

SKLEARN_VERSION = sklearn.__version__


# --------------------------------------------------------------------------- fixtures
def _data():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 3)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    return X, y


@pytest.fixture(scope="module")
def pipeline():
    X, y = _data()
    return Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression(C=0.5))]).fit(X, y)


@pytest.fixture(scope="module")
def forest():
    X, y = _data()
    return RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)


def _joblib_bytes(obj, compress) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf, compress=compress)
    return buf.getvalue()


def _skops_bytes(obj) -> bytes:
    sio = pytest.importorskip("skops.io")
    return sio.dumps(obj)


DUMPERS = {
    "pickle-p0": lambda obj: pickle.dumps(obj, protocol=0),
    "pickle-p2": lambda obj: pickle.dumps(obj, protocol=2),
    "pickle-p5": lambda obj: pickle.dumps(obj, protocol=5),
    "joblib": lambda obj: _joblib_bytes(obj, 0),
    "joblib-zlib": lambda obj: _joblib_bytes(obj, ("zlib", 3)),
    "joblib-lzma": lambda obj: _joblib_bytes(obj, ("lzma", 3)),
    "skops": _skops_bytes,
    "safeload": lambda obj: safeload.dumps(obj),
}
FORMATS = {
    "pickle-p0": ("pickle", 0),
    "pickle-p2": ("pickle", 2),
    "pickle-p5": ("pickle", 5),
    "joblib": ("joblib", 4),
    "joblib-zlib": ("joblib+zlib", 4),
    "joblib-lzma": ("joblib+lzma", 4),
    "skops": ("skops", None),
    "safeload": ("safeload", None),
}


def _paths(report: InspectReport) -> list[tuple[str, InspectNode]]:
    """``(role path, node)`` for every node, depth first."""
    out = []
    stack = [("", report.root)]
    while stack:
        prefix, node = stack.pop()
        path = f"{prefix}/{node.role}" if node.role is not None else prefix or "/"
        out.append((path, node))
        stack.extend((path, c) for c in reversed(node.children))
    return out


def _class_tree(report: InspectReport) -> list[tuple[str, str]]:
    return [(path, node.class_name) for path, node in _paths(report)]


def _details(report: InspectReport) -> dict[str, tuple[dict, dict]]:
    """Params and fitted attributes of every node shown in full (not a shared reference)."""
    return {
        path: (
            {k: v.to_dict() for k, v in node.params.items()},
            {k: v.to_dict() for k, v in node.fitted.items()},
        )
        for path, node in _paths(report)
        if node.kind != "shared"
    }


# --------------------------------------------------------------------------- the same Pipeline
@pytest.mark.parametrize("fmt", list(DUMPERS))
def test_pipeline_report(pipeline, fmt):
    report = safeload.inspect(DUMPERS[fmt](pipeline))
    assert (report.format, report.protocol if fmt != "skops" else None) == FORMATS[fmt]
    assert report.trusted
    assert report.sklearn_version == SKLEARN_VERSION
    assert report.sklearn_versions == [SKLEARN_VERSION]
    assert _class_tree(report) == [
        ("/", "sklearn.pipeline.Pipeline"),
        ("//steps['sc']", "sklearn.preprocessing._data.StandardScaler"),
        ("//steps['lr']", "sklearn.linear_model._logistic.LogisticRegression"),
    ]
    root = report.root
    assert root.kind == "estimator"
    assert root.params["steps"].to_dict() == {"type": "list", "length": 2}
    scaler, logreg = root.children
    assert scaler.params == {}  # every parameter has its default value
    assert {k: v.value for k, v in logreg.params.items()} == {"C": "0.5"}
    assert logreg.params["C"].type == "float"
    fitted = {k: (v.type, v.shape, v.dtype) for k, v in logreg.fitted.items()}
    assert fitted == {
        "n_features_in_": ("int", None, None),
        "classes_": ("numpy.ndarray", [2], "int64"),
        "n_iter_": ("numpy.ndarray", [1], "int32"),
        "coef_": ("numpy.ndarray", [1, 3], "float64"),
        "intercept_": ("numpy.ndarray", [1], "float64"),
    }
    assert logreg.fitted["n_features_in_"].value == "3"
    assert scaler.fitted["mean_"].to_dict() == {
        "type": "numpy.ndarray",
        "shape": [3],
        "dtype": "float64",
    }
    assert scaler.fitted["n_samples_seen_"].to_dict() == {
        "type": "numpy.float64",
        "dtype": "float64",
        "value": "40.0",
    }
    assert {g.verdict for g in report.globals} == {"trusted"}
    assert "sklearn.linear_model._logistic.LogisticRegression" in {g.name for g in report.globals}


def test_pipeline_reports_agree(pipeline):
    reports = {fmt: safeload.inspect(dump(pipeline)) for fmt, dump in DUMPERS.items()}
    reference = reports["pickle-p2"]
    for fmt, report in reports.items():
        assert _class_tree(report) == _class_tree(reference), fmt
        assert _details(report) == _details(reference), fmt
        assert report.root.to_dict() == reference.root.to_dict(), fmt


# --------------------------------------------------------------------------- the same forest
@pytest.mark.parametrize("fmt", list(DUMPERS))
def test_forest_report(forest, fmt):
    report = safeload.inspect(DUMPERS[fmt](forest))
    assert report.trusted
    assert report.sklearn_version == SKLEARN_VERSION
    root = report.root
    assert root.class_name == "sklearn.ensemble._forest.RandomForestClassifier"
    assert {k: v.value for k, v in root.params.items()} == {
        "n_estimators": "3",
        "max_depth": "3",
        "random_state": "0",
    }
    assert root.fitted["estimators_"].to_dict() == {"type": "list", "length": 3}
    trees = [c for c in root.children if c.role.startswith("estimators_[")]
    assert [t.role for t in trees] == ["estimators_[0]", "estimators_[1]", "estimators_[2]"]
    seeds = [forest.estimators_[i].random_state for i in range(3)]
    for tree, seed, fitted in zip(trees, seeds, forest.estimators_, strict=True):
        assert tree.class_name == "sklearn.tree._classes.DecisionTreeClassifier"
        assert tree.params["random_state"].value == repr(seed)
        assert tree.params["max_depth"].value == "3"
        assert tree.params["max_features"].value == "'sqrt'"
        (inner,) = tree.children
        assert (inner.role, inner.class_name) == ("tree_", "sklearn.tree._tree.Tree")
        n = fitted.tree_.node_count
        assert inner.attributes["node_count"].value == str(n)
        assert inner.attributes["values"].shape == [n, 1, 2]
        assert inner.attributes["values"].dtype == "float64"
        nodes = inner.attributes["nodes"]
        assert nodes.shape == [n]
        assert nodes.dtype.startswith("struct[left_child, right_child, feature, threshold")


def test_forest_reports_agree(forest):
    reports = {fmt: safeload.inspect(dump(forest)) for fmt, dump in DUMPERS.items()}
    reference = _details(reports["pickle-p2"])
    for fmt, report in reports.items():
        assert _class_tree(report) == _class_tree(reports["pickle-p2"]), fmt
        details = _details(report)
        common = details.keys() & reference.keys()
        assert {f"//estimators_[{i}]" for i in range(3)} <= common, fmt
        assert {k: details[k] for k in common} == {k: reference[k] for k in common}, fmt


def test_text_output(pipeline):
    text = safeload.inspect(pickle.dumps(pipeline)).to_text()
    assert "TRUSTED" in text and f"scikit-learn {SKLEARN_VERSION}" in text
    assert "steps['lr']: LogisticRegression" in text
    assert "C = 0.5" in text
    assert "coef_: ndarray (1, 3) float64" in text
    assert "mean_: ndarray (3,) float64" in text
    # only the summary of the data: no coefficient is printed
    assert f"{pipeline[-1].coef_[0, 0]:.4f}"[:6] not in text


def test_skops_metadata(pipeline):
    data = _skops_bytes(pipeline)
    schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    report = safeload.inspect(data)
    assert report.format == "skops"
    assert report.protocol == schema["protocol"]
    assert report.metadata["skops_version"] == schema["_skops_version"]


# --------------------------------------------------------------------------- hostile files
def test_hostile_pickle_runs_nothing(canary_sandbox):
    evil = dumps(G("os", "system")(canary_shell("inspect")), 2)
    report = safeload.inspect(evil)
    assert not report.trusted
    assert report.untrusted_types == ["os.system"]
    assert report.root.kind == "call"
    assert report.root.class_name == "os.system"
    assert report.root.verdict == "dangerous"
    assert report.root.attributes["<arg 0>"].value == repr(canary_shell("inspect"))
    # canary_sandbox asserts that nothing was written


def test_hostile_values_inside_a_trusted_estimator(canary_sandbox):
    evil = dumps(
        B(
            New(G("sklearn.preprocessing._data", "StandardScaler")),
            {"with_mean": G("builtins", "eval")("1+1"), "copy": False,
             "mean_": G("posix", "system")(canary_shell("x"))},
        ),
        4,
    )  # fmt: skip
    report = safeload.inspect(evil)
    assert report.untrusted_types == ["builtins.eval", "posix.system"]
    root = report.root
    assert (root.class_name, root.verdict) == ("sklearn.preprocessing._data.StandardScaler",
                                               "trusted")  # fmt: skip
    assert root.params["copy"].value == "False"
    assert root.params["with_mean"].to_dict() == {
        "type": "call", "value": "builtins.eval(…)", "verdict": "dangerous"
    }  # fmt: skip
    assert [(c.role, c.class_name, c.verdict) for c in root.children] == [
        ("with_mean", "builtins.eval", "dangerous"),
        ("mean_", "posix.system", "dangerous"),
    ]
    pruned = report.to_dict(show="untrusted")
    assert [g["name"] for g in pruned["globals"]] == ["builtins.eval", "posix.system"]
    assert pruned["tree"]["params"] == {
        "with_mean": {"type": "call", "value": "builtins.eval(…)", "verdict": "dangerous"}
    }


def test_untrusted_module_is_never_imported():
    assert "tabnanny" not in sys.modules
    report = safeload.inspect(dumps(B(New(G("tabnanny", "NannyNag")), {"lineno": 1}), 2))
    assert "tabnanny" not in sys.modules
    assert report.root.class_name == "tabnanny.NannyNag"
    assert report.root.verdict == "untrusted"
    assert report.root.kind == "object"
    assert report.root.attributes["lineno"].value == "1"
    assert report.untrusted_types == ["tabnanny.NannyNag"]


def test_forbidden_operation_is_reported():
    # BUILD on the class itself (monkey-patching) is forbidden whatever the policy
    stream = dumps(B(G("sklearn.preprocessing._data", "StandardScaler"), {"fit": 1}), 2)
    report = safeload.inspect(stream)
    assert not report.trusted
    assert [p.operation for p in report.problems] == ["build-on-global"]


def test_trusted_argument_changes_the_verdict():
    stream = dumps(B(New(G("mypkg.features", "MyTransformer")), {"k": 1, "w_": [1, 2]}), 4)
    assert safeload.inspect(stream).root.verdict == "untrusted"
    report = safeload.inspect(stream, trusted=["mypkg.features.MyTransformer"])
    assert report.trusted
    assert report.root.verdict == "trusted"
    assert report.root.kind == "object"  # not imported: no defaults, no params table
    assert report.root.fitted["w_"].to_dict() == {"type": "list", "length": 2}
    with pytest.raises(PolicyError):
        safeload.inspect(stream, trusted=True)


def test_deeply_nested_lists_stay_bounded():
    n = 100_000
    deep = b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."
    start = time.perf_counter()
    report = safeload.inspect(deep)
    assert time.perf_counter() - start < 10
    assert report.root.kind == "container"
    assert report.root.attributes["<root>"].to_dict() == {"type": "list", "length": 1}
    assert [p.operation for p in report.problems] == ["limit-exceeded"]
    assert not report.trusted
    assert len(report.to_text()) < 2000


def test_wide_lists_of_objects_stay_bounded():
    n = 100_000
    obj = G("mypkg", "Thing")
    wide = dumps([New(obj) for _ in range(n)], 4)
    start = time.perf_counter()
    report = safeload.inspect(wide, max_children=10)
    assert time.perf_counter() - start < 20
    assert len(report.root.children) == 10
    assert report.root.omitted == n - 10
    assert "… 99990 more" in report.to_text()
    assert report.untrusted_types == ["mypkg.Thing"]


def test_depth_cap():
    inner = B(New(G("mypkg", "Leaf")), {"x": 1})
    for _ in range(30):
        inner = B(New(G("mypkg", "Box")), {"inner": inner})
    report = safeload.inspect(dumps(inner, 4), max_depth=5)
    assert max(len(p.split("/")) for p, _ in _paths(report)) == 7  # "/" + 5 levels + root
    assert any("deeper than 5" in note for note in report.notes)


def test_long_strings_and_bytes_are_elided():
    stream = dumps(B(New(G("mypkg", "Doc")), {"text": "a" * 500, "blob_": b"\x00" * 100}), 4)
    root = safeload.inspect(stream).root
    assert root.attributes["text"].to_dict() == {"type": "str", "value": repr("a" * 40) + "…",
                                                 "length": 500}  # fmt: skip
    assert root.fitted["blob_"].to_dict() == {"type": "bytes", "length": 100}


# --------------------------------------------------------------------------- formats and registry
def test_foreign_and_broken_files():
    with pytest.raises(FormatError):
        safeload.inspect(make_zip([("a.txt", b"hello")]))
    with pytest.raises(FormatError):
        safeload.inspect(pickle.dumps({"a": 1})[:-3])  # truncated
    with pytest.raises(TypeError):
        safeload.inspect(42)


def test_safe_format_registry():
    manifest = json.dumps({"format": "safeload", "estimator": "x.Y"}).encode()
    data = make_zip([("manifest.json", manifest)])
    with pytest.raises(FormatError):  # the safe-format inspector's strict reader refuses it
        safeload.inspect(data)
    previous = INSPECTORS["safeload"]

    def fake(src, options):
        return InspectReport(options.path, "safeload", InspectNode("estimator", "x.Y", "trusted"),
                             manifest={"format": "safeload"})  # fmt: skip

    try:
        register_inspector("safeload", fake)
        report = safeload.inspect(data)
        assert report.format == "safeload" and report.manifest == {"format": "safeload"}
    finally:
        register_inspector("safeload", previous)
    with pytest.raises(TypeError):
        register_inspector("safeload", "not callable")


# --------------------------------------------------------------------------- command line
def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def model_files(tmp_path, pipeline):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(pipeline))
    (tmp_path / "model.joblib").write_bytes(_joblib_bytes(pipeline, ("zlib", 3)))
    (tmp_path / "evil.pkl").write_bytes(dumps(G("os", "system")(canary_shell("cli")), 2))
    (tmp_path / "broken.pkl").write_bytes(pickle.dumps(pipeline)[:100])
    return tmp_path


def test_cli_json(model_files):
    result = run("inspect", "--format", "json", str(model_files / "model.joblib"))
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["format"] == "joblib+zlib"
    assert doc["trusted"] is True
    assert doc["sklearn_version"] == SKLEARN_VERSION
    tree = doc["tree"]
    assert tree["class"] == "sklearn.pipeline.Pipeline"
    lr = tree["children"][1]
    assert lr["role"] == "steps['lr']"
    assert lr["params"] == {"C": {"type": "float", "value": "0.5"}}
    assert lr["fitted"]["coef_"] == {"type": "numpy.ndarray", "shape": [1, 3], "dtype": "float64"}


def test_cli_exit_codes(model_files, canary_sandbox):
    assert run("inspect", str(model_files / "model.pkl")).exit_code == 0
    evil = run("inspect", "-f", "json", str(model_files / "evil.pkl"))
    assert evil.exit_code == 1
    doc = json.loads(evil.stdout)
    assert doc["untrusted_types"] == ["os.system"]
    assert doc["tree"]["verdict"] == "dangerous"
    broken = run("inspect", str(model_files / "broken.pkl"))
    assert broken.exit_code == 2
    assert "FormatError" in broken.stderr
    missing = run("inspect", str(model_files / "missing.pkl"))
    assert missing.exit_code == 2
    assert run("inspect").exit_code == 2
    assert run("inspect", "--show", "some", str(model_files / "model.pkl")).exit_code == 2
    assert run("inspect", "-t", "bad*name", str(model_files / "model.pkl")).exit_code == 2


def test_cli_show_untrusted_and_text(model_files):
    clean = run("inspect", "--show", "untrusted", "-f", "json", str(model_files / "model.pkl"))
    assert clean.exit_code == 0
    assert json.loads(clean.stdout)["tree"] is None
    text = run("inspect", str(model_files / "model.pkl"))
    assert "steps['lr']: LogisticRegression" in text.stdout
    assert "C = 0.5" in text.stdout
    evil = run("inspect", "--show", "untrusted", str(model_files / "evil.pkl"))
    assert evil.exit_code == 1
    assert "call os.system(…) [dangerous]" in evil.stdout
    trusted = run("inspect", "-t", "mypkg.Thing", str(model_files / "model.pkl"))
    assert trusted.exit_code == 0


def test_codec_names_from_the_file_are_not_looked_up():
    stream = dumps(B(New(G("mypkg", "Doc")), {"a": G("_codecs", "encode")("x", "rot13"),
                                              "b": G("_codecs", "encode")("\xff", "latin1")}), 2)  # fmt: skip
    root = safeload.inspect(stream).root
    assert root.attributes["a"].to_dict() == {"type": "bytes", "value": "encoded with 'rot13'"}
    assert root.attributes["b"].to_dict() == {"type": "bytes", "length": 1}


# --------------------------------------------------------------------------- safe-format files
def test_safe_file_shows_the_manifest(pipeline):
    X, _ = _data()
    data = safeload.dumps(pipeline, probe=X, metadata={"owner": "team"}, source="git:abc")
    report = safeload.inspect(data)
    assert report.format == "safeload" and report.protocol is None and report.trusted
    assert report.manifest["format_version"] == 2
    manifest = report.manifest
    assert manifest["producer"]["scikit-learn"] == SKLEARN_VERSION
    assert manifest["metadata"] == {"owner": "team"} and manifest["source"] == "git:abc"
    assert manifest["members"]["count"] == len(zipfile.ZipFile(io.BytesIO(data)).namelist()) - 1
    assert report.metadata["producer_scikit-learn"] == SKLEARN_VERSION
    assert report.metadata["probe"] == "40 rows; predict, predict_proba, decision_function"
    text = report.to_text()
    assert "protocol" not in text.splitlines()[0] and "owner" in text and "git:abc" in text
    assert "coef_: ndarray (1, 3) float64" in text


def test_safe_file_arrays_are_never_read(pipeline):
    from ._archive_tools import members

    data = bytearray(safeload.dumps(pipeline))
    for name, m in members(bytes(data)).items():
        if name.startswith("arrays/"):  # overwrite every array member's data
            data[m.data_offset : m.data_offset + m.compressed_size] = b"\xff" * m.compressed_size
    report = safeload.inspect(bytes(data))
    lr = report.root.find("LogisticRegression")[0]
    assert lr.fitted["coef_"].to_dict() == {"type": "numpy.ndarray", "shape": [1, 3],
                                            "dtype": "float64"}  # fmt: skip


def test_hostile_safe_file_runs_nothing(pipeline, canary_sandbox):
    from ._archive_tools import rebuild

    def hostile(raw: bytes) -> bytes:
        doc = json.loads(raw)
        doc["globals"].append(["os", "system"])
        doc["root"]["state"]["v"]["memory"] = {"$": "call", "g": len(doc["globals"]) - 1,
                                               "args": [canary_shell("inspect-safe")]}  # fmt: skip
        return json.dumps(doc).encode()

    data = rebuild(safeload.dumps(pipeline), {"graph.json": hostile})
    report = safeload.inspect(data)
    assert not report.trusted and report.untrusted_types == ["os.system"]
    (call,) = [n for n in report.root.walk() if n.kind == "call"]
    assert (call.class_name, call.verdict, call.role) == ("os.system", "dangerous", "memory")
    assert "os" not in {g.name.split(".")[0] for g in report.globals if g.verdict == "trusted"}


def test_cli_inspects_a_safe_file(tmp_path, pipeline):
    path = tmp_path / "model.safe"
    safeload.dump(pipeline, path)
    result = run("inspect", str(path))
    assert result.exit_code == 0
    assert "steps['lr']: LogisticRegression" in result.stdout and "producer" in result.stdout
