"""Family *nested-deserializer*: a second deserializer hides the real payload in bytes.

``pickle.loads(b"...")``, ``marshal.loads`` + ``types.FunctionType``, ``joblib.load``,
``numpy.load(allow_pickle=True)``, ``dill``/``cloudpickle``/``yaml`` ... : a scanner that looks only
at the outer stream sees one harmless-looking call with a bytes argument.  safeload never
trusts a name that reads a second serialized payload, so the outer call is refused by name,
whatever the inner bytes are, and nothing named only by the outer stream is imported.

Public sources (CATALOG.md): A06 — https://github.com/protectai/modelscan/issues/267,
GHSA-84r2-jw7c-4r5q; A07 — https://github.com/mmaitre314/picklescan/pull/74 (marshal +
FunctionType); numpy CVE-2019-6446 (``allow_pickle``).
"""

from __future__ import annotations

import marshal

import pytest

from ._pickle_builder import G, R, containers, dumps, variants
from .conftest import Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/nested"'
INNER = dumps(G("os", "system")(CMD), 2)
CODE = marshal.dumps(compile("import os; os.system('true')", "<x>", "exec"))

#: name -> (payload expression, exact untrusted names)
GADGETS = {
    "pickle.loads": (G("pickle", "loads")(INNER), ["pickle.loads"]),
    "_pickle.loads": (G("_pickle", "loads")(INNER), ["_pickle.loads"]),
    "pickle._loads": (G("pickle", "_loads")(INNER), ["pickle._loads"]),
    "pickle.Unpickler": (
        R(G("builtins", "getattr")(G("pickle", "_Unpickler")(G("io", "BytesIO")(INNER)), "load")),
        ["builtins.getattr", "io.BytesIO", "pickle._Unpickler"],
    ),
    "cPickle.loads": (G("cPickle", "loads")(INNER), ["cPickle.loads"]),
    "marshal+FunctionType": (
        R(G("types", "FunctionType")(G("marshal", "loads")(CODE), {}), ()),
        ["marshal.loads", "types.FunctionType"],
    ),
    "joblib.load": (G("joblib", "load")("/dev/null"), ["joblib.load"]),
    "numpy.load": (G("numpy", "load")("x.npy", None, True), ["numpy.load"]),
    "numpy.loads": (G("numpy", "loads")(INNER), ["numpy.loads"]),
    "shelve.open": (G("shelve", "open")("x"), ["shelve.open"]),
    "dill.loads": (G("dill", "loads")(INNER), ["dill.loads"]),
    "cloudpickle.loads": (G("cloudpickle", "loads")(INNER), ["cloudpickle.loads"]),
    "yaml.unsafe_load": (
        G("yaml", "unsafe_load")("!!python/object/apply:os.system"),
        ["yaml.unsafe_load"],
    ),
    "torch.load": (G("torch", "load")("x.pt"), ["torch.load"]),
    "skops.io.load": (G("skops.io", "load")("x.skops", True), ["skops.io.load"]),
}

CASES = [
    pytest.param(expr, types, stream, id=f"{name}-{label}")
    for name, (expr, types) in GADGETS.items()
    for label, stream in variants(expr, (0, 2, 4, 5)).items()
]


@pytest.mark.parametrize(("expr", "types", "data"), CASES)
def test_outer_deserializer_is_refused_by_name(expr, types, data):
    assert_refused(data, Untrusted(*types))


@pytest.mark.parametrize("box", ["raw", "zlib", "gzip", "bz2", "xz", "lzma"])
@pytest.mark.parametrize("name", ["pickle.loads", "marshal+FunctionType"])
def test_compressed(box, name):
    expr, types = GADGETS[name]
    assert_refused(containers(dumps(expr, 4))[box], Untrusted(*types))


def test_inner_stream_made_only_of_trusted_names_is_still_refused():
    """The verdict is on the deserializer, not on what it would read."""
    harmless = dumps([1, 2, 3], 2)
    assert_refused(dumps(G("pickle", "loads")(harmless), 2), Untrusted("pickle.loads"))


def test_nested_deserializers_several_levels_deep():
    stream = INNER
    for _ in range(5):
        stream = dumps(G("pickle", "loads")(stream), 2)
    assert_refused(stream, Untrusted("pickle.loads"))
