"""Fixtures of the fuzz tests: an empty canary directory and an empty working directory."""

from __future__ import annotations

import pytest

from .harness import Sandbox


@pytest.fixture
def fuzz_sandbox(tmp_path_factory, monkeypatch) -> Sandbox:
    """``SAFELOAD_CANARY_DIR`` and the cwd set to fresh empty directories for one test.

    The harness checks after every input that both are still empty; the fixture checks it once
    more at the end.
    """
    canary = tmp_path_factory.mktemp("fuzz-canary")
    cwd = tmp_path_factory.mktemp("fuzz-cwd")
    monkeypatch.setenv("SAFELOAD_CANARY_DIR", str(canary))
    monkeypatch.chdir(cwd)
    box = Sandbox(canary, cwd)
    yield box
    assert box.written() == [], "files appeared in the sandbox"
