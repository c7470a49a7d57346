/*
 * C helpers of the build stage (safeload/build.py); the Python code there is the reference.
 *
 *   atomic_kinds(container) -> int   bit 1: every item (for a dict: every key) has an atomic
 *                                    type; bit 2 (dicts only): every value has an atomic type.
 *
 * "Atomic" = exactly int, float, str, bytes, bytearray, bool, NoneType, complex or
 * numpy.ndarray (registered once with set_atomic_types): objects that hold no reference to
 * other parsed objects, so the builder need not visit them.  Subclasses are NOT atomic (exact
 * type test, like `type(x) in ATOMIC` in Python).
 *
 *   is_index_permutation(dict) -> bool   True when the dict is an exact dict whose values are
 *                                    all exact ints forming a permutation of range(len(dict))
 *                                    (a CountVectorizer/DictVectorizer vocabulary_ as
 *                                    safeload.validate.feature_extraction._check_vocab wants
 *                                    it).  False for anything else, including values the
 *                                    reference would accept (numpy integers): the caller then
 *                                    runs the reference, which decides and names the problem.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_ATOMIC 16
static PyTypeObject *atomic[MAX_ATOMIC];
static int n_atomic = 0;

static inline int is_atomic(PyObject *o) {
    PyTypeObject *t = Py_TYPE(o);
    for (int i = 0; i < n_atomic; i++)
        if (t == atomic[i]) return 1;
    return 0;
}

static PyObject *set_atomic_types(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) > MAX_ATOMIC) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of at most 16 types");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(arg); i++) {
        if (!PyType_Check(PyTuple_GET_ITEM(arg, i))) {
            PyErr_SetString(PyExc_TypeError, "expected types");
            return NULL;
        }
    }
    for (int i = 0; i < n_atomic; i++) Py_DECREF(atomic[i]);
    n_atomic = (int)PyTuple_GET_SIZE(arg);
    for (int i = 0; i < n_atomic; i++) {
        atomic[i] = (PyTypeObject *)PyTuple_GET_ITEM(arg, i);
        Py_INCREF(atomic[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *atomic_kinds(PyObject *self, PyObject *obj) {
    (void)self;
    long keys_ok = 1, values_ok = 1;
    if (PyDict_CheckExact(obj)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while ((keys_ok || values_ok) && PyDict_Next(obj, &pos, &k, &v)) {
            if (keys_ok && !is_atomic(k)) keys_ok = 0;
            if (values_ok && !is_atomic(v)) values_ok = 0;
        }
        return PyLong_FromLong(keys_ok | (values_ok << 1));
    }
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) {
        PyObject **items = PySequence_Fast_ITEMS(obj);
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!is_atomic(items[i])) return PyLong_FromLong(0);
        return PyLong_FromLong(1);
    }
    PyObject *it = PyObject_GetIter(obj);
    if (!it) return NULL;
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        int a = is_atomic(item);
        Py_DECREF(item);
        if (!a) { keys_ok = 0; break; }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromLong(keys_ok);
}

static PyObject *is_index_permutation(PyObject *self, PyObject *obj) {
    (void)self;
    if (!PyDict_CheckExact(obj)) Py_RETURN_FALSE;
    Py_ssize_t n = PyDict_GET_SIZE(obj);
    if (n == 0) Py_RETURN_TRUE;
    unsigned char *seen = (unsigned char *)PyMem_Calloc((size_t)n, 1);
    if (!seen) return PyErr_NoMemory();
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int ok = 1;
    while (PyDict_Next(obj, &pos, &k, &v)) {
        if (!PyLong_CheckExact(v)) { ok = 0; break; } /* bool, numpy ints ...: the reference */
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || x < 0 || x >= (long long)n || seen[x]) {
            /* x == -1 with an error set can not happen for an exact int (overflow is flagged) */
            ok = 0;
            break;
        }
        seen[x] = 1;
    }
    PyMem_Free(seen);
    if (PyErr_Occurred()) return NULL;
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"set_atomic_types", set_atomic_types, METH_O, "Register the exact atomic types."},
    {"atomic_kinds", atomic_kinds, METH_O, "Bit 1: items/keys atomic; bit 2: dict values atomic."},
    {"is_index_permutation", is_index_permutation, METH_O,
     "Whether an exact dict's values are exact ints permuting range(len(dict))."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "C helpers of safeload.build and safeload.validate.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
