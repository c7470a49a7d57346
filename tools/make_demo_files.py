"""Copy the demo's real model files into ``examples/models/`` and write its malicious file.

The demo (``make demo``) must not need ``../shared``; this script, run by a developer, copies a
few small legacy files (written by genuinely old Python/scikit-learn versions) with their
probe outputs, and writes one hostile pickle of our own: ``os.system(...)`` reached through
``GLOBAL`` + ``REDUCE`` (catalogue family *direct-callable*), with a harmless payload.

Usage: ``python tools/make_demo_files.py [--corpus ../shared/corpus]``
"""

from __future__ import annotations

import argparse
import pickle
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "examples" / "models"

#: (environment folder, file) — small files that load correctly in today's stack.
DEMO_FILES = [
    ("py27_skl0204", "MLPClassifier.p2.pkl"),
    ("py36_skl0213", "SGDClassifier.skjl-zlib3.joblib"),
    ("py36_skl0213", "RandomForestClassifier.p2.pkl"),  # converted to a safe file by the demo
    ("py37_skl102", "Pipeline.jl.joblib"),
    ("py39_skl132", "KNeighborsClassifier.jl-lzma3.joblib"),
    ("py310_skl161", "HistGradientBoostingClassifier.p5.pkl"),
    ("py311_skl191", "TfidfVectorizer.p0.pkl"),
]


def malicious_pickle() -> bytes:
    """A protocol-2 pickle that runs ``os.system`` when plain-unpickled (never do that)."""
    command = b"echo 'this model file just ran a shell command' > PWNED.txt"
    return (
        b"\x80\x02cos\nsystem\nq\x00"
        + pickle.SHORT_BINSTRING
        + bytes([len(command)])
        + command
        + b"\x85q\x01Rq\x02."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    DEST.mkdir(parents=True, exist_ok=True)
    for env, name in DEMO_FILES:
        src = args.corpus / "legacy" / env
        stem = name.split(".")[0]
        shutil.copyfile(src / name, DEST / f"{env}__{name}")
        shutil.copyfile(src / f"{stem}.probe.json", DEST / f"{env}__{stem}.probe.json")
        shutil.copyfile(src / "ENV.json", DEST / f"{env}__ENV.json")
    (DEST / "malicious__os_system.pkl").write_bytes(malicious_pickle())
    print(f"wrote {len(list(DEST.iterdir()))} files to {DEST}")


if __name__ == "__main__":
    main()
