"""The ``safeload`` command line: ``safeload scan`` exit codes, outputs and options."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.preprocessing import StandardScaler

import safeload
from safeload.cli import main

from .attacks._pickle_builder import B, G, New, dumps, make_zip
from .conftest import MALICIOUS, ROOT, load_json
from .test_scan import _validate_sarif

CUSTOM = dumps(B(New(G("mypkg.features", "MyTransformer")), {"k": 1}), 4)
EVIL = dumps(G("os", "system")("id"), 2)


@pytest.fixture
def files(tmp_path):
    scaler = StandardScaler().fit(np.arange(20.0).reshape(10, 2))
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(scaler))
    (tmp_path / "custom.pkl").write_bytes(CUSTOM)
    (tmp_path / "evil.bin").write_bytes(EVIL)
    (tmp_path / "README.md").write_text("Some text, not a model\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "nested.pt").write_bytes(make_zip([("archive/data.pkl", EVIL)]))
    return tmp_path


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_exit_codes(files):
    assert run("scan", str(files / "good.pkl")).exit_code == 0
    assert run("scan", str(files / "evil.bin")).exit_code == 1
    assert run("scan", str(files / "good.pkl"), str(files / "custom.pkl")).exit_code == 1
    missing = run("scan", str(files / "good.pkl"), str(files / "missing.pkl"))
    assert missing.exit_code == 2
    assert "missing.pkl" in missing.stderr
    assert run("scan").exit_code == 2  # no path: usage error
    assert run("scan", "--format", "xml", str(files / "good.pkl")).exit_code == 2
    assert run("scan", "--jobs", "0", str(files / "good.pkl")).exit_code == 2
    assert run("nosuchcommand").exit_code == 2


def test_text_output_is_a_table(files):
    result = run("scan", str(files / "evil.bin"), str(files / "good.pkl"))
    out = result.stdout
    assert "UNSAFE" in out and "SAFE" in out and "os.system" in out
    assert "SL002" in out and "2 file(s) scanned: 1 unsafe" in out
    assert result.stderr == ""
    verbose = run("scan", "-v", str(files / "good.pkl")).stdout
    assert "sklearn.preprocessing._data.StandardScaler" in verbose and "trusted" in verbose


def test_json_goes_to_stdout_alone(files):
    result = run("scan", "-f", "json", str(files / "evil.bin"), str(files / "good.pkl"))
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and result.stderr == ""
    assert doc["safe"] is False
    assert doc["summary"] == {"files": 2, "unsafe": 1, "errors": 0, "skipped": 0}
    evil, good = doc["reports"]
    assert evil["untrusted_types"] == ["os.system"] and good["safe"] is True
    assert good["sklearn_version"] is not None


def test_sarif_output_and_output_file(files, tmp_path):
    out = tmp_path / "report.sarif"
    result = run("scan", "--format", "sarif", "-o", str(out), str(files / "evil.bin"),
                 str(files / "missing.pkl"))  # fmt: skip
    assert result.exit_code == 2
    assert result.stdout == ""
    log = json.loads(out.read_text())
    _validate_sarif(log)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["SL002"]
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "missing.pkl" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    text_out = tmp_path / "report.txt"
    assert run("scan", "-o", str(text_out), str(files / "good.pkl")).stdout == ""
    assert "SAFE" in text_out.read_text()


def test_trusted_and_policy_packs(files, tmp_path):
    custom = str(files / "custom.pkl")
    assert run("scan", custom).exit_code == 1
    assert run("scan", "--trusted", "mypkg.features.MyTransformer", custom).exit_code == 0
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"groups": [{"name": "mine", "reason": "reviewed",
                                            "globals": {"mypkg.features": ["MyTransformer"]}}]}))  # fmt: skip
    result = run("scan", "--policy", str(pack), "-f", "json", custom)
    assert result.exit_code == 0
    (g,) = json.loads(result.stdout)["reports"][0]["globals"]
    assert g["verdict"] == "trusted" and g["reason"] == "mine: reviewed"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"groups": [{"name": "x", "globals": {"os": ["system"]}}]}))
    refused = run("scan", "--policy", str(bad), custom)
    assert refused.exit_code == 2 and "never be trusted" in refused.stderr
    assert run("scan", "--trusted", "os.system", custom).exit_code == 2
    assert run("scan", "--trusted", "mypkg.*", custom).exit_code == 2
    (tmp_path / "notjson.json").write_text("{")
    assert run("scan", "--policy", str(tmp_path / "notjson.json"), custom).exit_code == 2


def test_directories(files):
    flat = json.loads(run("scan", "-f", "json", str(files)).stdout)
    assert sorted(Path(r["path"]).name for r in flat["reports"]) == [
        "custom.pkl", "evil.bin", "good.pkl",
    ]  # fmt: skip
    assert [Path(p).name for p in flat["skipped"]] == ["README.md"]
    deep = json.loads(run("scan", "-r", "-f", "json", str(files)).stdout)
    names = {Path(r["path"]).name: r for r in deep["reports"]}
    assert set(names) == {"custom.pkl", "evil.bin", "good.pkl", "nested.pt"}
    assert names["nested.pt"]["format"] == "zip:pytorch" and not names["nested.pt"]["safe"]
    everything = json.loads(run("scan", "-r", "--all", "-f", "json", str(files)).stdout)
    readme = [r for r in everything["reports"] if r["path"].endswith("README.md")][0]
    assert not readme["safe"]  # "Some text" starts like a protocol-0 STRING opcode
    assert readme["findings"][0]["rule"] in ("unknown-format", "truncated-stream", "corrupt-stream")


def test_parallel_jobs_give_the_same_reports(files):
    serial = json.loads(run("scan", "-r", "-f", "json", str(files)).stdout)
    for extra in (["-j", "2"], ["-j", "2", "--backend", "threading"]):
        parallel = json.loads(run("scan", "-r", "-f", "json", *extra, str(files)).stdout)
        assert parallel == serial


def test_no_progress_bar_without_a_terminal(files):
    result = run("scan", "-r", str(files))
    assert result.stderr == ""


@pytest.mark.skipif(not MALICIOUS.exists(), reason="shared malicious corpus not available")
def test_corpus_exit_codes(canary_sandbox):
    entries = load_json(MALICIOUS / "manifest.json")["files"]
    runner = CliRunner()
    for e in entries:
        path = MALICIOUS / "files" / e["file"]
        if not path.exists() or e["expected"] == "foreign_format":
            continue
        code = runner.invoke(main, ["scan", "-f", "json", str(path)]).exit_code
        if e["expected"] == "must_block":
            assert code == 1, e["id"]
        else:
            try:
                safeload.load(path)
            except safeload.UntrustedTypesError:  # a name the policy excludes: 1 like load
                assert code == 1, e["id"]
                continue
            assert code == 0, e["id"]


def test_python_dash_m_and_console_script(files):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "safeload", "scan", "-f", "json",
                           str(files / "evil.bin")], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["reports"][0]["untrusted_types"] == ["os.system"]
    script = Path(sys.executable).with_name("safeload")
    if not script.exists():
        pytest.skip("console script not installed (pip install -e .)")
    proc = subprocess.run([str(script), "scan", str(files / "good.pkl")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert safeload.__version__ in version.stdout


def test_pre_commit_hook_definition():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "- id: safeload-scan" in text
    assert "entry: safeload scan" in text
    pattern = re.search(r"files: '(.+)'", text).group(1)
    for name in ("model.pkl", "m.joblib", "W.PT", "x.pkl.gz", "m.skops", "a.npz", "m.sav"):
        assert re.search(pattern, name), name
    for name in ("README.md", "train.py", "data.csv"):
        assert not re.search(pattern, name), name


def test_progress_bar_path_returns_every_report(files, capsys):
    """The rich progress bar (stderr on a terminal) wraps the same scanning loop."""
    from safeload.cli import _run, collect_files

    paths, errors, skipped = collect_files((str(files),), True, False)
    results = _run(paths, (), None, 1, None, True)
    assert [r.path for r in results] == paths and errors == [] and len(skipped) == 1
    assert capsys.readouterr().out == ""


def test_dask_backend_without_distributed_is_a_usage_error(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails like when missing
    result = run("scan", "--backend", "dask", "-j", "2", str(files / "good.pkl"))
    assert result.exit_code == 2 and "dask" in result.stderr
    assert run("scan", "--scheduler", "tcp://x:1", str(files / "good.pkl")).exit_code == 2
