"""joblib files (and compressed pickles) → inert object graph.

joblib writes each numpy array as a ``NumpyArrayWrapper`` object followed, right after its
``BUILD`` opcode, by the array's raw bytes — or, for object dtypes, by a *nested pickle stream*
(joblib ``numpy_pickle.py``: ``NumpyArrayWrapper.write_array``/``read_array``).  Only the
pure-Python unpickler can stop after that ``BUILD`` and read the bytes, so this reader subclasses
``pickle._Unpickler`` exactly as joblib's ``NumpyUnpickler`` does, with the inert ``find_class``
of :mod:`safeload.graph` and one changed opcode:

* ``BUILD`` on a ``NumpyArrayWrapper``: evaluate its dtype (only ``numpy.dtype`` is allowed in
  that tiny subgraph), check the declared size against the limits, then read the raw bytes
  straight into a new array (``readinto``: no intermediate copy).  Object arrays are parsed as a
  nested stream *with the same inert machinery and the same context*, so their globals are
  audited like every other.
* ``BUILD`` on a ``NDArrayWrapper`` (joblib < 0.10 multi-file format): read the side ``.npy``
  file next to the pickle with :func:`~safeload.readers.npy.read_npy_file` (numeric only, never
  ``allow_pickle``); the file name must be a plain name in the same folder.
* ``EXT1/2/4`` are refused; persistent ids are recorded as forbidden.

The same reader handles gzip/bz2/xz/lzma/zlib/lz4-compressed plain pickles, which are just
pickle streams without wrappers.
"""

from __future__ import annotations

import math
import os
import pickle
from typing import IO, Any

import numpy as np

from .._text import describe
from ..errors import FormatError, LimitExceededError, SafeloadError
from ..graph import ATOMIC_TYPES, OP_BUILD, Call, New, ParseContext
from ..limits import Limits
from .npy import read_npy_file
from .pickle_reader import ParsedStream, _Forbidden, _inert_hooks

__all__ = ["parse_joblib", "JOBLIB_MODULES"]

#: Module spellings of joblib's pickling helpers (joblib itself, and the copy vendored as
#: ``sklearn.externals.joblib`` in scikit-learn 0.20–0.22).
JOBLIB_MODULES = frozenset(
    {
        "joblib.numpy_pickle",
        "sklearn.externals.joblib.numpy_pickle",
        "joblib.numpy_pickle_compat",
        "sklearn.externals.joblib.numpy_pickle_compat",
    }
)
#: Array classes a wrapper may name.  joblib 1.6 with numpy 2 returns a plain ndarray for each
#: (``__array_prepare__`` is gone, so its subclass branch is never taken); so does safeload.
_ARRAY_SUBCLASSES = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "memmap"),
        ("numpy", "matrix"),
        ("numpy.core.memmap", "memmap"),
        ("numpy._core.memmap", "memmap"),
        ("numpy.matrixlib.defmatrix", "matrix"),
    }
)

_Base = pickle._Unpickler  # type: ignore[attr-defined]


@_inert_hooks
class _JoblibUnpickler(_Base):
    dispatch = dict(_Base.dispatch)

    def __init__(
        self,
        file: IO[bytes],
        context: ParseContext,
        limits: Limits,
        dirname: str | None,
        depth: int = 0,
    ):
        super().__init__(file, encoding="latin1")
        self._safeload_context = context
        self._safeload_limits = limits
        self._file = file
        self._dirname = dirname
        self._depth = depth
        self._dtype_cache: dict[int, tuple[Any, Any]] = {}
        self.array_bytes = 0

    # -- BUILD -------------------------------------------------------------------------------
    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) in (New, Call) and inst.func.module in JOBLIB_MODULES:
            kind = inst.func.qualname
            self._safeload_context.consumed.add((inst.func.module, kind))
            if kind == "NumpyArrayWrapper":
                stack[-1] = self._read_wrapper(state)
                return
            if kind == "NDArrayWrapper":
                stack[-1] = self._read_side_file(state)
                return
            raise FormatError(f"unsupported joblib object {inst.func.module}.{kind}")
        setstate = getattr(inst, "__setstate__", None)
        if setstate is None:
            raise FormatError(f"BUILD on a {type(inst).__name__}")
        setstate(state)

    dispatch[pickle.BUILD[0]] = load_build

    def _ext(size: int):  # noqa: N805 - builds one dispatch function per EXT opcode
        def load_ext(self) -> None:
            self._safeload_context.forbidden.append(
                (
                    "extension-code",
                    "EXT opcode: extension-registry codes fetch globals without "
                    "naming them (copyreg.add_extension)",
                )
            )
            self.read(size)
            self.append(_Forbidden("extension-code"))

        return load_ext

    dispatch[pickle.EXT1[0]] = _ext(1)
    dispatch[pickle.EXT2[0]] = _ext(2)
    dispatch[pickle.EXT4[0]] = _ext(4)
    del _ext

    # -- arrays ------------------------------------------------------------------------------
    def _wrapper_state(self, state: Any) -> dict:
        if type(state) is not dict:
            raise FormatError("joblib array wrapper state must be a dict")
        return state

    def _eval_dtype(self, obj: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
        """Evaluate the ``numpy.dtype(...)`` subgraph of a wrapper (nothing else allowed).

        Shared sub-objects are evaluated once (memo by identity) and the walk visits at most
        10,000 items, so a memo bomb hidden in the wrapper state costs bounded time.
        """
        if budget is None:
            budget = [10_000]
        budget[0] -= 1
        if budget[0] < 0:
            raise LimitExceededError("max_items", 10_001, 10_000, "items in a joblib array dtype")
        if depth > 32:
            raise LimitExceededError("max_depth", depth, 32, "nested dtype")
        tp = type(obj)
        if tp in ATOMIC_TYPES:
            return obj
        cached = self._dtype_cache.get(id(obj))
        if cached is not None:
            return cached[1]
        if tp is tuple:
            result: Any = tuple(self._eval_dtype(x, depth + 1, budget) for x in obj)
        elif tp is list:
            result = [self._eval_dtype(x, depth + 1, budget) for x in obj]
        elif tp is dict:
            result = {
                self._eval_dtype(k, depth + 1, budget): self._eval_dtype(v, depth + 1, budget)
                for k, v in obj.items()
            }
        elif tp is Call and (obj.func.module, obj.func.qualname) == ("numpy", "dtype"):
            args = [self._eval_dtype(a, depth + 1, budget) for a in obj.args]
            if not args or not isinstance(args[0], str) or len(args) > 3:
                raise FormatError("joblib array dtype must be numpy.dtype(str, ...)")
            try:
                result = np.dtype(args[0], *[bool(a) for a in args[1:2]])
                for op in obj.ops or ():
                    if op[0] != OP_BUILD:
                        raise FormatError("unexpected operation on a dtype")
                    result.__setstate__(self._eval_dtype(op[1], depth + 1, budget))
            except SafeloadError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise FormatError(
                    f"invalid dtype in joblib array wrapper: {type(exc).__name__}"
                ) from exc
        else:
            raise FormatError(
                f"joblib array dtype may only be built from numpy.dtype, found a "
                f"{type(obj).__name__}"
            )
        # keep obj alive with its result so the id can not be reused while the cache lives
        self._dtype_cache[id(obj)] = (obj, result)
        return result

    def _read_wrapper(self, state: Any) -> Any:
        state = self._wrapper_state(state)
        limits = self._safeload_limits
        subclass = state.get("subclass")
        if not (
            isinstance(subclass, type)
            and (getattr(subclass, "module", None), getattr(subclass, "qualname", None))
            in _ARRAY_SUBCLASSES
        ):
            raise FormatError(
                f"joblib array subclass must be numpy.ndarray, got {describe(subclass)}"
            )
        dtype = self._eval_dtype(state.get("dtype"))
        if not isinstance(dtype, np.dtype):
            raise FormatError("joblib array wrapper without a dtype")
        shape = state.get("shape")
        if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"joblib array shape must be a tuple of ints, got {describe(shape)}")
        order = state.get("order", "C")
        if order not in ("C", "F"):
            raise FormatError(f"joblib array order must be 'C' or 'F', got {describe(order)}")
        count = math.prod(shape)
        if dtype.hasobject:
            return self._read_object_array(count)
        nbytes = count * dtype.itemsize
        limits.check("max_array_bytes", nbytes, f"joblib array of shape {shape}")
        self.array_bytes += nbytes
        limits.check("max_total_array_bytes", self.array_bytes, "all arrays of the file")
        if "numpy_array_alignment_bytes" in state:
            pad = self._file.read(1)
            if len(pad) != 1:
                raise FormatError("truncated joblib array padding")
            if pad[0] and len(self._file.read(pad[0])) != pad[0]:
                raise FormatError("truncated joblib array padding")
        array = np.empty(count, dtype=dtype)
        if nbytes:
            got = self._file.readinto(memoryview(array).cast("B"))
            if got != nbytes:
                raise FormatError(
                    f"truncated joblib array data: {nbytes} bytes declared, {got} present"
                )
        array = array.reshape(shape[::-1]).transpose() if order == "F" else array.reshape(shape)
        if not array.dtype.isnative:
            array = array.byteswap().view(array.dtype.newbyteorder("="))
        return array

    def _read_object_array(self, count: int) -> Any:
        if self._depth >= 4:
            raise LimitExceededError("max_depth", self._depth + 1, 4, "nested joblib streams")
        self._safeload_limits.check("max_items", count, "items of a joblib object array")
        inner = _JoblibUnpickler(
            self._file,
            self._safeload_context,
            self._safeload_limits,
            self._dirname,
            self._depth + 1,
        )
        return inner.load()

    def _read_side_file(self, state: Any) -> np.ndarray:
        state = self._wrapper_state(state)
        name = state.get("filename")
        if (
            not isinstance(name, str)
            or not name
            or os.path.basename(name) != name
            or name
            in (
                ".",
                "..",
            )
        ):
            raise FormatError(
                f"joblib < 0.10 side file name must be a plain file name, got {describe(name)}"
            )
        if self._dirname is None:
            raise FormatError(
                f"this joblib < 0.10 file keeps its arrays in side files ({name}); load it from "
                "a path so they can be found"
            )
        path = os.path.join(self._dirname, name)
        if not os.path.isfile(path):
            raise FormatError(f"joblib < 0.10 side file {describe(name)} is missing")
        try:
            return read_npy_file(path, self._safeload_limits)
        except FormatError as exc:
            raise FormatError(f"joblib < 0.10 side file {name}: {exc}") from exc


def parse_joblib(
    stream: IO[bytes], limits: Limits, *, dirname: str | None = None, fmt: str = "joblib"
) -> ParsedStream:
    """Parse a joblib (or compressed pickle) stream into an inert graph.

    Parameters
    ----------
    stream : binary file object
        Decompressed and bounded (see :func:`~safeload.readers.compression.open_decompressed`).
    limits : Limits
    dirname : str, optional
        Folder of the file, for joblib < 0.10 side files.
    fmt : str
        Format label for reports (``"joblib"``, ``"joblib+zlib"`` ...).

    Returns
    -------
    ParsedStream

    Raises
    ------
    FormatError, LimitExceededError
    """
    ctx = ParseContext()
    unpickler = _JoblibUnpickler(stream, ctx, limits, dirname)
    try:
        root = unpickler.load()
    except SafeloadError:
        raise
    except RecursionError as exc:
        raise LimitExceededError(
            "max_depth", limits.max_depth + 1, limits.max_depth, "nesting while parsing"
        ) from exc
    except MemoryError as exc:
        raise LimitExceededError(
            "max_decompressed_bytes",
            0,
            limits.max_decompressed_bytes,
            "the stream asked for more memory than is available",
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"corrupt {fmt} stream: {type(exc).__name__}: {exc}") from exc
    finally:
        unpickler.memo = {}
        unpickler.stack = []
        unpickler.metastack = []
    trailing = stream.read(1)
    if trailing:
        raise FormatError(f"trailing data after the end of the {fmt} pickle stream")
    return ParsedStream(root, ctx, None, fmt)
