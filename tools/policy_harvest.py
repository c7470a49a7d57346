"""Pickle objects and record every global their pickle streams reference.

This is the recording half of ``tools/gen_policy.py``; the objects come from
``tools/policy_cases.py`` (every ``all_estimators()`` class fitted the way scikit-learn's common
tests build it, composites, reference objects).  Each object is pickled with ``pickle.dumps`` at
protocols 0, 2, 4 and 5 and with ``joblib.dump``; the streams are read back through an unpickler
whose ``find_class`` records the names.  Every object pickled here was built in this process,
so reading it back with the real unpickler is safe (never use this on files from elsewhere).

The result maps each global, spelled the way today's pickler writes it (protocol >= 3 spelling;
the ``__builtin__``/``copy_reg`` names of protocols 0 and 2 are mapped back through
``_compat_pickle`` and kept aside so the generator can check their aliases), to the names of
the cases whose pickles reference it."""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import joblib
import joblib.numpy_pickle

Pair = tuple[str, str]

#: Pickle protocols every case is written with (``joblib.dump`` uses the default on top).
PROTOCOLS = (0, 2, 4, 5)


@dataclass(frozen=True)
class Case:
    """One object to pickle.

    Attributes
    ----------
    name : str
        Stable, human-readable label used in reports (``"SVC~sparse"``).
    build : callable
        Returns the (fitted) object; called once.
    """

    name: str
    build: Callable[[], Any]


@dataclass
class Harvest:
    """What the harvest saw.

    Attributes
    ----------
    users : dict of (str, str) to set of str
        Canonical global → names of the cases whose pickles reference it.
    py2_spellings : set of (str, str)
        Names as protocols 0 and 2 spell them when that differs from today's spelling
        (``("__builtin__", "set")``, ``("copy_reg", "_reconstructor")``).
    failures : dict of str to str
        Case name → the error that stopped it (fit or pickle failed).
    n_cases : int
        Number of cases attempted.
    """

    users: dict[Pair, set[str]]
    failures: dict[str, str]
    n_cases: int
    py2_spellings: set[Pair]


# -- recording --------------------------------------------------------------------------------
class _RecordingUnpickler(pickle.Unpickler):
    """Unpickler that records ``find_class`` arguments (only used on our own streams)."""

    def __init__(self, file: Any, seen: set[Pair]):
        super().__init__(file)
        self._seen = seen

    def find_class(self, module: str, name: str) -> Any:
        self._seen.add((module, name))
        return super().find_class(module, name)


class _RecordingJoblibUnpickler(joblib.numpy_pickle.NumpyUnpickler):
    """joblib's unpickler with the same recording ``find_class``."""

    def __init__(self, file: Any, seen: set[Pair]):
        super().__init__("", file, ensure_native_byte_order=True)
        self._seen = seen

    def find_class(self, module: str, name: str) -> Any:
        self._seen.add((module, name))
        return super().find_class(module, name)


def py3_spelling(module: str, name: str) -> Pair:
    """Map a protocol 0/2 stream name to the spelling Python 3 resolves (``_compat_pickle``).

    Parameters
    ----------
    module, name : str
        As the stream spells them (``"__builtin__"``, ``"set"``).

    Returns
    -------
    tuple of (str, str)
        ``("builtins", "set")``; unchanged when no compatibility mapping applies.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def globals_of(obj: Any) -> tuple[set[Pair], set[Pair]]:
    """Return every global the pickles of ``obj`` reference.

    Parameters
    ----------
    obj : object
        An object built in this process (it is pickled and read back with the real unpickler).

    Returns
    -------
    names : set of (str, str)
        ``(module, qualname)`` pairs from protocols 0, 2, 4, 5 and ``joblib.dump``, in today's
        spelling.
    py2_spellings : set of (str, str)
        The protocol 0/2 spellings that differ from today's (``("__builtin__", "set")``).
    """
    seen: set[Pair] = set()
    old: set[Pair] = set()
    for protocol in PROTOCOLS:
        raw: set[Pair] = set()
        _RecordingUnpickler(io.BytesIO(pickle.dumps(obj, protocol=protocol)), raw).load()
        for pair in raw:
            today = py3_spelling(*pair) if protocol < 3 else pair
            seen.add(today)
            if today != pair:
                old.add(pair)
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    buf.seek(0)
    _RecordingJoblibUnpickler(buf, seen).load()
    return seen, old


def harvest(cases: Iterator[Case]) -> Harvest:
    """Build and pickle every case, collecting the globals.

    Parameters
    ----------
    cases : iterable of Case

    Returns
    -------
    Harvest
    """
    users: dict[Pair, set[str]] = defaultdict(set)
    failures: dict[str, str] = {}
    py2_spellings: set[Pair] = set()
    n = 0
    for case in cases:
        n += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = case.build()
                names, old = globals_of(obj)
        except Exception as exc:  # noqa: BLE001 - a failing case is reported, not fatal
            failures[case.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            continue
        for pair in names:
            users[pair].add(case.name)
        py2_spellings |= old
    return Harvest(dict(users), failures, n, py2_spellings)
