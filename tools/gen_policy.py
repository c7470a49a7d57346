"""Generate safeload's default trust policy: ``safeload/data/trusted.json`` and ``aliases.json``.

What the script does
--------------------
1. Lists every class of ``sklearn.utils.discovery.all_estimators()`` (experimental estimators
   enabled) - the ``sklearn-estimators`` group.
2. Finds, *empirically*, every other global that pickles of fitted scikit-learn objects name:
   ``tools/policy_cases.py`` fits every estimator the way scikit-learn's common tests build it
   plus ~100 composites and reference objects, ``tools/policy_harvest.py`` pickles each at
   protocols 0, 2, 4, 5 and with ``joblib.dump`` and records the names.  Those names are sorted
   into one group per category by :func:`classify` (rules + the tables below).
3. Writes the ``never`` list (:data:`NEVER_GROUPS`, expanded to the spelling where each object
   lives, e.g. ``os.system`` -> ``posix.system``) and the ``excluded`` list (:data:`EXCLUDED`:
   names real pickles use that are deliberately not trusted, with their kind and the reason;
   the loader reports a file whose only refused names are ``removed`` ones - classes of older
   scikit-learn versions - or names stored only inside them (:data:`STORED_INSIDE_REMOVED`)
   as a legacy file that needs a migration, not as untrusted).
4. Writes the aliases: Python 2 names, ``numpy.core`` -> ``numpy._core``, old ``scipy.sparse``
   modules, scikit-learn's removed private modules (:data:`SKLEARN_MODULE_ALIASES`) ...
5. Validates, and fails (exit 2) when: a trusted name is also in ``never``; a trusted name does
   not resolve in the installed libraries or resolves to a module; a harvest case fails; a
   harvested name fits no group; an alias target does not exist; a protocol 0/2 spelling the
   pickler writes is not trusted after aliases; a name of ``globals-seen.json`` seen in
   ``legacy/*`` or in scikit-learn's own pickles is, after aliases, neither trusted nor
   excluded; a third-party or ``__main__`` name seen in ``wild`` files is trusted.

How to review the output
------------------------
* ``trusted.json`` has one group per category, modules and names sorted, one name per line: a
  diff shows exactly which names a scikit-learn upgrade adds.  For each new name ask "what does
  calling / instantiating / BUILDing this do with attacker-chosen arguments?".  Run with
  ``--report`` to see which harvest cases reference each harvested name.
* ``never`` must only grow.  ``excluded`` says why a name seen in real files is not trusted.
* ``aliases.json`` maps exact old module strings (no prefixes) and exact old globals.  The
  tables name, for each module alias, a witness name that the generator resolves in the target
  module (or, without a witness, the target module must import); every global alias target
  must resolve.

Usage::

    .venv/bin/python tools/gen_policy.py            # regenerate the two files
    .venv/bin/python tools/gen_policy.py --check    # exit 1 if the committed files are stale
    .venv/bin/python tools/gen_policy.py --report   # also print the evidence for every name

Exit status: 0 success, 1 committed files differ from the generated ones (``--check``),
2 validation failed (nothing is written).  Deterministic for a given environment (the versions
are recorded in ``trusted.json``); takes one to two minutes on two cores.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import difflib
import importlib
import itertools
import json
import platform
import sys
import types
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "safeload" / "data"
TRUSTED_PATH = DATA / "trusted.json"
ALIASES_PATH = DATA / "aliases.json"
GLOBALS_SEEN_PATH = ROOT.parent / "shared" / "guide" / "globals-seen.json"

Pair = tuple[str, str]

# =============================================================================================
# Tables (reviewed data).  Everything the script does not find empirically is written here.
# =============================================================================================

#: Trusted groups, in output order, with the reason shown to users (``Verdict.reason``).
TRUSTED_GROUPS: dict[str, str] = {
    "sklearn-estimators": (
        "public estimator classes from sklearn.utils.discovery.all_estimators() (experimental "
        "IterativeImputer, HalvingGridSearchCV and HalvingRandomSearchCV enabled)"
    ),
    "sklearn-internal-types": (
        "non-estimator scikit-learn classes that fitted estimators hold (trees, KD/ball trees, "
        "distance metrics, losses and links, HistGradientBoosting binning and predictors, Bunch, "
        "scorers, CV splitters, Gaussian-process kernels, calibration helpers, ...), found by "
        "pickling fitted estimators"
    ),
    "sklearn-reconstructors": (
        "Cython pickle helpers that scikit-learn extension types name in __reduce__ "
        "(__pyx_unpickle_*, newObj): they allocate an instance of the given extension type and "
        "restore its C fields"
    ),
    "sklearn-functions": (
        "scikit-learn functions that fitted objects store: univariate score functions, metric "
        "functions behind scorers, helpers held by internal partials; they compute on their "
        "arguments"
    ),
    "numpy-reconstructors": (
        "numpy's ndarray/scalar/MaskedArray reconstructors named by numpy's __reduce__; every "
        "array in a pickle needs them (the loader must bound their shape and size arguments)"
    ),
    "numpy-types": (
        "numpy array classes, dtype and scalar types (dtype= parameters, dtype selectors, "
        "scalar reconstruction)"
    ),
    "numpy-random": (
        "numpy random generators, bit generators, SeedSequence and their numpy.random "
        "pickle constructors (random_state and RNG attributes of fitted estimators)"
    ),
    "numpy-functions": (
        "numpy ufuncs and functions that estimators store as parameters (FunctionTransformer "
        "and TransformedTargetRegressor func=/inverse_func=, FeatureAgglomeration "
        "pooling_func=); elementwise or reduction computation only"
    ),
    "scipy-sparse": "scipy.sparse matrix and array classes (sparse inputs and fitted attributes)",
    "scipy-other": (
        "other scipy objects fitted estimators hold (SplineTransformer's BSpline and the "
        "array-API asarray it stores)"
    ),
    "python-builtins": (
        "Python builtin types and containers, and the helpers CPython's pickler itself emits: "
        "copyreg._reconstructor (protocols 0-1 objects), _codecs.encode (bytes in protocol 0-2 "
        "streams), functools.partial (HistGradientBoosting's preprocessing FunctionTransformer)"
    ),
    "joblib-wrappers": (
        "joblib.dump's placeholder for an array stored raw after the pickle stream; the joblib "
        "reader replaces it with the array"
    ),
}

#: numpy functions that only exist to rebuild arrays/scalars from a pickle (numpy-reconstructors).
#: Any other *private* numpy function the harvest finds stops the generator until reviewed here.
NUMPY_RECONSTRUCTORS: set[Pair] = {
    # ndarray.__reduce__: (_reconstruct, (cls, (0,), b"b")) then BUILD with the data
    ("numpy._core.multiarray", "_reconstruct"),
    # numpy scalar __reduce__: (scalar, (dtype, raw bytes))
    ("numpy._core.multiarray", "scalar"),
    # ndarray.__reduce_ex__(5): (_frombuffer, (buffer, dtype, shape, order))
    ("numpy._core.numeric", "_frombuffer"),
    # MaskedArray.__reduce__: (_mareconstruct, (cls, basecls, (0,), b"b")) then BUILD
    ("numpy.ma.core", "_mareconstruct"),
}

#: Trusted names the harvest can not produce in today's environment (old pickles need them).
#: ``pair: (group, why)``.
CURATED_TRUSTED: dict[Pair, tuple[str, str]] = {
    ("builtins", "bytearray"): (
        "python-builtins",
        "protocol 2-4 pickles of bytearray values (corpus b18, wild files); an int argument "
        "(bytearray(2**36), CATALOG G05) is limited to 1 MiB by safeload.constraints",
    ),
    ("numpy.random", "__RandomState_ctor"): (
        "numpy-random",
        "RandomState.__reduce__ of numpy < 1.17 (legacy/py27_skl0204); takes no argument and "
        "returns RandomState(seed=0), the state is then set by BUILD",
    ),
}

#: Names real pickles reference (globals-seen.json) that are deliberately NOT trusted.
#: Spelled as the stream spells them, or in canonical form after aliases.
#: kind: "never" (also on the never list), "removed" (must not resolve today: needs a migration),
#: "untrusted" (exists, but not needed by scikit-learn's own objects, or unsafe to trust).
EXCLUDED_KINDS = ("never", "removed", "untrusted")
EXCLUDED: dict[str, tuple[str, str]] = {
    "builtins.getattr": (
        "never",
        "attribute access on any object (never trusted); scikit-learn pickles only reach it "
        "through bound methods inside scipy.stats frozen distributions (RandomizedSearchCV "
        "param_distributions)",
    ),
    "numpy.vectorize": (
        "untrusted",
        "seen only inside scipy.stats frozen distributions (which need builtins.getattr); wraps "
        "and later calls an arbitrary callable",
    ),
    "scipy.stats._continuous_distns.reciprocal_gen": (
        "untrusted",
        "scipy.stats distribution in RandomizedSearchCV.param_distributions: its pickle holds "
        "bound methods rebuilt with builtins.getattr; needs a migration that drops or rebuilds "
        "param_distributions",
    ),
    "scipy.stats._discrete_distns.randint_gen": (
        "untrusted",
        "scipy.stats distribution in RandomizedSearchCV.param_distributions: needs "
        "builtins.getattr to unpickle; needs a migration",
    ),
    "scipy.stats._distn_infrastructure.rv_continuous_frozen": (
        "untrusted",
        "frozen scipy.stats distribution (RandomizedSearchCV.param_distributions): needs "
        "builtins.getattr to unpickle; needs a migration",
    ),
    "scipy.stats._distn_infrastructure.rv_discrete_frozen": (
        "untrusted",
        "frozen scipy.stats distribution (RandomizedSearchCV.param_distributions): needs "
        "builtins.getattr to unpickle; needs a migration",
    ),
    "builtins.FutureWarning": (
        "untrusted",
        "only stored inside sklearn.utils.deprecation.DeprecationDict (0.20 "
        "GridSearchCV.cv_results_); the migration of that dict drops it",
    ),
    "sklearn.utils.deprecation.DeprecationDict": (
        "removed",
        "scikit-learn 0.20 GridSearchCV.cv_results_ wrapper, no longer exists; needs a "
        "migration to a plain dict",
    ),
    "sklearn.ensemble._gb_losses.BinomialDeviance": (
        "removed",
        "module removed in scikit-learn 1.4 (GradientBoosting moved to sklearn._loss); needs a "
        "migration",
    ),
    "sklearn.ensemble._gb_losses.LeastSquaresError": (
        "removed",
        "module removed in scikit-learn 1.4 (GradientBoosting moved to sklearn._loss); needs a "
        "migration",
    ),
    "sklearn.ensemble._gb_losses.MultinomialDeviance": (
        "removed",
        "module removed in scikit-learn 1.4 (GradientBoosting moved to sklearn._loss); needs a "
        "migration",
    ),
    "sklearn.ensemble.gradient_boosting.MultinomialDeviance": (
        "removed",
        "scikit-learn <= 0.20 GradientBoosting loss class (moved to _gb_losses in 0.21, removed "
        "in 1.4); needs a migration",
    ),
    "sklearn.ensemble.gradient_boosting.PriorProbabilityEstimator": (
        "removed",
        "GradientBoosting init estimator of scikit-learn <= 0.20 (later versions use "
        "DummyClassifier/DummyRegressor as init); no longer exists; needs a migration",
    ),
    "sklearn.ensemble._hist_gradient_boosting.loss.CategoricalCrossEntropy": (
        "removed",
        "HistGradientBoosting's own loss module, replaced by sklearn._loss in scikit-learn 1.1; "
        "needs a migration",
    ),
    "sklearn.metrics._dist_metrics.EuclideanDistance": (
        "removed",
        "renamed EuclideanDistance64 (float32 variants added) after 1.0; old pickles also spell "
        "it sklearn.neighbors.dist_metrics.EuclideanDistance; needs a migration",
    ),
    "sklearn.metrics._scorer._passthrough_scorer": (
        "removed",
        "function replaced by the _PassthroughScorer class (seen in 0.20-1.0 pickles); needs a "
        "migration",
    ),
    "sklearn.metrics._scorer._PredictScorer": (
        "removed",
        "merged into _Scorer in scikit-learn 1.4; needs a migration",
    ),
    "sklearn._loss._loss.__pyx_unpickle_CyHalfBinomialLoss": (
        "removed",
        "Cython helper written by scikit-learn 1.6.1 (under the bogus module name _loss); "
        "CyHalfBinomialLoss has no state and now pickles as CyHalfBinomialLoss(); needs a "
        "migration",
    ),
    "sklearn.linear_model._sgd_fast.Log": (
        "removed",
        "old SGD log-loss class; SGDClassifier(loss='log_loss') now stores sklearn._loss's "
        "CyHalfBinomialLoss; needs a migration",
    ),
    "sklearn.neighbors._kd_tree.BinaryTree": (
        "removed",
        "KD-tree base class of old scikit-learn (old sklearn.neighbors.kd_tree pickles); today "
        "BinaryTree64/BinaryTree32 with a different state layout; needs a migration",
    ),
    "sklearn.compose._column_transformer._RemainderColsList": (
        "removed",
        "list subclass some 1.5+ versions used for ColumnTransformer's remainder columns; it "
        "no longer exists in the installed scikit-learn; needs a migration to a plain list",
    ),
    "joblib.numpy_pickle.NDArrayWrapper": (
        "untrusted",
        "joblib < 0.10 split-file array wrapper (old sklearn.externals.joblib files): it names a "
        "companion .npy file by path, which joblib np.load()s with allow_pickle=True; a reader "
        "that supports split files must confine the path to the file's folder and read the "
        ".npy itself without pickles",
    ),
}

#: Excluded names (kind "untrusted") that scikit-learn's own pickles store only inside removed
#: classes, which the migration of those classes drops: written "inside" in trusted.json.  The
#: loader treats such a name as part of a legacy file only when the file also names one of the
#: removed classes; on its own it is untrusted like any other name.
STORED_INSIDE_REMOVED: dict[str, list[str]] = {
    "builtins.FutureWarning": ["sklearn.utils.deprecation.DeprecationDict"],
}

# -- never ------------------------------------------------------------------------------------
#: Names that load, import, evaluate, execute, write files, or reach arbitrary attributes/items.
#: They can never be trusted, not even explicitly.  The generator adds the spelling where each
#: object really lives (``os.system`` -> ``posix.system``, ``numpy.save`` ->
#: ``numpy.lib._npyio_impl.save``); names of absent modules are kept as written.
# fmt: off
NEVER_GROUPS: list[tuple[str, str, dict[str, list[str]]]] = [
    (
        "code-execution",
        "evaluates, compiles or executes code, or runs a debugger, profiler, doctest or "
        "sub-interpreter on a code string",
        {
            "builtins": ["__build_class__", "breakpoint", "compile", "eval", "exec"],
            "bdb": ["Bdb", "Bdb.run", "Bdb.runcall", "Bdb.runctx", "Bdb.runeval"],
            "cProfile": ["Profile", "Profile.run", "Profile.runctx", "run", "runctx"],
            "code": ["InteractiveConsole", "InteractiveInterpreter", "compile_command", "interact"],
            "codeop": ["Compile", "CommandCompiler", "compile_command"],
            "doctest": ["debug_script", "debug_src", "run_docstring_examples", "testfile"],
            "numpy.f2py": ["main", "run_main"],
            "numpy.f2py.crackfortran": ["myeval"],
            "numpy.testing": ["runstring"],
            "numpy.testing._private.utils": ["runstring"],
            "pdb": ["Pdb", "post_mortem", "run", "runcall", "runctx", "runeval", "set_trace"],
            "profile": ["Profile", "run", "runctx"],
            "runpy": [
                "_run_code", "_run_module_as_main", "_run_module_code", "run_module", "run_path",
            ],
            "timeit": ["Timer", "repeat", "timeit"],
            "trace": ["Trace", "Trace.run", "Trace.runctx", "Trace.runfunc"],
            "types": ["CodeType", "FunctionType", "LambdaType", "MethodType"],
            "_xxsubinterpreters": ["create", "exec", "run_string"],
            "_interpreters": ["call", "create", "exec", "run_func", "run_string"],
        },
    ),
    (
        "process-and-native-code",
        "starts or replaces processes, ends the interpreter, sends signals, or loads and calls "
        "native code",
        {
            "_ctypes": ["PyObj_FromPtr", "call_cdeclfunction", "call_function", "dlopen"],
            "_posixsubprocess": ["fork_exec"],
            "asyncio": ["create_subprocess_exec", "create_subprocess_shell"],
            "builtins": ["exit", "quit"],
            "ctypes": [
                "CDLL", "CFUNCTYPE", "LibraryLoader", "OleDLL", "PYFUNCTYPE", "PyDLL", "WinDLL",
                "cast", "cdll", "memmove", "memset", "oledll", "pydll", "pythonapi", "string_at",
                "windll",
            ],
            "ctypes.util": ["find_library"],
            "multiprocessing.popen_fork": ["Popen"],
            "multiprocessing.util": ["spawnv_passfds"],
            "nt": ["execv", "spawnv", "startfile", "system"],
            "numpy.ctypeslib": ["load_library"],
            "os": [
                "_exit", "abort", "execl", "execle", "execlp", "execlpe", "execv", "execve",
                "execvp", "execvpe", "fork", "forkpty", "kill", "killpg", "popen", "posix_spawn",
                "posix_spawnp", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
                "spawnvp", "spawnvpe", "startfile", "system",
            ],
            "posix": ["system"],
            "pty": ["fork", "spawn"],
            "pydoc": ["pager", "pipepager", "tempfilepager"],
            "signal": ["alarm", "pthread_kill", "raise_signal", "signal"],
            "subprocess": [
                "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput",
                "run",
            ],
            "sys": ["exit"],
            "webbrowser": ["get", "open", "open_new", "open_new_tab"],
        },
    ),
    (
        "deserialization",
        "reads a second serialized payload (pickle, marshal, joblib, .npy/.npz with pickles, "
        "YAML, ...) outside the policy",
        {
            "_pickle": ["Unpickler", "load", "loads"],
            "cloudpickle": ["load", "loads"],
            "dill": ["load", "loads"],
            "joblib": ["load"],
            "joblib.numpy_pickle": ["NumpyUnpickler", "_unpickle", "load"],
            "joblib.numpy_pickle_compat": ["load_compatibility", "read_zfile"],
            "jsonpickle": ["decode"],
            "marshal": ["load", "loads"],
            "numpy": ["fromregex", "genfromtxt", "load", "loadtxt"],
            "numpy.lib._datasource": ["DataSource", "Repository", "open"],
            "numpy.lib._format_impl": ["read_array"],
            "numpy.lib._npyio_impl": ["NpzFile", "fromregex", "genfromtxt", "load", "loadtxt"],
            "numpy.lib.format": ["read_array"],
            "numpy.lib.npyio": ["DataSource", "NpzFile", "load"],
            "pickle": ["Unpickler", "_Unpickler", "_load", "_loads", "load", "loads"],
            "scipy.io": ["hb_read", "loadmat", "mmread", "netcdf_file", "readsav", "whosmat"],
            "scipy.io.arff": ["loadarff"],
            "scipy.io.wavfile": ["read"],
            "scipy.sparse": ["load_npz"],
            "shelve": ["DbfilenameShelf", "Shelf", "open"],
            "skops.io": ["load", "loads"],
            "sklearn.datasets": ["load_files", "load_svmlight_file", "load_svmlight_files"],
            "torch": ["load"],
            "yaml": ["full_load", "load", "load_all", "unsafe_load", "unsafe_load_all"],
        },
    ),
    (
        "import-and-name-resolution",
        "imports modules or resolves an arbitrary dotted name at load time, or changes "
        "pickle's global registries (extension codes, reducers)",
        {
            "builtins": ["__import__"],
            "copyreg": [
                "__newobj__", "__newobj_ex__", "add_extension", "clear_extension_cache",
                "constructor", "pickle", "remove_extension",
            ],
            "imp": ["find_module", "load_compiled", "load_dynamic", "load_module", "load_source"],
            "importlib": ["__import__", "import_module", "reload"],
            "importlib._bootstrap": ["_find_and_load", "_gcd_import", "_load"],
            "importlib.machinery": [
                "ExtensionFileLoader", "SourceFileLoader", "SourcelessFileLoader",
            ],
            "importlib.util": [
                "find_spec", "module_from_spec", "spec_from_file_location", "spec_from_loader",
            ],
            "logging.config": ["dictConfig", "fileConfig", "listen"],
            "numpy._core": ["_ufunc_reconstruct"],
            "numpy._core._ufunc_config": ["_ufunc_reconstruct"],
            "numpy.core": ["_ufunc_reconstruct"],
            "pkgutil": ["find_loader", "get_data", "get_loader", "resolve_name", "walk_packages"],
            "pydoc": ["importfile", "locate", "safeimport"],
            "sklearn.utils": ["all_estimators"],
            "sklearn.utils.discovery": ["all_displays", "all_estimators", "all_functions"],
        },
    ),
    (
        "attribute-and-item-access",
        "reads, writes or deletes attributes or items of arbitrary objects, or reaches "
        "interpreter internals (frames, the module table, the builtins namespace)",
        {
            "_operator": [
                "__call__", "__delitem__", "__getitem__", "__setitem__", "attrgetter", "call",
                "delitem", "getitem", "itemgetter", "methodcaller", "setitem",
            ],
            "builtins": [
                "__builtins__", "__dict__", "__loader__", "__spec__", "delattr", "dict.__getitem__",
                "dict.get", "dict.pop", "dict.setdefault", "dict.update", "dir", "getattr",
                "globals", "hasattr", "help", "locals", "memoryview", "object.__delattr__",
                "object.__getattribute__", "object.__reduce_ex__", "object.__setattr__",
                "setattr", "type.__getattribute__", "type.__setattr__", "vars",
            ],
            "functools": ["update_wrapper", "wraps"],
            "gc": ["get_objects", "get_referents", "get_referrers"],
            "inspect": [
                "currentframe", "getattr_static", "getmembers", "getmembers_static", "stack",
            ],
            "operator": [
                "__call__", "__delitem__", "__getitem__", "__setitem__", "attrgetter", "call",
                "delitem", "getitem", "itemgetter", "methodcaller", "setitem",
            ],
            "sys": [
                "_getframe", "addaudithook", "call_tracing", "modules", "setprofile",
                "setrecursionlimit", "settrace",
            ],
        },
    ),
    (
        "apply",
        "calls a stream-supplied callable on stream-supplied arguments out of the loader's "
        "sight, bypassing the per-callable argument checks",
        {
            "builtins": ["filter", "map"],
            "functools": ["reduce"],
            "itertools": ["accumulate", "dropwhile", "filterfalse", "starmap", "takewhile"],
        },
    ),
    (
        "file-and-network-io",
        "opens, creates, truncates, writes, deletes or memory-maps files, reads or changes the "
        "environment, or opens network connections",
        {
            "_io": [
                "BufferedRandom", "BufferedReader", "BufferedWriter", "BytesIO", "FileIO",
                "TextIOWrapper", "open", "open_code",
            ],
            "_pickle": ["dump"],
            "_socket": ["socket"],
            "builtins": ["input", "open", "print"],
            "bz2": ["BZ2File", "open"],
            "dbm": ["open"],
            "ftplib": ["FTP", "FTP_TLS"],
            "gzip": ["GzipFile", "open"],
            "http.client": ["HTTPConnection", "HTTPSConnection"],
            "io": [
                "BufferedRandom", "BufferedReader", "BufferedWriter", "BytesIO", "FileIO",
                "TextIOWrapper", "open", "open_code",
            ],
            "joblib": ["dump"],
            "joblib.numpy_pickle": ["dump"],
            "logging": ["FileHandler", "basicConfig"],
            "logging.handlers": [
                "DatagramHandler", "HTTPHandler", "RotatingFileHandler", "SMTPHandler",
                "SocketHandler", "SysLogHandler", "TimedRotatingFileHandler", "WatchedFileHandler",
            ],
            "lzma": ["LZMAFile", "open"],
            "marshal": ["dump"],
            "ntpath": ["expanduser", "expandvars"],
            "numpy": [
                "fromfile", "matrix.dump", "matrix.tofile", "memmap", "ndarray.dump",
                "ndarray.tofile", "save", "savetxt", "savez", "savez_compressed",
            ],
            "numpy._core.memmap": ["memmap"],
            "numpy.core.memmap": ["memmap"],
            "numpy.lib._format_impl": ["open_memmap", "write_array"],
            "numpy.lib.format": ["open_memmap", "write_array"],
            "os": [
                "chdir", "chmod", "chown", "environ", "fdopen", "ftruncate", "getenv", "lchown",
                "link", "listdir", "makedirs", "mkdir", "mkfifo", "mknod", "open", "putenv",
                "remove", "removedirs", "rename", "renames", "replace", "rmdir", "scandir",
                "symlink", "truncate", "unlink", "unsetenv", "utime", "walk", "write",
            ],
            "pathlib": [
                "Path.mkdir", "Path.open", "Path.read_bytes", "Path.read_text", "Path.rmdir",
                "Path.touch", "Path.unlink", "Path.write_bytes", "Path.write_text",
            ],
            "pickle": ["Pickler", "_Pickler", "dump"],
            "posixpath": ["expanduser", "expandvars"],
            "scipy.io": ["hb_write", "mmwrite", "savemat"],
            "scipy.io.wavfile": ["write"],
            "scipy.sparse": ["save_npz"],
            "shutil": [
                "chown", "copy", "copy2", "copyfile", "copyfileobj", "copymode", "copystat",
                "copytree", "make_archive", "move", "rmtree", "unpack_archive",
            ],
            "skops.io": ["dump"],
            "sklearn.datasets": [
                "clear_data_home", "dump_svmlight_file", "fetch_20newsgroups",
                "fetch_20newsgroups_vectorized", "fetch_california_housing", "fetch_covtype",
                "fetch_file", "fetch_kddcup99", "fetch_lfw_pairs", "fetch_lfw_people",
                "fetch_olivetti_faces", "fetch_openml", "fetch_rcv1",
                "fetch_species_distributions", "get_data_home",
            ],
            "smtplib": ["SMTP", "SMTP_SSL"],
            "socket": ["create_connection", "create_server", "fromfd", "socket", "socketpair"],
            "sqlite3": ["connect"],
            "tarfile": ["TarFile", "open"],
            "telnetlib": ["Telnet"],
            "tempfile": [
                "NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory",
                "TemporaryFile", "mkdtemp", "mkstemp",
            ],
            "urllib.request": ["OpenerDirector", "build_opener", "urlopen", "urlretrieve"],
            "zipfile": ["ZipFile"],
        },
    ),
]
# fmt: on

# -- aliases ----------------------------------------------------------------------------------
#: Python 2 module names that are not in ``_compat_pickle.IMPORT_MAPPING`` as modules (CPython
#: maps ``exceptions`` name by name); the rest of IMPORT_MAPPING/NAME_MAPPING is taken from the
#: stdlib by :func:`py2_aliases`.
PY2_MODULE_ALIASES: dict[str, str] = {"exceptions": "builtins"}

#: Submodules of numpy 1.x's ``numpy.core`` (numpy 2 keeps them as shims of ``numpy._core``).
NUMPY_CORE_SUBMODULES: list[str] = [
    "_dtype", "_dtype_ctypes", "_internal", "_multiarray_umath", "arrayprint", "defchararray",
    "einsumfunc", "fromnumeric", "function_base", "getlimits", "multiarray", "numeric",
    "numerictypes", "overrides", "records", "shape_base", "umath",
]  # fmt: skip

#: scipy.sparse modules made private in scipy 1.8: old -> (new, witness name in new).
SCIPY_MODULE_ALIASES: dict[str, tuple[str, str | None]] = {
    "scipy.sparse.base": ("scipy.sparse._base", "spmatrix"),
    "scipy.sparse.bsr": ("scipy.sparse._bsr", "bsr_matrix"),
    "scipy.sparse.compressed": ("scipy.sparse._compressed", "_cs_matrix"),
    "scipy.sparse.construct": ("scipy.sparse._construct", None),
    "scipy.sparse.coo": ("scipy.sparse._coo", "coo_matrix"),
    "scipy.sparse.csc": ("scipy.sparse._csc", "csc_matrix"),
    "scipy.sparse.csr": ("scipy.sparse._csr", "csr_matrix"),
    "scipy.sparse.data": ("scipy.sparse._data", "_data_matrix"),
    "scipy.sparse.dia": ("scipy.sparse._dia", "dia_matrix"),
    "scipy.sparse.dok": ("scipy.sparse._dok", "dok_matrix"),
    "scipy.sparse.extract": ("scipy.sparse._extract", None),
    "scipy.sparse.lil": ("scipy.sparse._lil", "lil_matrix"),
    "scipy.sparse.sputils": ("scipy.sparse._sputils", None),
}

#: scikit-learn modules that pickles of old versions name, relative to ``sklearn.``:
#: old -> (new, witness name in new).  From the 0.22 deprecation of public-private modules
#: (sklearn/_build_utils/deprecated_modules.py, restricted to modules whose objects end up in
#: pickles), the 0.20/0.21 names seen in globals-seen.json, and the 1.0 move of the distance
#: metrics to sklearn.metrics.
SKLEARN_MODULE_ALIASES: dict[str, tuple[str, str | None]] = {
    "cluster.affinity_propagation_": ("cluster._affinity_propagation", "AffinityPropagation"),
    "cluster.bicluster": ("cluster._bicluster", "SpectralBiclustering"),
    "cluster.birch": ("cluster._birch", "Birch"),
    "cluster.dbscan_": ("cluster._dbscan", "DBSCAN"),
    "cluster.hierarchical": ("cluster._agglomerative", "FeatureAgglomeration"),
    "cluster.k_means_": ("cluster._kmeans", "KMeans"),
    "cluster.mean_shift_": ("cluster._mean_shift", "MeanShift"),
    "cluster.optics_": ("cluster._optics", "OPTICS"),
    "cluster.spectral": ("cluster._spectral", "SpectralClustering"),
    "covariance.elliptic_envelope": ("covariance._elliptic_envelope", "EllipticEnvelope"),
    "covariance.empirical_covariance_": ("covariance._empirical_covariance", "EmpiricalCovariance"),
    "covariance.graph_lasso_": ("covariance._graph_lasso", "GraphicalLasso"),
    "covariance.robust_covariance": ("covariance._robust_covariance", "MinCovDet"),
    "covariance.shrunk_covariance_": ("covariance._shrunk_covariance", "ShrunkCovariance"),
    "cross_decomposition._cca": ("cross_decomposition._pls", "CCA"),  # merged in 0.24
    "cross_decomposition.cca_": ("cross_decomposition._pls", "CCA"),
    "cross_decomposition.pls_": ("cross_decomposition._pls", "PLSSVD"),
    "decomposition.dict_learning": ("decomposition._dict_learning", "MiniBatchDictionaryLearning"),
    "decomposition.factor_analysis": ("decomposition._factor_analysis", "FactorAnalysis"),
    "decomposition.fastica_": ("decomposition._fastica", "FastICA"),
    "decomposition.incremental_pca": ("decomposition._incremental_pca", "IncrementalPCA"),
    "decomposition.kernel_pca": ("decomposition._kernel_pca", "KernelPCA"),
    "decomposition.nmf": ("decomposition._nmf", "NMF"),
    "decomposition.online_lda": ("decomposition._lda", "LatentDirichletAllocation"),
    "decomposition.pca": ("decomposition._pca", "PCA"),
    "decomposition.sparse_pca": ("decomposition._sparse_pca", "SparsePCA"),
    "decomposition.truncated_svd": ("decomposition._truncated_svd", "TruncatedSVD"),
    "ensemble.bagging": ("ensemble._bagging", "BaggingClassifier"),
    "ensemble.forest": ("ensemble._forest", "RandomForestClassifier"),
    "ensemble.gradient_boosting": ("ensemble._gb", "GradientBoostingClassifier"),
    "ensemble.iforest": ("ensemble._iforest", "IsolationForest"),
    "ensemble.voting": ("ensemble._voting", "VotingClassifier"),
    "ensemble.voting_classifier": ("ensemble._voting", "VotingClassifier"),
    "ensemble.weight_boosting": ("ensemble._weight_boosting", "AdaBoostClassifier"),
    "feature_extraction.dict_vectorizer": ("feature_extraction._dict_vectorizer", "DictVectorizer"),
    "feature_extraction.hashing": ("feature_extraction._hash", "FeatureHasher"),
    "feature_selection.from_model": ("feature_selection._from_model", "SelectFromModel"),
    "feature_selection.mutual_info_": ("feature_selection._mutual_info", "mutual_info_regression"),
    "feature_selection.rfe": ("feature_selection._rfe", "RFE"),
    "feature_selection.univariate_selection": ("feature_selection._univariate_selection", "chi2"),
    "feature_selection.variance_threshold": (
        "feature_selection._variance_threshold", "VarianceThreshold"),
    "gaussian_process.gpc": ("gaussian_process._gpc", "GaussianProcessClassifier"),
    "gaussian_process.gpr": ("gaussian_process._gpr", "GaussianProcessRegressor"),
    "linear_model.base": ("linear_model._base", "LinearRegression"),
    "linear_model.bayes": ("linear_model._bayes", "BayesianRidge"),
    "linear_model.coordinate_descent": ("linear_model._coordinate_descent", "Lasso"),
    "linear_model.huber": ("linear_model._huber", "HuberRegressor"),
    "linear_model.least_angle": ("linear_model._least_angle", "LassoLarsCV"),
    "linear_model.logistic": ("linear_model._logistic", "LogisticRegression"),
    "linear_model.omp": ("linear_model._omp", "OrthogonalMatchingPursuit"),
    "linear_model.passive_aggressive": (
        "linear_model._passive_aggressive", "PassiveAggressiveClassifier"),
    "linear_model.perceptron": ("linear_model._perceptron", "Perceptron"),
    "linear_model.ransac": ("linear_model._ransac", "RANSACRegressor"),
    "linear_model.ridge": ("linear_model._ridge", "Ridge"),
    "linear_model.sgd_fast": ("linear_model._sgd_fast", "Hinge"),
    "linear_model.stochastic_gradient": ("linear_model._stochastic_gradient", "SGDClassifier"),
    "linear_model.theil_sen": ("linear_model._theil_sen", "TheilSenRegressor"),
    "manifold.isomap": ("manifold._isomap", "Isomap"),
    "manifold.locally_linear": ("manifold._locally_linear", "LocallyLinearEmbedding"),
    "manifold.mds": ("manifold._mds", "MDS"),
    "manifold.spectral_embedding_": ("manifold._spectral_embedding", "SpectralEmbedding"),
    "manifold.t_sne": ("manifold._t_sne", "TSNE"),
    "metrics.classification": ("metrics._classification", "accuracy_score"),
    "metrics.cluster.supervised": ("metrics.cluster._supervised", "adjusted_rand_score"),
    "metrics.cluster.unsupervised": ("metrics.cluster._unsupervised", "silhouette_score"),
    "metrics.ranking": ("metrics._ranking", "roc_auc_score"),
    "metrics.regression": ("metrics._regression", "mean_squared_error"),
    "metrics.scorer": ("metrics._scorer", "_PassthroughScorer"),
    "mixture.bayesian_mixture": ("mixture._bayesian_mixture", "BayesianGaussianMixture"),
    "mixture.gaussian_mixture": ("mixture._gaussian_mixture", "GaussianMixture"),
    "neighbors._dist_metrics": ("metrics._dist_metrics", "newObj"),  # moved in 1.0
    "neighbors.ball_tree": ("neighbors._ball_tree", "BallTree"),
    "neighbors.classification": ("neighbors._classification", "KNeighborsClassifier"),
    "neighbors.dist_metrics": ("metrics._dist_metrics", "newObj"),
    "neighbors.graph": ("neighbors._graph", "KNeighborsTransformer"),
    "neighbors.kd_tree": ("neighbors._kd_tree", "KDTree"),
    "neighbors.kde": ("neighbors._kde", "KernelDensity"),
    "neighbors.lof": ("neighbors._lof", "LocalOutlierFactor"),
    "neighbors.nca": ("neighbors._nca", "NeighborhoodComponentsAnalysis"),
    "neighbors.nearest_centroid": ("neighbors._nearest_centroid", "NearestCentroid"),
    "neighbors.regression": ("neighbors._regression", "KNeighborsRegressor"),
    "neighbors.unsupervised": ("neighbors._unsupervised", "NearestNeighbors"),
    "neural_network.multilayer_perceptron": (
        "neural_network._multilayer_perceptron", "MLPClassifier"),
    "neural_network.rbm": ("neural_network._rbm", "BernoulliRBM"),
    "preprocessing.data": ("preprocessing._data", "StandardScaler"),
    "preprocessing.label": ("preprocessing._label", "LabelEncoder"),
    "semi_supervised.label_propagation": ("semi_supervised._label_propagation", "LabelPropagation"),
    "svm.base": ("svm._base", "BaseLibSVM"),
    "svm.classes": ("svm._classes", "SVC"),
    "tree.tree": ("tree._classes", "DecisionTreeClassifier"),
}  # fmt: skip

#: Module renames outside ``sklearn.``: old -> (new, witness name in new).
OTHER_MODULE_ALIASES: dict[str, tuple[str, str | None]] = {
    # scikit-learn 1.6.1's Cython loss module put a bogus __module__ "_loss" into pickles.
    "_loss": ("sklearn._loss._loss", "CyHalfMultinomialLoss"),
    # sklearn.externals.joblib was a vendored joblib until 0.23.
    "sklearn.externals.joblib": ("joblib", None),
    "sklearn.externals.joblib.numpy_pickle": ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    "sklearn.externals.joblib.numpy_pickle_compat": ("joblib.numpy_pickle_compat", None),
}

#: Single globals that moved to a module other than their old module's alias target.
#: old "module:qualname" -> new "module:qualname".
GLOBAL_ALIASES: dict[str, str] = {
    # numpy.ma.core names MaskedArray by its defining module; numpy 2 pickles say numpy.ma.
    "numpy.ma.core:MaskedArray": "numpy.ma:MaskedArray",
    # sklearn.utils re-exported Bunch until it moved to sklearn.utils._bunch (pickles <= 1.0).
    "sklearn.utils:Bunch": "sklearn.utils._bunch:Bunch",
    # sklearn/impute.py (0.20-0.21) became the sklearn.impute package in 0.22.
    "sklearn.impute:MissingIndicator": "sklearn.impute._base:MissingIndicator",
    "sklearn.impute:SimpleImputer": "sklearn.impute._base:SimpleImputer",
    # numpy 2 renamed the bool scalar type (np.bool_ stays an alias).
    "numpy:bool_": "numpy:bool",
}

#: Top-level packages whose names may be trusted by default; a wild-only name outside them
#: (custom ``__main__`` classes, pandas, xgboost, ...) must stay untrusted.
FIRST_PARTY = {
    "_codecs", "builtins", "collections", "copyreg", "functools", "joblib", "numpy", "scipy",
    "sklearn",
}  # fmt: skip


# =============================================================================================
# Helpers
# =============================================================================================
def resolve(pair: Pair) -> Any:
    """Import ``pair[0]`` and walk the dotted ``pair[1]`` (what safeload's ``resolve`` does).

    Raises
    ------
    ImportError, AttributeError
        When the name does not exist in the installed libraries.
    """
    obj: Any = importlib.import_module(pair[0])
    for part in pair[1].split("."):
        obj = getattr(obj, part)
    return obj


def try_resolve(pair: Pair) -> Any | None:
    """:func:`resolve`, or ``None`` when the module or attribute is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return resolve(pair)
    except Exception:  # noqa: BLE001 - any failure to import means "absent"
        return None


def split_name(name: str) -> Pair:
    """Split ``"module.qualname"`` (globals-seen.json keys) at the last dot."""
    module, _, qualname = name.rpartition(".")
    return module, qualname


def dotted(pair: Pair) -> str:
    """``("a.b", "C")`` -> ``"a.b.C"``."""
    return f"{pair[0]}.{pair[1]}"


def by_module(pairs: Iterable[Pair]) -> dict[str, list[str]]:
    """Group pairs as ``{module: sorted qualnames}`` with sorted modules (the JSON layout)."""
    out: dict[str, list[str]] = defaultdict(list)
    for module, qualname in pairs:
        out[module].append(qualname)
    return {m: sorted(set(out[m])) for m in sorted(out)}


def real_spellings(pair: Pair) -> set[Pair]:
    """Other spellings under which the object ``pair`` names can be imported.

    ``("os", "system")`` also lives at ``("posix", "system")``; ``("numpy", "save")`` at
    ``("numpy.lib._npyio_impl", "save")``.  Used to widen the never list.

    Returns
    -------
    set of (str, str)
        Only spellings that resolve to the very same object.
    """
    obj = try_resolve(pair)
    if obj is None:
        return set()
    out = set()
    for candidate in (obj, getattr(obj, "__wrapped__", None)):
        if candidate is None:
            continue
        qualname = getattr(candidate, "__qualname__", None)
        modules = {getattr(candidate, "__module__", None)}
        namespace = getattr(candidate, "__globals__", None)
        if isinstance(namespace, dict):
            modules.add(namespace.get("__name__"))
        for module in modules:
            if isinstance(module, str) and isinstance(qualname, str):
                other = (module, qualname)
                if other != pair and try_resolve(other) in (obj, candidate):
                    out.add(other)
    return out


# =============================================================================================
# Building the policy
# =============================================================================================
def estimator_classes() -> dict[Pair, type]:
    """Every ``all_estimators()`` class keyed by ``(cls.__module__, cls.__qualname__)``."""
    from sklearn.experimental import (  # noqa: F401
        enable_halving_search_cv,
        enable_iterative_imputer,
    )
    from sklearn.utils.discovery import all_estimators

    return {(c.__module__, c.__qualname__): c for _, c in all_estimators()}


def run_harvest() -> Any:
    """Fit and pickle every case of ``tools/policy_cases.py`` (see that module)."""
    import policy_cases
    import policy_harvest

    cases = itertools.chain(
        policy_cases.estimator_cases(),
        policy_cases.composite_cases(),
        policy_cases.reference_cases(),
    )
    return policy_harvest.harvest(cases)


def classify(pair: Pair, obj: Any) -> str | None:
    """Return the trusted group of a harvested name, or ``None`` when no rule fits.

    Parameters
    ----------
    pair : (str, str)
        Canonical ``(module, qualname)``.
    obj : object
        What it resolves to.
    """
    module, qualname = pair
    top = module.split(".")[0]
    is_type = isinstance(obj, type)
    if top == "sklearn":
        if is_type:
            return "sklearn-internal-types"
        if qualname.startswith("__pyx_unpickle_") or qualname == "newObj":
            return "sklearn-reconstructors"
        return "sklearn-functions" if callable(obj) else None
    if top == "numpy":
        if module.startswith("numpy.random"):
            return "numpy-random"
        if pair in NUMPY_RECONSTRUCTORS:
            return "numpy-reconstructors"
        if is_type:
            return "numpy-types"
        public = module == "numpy" and not qualname.startswith("_")
        return "numpy-functions" if public and callable(obj) else None
    if top == "scipy":
        if module.startswith("scipy.sparse.") and is_type:
            return "scipy-sparse"
        return "scipy-other" if module.startswith(("scipy.interpolate", "scipy._lib")) else None
    if top == "joblib":
        return "joblib-wrappers" if is_type else None
    if module in ("builtins", "copyreg", "_codecs", "collections", "functools"):
        return "python-builtins"
    return None


def build_trusted(
    estimators: Mapping[Pair, type], users: Mapping[Pair, set[str]], problems: list[str]
) -> dict[str, set[Pair]]:
    """Sort the estimator classes, harvested names and curated names into groups.

    Harvested names listed in :data:`EXCLUDED` are left out.  Unclassifiable names are
    appended to ``problems``.
    """
    groups: dict[str, set[Pair]] = {name: set() for name in TRUSTED_GROUPS}
    groups["sklearn-estimators"].update(estimators)
    for pair in sorted(users):
        if pair in estimators or dotted(pair) in EXCLUDED:
            continue
        obj = try_resolve(pair)
        group = classify(pair, obj) if obj is not None else None
        if group is None:
            seen_in = ", ".join(sorted(users[pair])[:3])
            problems.append(f"harvested name {dotted(pair)} fits no group (seen in {seen_in})")
            continue
        groups[group].add(pair)
    for pair, (group, _why) in CURATED_TRUSTED.items():
        groups[group].add(pair)
    return groups


def build_never(problems: list[str]) -> list[tuple[str, str, set[Pair]]]:
    """:data:`NEVER_GROUPS` widened with the real spelling of every resolvable name.

    A name listed in two groups is a problem (its reason would be ambiguous).
    """
    out = []
    owner: dict[Pair, str] = {}
    for name, reason, table in NEVER_GROUPS:
        pairs = {(m, q) for m, qs in table.items() for q in qs}
        for pair in sorted(pairs):
            pairs |= real_spellings(pair)
        for pair in sorted(pairs):
            if pair in owner:
                problems.append(f"never name {dotted(pair)} is in {owner[pair]} and {name}")
            owner[pair] = name
        out.append((name, reason, pairs))
    return out


def py2_aliases(trusted: set[Pair], never: set[Pair]) -> tuple[dict[str, str], dict[str, str]]:
    """The relevant entries of CPython's ``_compat_pickle`` tables.

    A module alias is kept when its target module holds a trusted or never-listed name (so an
    old spelling is either loadable or reported as dangerous); a single-name alias when its
    target is trusted or never-listed.  ``__builtin__.basestring`` -> ``builtins.str`` etc.
    """
    relevant_modules = {m for m, _ in trusted | never}
    modules = {
        old: new for old, new in _compat_pickle.IMPORT_MAPPING.items() if new in relevant_modules
    }
    modules.update(PY2_MODULE_ALIASES)
    names = {}
    for old, new in sorted(_compat_pickle.NAME_MAPPING.items()):
        if new not in trusted and new not in never:
            continue
        if (modules.get(old[0], old[0]), old[1]) == new:
            continue  # the module alias already gives this name
        names[f"{old[0]}:{old[1]}"] = f"{new[0]}:{new[1]}"
    return modules, names


def build_aliases(
    trusted: set[Pair], never: set[Pair], problems: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """All module and global aliases; checks that every target module and witness exists."""
    modules, names = py2_aliases(trusted, never)
    modules["numpy.core"] = "numpy._core"
    for sub in NUMPY_CORE_SUBMODULES:
        modules[f"numpy.core.{sub}"] = f"numpy._core.{sub}"
    relative = {
        f"sklearn.{old}": (f"sklearn.{new}", witness)
        for old, (new, witness) in SKLEARN_MODULE_ALIASES.items()
    }
    witnessed = {**SCIPY_MODULE_ALIASES, **relative, **OTHER_MODULE_ALIASES}
    for old, (new, _witness) in witnessed.items():
        modules[old] = new
    names.update(GLOBAL_ALIASES)
    for old, new in sorted(modules.items()):
        if old == new:
            problems.append(f"module alias {old} maps to itself")
        witness = witnessed.get(old, (new, None))[1]
        target = (new, witness) if witness else None
        ok = try_resolve(target) is not None if target else _module_exists(new)
        if not ok:
            problems.append(f"module alias {old} -> {new}: target (or witness {witness}) missing")
    for old, new in sorted(names.items()):
        if try_resolve(tuple(new.split(":", 1))) is None:  # type: ignore[arg-type]
            problems.append(f"global alias {old} -> {new}: target does not resolve")
    return modules, names


def _module_exists(name: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module(name)
    except Exception:  # noqa: BLE001
        return False
    return True


# =============================================================================================
# Validation
# =============================================================================================
def check_trusted(groups: Mapping[str, set[Pair]], never: set[Pair], problems: list[str]) -> None:
    """Trusted names must resolve, must not be modules, and must not be on the never list."""
    seen: dict[Pair, str] = {}
    for group, pairs in groups.items():
        for pair in sorted(pairs):
            if pair in seen:
                problems.append(f"{dotted(pair)} is in two groups: {seen[pair]} and {group}")
            seen[pair] = group
            if pair in never:
                problems.append(f"{dotted(pair)} is trusted ({group}) and on the never list")
            if "." in pair[1]:
                problems.append(f"trusted {dotted(pair)} has a dotted qualname (attribute walk)")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    obj = resolve(pair)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"trusted {dotted(pair)} does not resolve: {exc!r}")
                continue
            if isinstance(obj, types.ModuleType):
                problems.append(f"trusted {dotted(pair)} is a module")
            if not callable(obj):
                problems.append(f"trusted {dotted(pair)} is not a class or function: {obj!r}")


def check_excluded(
    trusted: set[Pair], never: set[Pair], canonical: Any, problems: list[str]
) -> None:
    """Excluded names must not be trusted; ``removed`` ones must not resolve; ``never`` ones
    must be on the never list."""
    for name, (kind, _reason) in sorted(EXCLUDED.items()):
        if kind not in EXCLUDED_KINDS:
            problems.append(f"excluded {name} has an unknown kind {kind!r}")
        pair = canonical(split_name(name))
        if pair in trusted:
            problems.append(f"excluded {name} is trusted")
        if kind == "removed" and try_resolve(pair) is not None:
            problems.append(f"excluded {name} is marked removed but resolves today")
        if kind == "never" and pair not in never:
            problems.append(f"excluded {name} is marked never but is not on the never list")
    for name, holders in sorted(STORED_INSIDE_REMOVED.items()):
        if EXCLUDED.get(name, ("",))[0] != "untrusted":
            problems.append(f"{name} is stored inside removed classes but not excluded untrusted")
        for holder in holders:
            if EXCLUDED.get(holder, ("",))[0] != "removed":
                problems.append(f"{name} is stored inside {holder}, which is not excluded removed")


def completeness(
    seen: Mapping[str, Any], policy: Any, problems: list[str], report: bool
) -> dict[str, int]:
    """Check globals-seen.json against the policy (see the module docstring).

    Returns
    -------
    dict of str to int
        Counts per outcome, for the summary.
    """
    counts: dict[str, int] = defaultdict(int)
    lines = []
    for name, info in sorted(seen.items()):
        sources = info.get("sources", [])
        required = any(s.startswith(("legacy/", "scikit-learn")) for s in sources)
        verdict = policy.verdict(*split_name(name))
        canon = dotted(verdict.canonical)
        excluded = name in EXCLUDED or canon in EXCLUDED
        if verdict.trusted:
            outcome = "trusted"
        elif excluded:
            outcome = "excluded"
        elif required:
            outcome = "GAP"
            problems.append(
                f"{name} (seen in {', '.join(sources)}) is neither trusted nor excluded"
            )
        else:
            outcome = "wild-untrusted"
        top = verdict.canonical[0].split(".")[0]
        if not required and verdict.trusted and top not in FIRST_PARTY:
            problems.append(f"wild-only third-party/custom name {name} is trusted")
        counts[outcome] += 1
        alias = f" -> {canon}" if canon != name else ""
        lines.append(f"  {outcome:15s} {name}{alias}")
    if report:
        print("globals-seen.json, name by name:")
        print("\n".join(lines))
    used = set()
    for name in seen:
        used.add(name)
        used.add(dotted(policy.canonical(split_name(name))))
    for name in EXCLUDED:
        if name not in used:
            problems.append(f"excluded {name} is not a name globals-seen.json reports")
    return dict(counts)


# =============================================================================================
# Output
# =============================================================================================
def environment() -> dict[str, str]:
    """Versions the policy was generated with (recorded in trusted.json).

    Python is recorded as major.minor: the stdlib names of the never list and the pickler's
    output depend on it, the patch level does not change them.
    """
    import joblib
    import numpy
    import scipy
    import sklearn

    return {
        "joblib": joblib.__version__,
        "numpy": numpy.__version__,
        "python": ".".join(platform.python_version_tuple()[:2]),
        "scikit-learn": sklearn.__version__,
        "scipy": scipy.__version__,
    }


def render_trusted(
    groups: Mapping[str, set[Pair]], never: list[tuple[str, str, set[Pair]]]
) -> dict[str, Any]:
    """The ``safeload-policy/1`` document."""
    return {
        "format": "safeload-policy/1",
        "generated_by": "tools/gen_policy.py",
        "environment": environment(),
        "groups": [
            {"name": name, "reason": TRUSTED_GROUPS[name], "globals": by_module(groups[name])}
            for name in TRUSTED_GROUPS
        ],
        "never": {
            "groups": [
                {"name": name, "reason": reason, "globals": by_module(pairs)}
                for name, reason, pairs in never
            ]
        },
        "excluded": [
            {
                "name": name,
                "kind": kind,
                "reason": reason,
                **(
                    {"inside": STORED_INSIDE_REMOVED[name]} if name in STORED_INSIDE_REMOVED else {}
                ),
            }
            for name, (kind, reason) in sorted(EXCLUDED.items())
        ],
    }


def render_aliases(modules: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    """The ``safeload-aliases/1`` document."""
    return {
        "format": "safeload-aliases/1",
        "generated_by": "tools/gen_policy.py",
        "modules": dict(sorted(modules.items())),
        "globals": dict(sorted(names.items())),
    }


def dumps(doc: Mapping[str, Any]) -> str:
    """Deterministic JSON, two-space indent, trailing newline.

    Key order is fixed by construction (``format`` first, each group as name, reason, globals);
    modules, qualnames, aliases and excluded names are sorted.
    """
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def compare(path: Path, text: str) -> bool:
    """Print a short diff and return False when ``path`` differs from ``text``."""
    old = path.read_text("utf-8") if path.exists() else ""
    if old == text:
        return True
    diff = difflib.unified_diff(
        old.splitlines(), text.splitlines(), str(path), "generated", lineterm="", n=1
    )
    print("\n".join(itertools.islice(diff, 80)))
    return False


# =============================================================================================
# Main
# =============================================================================================
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--report", action="store_true", help="print evidence for every name")
    parser.add_argument(
        "--globals-seen", type=Path, default=GLOBALS_SEEN_PATH, help="completeness reference"
    )
    return parser.parse_args(argv)


def print_summary(
    groups: Mapping[str, set[Pair]],
    never: list[tuple[str, str, set[Pair]]],
    modules: Mapping[str, str],
    names: Mapping[str, str],
    harvest: Any,
    counts: Mapping[str, int],
) -> None:
    """One screen: group sizes, never sizes, alias counts, completeness."""
    print(f"harvest: {harvest.n_cases} cases, {len(harvest.users)} distinct globals")
    for name in TRUSTED_GROUPS:
        print(f"  trusted {name:24s} {len(groups[name]):4d}")
    print(f"  trusted total {sum(len(p) for p in groups.values())}")
    for name, _reason, pairs in never:
        print(f"  never   {name:28s} {len(pairs):4d}")
    print(f"  aliases: {len(modules)} modules, {len(names)} globals; excluded: {len(EXCLUDED)}")
    if counts:
        print("  globals-seen.json: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def main(argv: list[str] | None = None) -> int:
    """Generate (or ``--check``) the policy files; see the module docstring for exit codes."""
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from safeload.policy import Policy

    warnings.simplefilter("ignore")
    problems: list[str] = []
    estimators = estimator_classes()
    harvest = run_harvest()
    for case, error in sorted(harvest.failures.items()):
        problems.append(f"harvest case {case!r} failed: {error}")
    groups = build_trusted(estimators, harvest.users, problems)
    never_groups = build_never(problems)
    never = set().union(*(pairs for _, _, pairs in never_groups))
    trusted = set().union(*groups.values())
    check_trusted(groups, never, problems)
    modules, names = build_aliases(trusted, never, problems)
    trusted_doc = render_trusted(groups, never_groups)
    aliases_doc = render_aliases(modules, names)
    policy = Policy.from_data(trusted_doc, aliases_doc)
    check_excluded(trusted, never, policy.canonical, problems)
    for pair in sorted(harvest.py2_spellings):
        canon = policy.canonical(pair)
        if canon not in policy.trusted and dotted(canon) not in EXCLUDED:
            problems.append(f"protocol 0/2 spelling {dotted(pair)} is not trusted after aliases")
    counts: dict[str, int] = {}
    if args.globals_seen.exists():
        seen = json.loads(args.globals_seen.read_text("utf-8"))["globals"]
        counts = completeness(seen, policy, problems, args.report)
    else:
        problems.append(f"{args.globals_seen} not found: completeness can not be checked")
    if args.report:
        print("harvested names and the cases that reference them:")
        for pair in sorted(harvest.users):
            print(f"  {dotted(pair)}: {', '.join(sorted(harvest.users[pair])[:6])}")
    print_summary(groups, never_groups, modules, names, harvest, counts)
    if problems:
        print(f"FAILED: {len(problems)} problem(s); nothing written")
        for problem in problems:
            print(f"  - {problem}")
        return 2
    outputs = {TRUSTED_PATH: dumps(trusted_doc), ALIASES_PATH: dumps(aliases_doc)}
    if args.check:
        fresh = [compare(path, text) for path, text in outputs.items()]
        if not all(fresh):
            print("stale: run .venv/bin/python tools/gen_policy.py and review the diff")
            return 1
        print("up to date")
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    for path, text in outputs.items():
        path.write_text(text, "utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
