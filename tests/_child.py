"""Load a hostile file in a child process, so that a crash is a failed assertion rather than
a dead test run (review 5's reproducers of crashes in compiled ``__setstate__``)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

_ROOT = str(pathlib.Path(__file__).resolve().parents[1])

_PRELUDE = f"""
import pickle, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, safeload
sys.path.insert(0, {_ROOT!r})
from tests import _safezip as sz
"""

_EPILOGUE = """
try:
    safeload.loads(data)
except safeload.SafeloadError as exc:
    print("refused", type(exc).__name__)
else:
    print("loaded")
"""


def load_in_child(body: str, *argv: str) -> subprocess.CompletedProcess:
    """Run ``body`` (it sets ``data``, the file's bytes; ``sys.argv[1:]`` is ``argv``) and
    ``safeload.loads(data)`` in a new interpreter; stdout is ``refused <error>`` or
    ``loaded``."""
    script = _PRELUDE + textwrap.dedent(body) + _EPILOGUE
    return subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300
    )
