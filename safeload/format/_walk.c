/*
 * The safe-format decoder's walk over graph.json at C speed: Decoder.dec of
 * safeload/format/decode.py, which stays the reference (and runs when this module is not built,
 * and for decoder subclasses).
 *
 *   Walker(decoder, dispatch, atoms, ndarray_keys, max_depth, max_items, error)
 *       decoder   the Python Decoder; its slots, arrays, _sizes, _shapes, _pool_next, _plans,
 *                 builder.finish, builder.invoke, _pooled, _set_state, _obj_error,
 *                 _fast_call, _dropped, _keep, _check_state, _apply_build and _build_dict
 *                 are read once here and must not be rebound while the walker lives.
 *       dispatch  tag -> (handler, allowed keys): Decoder's _dispatch_table.
 *       error     error(kind, *args) raises the reference's exception for `kind` (so the
 *                 messages live in one place, decode.py).
 *   Walker.dec(v, depth) -> value      Decoder.dec.
 *   Walker.count(n)                    Decoder._count: add n to the item count, raise
 *                                      max_items past the limit.
 *   Walker.items                       the item count (read/write).
 *   Walker.release()                   drop every reference (the decoder holds the walker).
 *
 * What runs here: JSON atoms, lists, tagged values' key/depth/count bookkeeping, the
 * {"$": "dict", "v": {...}} form, pooled "ndarray" slices whose shape and pool were seen
 * before (Decoder._pooled fills both caches on first use), {"$": "obj", "g", "state"}
 * nodes of a global whose plan Decoder._node made and found plain (Decoder._plain_node:
 * cls.__new__(cls), the state decoded, __setstate__, builder.finish; errors mapped by
 * Decoder._obj_error, a __new__ returning another type handed to Decoder._set_state),
 * {"$": "call", "g"[, "args"][, "state"]} nodes of a class whose plan Decoder._node flagged
 * with build.class_build (what Decoder._node does: the arguments decoded, builder.invoke --
 * the call rule, then the call --, the state set as _apply_build sets it, builder.finish;
 * the errors mapped as _set_state maps them), and {"$": "ref", "id"} naming a finished
 * slot (Decoder._ref; one it left out goes to Decoder._ref), and with Decoder(keep=...) it
 * leaves out of the slot table each finished value whose slot no ref names (Decoder._drop).
 * Every other tag calls its Python
 * handler with the same arguments the reference passes; anything unusual about a pooled
 * slice calls Decoder._pooled, which checks it and names the problem.  The item count, the
 * slot table and the shared-value sizes change exactly as in the reference, so a graph
 * decodes to the same objects, counts the same items and fails with the same error.
 *
 * Mutation during the walk: a trusted __setstate__ may change a dict it was handed (a dict of
 * the graph being decoded, through a reference); like the reference's `for ... in
 * value.items()` the walk raises RuntimeError when the dict's size changes, and it holds its
 * own reference to every key and value it works on.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#include <limits.h>

typedef struct {
    PyObject_HEAD
    PyObject *decoder, *dispatch, *atoms, *ndarray_keys, *error;
    PyObject *slots, *arrays, *sizes, *shapes, *pool_next;
    PyObject *pooled;    /* bound Decoder._pooled */
    PyObject *plans, *in_progress, *obj_error, *set_state, *finish; /* for plain obj nodes */
    PyObject *fast_call, *invoke, *check_state, *apply_build, *build_dict; /* call nodes */
    PyObject *dropped, *keep; /* Decoder(keep=...): a set of slot ids, or None */
    PyObject *str_obj, *str_g, *str_state, *str_new, *str_setstate, *str_call, *str_args, *str_ref, *str_id;
    PyObject *str_tag, *str_i, *str_at, *str_shape, *str_order, *str_v, *str_reshape;
    PyObject *str_ndarray, *str_dict, *str_C, *str_F, *kw_order;
    long long items, max_items;
    Py_ssize_t max_depth;
    int consume; /* Decoder._consume: drop each decoded item from its JSON list */
} Walker;

static PyObject *walker_dec(Walker *w, PyObject *v, Py_ssize_t depth);

/* Decoder._drop: with Decoder(keep=...), the slot of a finished value no ref names holds the
 * dropped marker (the value is held by what it was built into, if anything). */
static int drop_slot(Walker *w, Py_ssize_t slot) {
    if (w->keep == Py_None || slot >= PyList_GET_SIZE(w->slots)) return 0;
    PyObject *k = PyLong_FromSsize_t(slot);
    if (!k) return -1;
    int in = PySet_Contains(w->keep, k);
    Py_DECREF(k);
    if (in < 0) return -1;
    if (!in) PyList_SetItem(w->slots, slot, Py_NewRef(w->dropped));
    return 0;
}

static int is_atom(Walker *w, PyObject *x) {
    PyTypeObject *t = Py_TYPE(x);
    return t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type ||
           x == Py_None;
}

/* error(kind, *args): always raises; returns NULL. */
static PyObject *fail(Walker *w, const char *kind, PyObject *a, PyObject *b) {
    PyObject *k = PyUnicode_FromString(kind);
    if (!k) return NULL;
    PyObject *args[3] = {k, a ? a : Py_None, b ? b : Py_None};
    PyObject *r = PyObject_Vectorcall(w->error, args, 3, NULL);
    Py_DECREF(k);
    Py_XDECREF(r);
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "decoder error hook returned");
    return NULL;
}

static int count(Walker *w, long long n) {
    if (n <= w->max_items - w->items) { /* items <= max_items here: no overflow */
        w->items += n;
        return 0;
    }
    /* over the limit: the reference's count (items + n, as a Python int), then the error */
    PyObject *a = PyLong_FromLongLong(w->items), *b = PyLong_FromLongLong(n);
    PyObject *sum = (a && b) ? PyNumber_Add(a, b) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    w->items = n > LLONG_MAX - w->items ? LLONG_MAX : w->items + n;
    if (!sum) return -1;
    fail(w, "max_items", sum, NULL);
    Py_DECREF(sum);
    return -1;
}

/* A limit as a C integer: values past the C type's range can not be reached (the count and
 * the depth stay far below), so they become its maximum. */
static int clamp_limit(PyObject *value, long long max, long long *out) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = overflow > 0 || v > max ? max : (overflow < 0 ? LLONG_MIN : v);
    return 0;
}

static int too_deep(Walker *w, Py_ssize_t depth) {
    if (depth <= w->max_depth) return 0;
    PyObject *d = PyLong_FromSsize_t(depth);
    if (!d) return -1;
    fail(w, "max_depth", d, NULL);
    Py_DECREF(d);
    return -1;
}

/* sizes[slot] = items - start */
static int set_size(Walker *w, Py_ssize_t slot, long long start) {
    PyObject *k = PyLong_FromSsize_t(slot);
    PyObject *n = PyLong_FromLongLong(w->items - start);
    int rc = (k && n) ? PyDict_SetItem(w->sizes, k, n) : -1;
    Py_XDECREF(k);
    Py_XDECREF(n);
    return rc;
}

/* Every key of v is in the frozenset allowed: 1 yes, 0 no, -1 error. */
static int keys_within(PyObject *v, PyObject *allowed) {
    Py_ssize_t pos = 0;
    PyObject *key, *val;
    while (PyDict_Next(v, &pos, &key, &val)) {
        int r = PySet_Contains(allowed, key);
        if (r != 1) return r;
    }
    return 1;
}

static PyObject *dec_list(Walker *w, PyObject *v, Py_ssize_t depth) {
    if (too_deep(w, depth)) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Py_ssize_t slot = PyList_GET_SIZE(w->slots);
    if (PyList_Append(w->slots, out) < 0) goto error;
    long long start = w->items;
    if (count(w, 1 + (long long)PyList_GET_SIZE(v)) < 0) goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
        PyObject *x = PyList_GET_ITEM(v, i);
        Py_INCREF(x);
        int atom = is_atom(w, x);
        PyObject *item = atom ? (Py_INCREF(x), x) : walker_dec(w, x, depth + 1);
        Py_DECREF(x);
        if (!item) goto error;
        if (w->consume && !atom && i < PyList_GET_SIZE(v)) {
            /* decoded: the graph's JSON for it goes now (Decoder(consume=True)) */
            Py_INCREF(Py_None);
            PyList_SetItem(v, i, Py_None);
        }
        int rc = PyList_Append(out, item);
        Py_DECREF(item);
        if (rc < 0) goto error;
    }
    if (set_size(w, slot, start) < 0 || drop_slot(w, slot) < 0) goto error;
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

/* {"$": "dict", "v": {...}}: the JSON object becomes the dict, its values decoded in place. */
static PyObject *dec_plain_dict(Walker *w, PyObject *value, Py_ssize_t depth) {
    if (count(w, (long long)PyDict_GET_SIZE(value)) < 0) return NULL;
    if (PyList_Append(w->slots, value) < 0) return NULL;
    Py_ssize_t n = PyDict_GET_SIZE(value), pos = 0;
    PyObject *key, *item;
    while (PyDict_Next(value, &pos, &key, &item)) {
        if (is_atom(w, item)) continue;
        Py_INCREF(key);
        Py_INCREF(item);
        PyObject *built = walker_dec(w, item, depth);
        Py_DECREF(item);
        int rc = built ? PyDict_SetItem(value, key, built) : -1;
        Py_DECREF(key);
        Py_XDECREF(built);
        if (rc < 0) return NULL;
        if (PyDict_GET_SIZE(value) != n) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            return NULL;
        }
    }
    Py_INCREF(value);
    return value;
}

/* A pooled "ndarray" slice when its shape and pool were seen before; NULL with no exception
 * set means "not the fast case": the caller asks Decoder._pooled. */
static PyObject *fast_pooled(Walker *w, PyObject *v, PyObject *index, Py_ssize_t idx) {
    PyObject *shape = PyDict_GetItemWithError(v, w->str_shape);
    if (!shape || !PyList_CheckExact(shape)) return NULL;
    PyObject *order = PyDict_GetItemWithError(v, w->str_order);
    if (PyErr_Occurred()) return NULL;
    int c_order = 1;
    if (order) {
        if (!PyUnicode_CheckExact(order)) return NULL;
        if (PyUnicode_Compare(order, w->str_C) == 0)
            c_order = 1;
        else if (PyUnicode_Compare(order, w->str_F) == 0)
            c_order = 0;
        else
            return NULL;
    }
    PyObject *at_obj = PyDict_GetItemWithError(v, w->str_at);
    if (!at_obj || !PyLong_CheckExact(at_obj)) return NULL;
    Py_ssize_t at = PyLong_AsSsize_t(at_obj);
    if (at == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *key = PyList_AsTuple(shape);
    if (!key) return NULL;
    PyObject *count_obj = PyDict_GetItemWithError(w->shapes, key);
    PyObject *expected = count_obj ? PyDict_GetItemWithError(w->pool_next, index) : NULL;
    PyObject *pool = PyList_GET_ITEM(w->arrays, idx);
    Py_ssize_t cnt = count_obj ? PyLong_AsSsize_t(count_obj) : -1;
    Py_ssize_t exp = expected ? PyLong_AsSsize_t(expected) : -1;
    if (PyErr_Occurred() || cnt < 0 || exp < 0 || at != exp || at > PY_SSIZE_T_MAX - cnt) {
        PyErr_Clear();
        Py_DECREF(key);
        return NULL;
    }
    Py_INCREF(pool);
    Py_ssize_t len = PyObject_Length(pool);
    if (len < 0 || at + cnt > len) {
        PyErr_Clear();
        Py_DECREF(pool);
        Py_DECREF(key);
        return NULL;
    }
    PyObject *next = PyLong_FromSsize_t(at + cnt);
    if (!next || PyDict_SetItem(w->pool_next, index, next) < 0) {
        Py_XDECREF(next);
        Py_DECREF(pool);
        Py_DECREF(key);
        return NULL;
    }
    Py_DECREF(next);
    PyObject *part = PySequence_GetSlice(pool, at, at + cnt);
    Py_DECREF(pool);
    if (!part || (PyList_GET_SIZE(shape) == 1 && c_order)) {
        Py_DECREF(key);
        return part;
    }
    /* C order is reshape's default: no keyword to parse then */
    PyObject *args[3] = {part, key, w->str_F};
    PyObject *out = PyObject_VectorcallMethod(w->str_reshape, args,
                                              2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                              c_order ? NULL : w->kw_order);
    Py_DECREF(part);
    Py_DECREF(key);
    return out;
}

static PyObject *dec_ndarray_inline(Walker *w, PyObject *v, PyObject *index, Py_ssize_t idx) {
    int within = keys_within(v, w->ndarray_keys);
    if (within < 0) return NULL;
    if (!within) return fail(w, "ndarray_keys", NULL, NULL);
    PyObject *value = fast_pooled(w, v, index, idx);
    if (!value) {
        if (PyErr_Occurred()) return NULL;
        PyObject *args[3] = {NULL, v, index};
        value = PyObject_Vectorcall(w->pooled, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (!value) return NULL;
    }
    Py_ssize_t slot = PyList_GET_SIZE(w->slots);
    if (PyList_Append(w->slots, value) < 0 || drop_slot(w, slot) < 0) {
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

/* Decoder._obj_error(stage, exc, name, pair) with the exception set now: it raises the
 * reference's error for it (construct's or _set_state's mapping). */
static void obj_error(Walker *w, const char *stage, PyObject *name, PyObject *pair) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    PyObject *s = PyUnicode_FromString(stage);
    PyObject *r = NULL;
    if (s) {
        PyObject *args[5] = {NULL, s, value ? value : Py_None, name, pair};
        r = PyObject_Vectorcall(w->obj_error, args + 1, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(s);
    }
    Py_XDECREF(r);
    if (!PyErr_Occurred()) { /* the hook returned: the original error stands */
        PyErr_Restore(type, value, tb);
        return;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* Decoder._plans[(g, tag)] (borrowed) when Decoder._node cached it with the fast-path `flag`
 * (True: a plain obj node; Decoder._fast_call: a call node) and a class for its plan; NULL
 * otherwise, with an exception set only when the lookup itself failed. */
static PyObject *cached_plan(Walker *w, PyObject *g, PyObject *tag, PyObject *flag) {
    PyObject *key = PyTuple_Pack(2, g, tag);
    if (!key) return NULL;
    PyObject *entry = PyDict_GetItemWithError(w->plans, key);
    Py_DECREF(key);
    if (!entry || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4 ||
        PyTuple_GET_ITEM(entry, 3) != flag)
        return NULL;
    PyObject *plan = PyTuple_GET_ITEM(entry, 0);
    if (!PyTuple_CheckExact(plan) || PyTuple_GET_SIZE(plan) != 3 ||
        !PyType_Check(PyTuple_GET_ITEM(plan, 0)))
        return NULL;
    return entry;
}

/* builder.finish(result, pair): a built array's bytes counted, an object queued for its
 * validation (build.Builder.finish); 0, or -1 with the exception set. */
static int finish_node(Walker *w, PyObject *result, PyObject *pair) {
    PyObject *args[3] = {NULL, result, pair};
    PyObject *r =
        PyObject_Vectorcall(w->finish, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

/* {"$": "obj", "g", "state"} whose plan Decoder._node cached as plain: Decoder._plain_node.
 * `depth` is the handler's (the node's + 1).  NULL with no exception set means "not this
 * case" (nothing done yet): the caller calls the Python handler. */
static PyObject *fast_obj(Walker *w, PyObject *v, Py_ssize_t depth) {
    if (PyDict_GET_SIZE(v) != 3) return NULL;
    PyObject *g = PyDict_GetItemWithError(v, w->str_g);
    if (!g || !PyLong_CheckExact(g)) return NULL;
    PyObject *state = PyDict_GetItemWithError(v, w->str_state);
    if (!state) return NULL;
    PyObject *entry = cached_plan(w, g, w->str_obj, Py_True);
    if (!entry) return NULL;
    PyObject *plan = PyTuple_GET_ITEM(entry, 0);
    /* the fast case from here on: every failure sets an exception */
    Py_INCREF(entry);
    Py_INCREF(state);
    PyObject *cls = PyTuple_GET_ITEM(plan, 0), *pair = PyTuple_GET_ITEM(plan, 1);
    PyObject *name = PyTuple_GET_ITEM(entry, 2), *result = NULL, *r;
    Py_ssize_t slot = PyList_GET_SIZE(w->slots);
    if (PyList_Append(w->slots, w->in_progress) < 0) goto done;
    result = PyObject_CallMethodOneArg(cls, w->str_new, cls); /* construct(..., "new") */
    if (!result) {
        obj_error(w, "new", name, pair);
        goto done;
    }
    if (slot >= PyList_GET_SIZE(w->slots)) {
        PyErr_SetString(PyExc_RuntimeError, "the slot table shrank during the walk");
        goto fail;
    }
    Py_INCREF(result);
    PyList_SetItem(w->slots, slot, result);
    if (Py_TYPE(result) != (PyTypeObject *)cls) { /* the general BUILD: Decoder._set_state */
        PyObject *d = PyLong_FromSsize_t(depth);
        if (!d) goto fail;
        PyObject *args[6] = {NULL, result, state, d, name, cls};
        r = PyObject_Vectorcall(w->set_state, args + 1, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(d);
        if (!r) goto fail;
        Py_DECREF(r);
    } else {
        PyObject *st = is_atom(w, state) ? (Py_INCREF(state), state) : walker_dec(w, state, depth);
        if (!st) goto fail;
        r = PyObject_CallMethodOneArg(result, w->str_setstate, st);
        Py_DECREF(st);
        if (!r) {
            obj_error(w, "state", name, pair);
            goto fail;
        }
        Py_DECREF(r);
    }
    if (finish_node(w, result, pair) < 0) goto fail;
    goto done;
fail:
    Py_CLEAR(result);
done:
    Py_DECREF(state);
    Py_DECREF(entry);
    return result;
}

/* Decoder._set_state's error mapping around a BUILD step that returned `r`: NULL (with the
 * reference's exception set) when it failed. */
static int state_step(Walker *w, PyObject *r, PyObject *name, PyObject *pair) {
    if (!r) {
        obj_error(w, "state", name, pair);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* {"$": "call", "g"[, "args"][, "state"]} whose plan Decoder._node cached with the fast-call
 * flag (build.class_build): what Decoder._node does for it -- the arguments decoded,
 * builder.invoke (the call rule, then the call), the slot filled, the state decoded and set
 * as _set_state / _apply_build set it (an instance of exactly the class: its __setstate__
 * after statechecks.check_state; anything else: _apply_build itself), builder.finish.
 * `depth` is the handler's.  NULL with no exception set means "not this case" (nothing done
 * yet): the caller calls the Python handler. */
static PyObject *fast_call(Walker *w, PyObject *v, Py_ssize_t depth) {
    PyObject *g = PyDict_GetItemWithError(v, w->str_g);
    if (!g || !PyLong_CheckExact(g)) return NULL;
    PyObject *raw_args = PyDict_GetItemWithError(v, w->str_args);
    if (!raw_args && PyErr_Occurred()) return NULL;
    if (raw_args && !PyList_CheckExact(raw_args)) return NULL;
    PyObject *state = PyDict_GetItemWithError(v, w->str_state);
    if (!state && PyErr_Occurred()) return NULL;
    /* "$", "g" and these: no kwargs, items or setitems */
    if (PyDict_GET_SIZE(v) != 2 + (raw_args != NULL) + (state != NULL)) return NULL;
    PyObject *entry = cached_plan(w, g, w->str_call, w->fast_call);
    if (!entry) return NULL;
    PyObject *plan = PyTuple_GET_ITEM(entry, 0);
    /* the fast case from here on: every failure sets an exception */
    Py_INCREF(entry);
    Py_XINCREF(raw_args);
    Py_XINCREF(state);
    PyObject *cls = PyTuple_GET_ITEM(plan, 0), *pair = PyTuple_GET_ITEM(plan, 1);
    PyObject *name = PyTuple_GET_ITEM(entry, 2), *result = NULL, *args = NULL, *st = NULL;
    PyObject *r;
    Py_ssize_t slot = PyList_GET_SIZE(w->slots);
    if (PyList_Append(w->slots, w->in_progress) < 0) goto done;
    /* Decoder._arguments: atoms as they are, anything else decoded, in order (iterated as
     * its list comprehension iterates, the length read at each step) */
    if (!(args = PyList_New(0))) goto done;
    for (Py_ssize_t k = 0; raw_args && k < PyList_GET_SIZE(raw_args); k++) {
        PyObject *x = PyList_GET_ITEM(raw_args, k);
        Py_INCREF(x);
        PyObject *a = is_atom(w, x) ? (Py_INCREF(x), x) : walker_dec(w, x, depth);
        Py_DECREF(x);
        if (!a) goto done;
        int bad = PyList_Append(args, a);
        Py_DECREF(a);
        if (bad < 0) goto done;
    }
    Py_SETREF(args, PyList_AsTuple(args));
    if (!args) goto done;
    {
        PyObject *call_args[5] = {NULL, plan, w->str_call, args, Py_None};
        result = PyObject_Vectorcall(w->invoke, call_args + 1,
                                     4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    if (!result) goto done;
    if (slot >= PyList_GET_SIZE(w->slots)) {
        PyErr_SetString(PyExc_RuntimeError, "the slot table shrank during the walk");
        goto fail;
    }
    Py_INCREF(result);
    PyList_SetItem(w->slots, slot, result);
    if (state) {
        st = is_atom(w, state) ? (Py_INCREF(state), state) : walker_dec(w, state, depth);
        if (!st) goto fail;
        PyObject *build_args[4] = {NULL, result, st, name};
        if (Py_TYPE(result) == (PyTypeObject *)cls) {
            /* _apply_build for an instance of such a class: its one getattr(inst,
             * "__setstate__", None), then check_state and the call, or _build_dict */
            PyObject *setstate = PyObject_GetAttr(result, w->str_setstate);
            if (!setstate) {
                if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                    obj_error(w, "state", name, pair);
                    goto fail;
                }
                PyErr_Clear();
            } else if (setstate == Py_None) {
                Py_CLEAR(setstate);
            }
            if (setstate) {
                r = PyObject_Vectorcall(w->check_state, build_args + 1,
                                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
                if (r) {
                    Py_DECREF(r);
                    r = PyObject_CallOneArg(setstate, st);
                }
                Py_DECREF(setstate);
            } else {
                r = PyObject_Vectorcall(w->build_dict, build_args + 1,
                                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            }
        } else {
            r = PyObject_Vectorcall(w->apply_build, build_args + 1,
                                    3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        if (state_step(w, r, name, pair) < 0) goto fail;
    }
    if (finish_node(w, result, pair) < 0) goto fail;
    goto done;
fail:
    Py_CLEAR(result);
done:
    Py_XDECREF(st);
    Py_XDECREF(args);
    Py_XDECREF(state);
    Py_XDECREF(raw_args);
    Py_DECREF(entry);
    return result;
}

/* {"$": "ref", "id"} naming a finished slot: Decoder._ref (the value's items counted again,
 * from _sizes).  NULL with no exception set means "not this case" (nothing done yet): the
 * caller calls the Python handler, which names the problem. */
static PyObject *fast_ref(Walker *w, PyObject *v) {
    PyObject *id = PyDict_GetItemWithError(v, w->str_id);
    if (!id || !PyLong_CheckExact(id)) return NULL;
    int overflow = 0;
    long long ref = PyLong_AsLongLongAndOverflow(id, &overflow);
    if (overflow || ref < 0 || ref >= PyList_GET_SIZE(w->slots)) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *hit = PyList_GET_ITEM(w->slots, (Py_ssize_t)ref);
    if (hit == w->in_progress || hit == w->dropped) return NULL;
    long long n = 0;
    PyObject *size = PyDict_GetItemWithError(w->sizes, id);
    if (size) {
        if (!PyLong_CheckExact(size)) return NULL;
        n = PyLong_AsLongLongAndOverflow(size, &overflow);
        if (overflow || n < 0) {
            PyErr_Clear();
            return NULL;
        }
    } else if (PyErr_Occurred()) {
        return NULL;
    }
    Py_INCREF(hit);
    if (count(w, n) < 0) {
        Py_DECREF(hit);
        return NULL;
    }
    return hit;
}

static PyObject *dec_tagged(Walker *w, PyObject *v, Py_ssize_t depth) {
    if (too_deep(w, depth)) return NULL;
    PyObject *tag = PyDict_GetItemWithError(v, w->str_tag);
    if (!tag && PyErr_Occurred()) return NULL;
    if (tag && PyUnicode_CheckExact(tag) && PyUnicode_Compare(tag, w->str_ndarray) == 0) {
        /* the commonest tag, inlined as in the reference (rule G8); not counted there either */
        PyObject *index = PyDict_GetItemWithError(v, w->str_i);
        if (!index && PyErr_Occurred()) return NULL;
        int has_at = PyDict_Contains(v, w->str_at);
        if (has_at < 0) return NULL;
        if (has_at && index && PyLong_CheckExact(index)) {
            int overflow = 0;
            long long idx = PyLong_AsLongLongAndOverflow(index, &overflow);
            if (!overflow && idx >= 0 && idx < PyList_GET_SIZE(w->arrays)) {
                Py_INCREF(index);
                PyObject *r = dec_ndarray_inline(w, v, index, (Py_ssize_t)idx);
                Py_DECREF(index);
                return r;
            }
        }
    }
    PyObject *found = NULL;
    if (tag && PyUnicode_CheckExact(tag)) {
        found = PyDict_GetItemWithError(w->dispatch, tag);
        if (!found && PyErr_Occurred()) return NULL;
    }
    if (!found) return fail(w, "unknown_tag", tag, NULL);
    if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != 2) {
        PyErr_SetString(PyExc_TypeError, "dispatch entries are (handler, allowed keys)");
        return NULL;
    }
    PyObject *handler = PyTuple_GET_ITEM(found, 0), *allowed = PyTuple_GET_ITEM(found, 1);
    int within = keys_within(v, allowed);
    if (within < 0) return NULL;
    if (!within) return fail(w, "unknown_keys", tag, v);
    Py_ssize_t slot = PyList_GET_SIZE(w->slots);
    long long start = w->items;
    if (count(w, 1) < 0) return NULL;
    PyObject *result;
    Py_INCREF(tag);
    Py_INCREF(handler);
    PyObject *value;
    if (PyUnicode_Compare(tag, w->str_dict) == 0 && PyDict_GET_SIZE(v) == 2 &&
        (value = PyDict_GetItemWithError(v, w->str_v)) != NULL && PyDict_CheckExact(value)) {
        Py_INCREF(value);
        result = dec_plain_dict(w, value, depth + 1);
        Py_DECREF(value);
    } else if (PyErr_Occurred()) {
        result = NULL;
    } else {
        if (PyUnicode_Compare(tag, w->str_obj) == 0)
            result = fast_obj(w, v, depth + 1);
        else if (PyUnicode_Compare(tag, w->str_call) == 0)
            result = fast_call(w, v, depth + 1);
        else if (PyUnicode_Compare(tag, w->str_ref) == 0)
            result = fast_ref(w, v);
        else
            result = NULL;
        if (!result && !PyErr_Occurred()) {
            PyObject *d = PyLong_FromSsize_t(depth + 1);
            if (d) {
                PyObject *args[3] = {w->decoder, v, d};
                result = PyObject_Vectorcall(handler, args, 3, NULL);
                Py_DECREF(d);
            }
        }
    }
    Py_DECREF(handler);
    Py_DECREF(tag);
    if (result && slot < PyList_GET_SIZE(w->slots) &&
        (set_size(w, slot, start) < 0 || drop_slot(w, slot) < 0)) {
        Py_CLEAR(result);
    }
    return result;
}

static PyObject *walker_dec(Walker *w, PyObject *v, Py_ssize_t depth) {
    if (!w->slots) {
        PyErr_SetString(PyExc_RuntimeError, "the walker was released");
        return NULL;
    }
    if (PyDict_CheckExact(v)) {
        if (Py_EnterRecursiveCall(" while decoding graph.json")) return NULL;
        PyObject *r = dec_tagged(w, v, depth);
        Py_LeaveRecursiveCall();
        return r;
    }
    if (PyList_CheckExact(v)) {
        if (Py_EnterRecursiveCall(" while decoding graph.json")) return NULL;
        PyObject *r = dec_list(w, v, depth);
        Py_LeaveRecursiveCall();
        return r;
    }
    if (is_atom(w, v)) {
        Py_INCREF(v);
        return v;
    }
    return fail(w, "json_type", (PyObject *)Py_TYPE(v), NULL);
}

static PyObject *Walker_dec(Walker *w, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "dec(v, depth)");
        return NULL;
    }
    Py_ssize_t depth = PyLong_AsSsize_t(args[1]);
    if (depth == -1 && PyErr_Occurred()) return NULL;
    return walker_dec(w, args[0], depth);
}

static PyObject *Walker_count(Walker *w, PyObject *arg) {
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (count(w, n) < 0) return NULL;
    Py_RETURN_NONE;
}

static int Walker_clear(Walker *w) {
    Py_CLEAR(w->decoder);
    Py_CLEAR(w->dispatch);
    Py_CLEAR(w->atoms);
    Py_CLEAR(w->ndarray_keys);
    Py_CLEAR(w->error);
    Py_CLEAR(w->slots);
    Py_CLEAR(w->arrays);
    Py_CLEAR(w->sizes);
    Py_CLEAR(w->shapes);
    Py_CLEAR(w->pool_next);
    Py_CLEAR(w->pooled);
    Py_CLEAR(w->plans);
    Py_CLEAR(w->in_progress);
    Py_CLEAR(w->obj_error);
    Py_CLEAR(w->set_state);
    Py_CLEAR(w->finish);
    Py_CLEAR(w->fast_call);
    Py_CLEAR(w->invoke);
    Py_CLEAR(w->check_state);
    Py_CLEAR(w->apply_build);
    Py_CLEAR(w->build_dict);
    Py_CLEAR(w->dropped);
    Py_CLEAR(w->keep);
    return 0;
}

static PyObject *Walker_release(Walker *w, PyObject *unused) {
    (void)unused;
    Walker_clear(w);
    Py_RETURN_NONE;
}

static int Walker_traverse(Walker *w, visitproc visit, void *arg) {
    Py_VISIT(w->decoder);
    Py_VISIT(w->dispatch);
    Py_VISIT(w->atoms);
    Py_VISIT(w->ndarray_keys);
    Py_VISIT(w->error);
    Py_VISIT(w->slots);
    Py_VISIT(w->arrays);
    Py_VISIT(w->sizes);
    Py_VISIT(w->shapes);
    Py_VISIT(w->pool_next);
    Py_VISIT(w->pooled);
    Py_VISIT(w->plans);
    Py_VISIT(w->in_progress);
    Py_VISIT(w->obj_error);
    Py_VISIT(w->set_state);
    Py_VISIT(w->finish);
    Py_VISIT(w->fast_call);
    Py_VISIT(w->invoke);
    Py_VISIT(w->check_state);
    Py_VISIT(w->apply_build);
    Py_VISIT(w->build_dict);
    Py_VISIT(w->dropped);
    Py_VISIT(w->keep);
    return 0;
}

static void Walker_dealloc(Walker *w) {
    PyObject_GC_UnTrack(w);
    Walker_clear(w);
    Py_XDECREF(w->str_tag);
    Py_XDECREF(w->str_i);
    Py_XDECREF(w->str_at);
    Py_XDECREF(w->str_shape);
    Py_XDECREF(w->str_order);
    Py_XDECREF(w->str_v);
    Py_XDECREF(w->str_reshape);
    Py_XDECREF(w->str_ndarray);
    Py_XDECREF(w->str_dict);
    Py_XDECREF(w->str_C);
    Py_XDECREF(w->str_F);
    Py_XDECREF(w->kw_order);
    Py_XDECREF(w->str_obj);
    Py_XDECREF(w->str_g);
    Py_XDECREF(w->str_state);
    Py_XDECREF(w->str_new);
    Py_XDECREF(w->str_setstate);
    Py_XDECREF(w->str_call);
    Py_XDECREF(w->str_args);
    Py_XDECREF(w->str_ref);
    Py_XDECREF(w->str_id);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *attr_of(PyObject *obj, const char *name, PyTypeObject *want) {
    PyObject *a = PyObject_GetAttrString(obj, name);
    if (a && want && !Py_IS_TYPE(a, want)) {
        PyErr_Format(PyExc_TypeError, "decoder.%s must be an exact %s", name, want->tp_name);
        Py_CLEAR(a);
    }
    return a;
}

static int Walker_init(Walker *w, PyObject *args, PyObject *kwds) {
    PyObject *decoder, *dispatch, *atoms, *ndarray_keys, *error, *depth_obj, *items_obj;
    long long max_depth, max_items;
    static char *kwlist[] = {"decoder", "dispatch", "atoms", "ndarray_keys", "max_depth",
                             "max_items", "error", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!OO!O!O!O:Walker", kwlist, &decoder,
                                     &PyDict_Type, &dispatch, &atoms, &PyFrozenSet_Type,
                                     &ndarray_keys, &PyLong_Type, &depth_obj, &PyLong_Type,
                                     &items_obj, &error))
        return -1;
    if (clamp_limit(depth_obj, PY_SSIZE_T_MAX, &max_depth) < 0 ||
        clamp_limit(items_obj, LLONG_MAX, &max_items) < 0)
        return -1;
    Walker_clear(w);
    Py_INCREF(decoder);
    w->decoder = decoder;
    Py_INCREF(dispatch);
    w->dispatch = dispatch;
    Py_INCREF(atoms);
    w->atoms = atoms;
    Py_INCREF(ndarray_keys);
    w->ndarray_keys = ndarray_keys;
    Py_INCREF(error);
    w->error = error;
    w->max_depth = (Py_ssize_t)max_depth;
    w->max_items = max_items;
    w->items = 0;
    if (!(w->slots = attr_of(decoder, "slots", &PyList_Type))) return -1;
    if (!(w->arrays = attr_of(decoder, "arrays", &PyList_Type))) return -1;
    if (!(w->sizes = attr_of(decoder, "_sizes", &PyDict_Type))) return -1;
    if (!(w->shapes = attr_of(decoder, "_shapes", &PyDict_Type))) return -1;
    if (!(w->pool_next = attr_of(decoder, "_pool_next", &PyDict_Type))) return -1;
    if (!(w->pooled = attr_of(decoder, "_pooled", NULL))) return -1;
    if (!(w->plans = attr_of(decoder, "_plans", &PyDict_Type))) return -1;
    if (!(w->in_progress = attr_of(decoder, "_in_progress", NULL))) return -1;
    if (!(w->obj_error = attr_of(decoder, "_obj_error", NULL))) return -1;
    if (!(w->set_state = attr_of(decoder, "_set_state", NULL))) return -1;
    if (!(w->fast_call = attr_of(decoder, "_fast_call", NULL))) return -1;
    if (!(w->check_state = attr_of(decoder, "_check_state", NULL))) return -1;
    if (!(w->apply_build = attr_of(decoder, "_apply_build", NULL))) return -1;
    if (!(w->build_dict = attr_of(decoder, "_build_dict", NULL))) return -1;
    if (!(w->dropped = attr_of(decoder, "_dropped", NULL))) return -1;
    if (!(w->keep = attr_of(decoder, "_keep", NULL))) return -1;
    if (w->keep != Py_None && !PyAnySet_Check(w->keep)) {
        PyErr_SetString(PyExc_TypeError, "decoder._keep must be None or a set");
        return -1;
    }
    PyObject *consume = PyObject_GetAttrString(decoder, "_consume");
    if (!consume) return -1;
    w->consume = PyObject_IsTrue(consume);
    Py_DECREF(consume);
    if (w->consume < 0) return -1;
    PyObject *builder = attr_of(decoder, "builder", NULL);
    if (!builder) return -1;
    w->finish = attr_of(builder, "finish", NULL);
    w->invoke = w->finish ? attr_of(builder, "invoke", NULL) : NULL;
    Py_DECREF(builder);
    if (!w->finish || !w->invoke) return -1;
#define INTERN(field, text) \
    if (!w->field && !(w->field = PyUnicode_InternFromString(text))) return -1
    INTERN(str_tag, "$");
    INTERN(str_i, "i");
    INTERN(str_at, "at");
    INTERN(str_shape, "shape");
    INTERN(str_order, "order");
    INTERN(str_v, "v");
    INTERN(str_reshape, "reshape");
    INTERN(str_ndarray, "ndarray");
    INTERN(str_dict, "dict");
    INTERN(str_C, "C");
    INTERN(str_F, "F");
    INTERN(str_obj, "obj");
    INTERN(str_g, "g");
    INTERN(str_state, "state");
    INTERN(str_new, "__new__");
    INTERN(str_setstate, "__setstate__");
    INTERN(str_call, "call");
    INTERN(str_args, "args");
    INTERN(str_ref, "ref");
    INTERN(str_id, "id");
#undef INTERN
    if (!w->kw_order && !(w->kw_order = Py_BuildValue("(O)", w->str_order))) return -1;
    return 0;
}

static PyObject *Walker_get_items(Walker *w, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(w->items);
}

static int Walker_set_items(Walker *w, PyObject *value, void *closure) {
    (void)closure;
    if (!value) {
        PyErr_SetString(PyExc_TypeError, "items can not be deleted");
        return -1;
    }
    long long n = PyLong_AsLongLong(value);
    if (n == -1 && PyErr_Occurred()) return -1;
    w->items = n;
    return 0;
}

static PyGetSetDef Walker_getset[] = {
    {"items", (getter)Walker_get_items, (setter)Walker_set_items, "values counted so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Walker_methods[] = {
    {"dec", (PyCFunction)(void (*)(void))Walker_dec, METH_FASTCALL, "Decoder.dec(v, depth)."},
    {"count", (PyCFunction)Walker_count, METH_O, "Decoder._count(n)."},
    {"release", (PyCFunction)Walker_release, METH_NOARGS, "Drop every reference."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "safeload.format._walk.Walker",
    .tp_basicsize = sizeof(Walker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Decoder.dec at C speed (see the module source).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Walker_init,
    .tp_dealloc = (destructor)Walker_dealloc,
    .tp_traverse = (traverseproc)Walker_traverse,
    .tp_clear = (inquiry)Walker_clear,
    .tp_methods = Walker_methods,
    .tp_getset = Walker_getset,
};

/* ref_ids(doc) -> set: decode.ref_ids (its Python body is the reference): the id of every
 * {"$": "ref", "id": int} object in parsed JSON, every dict value and list item visited. */
static PyObject *walk_ref_ids(PyObject *module, PyObject *doc) {
    (void)module;
    static PyObject *s_tag, *s_ref, *s_id;
    if (!s_tag && !(s_tag = PyUnicode_InternFromString("$"))) return NULL;
    if (!s_ref && !(s_ref = PyUnicode_InternFromString("ref"))) return NULL;
    if (!s_id && !(s_id = PyUnicode_InternFromString("id"))) return NULL;
    PyObject *found = PySet_New(NULL), *stack = PyList_New(0), *x = NULL;
    if (!found || !stack || PyList_Append(stack, doc) < 0) goto fail;
    while (PyList_GET_SIZE(stack) > 0) {
        Py_ssize_t n = PyList_GET_SIZE(stack);
        x = Py_NewRef(PyList_GET_ITEM(stack, n - 1));
        if (PyList_SetSlice(stack, n - 1, n, NULL) < 0) goto fail;
        if (PyDict_CheckExact(x)) {
            PyObject *tag = PyDict_GetItemWithError(x, s_tag);
            if (!tag && PyErr_Occurred()) goto fail;
            if (tag && PyUnicode_CheckExact(tag) && PyUnicode_Compare(tag, s_ref) == 0) {
                PyObject *id = PyDict_GetItemWithError(x, s_id);
                if (!id && PyErr_Occurred()) goto fail;
                if (id && PyLong_CheckExact(id) && PySet_Add(found, id) < 0) goto fail;
            }
            PyObject *k, *v;
            Py_ssize_t pos = 0;
            while (PyDict_Next(x, &pos, &k, &v)) {
                if ((PyDict_CheckExact(v) || PyList_CheckExact(v)) && PyList_Append(stack, v) < 0)
                    goto fail;
            }
        } else if (PyList_CheckExact(x)) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(x); i++) {
                PyObject *v = PyList_GET_ITEM(x, i);
                if ((PyDict_CheckExact(v) || PyList_CheckExact(v)) && PyList_Append(stack, v) < 0)
                    goto fail;
            }
        }
        Py_CLEAR(x);
    }
    Py_DECREF(stack);
    return found;
fail:
    Py_XDECREF(x);
    Py_XDECREF(stack);
    Py_XDECREF(found);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"ref_ids", (PyCFunction)walk_ref_ids, METH_O, "decode.ref_ids(doc) at C speed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", "The safe-format decoder's walk at C speed.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__walk(void) {
    if (PyType_Ready(&WalkerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&WalkerType);
    if (PyModule_AddObject(m, "Walker", (PyObject *)&WalkerType) < 0) {
        Py_DECREF(&WalkerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
