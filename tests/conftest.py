"""Shared fixtures: paths of the shared corpora and a canary sandbox.

Tests read the corpora in ``../shared/corpus`` (relative to the project root); when that folder
is absent (a clone outside the workplace) the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("SAFELOAD_CORPUS", ROOT.parent / "shared" / "corpus"))
LEGACY = CORPUS / "legacy"
WILD = CORPUS / "wild"
MALICIOUS = CORPUS / "malicious"


def corpus_or_skip(path: Path) -> Path:
    """Return ``path`` or skip the test when the shared corpus is not available."""
    if not path.exists():
        pytest.skip(f"shared corpus not found at {path}")
    return path


def load_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture
def canary_sandbox(tmp_path, monkeypatch):
    """Run a test from an empty cwd with ``SAFELOAD_CANARY_DIR`` set; fail if a canary fires.

    The corpus payloads create a marker under ``$SAFELOAD_CANARY_DIR`` or write
    ``safeload_canary_<ID>`` into the current directory.
    """
    canary = tmp_path / "canary"
    cwd = tmp_path / "cwd"
    canary.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("SAFELOAD_CANARY_DIR", str(canary))
    monkeypatch.chdir(cwd)
    yield canary
    assert sorted(os.listdir(canary)) == [], "a canary fired"
    assert sorted(os.listdir(cwd)) == [], "a file was written into the working directory"
