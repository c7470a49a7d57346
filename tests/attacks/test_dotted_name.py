"""Family *dotted-name*: protocol >= 4 ``find_class`` walks dotted names through attributes.

``STACK_GLOBAL("numpy.lib._npyio_impl", "os.system")`` resolves ``numpy.lib._npyio_impl.os.system``
because the module imports ``os``; ``("numpy", "lib._npyio_impl.os.system")`` passes an
exact-module check; ``("builtins", "dict.get")`` + ``numpy.__builtins__`` reaches ``exec``;
a *module* can itself be a global (``sklearn.base``).  safeload decides on the exact
``(module, qualname)`` strings before importing anything: a dotted qualname is trusted only if
that dotted qualname is listed, so each of these is refused by its full spelling.  The ``GLOBAL``
opcode (protocols 0-3) carries the same strings, so the same checks apply there.

Public sources (CATALOG.md): C01/C02/C03/C05 https://github.com/trailofbits/fickling/pull/287
(GHSA-5j3x-jp52-966f); C04 https://github.com/protectai/modelscan/issues/89.
"""

from __future__ import annotations

import pytest

from ._pickle_builder import G, Ops, R, containers, dumps
from .conftest import Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/dotted"'

#: (module, dotted qualname) pairs, each called with the canary command
DOTTED = [
    ("numpy.lib._npyio_impl", "os.system"),
    ("numpy", "lib._npyio_impl.os.system"),
    ("numpy", "testing._private.utils.os.system"),
    ("sklearn.utils._testing", "os.system"),
    ("sklearn", "utils._testing.os.system"),
    ("sklearn.datasets._base", "os.system"),
    ("scipy._lib._testutils", "subprocess.call"),
    ("scipy", "_lib._testutils.subprocess.call"),
    ("joblib.numpy_pickle", "os.system"),
    ("joblib", "numpy_pickle.os.system"),
    ("builtins", "__import__"),
    ("sklearn.base", "clone.__globals__.get"),
    ("sklearn.linear_model._logistic", "LogisticRegression.__init__.__globals__.get"),
    ("numpy", "ndarray.__reduce__.__self__"),
    ("numpy.random._pickle", "__randomstate_ctor.__globals__.get"),
    ("copyreg", "_reconstructor.__globals__.get"),
    ("functools", "partial.__new__"),
    ("collections", "OrderedDict.fromkeys"),
]


def _call(module: str, name: str, protocol: int, style: str) -> bytes:
    o = Ops(protocol)
    if style == "STACK_GLOBAL":
        o.stack_global(module, name)
    else:
        o.global_(module, name)
    return o.unicode(CMD).tuple_(1).reduce().done()


@pytest.mark.parametrize(
    ("protocol", "style"), [(2, "GLOBAL"), (4, "GLOBAL"), (4, "STACK_GLOBAL"), (5, "STACK_GLOBAL")]
)
@pytest.mark.parametrize(("module", "name"), DOTTED, ids=[f"{m}:{n}" for m, n in DOTTED])
def test_dotted_qualname_is_refused_as_spelled(module, name, protocol, style):
    assert_refused(_call(module, name, protocol, style), Untrusted(f"{module}.{name}"))


@pytest.mark.parametrize("protocol", [0, 1])
@pytest.mark.parametrize(("module", "name"), DOTTED[:6], ids=[f"{m}:{n}" for m, n in DOTTED[:6]])
def test_dotted_qualname_text_protocols(module, name, protocol):
    data = dumps(G(module, name)(CMD), protocol)
    assert_refused(data, Untrusted(f"{module}.{name}"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_builtins_dict_get_on_module_builtins(protocol):
    """C04: ``dict.get(numpy.__builtins__, 'exec')(code)``."""
    getter = G("builtins", "dict.get")(G("numpy", "__builtins__"), "exec")
    data = dumps(R(getter, ("print(1)",)), protocol)
    assert_refused(data, Untrusted("builtins.dict.get", "numpy.__builtins__"))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "attr", ["__builtins__", "__dict__", "__loader__", "__spec__", "os", "sys", "np"]
)
def test_module_attributes_of_trusted_modules(attr, protocol):
    """Attributes of trusted modules are not trusted, whatever they hold."""
    data = dumps([G("sklearn.base", attr), G("numpy", attr)], protocol)
    assert_refused(data, Untrusted(f"sklearn.base.{attr}", f"numpy.{attr}"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn", "base"),
        ("numpy", "lib"),
        ("sklearn.tree", "_tree"),
        ("os", "path"),
        ("numpy.random", "_pickle"),
        ("scipy", "sparse"),
    ],
)
def test_module_object_as_global(module, name, protocol):
    """A name that resolves to a module is never a trusted value."""
    assert_refused(dumps([G(module, name)], protocol), Untrusted(f"{module}.{name}"))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_dotted_names_compressed(box):
    data = [G(m, n)(CMD) for m, n in DOTTED]
    expected = sorted({f"{m}.{n}" for m, n in DOTTED})
    assert_refused(containers(dumps(data, 4))[box], Untrusted(*expected))


@pytest.mark.parametrize(
    ("module", "name"),
    [("numpy", "ndarray.."), ("numpy", ".ndarray"), ("numpy.", "ndarray"), ("numpy", "")],
)
def test_malformed_dotted_names_are_not_trusted(module, name):
    o = Ops(4).stack_global(module, name)
    assert_refused(o.done(), Untrusted(f"{module}.{name}"))
