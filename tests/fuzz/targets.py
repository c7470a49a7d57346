"""The fuzz targets: one per reader, as a registry ``name -> Target``.

A :class:`Target` is a seed factory (small valid files, each with a check of what a correct
load returns), the structure-aware mutators that apply to its payload, and how a payload becomes
the file (``encode``: identity for pickles, the compressor for compressed joblib files) and back
(``decode``, for coverage-guided engines that hand back whole files).  The short run
(``tests/test_fuzz_short.py``) and the ``make fuzz`` driver (``tools/fuzz.py``) both iterate over
:data:`TARGETS`, so a new reader is fuzzed by registering it here:

.. code-block:: python

    register(Target("my-format", seeds=_my_seeds, mutators=ZIP_MUTATORS + BYTE_MUTATORS))

Targets whose reader does not exist yet (``safe-format`` before ``safeload.dump`` lands) report
a skip reason from ``unavailable()`` and are skipped by both.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import pickle
import random
import tempfile
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import safeload

from .mutators import (
    BYTE_MUTATORS,
    MEMBER_MUTATORS,
    OPCODE_MUTATORS,
    ZIP_MUTATORS,
    Mutator,
    edit_zip_header,
    flip_bytes,
    mutate,
    truncate,
)

__all__ = ["Seed", "Target", "TARGETS", "register", "target_names", "models", "FUZZ_LIMITS"]

MiB = 1 << 20

#: Limits of every fuzz load: the defaults, with sizes low enough that a mutant declaring a
#: large (but allowed) array or item count stays cheap on a shared 2-core machine.  The opcode
#: limit stays the default, so the compressed reader's size-proportional opcode budget is
#: exercised.
FUZZ_LIMITS = safeload.Limits(
    max_file_bytes=64 * MiB,
    max_decompressed_bytes=64 * MiB,
    max_array_bytes=64 * MiB,
    max_total_array_bytes=128 * MiB,
    max_items=2_000_000,
)

X_PROBE = np.array([[0.0, 1.0, 2.0, 3.0], [1.5, -2.0, 0.5, 4.0], [-1.0, 0.0, 3.0, -3.0]])


@dataclass(frozen=True)
class Seed:
    """One valid payload and the check that its unmutated load is correct.

    Parameters
    ----------
    name : str
        Label for reports (``"LogisticRegression-p4"``).
    payload : bytes
        What the target's mutators edit (a pickle stream, a decompressed joblib stream, a zip).
    check : callable
        ``check(obj)`` raises ``AssertionError`` unless ``obj`` is what the seed holds (same
        predictions on a fixed probe, same arrays).
    """

    name: str
    payload: bytes
    check: Callable[[Any], None]


def _identity(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class Target:
    """A reader under fuzzing.

    Parameters
    ----------
    name : str
        Registry key (``"pickle"``, ``"joblib-gzip"``, ``"skops"`` ...).
    seeds : callable
        ``seeds() -> list[Seed]``; called once and cached by :meth:`seed_list`.
    mutators : tuple of Mutator
        Mutators for the payload (see :mod:`tests.fuzz.mutators`).
    encode : callable
        Payload → file bytes (identity, or a compressor).
    decode : callable
        File bytes → payload, or None when the file can not be decoded (then only byte
        mutators apply to the file itself).
    file_mutators : tuple of Mutator
        Mutators applied to the encoded file (compressed bytes), with probability
        ``file_mutation_rate``.
    file_mutation_rate : float
    unavailable : callable
        ``unavailable() -> str | None``: a skip reason while the reader does not exist yet.
    load : callable
        ``load(data, limits) -> object``; default :func:`safeload.loads`.
    short_examples : int
        Number of mutants of the short run in ``make test``.
    seeds_may_be_foreign : bool
        True while ``load`` may still refuse the unmutated seeds as a foreign format
        (``FormatError``): skops files before safeload's skops reader lands.  Otherwise every
        seed must load and pass its check.
    """

    name: str
    seeds: Callable[[], list[Seed]]
    mutators: tuple[Mutator, ...]
    encode: Callable[[bytes], bytes] = _identity
    decode: Callable[[bytes], bytes | None] = _identity
    file_mutators: tuple[Mutator, ...] = BYTE_MUTATORS
    file_mutation_rate: float = 0.0
    unavailable: Callable[[], str | None] = lambda: None
    load: Callable[[bytes, safeload.Limits], Any] = field(
        default=lambda data, limits: safeload.loads(data, limits=limits)
    )
    short_examples: int = 120
    seeds_may_be_foreign: bool = False

    def seed_list(self) -> list[Seed]:
        """The seeds (built once per process)."""
        return _cached_seeds(self.name)

    def seed_files(self) -> list[bytes]:
        """The seeds as files (encoded payloads), e.g. an atheris seed corpus."""
        return [self.encode(s.payload) for s in self.seed_list()]

    def mutant(self, rng: random.Random) -> bytes:
        """A mutated file: a random seed's payload mutated, encoded, maybe mutated again.

        Parameters
        ----------
        rng : random.Random
            Every choice comes from it.

        Returns
        -------
        bytes
            The file to load.
        """
        seeds = self.seed_list()
        seed = rng.choice(seeds)
        pool = [s.payload for s in seeds]
        return self.mutate_payload(seed.payload, rng, pool)

    def mutate_payload(self, payload: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
        """Mutate ``payload`` with the target's mutators and encode it (see :meth:`mutant`)."""
        data = self.encode(mutate(payload, rng, self.mutators, pool))
        if self.file_mutation_rate and rng.random() < self.file_mutation_rate:
            data = mutate(data, rng, self.file_mutators, (), rounds=1)
        return data

    def mutate_file(self, data: bytes, rng: random.Random) -> bytes:
        """Mutate a whole file (what a coverage-guided engine hands back): decode, mutate the
        payload structurally and encode again, or mutate the file bytes when it does not
        decode."""
        payload = self.decode(data)
        pool = [s.payload for s in self.seed_list()]
        if payload is None:
            return mutate(data, rng, self.file_mutators, ())
        return self.mutate_payload(payload, rng, pool)


TARGETS: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Add ``target`` to :data:`TARGETS` (its name must be new) and return it."""
    if target.name in TARGETS:
        raise ValueError(f"fuzz target {target.name!r} is already registered")
    TARGETS[target.name] = target
    return target


def target_names() -> list[str]:
    """Names of every registered target, in registration order."""
    return list(TARGETS)


@functools.cache
def _cached_seeds(name: str) -> list[Seed]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TARGETS[name].seeds()


# --------------------------------------------------------------------------- models
def _same_predictions(model) -> Callable[[Any], None]:
    expected = model.predict(X_PROBE)

    def check(obj) -> None:
        assert type(obj) is type(model), type(obj)
        np.testing.assert_array_equal(obj.predict(X_PROBE), expected)

    return check


def _same_transform(model) -> Callable[[Any], None]:
    docs = ["alpha beta", "gamma alpha zeta"]
    expected = model.transform(docs).toarray()

    def check(obj) -> None:
        assert type(obj) is type(model), type(obj)
        np.testing.assert_allclose(obj.transform(docs).toarray(), expected)

    return check


def _same_sparse(matrix) -> Callable[[Any], None]:
    def check(obj) -> None:
        assert type(obj) is type(matrix), type(obj)
        np.testing.assert_array_equal(obj.toarray(), matrix.toarray())

    return check


@functools.cache
def models() -> list[tuple[str, Any, Callable[[Any], None]]]:
    """Small fitted models (and one sparse matrix) the seeds are made of, with their checks.

    Tree, KD-tree, HistGradientBoosting, sparse and text models cover the content validators;
    every one loads in a few milliseconds.
    """
    from scipy import sparse
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    out: list[tuple[str, Any, Callable[[Any], None]]] = []
    for name, est in [
        ("LogisticRegression", LogisticRegression()),
        ("DecisionTree", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ("KNeighbors-kd", KNeighborsClassifier(3, algorithm="kd_tree", leaf_size=5)),
        ("Pipeline", make_pipeline(StandardScaler(), LogisticRegression())),
        ("RandomForest", RandomForestClassifier(2, max_depth=2, random_state=0)),
        ("HGB", HistGradientBoostingClassifier(max_iter=2, max_depth=2, min_samples_leaf=5)),
    ]:
        out.append((name, est.fit(X, y), None))
    out = [(name, est, _same_predictions(est)) for name, est, _ in out]
    tfidf = TfidfVectorizer().fit(["alpha beta gamma", "beta delta", "zeta alpha"])
    out.append(("Tfidf", tfidf, _same_transform(tfidf)))
    csr = sparse.random(6, 5, density=0.4, format="csr", random_state=0)
    out.append(("csr", csr, _same_sparse(csr)))
    return out


# --------------------------------------------------------------------------- pickle / joblib
def _pickle_seeds() -> list[Seed]:
    return [
        Seed(f"{name}-p{p}", pickle.dumps(obj, protocol=p), check)
        for name, obj, check in models()
        for p in (0, 2, 4, 5)
    ]


def _joblib_bytes(obj: Any, protocol: int) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf, protocol=protocol)
    return buf.getvalue()


def _joblib_seeds() -> list[Seed]:
    # protocol 5 as joblib writes by default (framed: most inserts break a FRAME length) and
    # protocol 2 (no frames: opcode splices reach the unpickler's deeper states)
    return [
        Seed(f"{name}-joblib-p{p}", _joblib_bytes(obj, p), check)
        for name, obj, check in models()
        for p in (2, 5)
    ]


def _decompress(fn: Callable[[bytes], bytes]) -> Callable[[bytes], bytes | None]:
    def decode(data: bytes) -> bytes | None:
        try:
            out = fn(data)
        except Exception:  # noqa: BLE001 - a mutated compressed file
            return None
        return out if len(out) <= 16 * MiB else None

    return decode


def _lz4_compress(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


def _lz4_decompress(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.decompress(data)


#: joblib's compressors as it frames them: name -> (compress, decompress).
COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "zlib": (lambda d: zlib.compress(d, 3), zlib.decompress),
    "gzip": (lambda d: gzip.compress(d, 3, mtime=0), gzip.decompress),
    "bz2": (lambda d: bz2.compress(d, 3), bz2.decompress),
    "xz": (
        lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, preset=3),
        lambda d: lzma.decompress(d, format=lzma.FORMAT_XZ),
    ),
    "lzma": (
        lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE, preset=3),
        lambda d: lzma.decompress(d, format=lzma.FORMAT_ALONE),
    ),
    "lz4": (_lz4_compress, _lz4_decompress),
}

register(
    Target(
        "pickle",
        seeds=_pickle_seeds,
        mutators=OPCODE_MUTATORS + BYTE_MUTATORS,
        short_examples=2000,
    )
)
register(
    Target(
        "joblib",
        seeds=_joblib_seeds,
        mutators=OPCODE_MUTATORS + BYTE_MUTATORS,
        short_examples=2000,
    )
)
for _name, (_comp, _decomp) in COMPRESSORS.items():
    register(
        Target(
            f"joblib-{_name}",
            seeds=_joblib_seeds,
            mutators=OPCODE_MUTATORS + BYTE_MUTATORS,
            encode=_comp,
            decode=_decompress(_decomp),
            file_mutation_rate=0.25,
            short_examples=800,
        )
    )
del _name, _comp, _decomp


# --------------------------------------------------------------------------- zip formats
def _skops_seeds() -> list[Seed]:
    import skops.io

    return [
        Seed(f"{name}-skops", skops.io.dumps(obj), check)
        for name, obj, check in models()
        if name in ("LogisticRegression", "DecisionTree", "Pipeline", "csr")
    ]


register(
    Target(
        "skops",
        seeds=_skops_seeds,
        mutators=ZIP_MUTATORS + BYTE_MUTATORS,
        short_examples=1000,
        seeds_may_be_foreign=True,
    )
)


def _safe_format_unavailable() -> str | None:
    if not callable(getattr(safeload, "dump", None)):
        return "safeload.dump (the safe format) does not exist yet"
    return None


def _safe_format_bytes(obj: Any) -> bytes:
    """``safeload.dumps(obj)``, or ``safeload.dump(obj, file)`` through a buffer or a path."""
    dumps = getattr(safeload, "dumps", None)
    if callable(dumps):
        return dumps(obj)
    buf = io.BytesIO()
    try:
        safeload.dump(obj, buf)
        return buf.getvalue()
    except TypeError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safeload"
        safeload.dump(obj, path)
        return path.read_bytes()


def _safe_format_canonical(data: bytes) -> bytes:
    """Re-hash and re-write a (mutated) safe-format archive the way ``safeload.dump`` lays it
    out, so member edits reach the JSON and array decoders instead of the hash and zip-layout
    checks.  ``manifest.json``'s ``members`` get the new sizes and SHA-256 of every member;
    archives that do not parse, or with duplicate names, are returned unchanged."""
    import hashlib
    import json
    import zipfile

    try:
        from safeload.format.zipio import ZipWriter
    except ImportError:  # the writer moved: fuzz the archive as it is
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    except Exception:  # noqa: BLE001
        return data
    members = [(n, b) for n, b in members]
    for i, (name, body) in enumerate(members):
        if name != "manifest.json":
            continue
        try:
            manifest = json.loads(body)
            table = manifest["members"]
            for other, content in members:
                if other in table and isinstance(table[other], dict):
                    table[other] = {
                        "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(),
                    }
            members[i] = (name, json.dumps(manifest, separators=(",", ":")).encode())
        except Exception:  # noqa: BLE001 - a mutated manifest: keep it as it is
            pass
    buf = io.BytesIO()
    try:
        writer = ZipWriter(buf)
        for name, body in members:
            writer.write_member(name, body)
        writer.finish()
    except Exception:  # noqa: BLE001 - duplicates, names the writer refuses
        return data
    return buf.getvalue()


def _safe_format_seeds() -> list[Seed]:
    return [Seed(f"{name}-safe", _safe_format_bytes(obj), check) for name, obj, check in models()]


register(
    Target(
        "safe-format",
        seeds=_safe_format_seeds,
        mutators=MEMBER_MUTATORS,
        encode=_safe_format_canonical,
        file_mutators=(edit_zip_header, flip_bytes, truncate),
        file_mutation_rate=0.2,
        unavailable=_safe_format_unavailable,
        short_examples=1000,
    )
)
