"""Family *opcode-inst-obj*: ``INST`` and ``OBJ`` import and call without ``GLOBAL``/``REDUCE``.

``INST module\\nname\\n`` (protocol 0) imports a global and calls it with the marked arguments;
``OBJ`` (protocol 1) calls the class-or-callable under the mark.  Scanners that look for
``GLOBAL`` + ``REDUCE`` pairs miss both.  In safeload ``INST`` goes through the same inert
``find_class`` as ``GLOBAL``, and both opcodes go through the same call checks as ``REDUCE``:
untrusted names are refused by name, trusted value-only functions may not be called, the result
of a call may not be called, reconstructors keep their argument checks.

Public sources (CATALOG.md): D01/D02 https://github.com/mmaitre314/picklescan/issues/13.
"""

from __future__ import annotations

import pickle

import pytest

from ._pickle_builder import G, Ops, compress, dumps
from .conftest import Forbidden, Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/instobj"'
PY = "import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'instobj'), 'w').close()"

TARGETS = {
    "os.system": (("os", "system"), (CMD,)),
    "posix.system": (("posix", "system"), (CMD,)),
    "builtins.exec": (("builtins", "exec"), (PY,)),
    "subprocess.Popen": (("subprocess", "Popen"), (["sh", "-c", CMD],)),
    "__builtin__.eval": (("__builtin__", "eval"), (f"exec({PY!r})",)),
    "numpy.dotted": (("numpy", "lib._npyio_impl.os.system"), (CMD,)),
}


def inst(module: str, name: str, args: tuple, protocol: int) -> bytes:
    """Hand-written INST: MARK, args, INST (no GLOBAL, no REDUCE)."""
    o = Ops(protocol if protocol >= 2 else None).mark()
    for a in args:
        if isinstance(a, list):
            o.mark()
            for x in a:
                o.text_unicode(x) if protocol == 0 else o.unicode(x)
            o.op(pickle.LIST)
        elif protocol == 0:
            o.text_unicode(a)
        else:
            o.unicode(a)
    return o.inst(module, name).done()


def obj(module: str, name: str, args: tuple, protocol: int, style: str) -> bytes:
    """Hand-written OBJ: MARK, the callable, args, OBJ."""
    o = Ops(protocol if protocol >= 2 else None).mark()
    if style == "STACK_GLOBAL":
        o.stack_global(module, name)
    else:
        o.global_(module, name)
    for a in args:
        if isinstance(a, list):
            o.empty_list().mark()
            for x in a:
                o.unicode(x)
            o.appends()
        else:
            o.unicode(a)
    return o.obj().done()


@pytest.mark.parametrize("box", ["raw", "gzip", "bz2"])
@pytest.mark.parametrize("protocol", [0, 1, 2, 4])
@pytest.mark.parametrize("target", list(TARGETS))
def test_inst(target, protocol, box):
    (module, name), args = TARGETS[target]
    data = inst(module, name, args, protocol)
    data = data if box == "raw" else compress(data, box)
    assert_refused(data, Untrusted(f"{module}.{name}"))


@pytest.mark.parametrize("box", ["raw", "gzip", "bz2"])
@pytest.mark.parametrize(
    ("protocol", "style"), [(1, "GLOBAL"), (2, "GLOBAL"), (4, "STACK_GLOBAL"), (5, "STACK_GLOBAL")]
)
@pytest.mark.parametrize("target", list(TARGETS))
def test_obj(target, protocol, style, box):
    (module, name), args = TARGETS[target]
    data = obj(module, name, args, protocol, style)
    data = data if box == "raw" else compress(data, box)
    assert_refused(data, Untrusted(f"{module}.{name}"))


@pytest.mark.parametrize("protocol", [0, 1, 2])
@pytest.mark.parametrize(
    ("module", "name"),
    [("numpy", "log1p"), ("sklearn.feature_selection._univariate_selection", "f_classif")],
)
def test_inst_and_obj_of_a_value_only_function(module, name, protocol):
    for style in ("INST", "OBJ"):
        data = dumps(G(module, name)(1.0), protocol, call_style=style)
        assert_refused(data, Forbidden("call-of-value"))


@pytest.mark.parametrize("protocol", [1, 2, 4])
def test_obj_on_the_result_of_a_call(protocol):
    """OBJ whose 'class' is a value computed by a trusted call: call-of-result."""
    o = Ops(protocol if protocol >= 2 else None).mark()
    o.global_("functools", "partial").mark().global_("numpy", "exp").tuple_marked().reduce()
    o.int_(1).obj()
    assert_refused(o.done(), Forbidden("call-of-result"))


@pytest.mark.parametrize("protocol", [0, 1])
def test_inst_of_trusted_reconstructor_keeps_argument_checks(protocol):
    """INST copyreg._reconstructor with base=ndarray (not a builtin base)."""
    data = dumps(
        G("copyreg", "_reconstructor")(
            G("sklearn.linear_model._logistic", "LogisticRegression"), G("numpy", "ndarray"), None
        ),
        protocol,
        call_style="INST",
    )
    assert_refused(data, Forbidden("untrusted-argument"))


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_inst_set_of_range_is_lazy_iterable(protocol):
    data = dumps(G("builtins", "set")(G("builtins", "range")(2**40)), protocol, call_style="INST")
    assert_refused(data, Forbidden("lazy-iterable"))


def test_inst_hidden_among_many_marks():
    o = Ops(2)
    for _ in range(20):
        o.mark()
    o.unicode(CMD).inst("os", "system")
    for _ in range(19):
        o.op(pickle.LIST)
    assert_refused(o.done(), Untrusted("os.system"))
