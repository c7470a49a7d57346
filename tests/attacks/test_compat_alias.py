"""Family *compat-alias*: Python 2 module names that the unpickler maps to today's modules.

With protocol < 3 and ``fix_imports``, ``commands`` is imported as ``subprocess``,
``__builtin__`` as ``builtins``, ``copy_reg`` as ``copyreg``, ``cPickle`` as ``pickle``: a check on
the raw string disagrees with what gets imported.  safeload applies its own exact aliases
*before* the verdict (so ``__builtin__.eval`` is judged as ``builtins.eval``) and reports the
name as the stream spells it.  Trusted targets reached through an alias stay subject to their
argument checks (``copy_reg._reconstructor`` with ``base=Popen``).

Public sources (CATALOG.md): C09 CPython ``_compat_pickle.IMPORT_MAPPING``, modelscan PR 313
("commands"); C10 CPython ``_compat_pickle``; E08 ``copyreg.__newobj__`` under ``copy_reg``.
"""

from __future__ import annotations

import pytest

import safeload

from ._pickle_builder import G, R, containers, dumps, variants
from .conftest import Forbidden, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/alias"'
PY = "import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'alias'), 'w').close()"
LOGREG = G("sklearn.linear_model._logistic", "LogisticRegression")

ALIASED = {
    "commands.getoutput": (G("commands", "getoutput")(CMD), ["commands.getoutput"]),
    "commands.getstatusoutput": (
        G("commands", "getstatusoutput")(CMD),
        ["commands.getstatusoutput"],
    ),
    "__builtin__.eval": (G("__builtin__", "eval")(f"exec({PY!r})"), ["__builtin__.eval"]),
    "__builtin__.execfile": (G("__builtin__", "execfile")("/dev/null"), ["__builtin__.execfile"]),
    "__builtin__.getattr": (
        R(G("__builtin__", "getattr")(G("__builtin__", "__import__")("os"), "system"), (CMD,)),
        ["__builtin__.__import__", "__builtin__.getattr"],
    ),
    "__builtin__.file": (
        G("__builtin__", "file")("safeload_canary_file", "w"),
        ["__builtin__.file"],
    ),
    "exceptions.__import__": (G("exceptions", "__import__")("os"), ["exceptions.__import__"]),
    "cPickle.loads": (G("cPickle", "loads")(b"cos\nsystem\n."), ["cPickle.loads"]),
    "copy_reg.add_extension": (
        G("copy_reg", "add_extension")("os", "system", 1),
        ["copy_reg.add_extension"],
    ),
    "copy_reg.__newobj__ memmap": (
        G("copy_reg", "__newobj__")(G("numpy", "memmap"), "safeload_canary_mm", "u1", "w+"),
        ["copy_reg.__newobj__", "numpy.memmap"],
    ),
    "copy_reg._reconstructor Popen": (
        G("copy_reg", "_reconstructor")(LOGREG, G("subprocess", "Popen"), ["sh", "-c", CMD]),
        ["subprocess.Popen"],
    ),
    "urllib.urlretrieve": (
        G("urllib", "urlretrieve")("http://127.0.0.1:9/x", "safeload_canary_url"),
        ["urllib.urlretrieve"],
    ),
    "StringIO.StringIO": (G("StringIO", "StringIO")("x"), ["StringIO.StringIO"]),
    "UserDict.UserDict": (G("UserDict", "UserDict")(), ["UserDict.UserDict"]),
    "itertools.imap": (
        G("itertools", "imap")(G("__builtin__", "eval"), [f"exec({PY!r})"]),
        ["__builtin__.eval", "itertools.imap"],
    ),
    "multiprocessing.forking.Popen": (
        G("multiprocessing.forking", "Popen")(None),
        ["multiprocessing.forking.Popen"],
    ),
}

CASES = [
    pytest.param(stream, types, id=f"{name}-{label}")
    for name, (expr, types) in ALIASED.items()
    for label, stream in variants(expr, (0, 1, 2)).items()
]


@pytest.mark.parametrize(("data", "types"), CASES)
def test_py2_alias_of_untrusted_name_is_refused_as_spelled(data, types):
    assert_refused(data, Untrusted(*types))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz"])
def test_py2_aliases_compressed(box):
    exprs = [expr for expr, _ in ALIASED.values()]
    names = sorted({n for _, types in ALIASED.values() for n in types})
    assert_refused(containers(dumps(exprs, 2))[box], Untrusted(*names))


def test_reason_names_the_canonical_target():
    exc = assert_refused(dumps(G("commands", "getoutput")(CMD), 0), Untrusted("commands.getoutput"))
    assert "subprocess.getoutput" in exc.reasons["commands.getoutput"]


@pytest.mark.parametrize("protocol", [0, 1, 2])
@pytest.mark.parametrize(
    ("base", "operation"),
    [
        (G("__builtin__", "object"), "bad-arguments"),  # object takes no state
        (G("__builtin__", "dict"), "bad-arguments"),  # not a base of the class
        (G("copy_reg", "_reconstructor"), "untrusted-argument"),
        (G("numpy", "ndarray"), "untrusted-argument"),
    ],
    ids=["object-with-state", "dict-not-a-base", "reconstructor-as-base", "ndarray-base"],
)
def test_aliased_trusted_reconstructor_keeps_its_argument_checks(base, operation, protocol):
    """``copy_reg._reconstructor`` is ``copyreg._reconstructor``: same checks."""
    expr = G("copy_reg", "_reconstructor")(LOGREG, base, {"C": 1.0})
    exc = assert_refused(dumps(expr, protocol), Forbidden(operation))
    assert "copyreg._reconstructor" in str(exc)


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_alias_to_trusted_container_keeps_lazy_iterable_check(protocol):
    """``__builtin__.set(__builtin__.xrange(2**40))``: aliases of trusted names, same rules."""
    expr = G("__builtin__", "set")(G("__builtin__", "xrange")(2**40))
    assert_refused(dumps(expr, protocol), Forbidden("lazy-iterable"))


def test_control_aliased_trusted_names_load():
    expr = [G("__builtin__", "set")([1, 2]), G("__builtin__", "frozenset")([3])]
    assert safeload.loads(dumps(expr, 2)) == [{1, 2}, frozenset({3})]
