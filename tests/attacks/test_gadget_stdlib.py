"""Family *gadget-stdlib*: stdlib callables missing from denylists that resolve names or run code.

``importlib.import_module``, ``pydoc.locate``, ``pkgutil.resolve_name``, ``timeit.timeit``,
``cProfile.run``, ``bdb.Bdb.run``, ``ctypes.CDLL``, ``inspect.getattr_static``,
``multiprocessing.util.spawnv_passfds``, sub-interpreters, ``operator.methodcaller`` /
``attrgetter`` / ``itemgetter``, ``functools.partial``, ``_io.FileIO`` ...  A denylist misses some;
an exact allowlist names none of them, so every one is refused by name.  ``functools.partial``
*is* trusted (scikit-learn stores partials), so a partial wrapping ``exec`` is refused for
``builtins.exec`` alone.

Public sources (CATALOG.md): B01 https://github.com/mmaitre314/picklescan/issues/66; B02
GHSA-84r2-jw7c-4r5q (CVE-2025-71320); B03 GHSA-vvpj-8cmc-gx39; B04 CVE-2025-71351; B05
GHSA-46h3-79wf-xr6c / GHSA-4675-36f9-wf6r; B06 https://github.com/Lab700xOrg/aisbom/pull/83;
B07/B08 HF EnigmaConsultant PoCs; B09 https://github.com/protectai/modelscan/issues/338; B10
GHSA-6ggj-6f2q-f7mx (https://github.com/trailofbits/fickling/pull/302); B11 HF
xiaoyaoes/modelscan-builtins-dict-bypass-poc; B12 fickling PR 210; B13 GHSA-m273-6v24-x4m4 /
GHSA-955r-x9j8-7rhh; B14 CVE-2025-10155/10156 write-ups.
"""

from __future__ import annotations

import pytest

from ._pickle_builder import B, G, New, R, containers, dumps, variants
from .conftest import Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/stdlib"'
PY = "import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'stdlib'), 'w').close()"
IMPORT_OS = G("importlib", "import_module")("os")

GADGETS = {
    "importlib+methodcaller": (
        R(G("operator", "methodcaller")("system", CMD), (IMPORT_OS,)),
        ["importlib.import_module", "operator.methodcaller"],
    ),
    "pydoc.locate": (R(G("pydoc", "locate")("os.system"), (CMD,)), ["pydoc.locate"]),
    "pkgutil.resolve_name": (
        R(G("pkgutil", "resolve_name")("os:system"), (CMD,)),
        ["pkgutil.resolve_name"],
    ),
    "timeit.timeit": (G("timeit", "timeit")(PY, "pass", None, 1), ["timeit.timeit"]),
    "cProfile.run": (G("cProfile", "run")(PY), ["cProfile.run"]),
    "profile.run": (G("profile", "run")(PY), ["profile.run"]),
    "bdb.Bdb.run": (R(G("bdb", "Bdb.run"), (G("bdb", "Bdb")(), PY)), ["bdb.Bdb", "bdb.Bdb.run"]),
    "pdb.run": (G("pdb", "run")(PY), ["pdb.run"]),
    "trace.Trace.run": (
        R(G("trace", "Trace.run"), (G("trace", "Trace")(), PY)),
        [
            "trace.Trace",
            "trace.Trace.run",
        ],
    ),
    "ctypes.CDLL+methodcaller": (
        R(G("operator", "methodcaller")("system", CMD.encode()), (G("ctypes", "CDLL")(None),)),
        ["ctypes.CDLL", "operator.methodcaller"],
    ),
    "inspect.getattr_static": (
        R(G("inspect", "getattr_static")(IMPORT_OS, "system"), (CMD,)),
        ["importlib.import_module", "inspect.getattr_static"],
    ),
    "multiprocessing.util.spawnv_passfds": (
        G("multiprocessing.util", "spawnv_passfds")("/bin/sh", ["sh", "-c", CMD], ()),
        ["multiprocessing.util.spawnv_passfds"],
    ),
    "_xxsubinterpreters.run_string": (
        G("_xxsubinterpreters", "run_string")(G("_xxsubinterpreters", "create")(), PY),
        ["_xxsubinterpreters.create", "_xxsubinterpreters.run_string"],
    ),
    "itemgetter(builtins.__dict__)": (
        R(G("operator", "itemgetter")("exec"), (G("builtins", "__dict__"),)),
        ["builtins.__dict__", "operator.itemgetter"],
    ),
    "attrgetter+import_module": (
        R(G("operator", "attrgetter")("system"), (IMPORT_OS,)),
        ["importlib.import_module", "operator.attrgetter"],
    ),
    "_io.FileIO": (G("_io", "FileIO")("safeload_canary_B14", "w"), ["_io.FileIO"]),
    "io.open": (G("io", "open")("safeload_canary_io", "w"), ["io.open"]),
    "builtins.open": (G("builtins", "open")("safeload_canary_open", "w"), ["builtins.open"]),
    "posixpath.expandvars+FileIO": (
        G("_io", "FileIO")(G("posixpath", "expandvars")("$SAFELOAD_CANARY_DIR/x"), "w"),
        ["_io.FileIO", "posixpath.expandvars"],
    ),
    "code.InteractiveInterpreter": (
        R(
            G("code", "InteractiveInterpreter.runsource"),
            (G("code", "InteractiveInterpreter")(), PY),
        ),
        ["code.InteractiveInterpreter", "code.InteractiveInterpreter.runsource"],
    ),
    "runpy.run_path": (G("runpy", "run_path")("/dev/null"), ["runpy.run_path"]),
    "shutil.rmtree": (G("shutil", "rmtree")("does-not-exist"), ["shutil.rmtree"]),
    "os.makedirs": (G("os", "makedirs")("safeload_canary_dir"), ["os.makedirs"]),
    "webbrowser.open": (G("webbrowser", "open")("file:///dev/null"), ["webbrowser.open"]),
    "asyncio.create_subprocess_shell": (
        G("asyncio", "create_subprocess_shell")(CMD),
        ["asyncio.create_subprocess_shell"],
    ),
    "sys.modules": (
        R(G("builtins", "dict.get"), (G("sys", "modules"), "os")),
        [
            "builtins.dict.get",
            "sys.modules",
        ],
    ),
    "builtins.__import__": (G("builtins", "__import__")("antigravity"), ["builtins.__import__"]),
    "builtins.breakpoint": (G("builtins", "breakpoint")(), ["builtins.breakpoint"]),
    "builtins.setattr": (
        G("builtins", "setattr")(G("sklearn.base", "clone"), "x", 1),
        ["builtins.setattr", "sklearn.base.clone"],
    ),
}

CASES = [
    pytest.param(expr, types, stream, id=f"{name}-{label}")
    for name, (expr, types) in GADGETS.items()
    for label, stream in variants(expr, (0, 2, 4)).items()
]


@pytest.mark.parametrize(("expr", "types", "data"), CASES)
def test_stdlib_gadget_is_refused(expr, types, data):
    assert_refused(data, Untrusted(*types))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"])
def test_stdlib_gadgets_compressed(box):
    exprs = [expr for expr, _ in GADGETS.values()]
    names = sorted({n for _, types in GADGETS.values() for n in types})
    assert_refused(containers(dumps(exprs, 4))[box], Untrusted(*names))


# ------------------------------------------------------------ functools.partial (trusted)
PARTIAL = G("functools", "partial")


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
@pytest.mark.parametrize(
    ("expr", "types"),
    [
        pytest.param(R(PARTIAL(G("builtins", "exec"), PY), ()), ["builtins.exec"], id="exec"),
        pytest.param(R(PARTIAL(G("os", "system"), CMD), ()), ["os.system"], id="os.system"),
        pytest.param(PARTIAL(G("builtins", "eval"), "1"), ["builtins.eval"], id="stored-only"),
        pytest.param(
            New(PARTIAL, (G("subprocess", "call"), ["sh", "-c", CMD])),
            ["subprocess.call"],
            id="newobj",
        ),
        pytest.param(
            B(PARTIAL(G("numpy", "log1p")), (G("builtins", "exec"), (PY,), {}, None)),
            ["builtins.exec"],
            id="setstate-swap",
        ),
    ],
)
def test_partial_wrapping_an_untrusted_callable(expr, types, protocol):
    """B12: the wrapper is trusted, the wrapped callable is not, so only it is reported."""
    assert_refused(dumps(expr, protocol), Untrusted(*types))
