"""Build stage: replay an audited inert graph with the real trusted callables.

Runs only after :mod:`safeload.audit` accepted every global of the stream.  It walks the graph
once (shared references and cycles preserved through a memo keyed by object identity), and for
each node:

1. builds the arguments, then checks the call with :mod:`safeload.constraints`;
2. performs the call (``func(*args)`` or ``cls.__new__(cls, *args)``);
3. replays ``BUILD``/``APPEND``/``SETITEM``/``ADD`` in stream order — ``BUILD`` only on
   instances, never on a class, function or module — mirroring ``pickle._Unpickler.load_build``;
4. hands the object to :func:`safeload.validate.validate` when a validator is registered.

Containers are rebuilt in place (lists, dicts, sets) so identity is kept; a container whose
items are all atoms is skipped at C speed (``set(map(type, items))``).  Payloads are released as
soon as they are consumed, so peak memory stays close to ``pickle.load``'s.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

from ._dtypestate import dtype_state_problem
from ._hashing import check_key_nesting, collision_probes
from .constraints import CallSite, Replace, _class_call_without_arguments, rule_for
from .errors import ForbiddenOperationError, FormatError, LimitExceededError, SafeloadError
from .graph import ATOMIC_TYPES, OP_BUILD, OP_EXTEND, OP_SETITEM, Call, Global, New
from .limits import Limits
from .policy import Policy
from .readers.payloads import Payload, release_lent
from .statechecks import check_state, has_state_check
from .validate import ValidationBatch, has_validator, validate

__all__ = ["Builder"]

_ATOMIC = ATOMIC_TYPES | {np.ndarray}
_IN_PROGRESS = object()
#: memo value of a payload lent to a tree's state, and of the array built on it: both are gone
_CONSUMED = object()
_NOT_BUILDABLE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    staticmethod,
    classmethod,
    property,
    np.ufunc,
)


class Builder:
    """Turns one audited graph into real objects.

    Parameters
    ----------
    policy : Policy
        Used to resolve the (already audited) globals and to check class arguments.
    limits : Limits
    resolved : dict
        Placeholder class → the real trusted object, prepared by the audit.
    """

    def __init__(self, policy: Policy, limits: Limits, resolved: dict[type, Any]):
        self.policy = policy
        self.limits = limits
        self.resolved = resolved
        self.pairs: dict[type, tuple[str, str]] = {}
        self.memo: dict[int, Any] = {}
        self.pending_validation: list[Any] = []
        #: trees are checked on a worker thread as soon as their single BUILD is done
        self.early_validation = ValidationBatch(limits)
        self._plans: dict[tuple[type, str], tuple[Any, tuple[str, str], Any]] = {}
        self.sizes: dict[int, int] = {}
        self.items = 0
        self.array_bytes = 0
        trusted_types = {id(obj) for obj in resolved.values() if isinstance(obj, type)}
        self._trusted_type_ids = trusted_types
        #: deferred payloads' source (safeload.readers.payloads), set by the caller
        self.payloads: Any = None
        self._tree_type, self._frombuffer = _lendable(resolved.values())

    # ------------------------------------------------------------------ helpers
    def is_trusted_type(self, obj: Any) -> bool:
        """True when ``obj`` is a class the file named and the policy trusts."""
        if id(obj) in self._trusted_type_ids:
            return True
        if isinstance(obj, type):
            return self.policy.is_trusted((obj.__module__, obj.__qualname__))
        return False

    def _resolve(self, placeholder: type) -> Any:
        try:
            return self.resolved[placeholder]
        except KeyError:
            raise FormatError(
                f"{placeholder.module}.{placeholder.qualname} appears outside the position "
                "where the reader consumes it"
            ) from None

    def _count(self, n: int) -> None:
        self.items += n
        if self.items > self.limits.max_items:
            raise LimitExceededError(
                "max_items",
                self.items,
                self.limits.max_items,
                "objects and container items, shared references counted each time",
            )

    # ------------------------------------------------------------------ walk
    def build(self, obj: Any, depth: int = 0) -> Any:
        """Return the real object for graph object ``obj``.

        Raises
        ------
        ForbiddenOperationError, LimitExceededError, FormatError, ValidationError
        """
        tp = type(obj)
        if tp in _ATOMIC:
            return obj
        key = id(obj)
        memo = self.memo
        if key in memo:
            hit = memo[key]
            if hit is _IN_PROGRESS:
                raise FormatError("an object is used inside its own constructor arguments")
            if hit is _CONSUMED:
                raise FormatError(
                    "the file refers again to a tree's node or value array after the tree "
                    "copied it (scikit-learn never shares those)"
                )
            # a shared reference counts as many items as the subgraph it repeats (memo bombs)
            self._count(self.sizes.get(key, 0))
            return hit
        if depth > self.limits.max_depth:
            raise LimitExceededError(
                "max_depth", depth, self.limits.max_depth, "nesting of containers and objects"
            )
        start = self.items
        result = self._build_new(obj, tp, key, depth + 1)
        self.sizes[key] = self.items - start
        return result

    def _build_new(self, obj: Any, tp: type, key: int, depth: int) -> Any:
        memo = self.memo
        build = self.build
        if tp is list:
            memo[key] = obj
            self._count(len(obj))
            if not _all_atomic(obj):
                for i, item in enumerate(obj):
                    if type(item) not in _ATOMIC:
                        obj[i] = build(item, depth)
            return obj
        if tp is dict:
            memo[key] = obj
            self._count(len(obj))
            keys_atomic, values_atomic = _dict_atomic(obj)
            if not keys_atomic:
                items = [(build(k, depth), build(v, depth)) for k, v in obj.items()]
                check_key_nesting([k for k, _ in items], "a dict")  # rebuilt: not yet measured
                obj.clear()
                obj.update(items)
            elif not values_atomic:
                for k, v in obj.items():
                    if type(v) not in _ATOMIC:
                        obj[k] = build(v, depth)
            return obj
        if tp is tuple:
            self._count(len(obj))
            if _all_atomic(obj):
                memo[key] = obj
                return obj
            memo[key] = obj  # a cycle through a tuple sees the tuple itself (see Notes)
            result = tuple([build(item, depth) for item in obj])
            memo[key] = result
            return result
        if tp is Call or tp is New:
            return self._build_node(obj, key, depth)
        if isinstance(obj, type) and issubclass(obj, Global):
            real = self._resolve(obj)
            memo[key] = real
            return real
        if tp is set:
            memo[key] = obj
            self._count(len(obj))
            if not _all_atomic(obj):
                items = [build(item, depth) for item in obj]
                check_key_nesting(items, "a set")
                obj.clear()
                obj.update(items)
            return obj
        if tp is Payload:
            return self._payload(obj, key)
        if tp is frozenset:
            self._count(len(obj))
            if _all_atomic(obj):
                result = obj
            else:
                items = [build(item, depth) for item in obj]
                check_key_nesting(items, "a frozenset")
                result = frozenset(items)
            memo[key] = result
            return result
        raise FormatError(
            f"the unpickler produced an unexpected {tp.__module__}.{tp.__qualname__} object "
            "(only builtin containers, atoms and audited globals may appear)"
        )

    def _payload(self, payload: Payload, key: int) -> Any:
        """A deferred payload's bytes, read now (the ``bytes``/``bytearray`` of the opcode)."""
        if self.payloads is None:
            raise FormatError("a deferred payload without a source (internal error)")
        self._count(1)
        result = self.payloads.read(payload)
        self.memo[key] = result
        return result

    def _lend_tree_arrays(self, state: Any, depth: int) -> tuple[list[int], list, list]:
        """Build a tree state's ``nodes``/``values`` on borrowed views of their payloads.

        ``Tree.__setstate__`` copies both arrays into its own buffers, so their bytes are read
        into a reused scratch buffer instead of fresh memory (:mod:`safeload.readers.payloads`).
        Only the exact shape a pickler writes is lent — ``numpy``'s ``_frombuffer`` called on a
        payload seen nowhere before — and the caller marks the returned memo keys consumed
        once the state is set, so no view of the scratch buffer outlives the ``BUILD``.
        """
        if type(state) is not dict:
            return [], [], []
        memo = self.memo
        lent = []
        views = []
        buffers = []
        for slot, name in enumerate(("nodes", "values")):
            call = state.get(name)
            if type(call) is not Call or id(call) in memo or call.kwargs or call.ops:
                continue
            args = call.args
            if (
                not args
                or type(args[0]) is not Payload
                or id(args[0]) in memo
                or self.resolved.get(call.func) is not self._frombuffer
            ):
                continue
            payload = args[0]
            memo[id(payload)] = self.payloads.borrow(payload, slot)
            views.append(memo[id(payload)])
            buffers.append(self.payloads.scratch(slot))
            try:
                self.build(call, depth)
            finally:
                memo[id(payload)] = _CONSUMED
            lent.append(id(call))
        return lent, views, buffers

    def _build_node(self, node: Any, key: int, depth: int) -> Any:
        memo = self.memo
        memo[key] = _IN_PROGRESS
        self._count(1)
        placeholder = node.func
        if not (isinstance(placeholder, type) and issubclass(placeholder, Global)):
            raise ForbiddenOperationError(
                "call-of-result",
                f"the file calls {node.name}, the result of another call (as in "
                "getattr(module, name)(...)); only named, trusted callables may be called",
            )
        kind = "new" if type(node) is New else "call"
        plan = self._plans.get((placeholder, kind))
        if plan is None:
            plan = self.plan(placeholder, kind)
        args = node.args
        if args and not _all_atomic(args):
            first = args[0]
            if type(first) is Payload and plan[0] is self._frombuffer and id(first) not in memo:
                # the array's own buffer, private to this call: another reference to the
                # payload (never written by a pickler) gets its own bytes/bytearray
                self._count(1)
                args = (self.payloads.fresh(first), *[self.build(a, depth) for a in args[1:]])
            else:
                args = tuple([self.build(a, depth) for a in args])
        kwargs = node.kwargs
        if kwargs:
            kwargs = {self.build(k, depth): self.build(v, depth) for k, v in kwargs.items()}
        result = self.invoke(plan, kind, args, kwargs)
        node.args = node.kwargs = None
        memo[key] = result
        ops = node.ops
        if ops is not None:
            node.ops = None
            self._apply_ops(result, ops, _name(plan[1]), depth)
        self.finish(result, plan[1])
        return result

    def plan(self, placeholder: type, kind: str) -> tuple[Any, tuple[str, str], Any]:
        """Resolve an audited global once per file: ``(object, canonical pair, call rule)``.

        Parameters
        ----------
        placeholder : type
            The parse's placeholder for the global (resolved by the audit).
        kind : {"call", "new"}
        """
        func = self._resolve(placeholder)
        pair = self.policy.canonical((placeholder.module, placeholder.qualname))
        rule = rule_for(pair, func, kind)
        if rule is _class_call_without_arguments and self.policy.is_caller_trusted(pair):
            rule = None  # the caller trusted this class explicitly, constructor included
        plan = self._plans[(placeholder, kind)] = (func, pair, rule)
        return plan

    def invoke(self, plan: tuple[Any, tuple[str, str], Any], kind: str, args: tuple, kwargs):
        """Check one call against its rule (:mod:`safeload.constraints`), then perform it.

        Parameters
        ----------
        plan : tuple
            From :meth:`plan`.
        kind : {"call", "new"}
            ``func(*args, **kwargs)`` or ``func.__new__(func, *args, **kwargs)``.
        args : tuple
            Built arguments.
        kwargs : dict or None

        Raises
        ------
        ForbiddenOperationError
            The rule refused the call.
        FormatError
            The trusted callable raised on the file's arguments.
        LimitExceededError
            It ran out of memory.
        """
        func, pair, rule = plan
        kwargs = kwargs or {}
        if rule is not None and (args or kwargs or rule is not _class_call_without_arguments):
            verdict = rule(
                CallSite(pair, func, args, kwargs, kind, self.limits, self.is_trusted_type)
            )
            if isinstance(verdict, Replace):
                return verdict.value
        if args and pair in _HASHING_CONSTRUCTORS:
            if type(args[0]) is not list or not _all_atomic(args[0]):  # strings: C-speed skip
                # the items as they are: a pair's nesting is its key's plus one (conservative)
                check_key_nesting(args[0], _name(pair))
            # set(memoized_list) can be called many times on one list of colliding keys
            self._count(collision_probes(_keys_of(args[0])))
        return construct(func, pair, kind, args, kwargs, self.limits)

    def finish(self, result: Any, pair: tuple[str, str]) -> None:
        """Account for a built array's bytes, or queue a built object for validation.

        Raises
        ------
        LimitExceededError
            ``max_array_bytes`` / ``max_total_array_bytes``.
        """
        if type(result) is np.ndarray:
            if result.nbytes > self.limits.max_array_bytes:
                self.limits.check("max_array_bytes", result.nbytes, f"array from {_name(pair)}")
            self.array_bytes += result.nbytes
            self.limits.check("max_total_array_bytes", self.array_bytes, "all arrays of the file")
        elif has_validator(type(result)) and not self.early_validation.submit(result):
            # validated once the whole graph is built: a cycle or a later BUILD could still
            # change a sub-object after its holder was checked (time of check / time of use)
            self.pending_validation.append(result)

    def build_root(self, root: Any) -> Any:
        """Build the whole graph, then validate every built object (inner objects first).

        Raises
        ------
        ForbiddenOperationError, LimitExceededError, FormatError, ValidationError
            Any other exception a trusted callable raises on hostile state is reported as a
            ``FormatError`` (nothing but ``SafeloadError`` leaves a load).
        """
        return self.run(lambda: self.build(root))

    def run(self, build: Any) -> Any:
        """Call ``build()``, then finish as every load does: join the early tree checks, let
        migrations redirect replaced objects, validate every queued object, and report any
        error as a :class:`SafeloadError` (used by the pickle path and the safe format).

        Raises
        ------
        ForbiddenOperationError, LimitExceededError, FormatError, ValidationError
        """
        migration = self.__dict__.get("migration")
        try:
            result = build()
            self.early_validation.join()
            if migration is not None:  # redirect replaced objects, refuse surviving stand-ins
                result = migration.finish(result)
                self.pending_validation.extend(migration.created)
            for obj in self.pending_validation:
                validate(obj, self.limits)
        except SafeloadError:
            raise
        except RecursionError as exc:
            raise LimitExceededError(
                "max_depth", self.limits.max_depth + 1, self.limits.max_depth, "nesting"
            ) from exc
        except MemoryError as exc:
            raise LimitExceededError(
                "max_array_bytes", None, self.limits.max_array_bytes, "out of memory while building"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - e.g. an unhashable key built from the file
            raise FormatError(
                f"the file's objects could not be rebuilt: {type(exc).__name__}: {exc}"
            ) from exc
        self.pending_validation.clear()
        return result

    def _apply_ops(self, obj: Any, ops: list, name: str, depth: int) -> None:
        if sum(1 for op in ops if op[0] == OP_BUILD) > 1:
            raise ForbiddenOperationError(
                "repeated-build",
                f"{name} receives BUILD more than once; a pickler sets an object's state once, "
                "and a second BUILD could replace state after it was checked",
            )
        build = self.build
        migration = self.__dict__.get("migration")  # safeload.migrate.MigrationContext or None
        for op in ops:
            code = op[0]
            try:
                if code == OP_BUILD:
                    state = op[1]
                    lent = views = buffers = None
                    if self.payloads is not None and type(obj) is self._tree_type:
                        lent, views, buffers = self._lend_tree_arrays(state, depth)
                    if migration is None:
                        if type(state) not in _ATOMIC:
                            state = build(state, depth)
                    else:  # the state's objects inherit this object's _sklearn_version
                        pushed = migration.enter(obj, state)
                        try:
                            if type(state) not in _ATOMIC:
                                state = build(state, depth)
                            state = migration.rewrite(obj, state, pushed)
                        finally:
                            migration.leave(pushed)
                    _apply_build(obj, state, name)
                    if lent:  # drop every reference to the lent arrays (see _lend_tree_arrays)
                        state = None
                        graph_state = op[1]  # rebuilt in place and memoized: holds them too
                        graph_state.pop("nodes", None)
                        graph_state.pop("values", None)
                        for key in (*lent, id(graph_state)):
                            self.memo[key] = _CONSUMED
                        release_lent(views, buffers, name)
                elif code == OP_SETITEM:
                    key = build(op[1], depth)
                    check_key_nesting((key,), name)
                    obj[key] = build(op[2], depth)
                elif code == OP_EXTEND:
                    items = [build(x, depth) for x in op[1]]
                    extend = getattr(obj, "extend", None)
                    if extend is not None:
                        extend(items)
                    else:
                        for x in items:
                            obj.append(x)
                else:  # OP_ADD
                    item = build(op[1], depth)
                    check_key_nesting((item,), name)
                    obj.add(item)
            except SafeloadError:
                raise
            except MemoryError as exc:
                raise LimitExceededError(
                    "max_array_bytes",
                    None,
                    self.limits.max_array_bytes,
                    f"restoring {name} ran out of memory",
                ) from exc
            except Exception as exc:  # noqa: BLE001
                raise FormatError(
                    f"restoring the state of {name} failed: {type(exc).__name__}: {exc}"
                ) from exc


#: Constructors that hash the items of their first argument (sets) or its keys (dicts).
_HASHING_CONSTRUCTORS = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "dict"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "Counter"),
    }
)


def _keys_of(arg: Any) -> Any:
    """What a set/dict constructor hashes in ``arg``: its items, or the first item of pairs."""
    if type(arg) is dict:
        return arg
    if type(arg) in (list, tuple) and arg and type(arg[0]) in (list, tuple):
        return [p[0] if type(p) in (list, tuple) and p else p for p in arg]
    return arg


def _lendable(objects: Any) -> tuple[Any, Any]:
    """``(sklearn.tree._tree.Tree, numpy's _frombuffer)`` among the file's resolved globals
    (None where absent): the one consumer that copies a payload, and the call that wraps it."""
    tree = frombuffer = None
    for obj in objects:
        name = getattr(obj, "__name__", None)
        module = getattr(obj, "__module__", None)
        if name == "Tree" and module == "sklearn.tree._tree" and isinstance(obj, type):
            tree = obj
        elif name == "_frombuffer" and module in ("numpy._core.numeric", "numpy.core.numeric"):
            frombuffer = obj
    return tree, frombuffer


def _name(pair: tuple[str, str]) -> str:
    return f"{pair[0]}.{pair[1]}"


def _all_atomic_py(items: Any) -> bool:
    """Reference: True when no item can hold a reference to another parsed object."""
    return set(map(type, items)) <= _ATOMIC


try:  # optional C helper, ~15x faster on large containers (a 200k-term vocabulary)
    from . import _speedups

    _speedups.set_atomic_types(tuple(_ATOMIC))

    def _all_atomic(items: Any) -> bool:
        return _speedups.atomic_kinds(items) & 1 == 1

    def _dict_atomic(d: dict) -> tuple[bool, bool]:
        bits = _speedups.atomic_kinds(d)
        return bool(bits & 1), bool(bits & 2)

except ImportError:  # pragma: no cover - built without a compiler
    _all_atomic = _all_atomic_py

    def _dict_atomic(d: dict) -> tuple[bool, bool]:
        return _all_atomic_py(d), _all_atomic_py(d.values())


_DTYPE_STATE_ATOMS = (str, bytes, int, type(None), np.dtype)


def _dtype_state_content_ok(state: Any, budget: list[int]) -> bool:
    """A dtype state holds only strings, ints, None, nested dtypes, tuples and dicts.

    Arrays or other objects inside a dtype's state would let the file build an array with the
    dtype *before* its state is set, then change the dtype under it (forged object pointers).
    """
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(state, _DTYPE_STATE_ATOMS) and type(state) is not bool or state is None:
        return True
    if type(state) is tuple:
        return all(_dtype_state_content_ok(x, budget) for x in state)
    if type(state) is dict:
        return all(
            _dtype_state_content_ok(k, budget) and _dtype_state_content_ok(v, budget)
            for k, v in state.items()
        )
    return False


def _datetime_state_expected(dtype: np.dtype, state: Any) -> Any:
    """The state numpy writes for the datetime/timedelta unit a state claims, or None.

    ``dtype('M8')`` is the generic unit; the real unit travels in the state's metadata
    ``(None, (b's', 1, 1, 1))`` (numpy descriptor.c, ``_get_datetime_metadata``).
    """
    try:
        unit, num = state[8][1][0], state[8][1][1]
        if type(unit) is not bytes or type(num) is not int or not 0 < num < 2**31:
            return None
        candidate = np.dtype(f"{dtype.char}8[{num}{unit.decode('ascii')}]")
        return candidate.newbyteorder(state[1]).__reduce__()[2]
    except Exception:  # noqa: BLE001 - anything unexpected: not numpy's own state
        return None


def _apply_dtype_state(dtype: np.dtype, state: Any, name: str) -> None:
    """``dtype.__setstate__`` trusts its input (numpy descriptor.c): a malformed state, or a
    version-3 state on a datetime dtype, crashes the interpreter.  A simple dtype's state must
    be exactly the one numpy itself writes (then nothing needs setting); structured dtypes get
    a shape check before numpy sees the state, and the dtype validator afterwards."""
    if not _dtype_state_content_ok(state, [10_000]):
        raise FormatError(f"{name}: a dtype state may only hold strings, ints and dtypes")
    if dtype.names is None and dtype.subdtype is None and type(state) is tuple and state:
        endian = state[1] if len(state) > 1 else None
        try:
            expected = dtype.newbyteorder(endian).__reduce__()[2] if endian in "<>=|" else None
        except (TypeError, ValueError):
            expected = None
        if expected is not None and state == expected:
            if endian in "<>" and dtype.byteorder not in ("|", endian):
                dtype.__setstate__(state)  # byte order only: the state numpy itself wrote
            return
        if dtype.kind in "mM":
            if _datetime_state_expected(dtype, state) == state:
                dtype.__setstate__(state)  # exactly the state numpy writes for that unit
                return
            raise FormatError(f"{name}: datetime dtype state differs from numpy's own")
    problem = dtype_state_problem(state)
    if problem is not None:
        raise FormatError(f"{name}: {problem} (numpy would crash on it)")
    dtype.__setstate__(state)


def construct(
    func: Any, pair: tuple[str, str], kind: str, args: tuple, kwargs: dict, limits: Limits
) -> Any:
    """``func(*args, **kwargs)`` (``kind="call"``) or ``func.__new__(func, *args, **kwargs)``
    (``"new"``, ``NEWOBJ``), once its call rule allowed it (:meth:`Builder.invoke`).

    Raises
    ------
    ForbiddenOperationError
        ``"new"`` on something that is not a class.
    FormatError
        The trusted callable raised on the file's arguments.
    LimitExceededError
        It ran out of memory.
    """
    try:
        if kind == "new":
            if not isinstance(func, type):
                raise ForbiddenOperationError(
                    "newobj-on-non-class", f"{_name(pair)} is not a class"
                )
            return func.__new__(func, *args, **kwargs)
        return func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a trusted callable rejected the data
        error = construct_error(exc, pair, limits)
        if error is exc:
            raise
        raise error from exc


def construct_error(exc: BaseException, pair: tuple[str, str], limits: Limits) -> BaseException:
    """What :func:`construct` raises when the call raised ``exc``: a ``SafeloadError`` (or
    anything that is not an ``Exception``) as it is, ``MemoryError`` as the
    ``max_array_bytes`` limit, anything else as a ``FormatError`` naming the callable (also
    used by the C walk, ``format/_walk.c``, through ``Decoder._obj_error``)."""
    if isinstance(exc, SafeloadError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, MemoryError):
        return LimitExceededError(
            "max_array_bytes", None, limits.max_array_bytes, f"{_name(pair)} ran out of memory"
        )
    return FormatError(f"{_name(pair)} failed on the file's arguments: {type(exc).__name__}: {exc}")


def state_error(exc: BaseException, name: str) -> BaseException:
    """What setting a node's state raises when ``__setstate__`` raised ``exc``: a
    ``SafeloadError`` (or anything that is not an ``Exception``) as it is, anything else as a
    ``FormatError`` naming the class (``Decoder._set_state``, and the C walk)."""
    if isinstance(exc, SafeloadError) or not isinstance(exc, Exception):
        return exc
    return FormatError(f"restoring the state of {name} failed: {type(exc).__name__}: {exc}")


def plain_setstate(cls: Any) -> bool:
    """Whether ``BUILD`` on an instance of exactly ``cls`` is just ``inst.__setstate__(state)``
    in :func:`_apply_build` (no class, function, module or dtype; a ``__setstate__`` whose
    state needs no check first, :mod:`safeload.statechecks`)."""
    return (
        isinstance(cls, type)
        and not issubclass(cls, _NOT_BUILDABLE)
        and not issubclass(cls, np.dtype)
        and callable(getattr(cls, "__setstate__", None))
        and not has_state_check(cls)
    )


def class_build(cls: Any) -> bool:
    """Whether ``BUILD`` on an instance of exactly ``cls`` takes :func:`_apply_build`'s
    ``__setstate__`` branch whenever the instance has that attribute (``cls`` is a class, and
    neither a class, function or module type nor a dtype): the C walk's ``call`` nodes
    (``format/_walk.c``, ``fast_call``) then check the state and call it themselves."""
    return isinstance(cls, type) and not issubclass(cls, (*_NOT_BUILDABLE, np.dtype))


def _apply_build(inst: Any, state: Any, name: str) -> None:
    """``BUILD`` as ``pickle._Unpickler.load_build`` does it, but only on instances."""
    if isinstance(inst, _NOT_BUILDABLE):
        raise ForbiddenOperationError(
            "build-on-global",
            f"BUILD on the result of {name}, a {type(inst).__name__}: state may only be set on "
            "instances, never on a class, function or module",
        )
    if isinstance(inst, np.dtype):
        _apply_dtype_state(inst, state, name)
        return
    setstate = getattr(inst, "__setstate__", None)
    if setstate is not None:
        check_state(inst, state, name)  # compiled __setstate__ that index their state
        setstate(state)
        return
    _build_dict(inst, state, name)


def _build_dict(inst: Any, state: Any, name: str) -> None:
    """``BUILD`` of an instance whose ``__setstate__`` is missing or None: ``state`` (or
    ``(state, slotstate)``) into its ``__dict__`` and slots, as ``pickle._Unpickler.load_build``
    does (also the C walk's, ``format/_walk.c`` ``fast_call``, after its own lookup)."""
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    if state:
        inst_dict = inst.__dict__
        intern = sys.intern
        for k, v in state.items():
            if type(k) is str:
                inst_dict[intern(k)] = v
            else:
                inst_dict[k] = v
    if slotstate:
        for k, v in slotstate.items():
            if k in ("__class__", "__dict__"):
                raise ForbiddenOperationError(
                    "build-slot-state", f"slot state may not set {k} on {name}"
                )
            setattr(inst, k, v)
