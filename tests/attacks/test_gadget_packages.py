"""Families *gadget-numpy*, *gadget-sklearn*, *gadget-scipy*: callables inside the trusted packages.

A prefix allowlist (``numpy.*``, ``sklearn.*``, ``scipy.*``) lets through functions of those
packages that ``exec``/``eval`` (``numpy.f2py.crackfortran.myeval``,
``numpy.testing._private.utils.runstring``), unpickle (``numpy.lib.format.read_array`` with
``allow_pickle=True``, ``numpy.load``) or write files (``numpy.save``, ``scipy.io.savemat``,
``sklearn.datasets.get_data_home``).  safeload trusts exact names only, so each is refused by
name; and the functions it does trust as *values* (score functions, ufuncs stored by
``FunctionTransformer``) may not be *called* while loading.

Public sources (CATALOG.md): B15 CVE-2025-71365; B16 CVE-2025-71355,
https://github.com/FederatedAI/FATE/issues/3812; B17 numpy CVE-2019-6446 + dotted-name
resolution; B18-B20 the allowlist-by-prefix pitfall (Python docs "Restricting Globals");
B19 scikit-learn functions with side effects.
"""

from __future__ import annotations

import pytest

from ._pickle_builder import G, New, containers, dumps, npy_bytes, variants
from .conftest import Forbidden, Untrusted, assert_refused

PY = "import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'pkg'), 'w').close()"
INNER_NPY = npy_bytes("|O", (1,), dumps(G("os", "system")("true"), 2))

GADGETS = {
    # numpy
    "f2py myeval": (
        G("numpy.f2py.crackfortran", "myeval")(f"exec({PY!r})"),
        ["numpy.f2py.crackfortran.myeval"],
    ),
    "testing runstring": (
        G("numpy.testing._private.utils", "runstring")(PY, {}),
        ["numpy.testing._private.utils.runstring"],
    ),
    "read_array allow_pickle": (
        G("numpy.lib.format", "read_array")(
            G("numpy.lib._format_impl", "io.BytesIO")(INNER_NPY), True
        ),
        ["numpy.lib._format_impl.io.BytesIO", "numpy.lib.format.read_array"],
    ),
    "numpy.save": (G("numpy", "save")("safeload_canary_B18", 0), ["numpy.save"]),
    "numpy.savetxt": (G("numpy", "savetxt")("safeload_canary_txt", [0]), ["numpy.savetxt"]),
    "numpy.load": (G("numpy", "load")("x.npy", None, True), ["numpy.load"]),
    "numpy.fromfile": (G("numpy", "fromfile")("/etc/passwd"), ["numpy.fromfile"]),
    "numpy.loadtxt": (G("numpy", "loadtxt")("/etc/passwd"), ["numpy.loadtxt"]),
    "numpy.memmap": (
        G("numpy", "memmap")("safeload_canary_mm", "u1", "w+", 0, (4,)),
        ["numpy.memmap"],
    ),
    "numpy.ctypeslib.load_library": (
        G("numpy.ctypeslib", "load_library")("libc", "/lib"),
        ["numpy.ctypeslib.load_library"],
    ),
    "numpy.ones huge": (G("numpy", "ones")((2**33,)), ["numpy.ones"]),
    # scikit-learn
    "get_data_home": (
        G("sklearn.datasets", "get_data_home")("safeload_canary_B19"),
        ["sklearn.datasets.get_data_home"],
    ),
    "get_data_home private": (
        G("sklearn.datasets._base", "get_data_home")("safeload_canary_B19"),
        ["sklearn.datasets._base.get_data_home"],
    ),
    "fetch_openml": (
        G("sklearn.datasets", "fetch_openml")("iris"),
        ["sklearn.datasets.fetch_openml"],
    ),
    "dump_svmlight_file": (
        G("sklearn.datasets", "dump_svmlight_file")([[0.0]], [0], "safeload_canary_svm"),
        ["sklearn.datasets.dump_svmlight_file"],
    ),
    "sklearn clone": (G("sklearn.base", "clone")(None), ["sklearn.base.clone"]),
    "sklearn.utils._testing": (
        G("sklearn.utils._testing", "assert_run_python_script_without_output")(PY),
        ["sklearn.utils._testing.assert_run_python_script_without_output"],
    ),
    # scipy
    "savemat": (G("scipy.io", "savemat")("safeload_canary_B20", {}), ["scipy.io.savemat"]),
    "loadmat": (G("scipy.io", "loadmat")("x.mat"), ["scipy.io.loadmat"]),
    "mmwrite": (G("scipy.io", "mmwrite")("safeload_canary_mm", [[0.0]]), ["scipy.io.mmwrite"]),
    "save_npz": (
        G("scipy.sparse", "save_npz")("safeload_canary_npz", None),
        ["scipy.sparse.save_npz"],
    ),
    "scipy _testutils subprocess": (
        G("scipy._lib._testutils", "subprocess.call")(["true"]),
        ["scipy._lib._testutils.subprocess.call"],
    ),
}

CASES = [
    pytest.param(expr, types, stream, id=f"{name}-{label}")
    for name, (expr, types) in GADGETS.items()
    for label, stream in variants(expr, (0, 2, 4, 5)).items()
]


@pytest.mark.parametrize(("expr", "types", "data"), CASES)
def test_package_gadget_is_refused_by_name(expr, types, data):
    assert_refused(data, Untrusted(*types))


@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_package_gadgets_compressed(box):
    exprs = [expr for expr, _ in GADGETS.values()]
    names = sorted({n for _, types in GADGETS.values() for n in types})
    assert_refused(containers(dumps(exprs, 4))[box], Untrusted(*names))


# ------------------------------------------------------------ trusted value-only functions
UNIV = "sklearn.feature_selection._univariate_selection"
VALUE_FUNCTIONS = {
    "f_classif": G(UNIV, "f_classif")([[1.0], [2.0]], [0, 1]),
    "chi2": G(UNIV, "chi2")([[1.0]], [0]),
    "r2_score": G("sklearn.metrics._regression", "r2_score")([1.0, 2.0], [1.0, 2.0]),
    "accuracy_score": G("sklearn.metrics._classification", "accuracy_score")([1], [1]),
    "check_array": G("sklearn.utils.validation", "check_array")([[1.0]]),
    "_kmeans_single_lloyd": G("sklearn.cluster._kmeans", "_kmeans_single_lloyd")(None),
    "numpy.log1p": G("numpy", "log1p")(1.0),
    "numpy.sum": G("numpy", "sum")([1, 2]),
    "numpy.clip": G("numpy", "clip")([1, 2], 0, 1),
    "numpy.max": G("numpy", "max")([1, 2]),
    "scipy asarray": G("scipy._lib.array_api_compat.numpy._aliases", "asarray")([1.0]),
}

VALUE_CASES = [
    pytest.param(stream, id=f"{name}-{label}")
    for name, expr in VALUE_FUNCTIONS.items()
    for label, stream in variants(expr, (0, 2, 5)).items()
]


@pytest.mark.parametrize("data", VALUE_CASES)
def test_trusted_value_function_may_not_be_called(data):
    """Stored as a value (``SelectKBest(score_func=f_classif)``) is fine; called is refused."""
    assert_refused(data, Forbidden("call-of-value"))


@pytest.mark.parametrize("name", ["f_classif", "numpy.log1p"])
@pytest.mark.parametrize("box", ["zlib", "gzip", "bz2", "xz"])
def test_trusted_value_function_call_compressed(name, box):
    assert_refused(containers(dumps(VALUE_FUNCTIONS[name], 4))[box], Forbidden("call-of-value"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize(("module", "name"), [(UNIV, "f_classif"), ("numpy", "log1p")])
def test_trusted_function_as_newobj_class(module, name, protocol):
    data = dumps(New(G(module, name), ()), protocol)
    assert_refused(data, Forbidden("newobj-on-non-class"))


def test_trusted_value_function_stored_in_estimator_loads():
    """Control: the same function as a stored value is accepted."""
    import sklearn

    import safeload

    from ._pickle_builder import B

    expr = B(
        New(G(UNIV, "SelectKBest")),
        {
            "score_func": G(UNIV, "f_classif"),
            "k": 1,
            "_sklearn_version": sklearn.__version__,
        },
    )
    obj = safeload.loads(dumps(expr, 4))
    from sklearn.feature_selection import f_classif

    assert obj.score_func is f_classif
