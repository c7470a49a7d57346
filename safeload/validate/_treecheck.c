/*
 * One O(n) pass over a scikit-learn tree node array (sklearn/tree/_tree.pyx NODE_DTYPE):
 * the same structural checks as safeload/validate/tree.py's numpy reference, at C speed.
 *
 *   check(nodes, itemsize, off_left, off_right, off_feature, off_missing,
 *         node_count, n_features, max_depth) -> bool
 *
 * nodes: a contiguous buffer of node_count records of `itemsize` bytes; left/right/feature
 * are int64 (native), missing_go_to_left is uint8 (off_missing < 0: absent).
 * Returns True when every check passes:
 *   - a node is a leaf iff both children are -1;
 *   - internal node i: i < left, right < node_count; 0 <= feature < n_features; missing in {0,1}
 *   - every node except the root 0 has exactly one parent;
 *   - the depth of the tree (children come after parents, so one forward pass) <= max_depth.
 * On False the caller reruns the numpy reference to name the first bad field.
 * Never reads outside the buffer; allocates 5 bytes per node.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int read_i64(const char *rec, Py_ssize_t off, int64_t *out) {
    memcpy(out, rec + off, sizeof(int64_t));
    return 0;
}

static PyObject *check(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    Py_ssize_t itemsize, off_l, off_r, off_f, off_m, n, n_features, max_depth;
    if (!PyArg_ParseTuple(args, "Onnnnnnnn", &obj, &itemsize, &off_l, &off_r, &off_f, &off_m,
                          &n, &n_features, &max_depth))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    int ok = 1;
    if (n < 1 || itemsize < 1 || off_l < 0 || off_r < 0 || off_f < 0 ||
        off_l + 8 > itemsize || off_r + 8 > itemsize || off_f + 8 > itemsize ||
        off_m >= itemsize || n > view.len / itemsize) {
        ok = 0;
    }
    unsigned char *parents = NULL;
    int32_t *depth = NULL;
    if (ok) {
        parents = (unsigned char *)PyMem_Calloc((size_t)n, 1);
        depth = (int32_t *)PyMem_Calloc((size_t)n, sizeof(int32_t));
        if (!parents || !depth) {
            PyMem_Free(parents);
            PyMem_Free(depth);
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
    }
    const char *base = (const char *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        const char *rec = base + i * itemsize;
        int64_t l, r, f;
        read_i64(rec, off_l, &l);
        read_i64(rec, off_r, &r);
        if (l == -1 || r == -1) {
            if (l != r) ok = 0;  /* half a leaf */
            continue;
        }
        read_i64(rec, off_f, &f);
        if (l <= i || r <= i || l >= n || r >= n || f < 0 || f >= n_features) { ok = 0; break; }
        if (off_m >= 0) {
            unsigned char m = (unsigned char)rec[off_m];
            if (m > 1) { ok = 0; break; }
        }
        if (parents[l] || parents[r] || l == r) { ok = 0; break; }
        parents[l] = 1;
        parents[r] = 1;
        int32_t d = depth[i] + 1;
        if (d > max_depth) { ok = 0; break; }
        depth[l] = d;
        depth[r] = d;
    }
    for (Py_ssize_t i = 1; ok && i < n; i++) {
        if (!parents[i]) ok = 0;  /* unreachable node */
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(parents);
    PyMem_Free(depth);
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"check", check, METH_VARARGS, "Structural checks of a tree node array (see module doc)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_treecheck",
    "C kernel of safeload.validate.tree: one pass over sklearn tree nodes.", -1, methods,
};

PyMODINIT_FUNC PyInit__treecheck(void) { return PyModule_Create(&module); }
