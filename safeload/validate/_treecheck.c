/*
 * C kernels of safeload.validate: one O(n) pass over a tree-shaped node array, with the same
 * structural checks as the numpy references in safeload/validate/tree.py and
 * safeload/validate/hist_gradient_boosting.py.  A kernel only ever answers "valid" or "not
 * valid"; on "not valid" the caller reruns the numpy reference, which names the first bad
 * field.  A kernel may be stricter than its reference, never looser (hypothesis tests in
 * tests/test_treecheck.py and tests/test_hgbcheck.py).
 *
 *   check(nodes, itemsize, off_left, off_right, off_feature, off_missing,
 *         node_count, n_features, max_depth) -> bool
 *       sklearn/tree/_tree.pyx NODE_DTYPE records: left/right/feature int64 (native),
 *       missing_go_to_left uint8 (off_missing < 0: absent).  Checks:
 *         - a node is a leaf iff both children are -1;
 *         - internal node i: i < left, right < node_count, left != right;
 *           0 <= feature < n_features; missing in {0, 1};
 *         - every node except the root 0 has exactly one parent;
 *         - the depth of the tree (root = 0) is at most max_depth.
 *
 *   check_predictor(nodes, itemsize, off_is_leaf, off_left, off_right, off_feature,
 *                   off_is_categorical, off_missing, off_bitset_idx, n_bitsets,
 *                   feature_end) -> bool
 *       sklearn/ensemble/_hist_gradient_boosting PREDICTOR_RECORD_DTYPE records: is_leaf,
 *       is_categorical, missing_go_to_left uint8, left/right/bitset_idx uint32, feature_idx
 *       int64 (native, any alignment).  Checks:
 *         - is_leaf in {0, 1} for every node;
 *         - internal node i: i < left, right < n; 0 <= feature_idx < feature_end;
 *           is_categorical and missing_go_to_left in {0, 1}; a categorical split has
 *           bitset_idx < n_bitsets;
 *         - every node except the root 0 has exactly one parent.
 *
 *   check_splits(node_arrays, itemsize, off_is_leaf, off_feature, off_is_categorical,
 *                feature_end, is_categorical) -> bool
 *       The estimator-level checks of a HistGradientBoosting model over all its predictors in
 *       one call: node_arrays is a list of 1-D C-contiguous PREDICTOR_RECORD_DTYPE buffers
 *       (empty ones allowed; another shape or strides is "not valid"), is_categorical a
 *       C-contiguous buffer of bytes (the bin mapper's mask).  For every node with
 *       is_leaf == 0: 0 <= feature_idx < feature_end, and when is_categorical != 0,
 *       feature_idx < len(is_categorical) and is_categorical[feature_idx] != 0.  No
 *       structural checks: check_predictor makes them on every predictor.
 *
 *   Batch()  tree checks overlapped with the caller (the loader keeps building on its own
 *            thread while a worker thread, which never takes the GIL, runs `check` passes):
 *       add(token, nodes, itemsize, off_left, off_right, off_feature, off_missing,
 *           node_count, n_features, max_depth) -> None
 *           Queue one `check`.  The batch holds a buffer export of `nodes` (so the memory
 *           stays alive and can not be resized by numpy) until join().  The caller guarantees
 *           that nothing writes the buffer before join() (a Tree's node buffer only changes in
 *           __setstate__, and the loader calls it once per object).  A job goes to the
 *           worker thread when the worker waits for work, else it runs at once on the calling
 *           thread (its nodes are still in cache then): with a free core the passes overlap
 *           the caller, without one they cost what inline passes cost.  The worker starts
 *           once 65536 nodes were checked inline.
 *       join() -> list  Wait for every queued check; return the tokens whose check failed
 *           (in submission order) and release every buffer.  The batch is then finished:
 *           add() raises RuntimeError.  A batch dropped without join() cancels the jobs not
 *           started yet and waits for the running one before releasing the buffers.
 *
 * Passes over at most SMALL_PASS nodes keep the GIL; at most STACK_NODES, their working memory
 * is on the stack.
 *
 * Kernels never read outside the buffer: the record layout is checked against the itemsize
 * and the node count against the buffer length first, and every index is range-checked before
 * it is used.  Working memory: 4 bytes per node (trees), 1 byte per node (predictors), one
 * buffer view per predictor (check_splits).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if !defined(_WIN32)
#include <pthread.h>
#define HAVE_WORKER 1
#else
#define HAVE_WORKER 0
#endif

/* A pass over at most this many nodes keeps the GIL (tens of microseconds at most): releasing
 * and retaking it costs about as much, and hands the GIL to any thread waiting for it (a
 * loader's hashing thread, say), which the caller then waits for. */
#define SMALL_PASS 16384

/* Working memory of a pass over at most this many nodes lives on the stack (4 KiB at most, so
 * a thread started with a small stack size still has room; boosting trees are this small). */
#define STACK_NODES 1024

/* Run `stmt` (which needs no GIL) with the GIL released only when the pass is not small. */
#define RUN_PASS(n_nodes, stmt)                                                                \
    do {                                                                                       \
        if ((n_nodes) <= SMALL_PASS) {                                                         \
            stmt;                                                                              \
        } else {                                                                               \
            Py_BEGIN_ALLOW_THREADS stmt;                                                       \
            Py_END_ALLOW_THREADS                                                               \
        }                                                                                      \
    } while (0)

/* ------------------------------------------------------------------ tree kernel */

typedef struct {
    const char *base;
    Py_ssize_t itemsize, off_l, off_r, off_f, off_m, n, n_features, max_depth;
} TreeJob;

/* Whether the layout is readable at all; a "no" makes the check fail (numpy then names it). */
static int tree_layout_ok(const TreeJob *j, Py_ssize_t buffer_len) {
    return j->n >= 1 && j->itemsize >= 1 && j->off_l >= 0 && j->off_r >= 0 && j->off_f >= 0 &&
           j->off_l <= j->itemsize - 8 && j->off_r <= j->itemsize - 8 &&
           j->off_f <= j->itemsize - 8 && j->off_m < j->itemsize && j->n_features >= 0 &&
           j->max_depth >= 0 && j->max_depth < INT32_MAX - 1 && buffer_len >= 0 &&
           j->n <= buffer_len / j->itemsize && (size_t)j->n < SIZE_MAX / sizeof(int32_t) - 1;
}

/* 1: valid, 0: not valid, -1: out of memory.  Needs no GIL (raw allocator). */
static int tree_check(const TreeJob *j) {
    const Py_ssize_t n = j->n;
    /* level[i] = depth(i) + 1 once node i's parent was seen, 0 before (root: 1) */
    int32_t small[STACK_NODES];
    int32_t *level = small;
    if (n <= STACK_NODES) {
        memset(small, 0, (size_t)n * sizeof(int32_t));
    } else {
        level = (int32_t *)PyMem_RawCalloc((size_t)n, sizeof(int32_t));
        if (!level) return -1;
    }
    const uint64_t un = (uint64_t)n, unf = (uint64_t)j->n_features;
    const int32_t lim = (int32_t)j->max_depth + 1; /* a child's level is at most this */
    const int has_m = j->off_m >= 0;
    int ok = 1;
    level[0] = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *rec = j->base + i * j->itemsize;
        int64_t l, r, f;
        memcpy(&l, rec + j->off_l, sizeof l);
        memcpy(&r, rec + j->off_r, sizeof r);
        const int32_t lv = level[i];
        if (lv == 0) { ok = 0; break; } /* no parent: unreachable (children follow parents) */
        if (l == -1 || r == -1) {
            if (l != r) { ok = 0; break; } /* half a leaf */
            continue;
        }
        memcpy(&f, rec + j->off_f, sizeof f);
        const unsigned m = has_m ? (unsigned char)rec[j->off_m] : 0u;
        const uint64_t ui = (uint64_t)i;
        /* i < c < n  <=>  (c - i - 1) < (n - i - 1) as unsigned */
        if (((uint64_t)l - ui - 1 >= un - ui - 1) | ((uint64_t)r - ui - 1 >= un - ui - 1) |
            ((uint64_t)f >= unf) | (m > 1) | (l == r) | (lv >= lim)) {
            ok = 0;
            break;
        }
        if (level[l] | level[r]) { ok = 0; break; } /* a second parent */
        level[l] = lv + 1;
        level[r] = lv + 1;
    }
    if (level != small) PyMem_RawFree(level);
    return ok;
}

static int parse_tree_args(PyObject *args, Py_ssize_t first, PyObject **obj, TreeJob *j) {
    PyObject *rest = PyTuple_GetSlice(args, first, PY_SSIZE_T_MAX);
    if (!rest) return -1;
    int rc = PyArg_ParseTuple(rest, "Onnnnnnnn:check", obj, &j->itemsize, &j->off_l, &j->off_r,
                              &j->off_f, &j->off_m, &j->n, &j->n_features, &j->max_depth);
    Py_DECREF(rest);
    return rc ? 0 : -1;
}

static PyObject *check(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    TreeJob j;
    if (parse_tree_args(args, 0, &obj, &j) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    j.base = (const char *)view.buf;
    int ok = 0;
    if (tree_layout_ok(&j, view.len)) RUN_PASS(j.n, ok = tree_check(&j));
    PyBuffer_Release(&view);
    if (ok < 0) return PyErr_NoMemory();
    return PyBool_FromLong(ok);
}

/* ------------------------------------------------------------------ predictor kernel */

typedef struct {
    const char *base;
    Py_ssize_t n, itemsize, o_leaf, o_l, o_r, o_f, o_cat, o_m, o_bs, n_bitsets, feature_end;
} PredictorJob;

/* 1: valid, 0: not valid, -1: out of memory.  Needs no GIL (raw allocator). */
static int predictor_check(const PredictorJob *j) {
    const Py_ssize_t n = j->n;
    unsigned char small[STACK_NODES];
    unsigned char *parents = small;
    if (n <= STACK_NODES) {
        memset(small, 0, (size_t)n);
    } else {
        parents = (unsigned char *)PyMem_RawCalloc((size_t)n, 1);
        if (!parents) return -1;
    }
    int ok = 1;
    parents[0] = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *rec = j->base + i * j->itemsize;
        const unsigned leaf = (unsigned char)rec[j->o_leaf];
        if (!parents[i] || leaf > 1) { ok = 0; break; } /* unreachable, or not a flag */
        if (leaf) continue;
        uint32_t l, r, bs;
        int64_t f;
        memcpy(&l, rec + j->o_l, sizeof l);
        memcpy(&r, rec + j->o_r, sizeof r);
        memcpy(&f, rec + j->o_f, sizeof f);
        const unsigned cat = (unsigned char)rec[j->o_cat];
        const unsigned m = (unsigned char)rec[j->o_m];
        if ((Py_ssize_t)l <= i || (Py_ssize_t)r <= i || (Py_ssize_t)l >= n ||
            (Py_ssize_t)r >= n || f < 0 || f >= (int64_t)j->feature_end || cat > 1 || m > 1) {
            ok = 0;
            break;
        }
        if (cat) {
            memcpy(&bs, rec + j->o_bs, sizeof bs);
            if ((uint64_t)bs >= (uint64_t)j->n_bitsets) { ok = 0; break; }
        }
        if (parents[l] || parents[r] || l == r) { ok = 0; break; } /* a second parent */
        parents[l] = 1;
        parents[r] = 1;
    }
    if (parents != small) PyMem_RawFree(parents);
    return ok;
}

static PyObject *check_predictor(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    PredictorJob j;
    if (!PyArg_ParseTuple(args, "Onnnnnnnnnn:check_predictor", &obj, &j.itemsize, &j.o_leaf,
                          &j.o_l, &j.o_r, &j.o_f, &j.o_cat, &j.o_m, &j.o_bs, &j.n_bitsets,
                          &j.feature_end))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    const Py_ssize_t isz = j.itemsize;
    j.base = (const char *)view.buf;
    j.n = isz >= 1 && view.len >= 0 ? view.len / isz : 0;
    int ok = j.n >= 1 && view.len == j.n * isz && j.o_leaf >= 0 && j.o_leaf < isz &&
             j.o_cat >= 0 && j.o_cat < isz && j.o_m >= 0 && j.o_m < isz && j.o_l >= 0 &&
             j.o_l <= isz - 4 && j.o_r >= 0 && j.o_r <= isz - 4 && j.o_bs >= 0 &&
             j.o_bs <= isz - 4 && j.o_f >= 0 && j.o_f <= isz - 8 && j.n_bitsets >= 0 &&
             j.feature_end >= 0;
    if (ok) RUN_PASS(j.n, ok = predictor_check(&j));
    PyBuffer_Release(&view);
    if (ok < 0) return PyErr_NoMemory();
    return PyBool_FromLong(ok);
}

/* 1 when every internal record of one predictor's buffer passes the split checks.  No GIL. */
static int splits_ok(const char *base, Py_ssize_t n, Py_ssize_t itemsize, Py_ssize_t o_leaf,
                     Py_ssize_t o_f, Py_ssize_t o_cat, Py_ssize_t feature_end,
                     const unsigned char *is_cat, Py_ssize_t n_cat) {
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *rec = base + i * itemsize;
        if (rec[o_leaf] != 0) continue; /* the reference looks at is_leaf == 0 only */
        int64_t f;
        memcpy(&f, rec + o_f, sizeof f);
        if (f < 0 || f >= (int64_t)feature_end) return 0;
        if (rec[o_cat] != 0 && (f >= (int64_t)n_cat || !is_cat[f])) return 0;
    }
    return 1;
}

static PyObject *check_splits(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *arrays, *cat_obj;
    Py_ssize_t itemsize, o_leaf, o_f, o_cat, feature_end;
    if (!PyArg_ParseTuple(args, "O!nnnnnO:check_splits", &PyList_Type, &arrays, &itemsize,
                          &o_leaf, &o_f, &o_cat, &feature_end, &cat_obj))
        return NULL;
    if (!(itemsize >= 1 && o_leaf >= 0 && o_leaf < itemsize && o_cat >= 0 &&
          o_cat < itemsize && o_f >= 0 && o_f <= itemsize - 8 && feature_end >= 0))
        Py_RETURN_FALSE;
    Py_buffer cat_view;
    if (PyObject_GetBuffer(cat_obj, &cat_view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    /* Hold a view of every array first so the pass itself can run without the GIL; the list
     * is a snapshot (its items stay referenced by the views, whatever happens to the list). */
    const Py_ssize_t count = PyList_GET_SIZE(arrays);
    Py_buffer *views = (Py_buffer *)PyMem_Calloc((size_t)(count ? count : 1), sizeof(Py_buffer));
    if (!views) {
        PyBuffer_Release(&cat_view);
        return PyErr_NoMemory();
    }
    Py_ssize_t held = 0;
    int ok = cat_view.itemsize == 1, err = 0;
    for (; ok && held < count && held < PyList_GET_SIZE(arrays); held++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(arrays, held));
        int rc = PyObject_GetBuffer(item, &views[held], PyBUF_STRIDES);
        Py_DECREF(item);
        if (rc < 0) {
            err = 1;
            break;
        }
        const Py_buffer *v = &views[held];
        if (v->ndim != 1 || !PyBuffer_IsContiguous(v, 'C') || v->len % itemsize != 0)
            ok = 0; /* not a flat run of whole records */
    }
    /* a buffer export that ran Python code could have resized the list: check nothing then */
    if (ok && !err && (held < count || PyList_GET_SIZE(arrays) != count)) ok = 0;
    if (ok && !err) {
        const unsigned char *is_cat = (const unsigned char *)cat_view.buf;
        const Py_ssize_t n_cat = cat_view.len;
        Py_ssize_t total = 0; /* nodes in all arrays; no overflow: each fits in memory */
        for (Py_ssize_t k = 0; k < held; k++) total += views[k].len / itemsize;
        RUN_PASS(total, for (Py_ssize_t k = 0; ok && k < held; k++) ok = splits_ok(
                            (const char *)views[k].buf, views[k].len / itemsize, itemsize,
                            o_leaf, o_f, o_cat, feature_end, is_cat, n_cat));
    }
    for (Py_ssize_t k = 0; k < held; k++) PyBuffer_Release(&views[k]);
    PyMem_Free(views);
    PyBuffer_Release(&cat_view);
    if (err) return NULL;
    return PyBool_FromLong(ok);
}

/* ------------------------------------------------------------------ Batch */

/* The worker thread starts once this many nodes were checked on the caller's thread (it is not
 * worth starting for one small tree). */
#define INLINE_NODES 65536

typedef struct {
    TreeJob job;
    Py_buffer view;
    PyObject *token;
    int result; /* -2: pending, -1: out of memory, 0: invalid, 1: valid */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    Py_ssize_t count, capacity, inline_nodes;
    int finished;
#if HAVE_WORKER
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    pthread_t thread;
    int sync_ready, started, closing, cancelled, busy;
    Py_ssize_t next; /* the first slot the worker has not taken yet */
#endif
} Batch;

#if HAVE_WORKER
static void *worker_main(void *arg) {
    Batch *b = (Batch *)arg;
    pthread_mutex_lock(&b->mutex);
    for (;;) {
        while (b->next >= b->count && !b->closing) pthread_cond_wait(&b->wake, &b->mutex);
        if (b->next >= b->count || b->cancelled) break;
        Py_ssize_t k = b->next++;
        if (b->slots[k].result != -2) continue; /* decided in add() (unreadable layout) */
        TreeJob job = b->slots[k].job; /* slots may move when add() grows the array */
        b->busy = 1;
        pthread_mutex_unlock(&b->mutex);
        int rc = tree_check(&job);
        pthread_mutex_lock(&b->mutex);
        b->slots[k].result = rc;
        b->busy = 0;
    }
    pthread_mutex_unlock(&b->mutex);
    return NULL;
}

/* Stop taking new jobs (cancel: skip the queued ones), wait for the worker.  No GIL needed. */
static void stop_worker(Batch *b, int cancel) {
    if (!b->started) return;
    pthread_mutex_lock(&b->mutex);
    b->closing = 1;
    if (cancel) b->cancelled = 1;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->mutex);
    pthread_join(b->thread, NULL);
    b->started = 0;
}
#endif

static PyObject *Batch_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Batch() takes no arguments");
        return NULL;
    }
    Batch *b = (Batch *)type->tp_alloc(type, 0);
    if (!b) return NULL;
#if HAVE_WORKER
    if (pthread_mutex_init(&b->mutex, NULL) != 0) {
        Py_DECREF(b);
        return PyErr_Format(PyExc_OSError, "pthread_mutex_init failed");
    }
    if (pthread_cond_init(&b->wake, NULL) != 0) {
        pthread_mutex_destroy(&b->mutex);
        Py_DECREF(b);
        return PyErr_Format(PyExc_OSError, "pthread_cond_init failed");
    }
    b->sync_ready = 1;
#endif
    return (PyObject *)b;
}

static void release_slots(Batch *b) {
    for (Py_ssize_t k = 0; k < b->count; k++) {
        PyBuffer_Release(&b->slots[k].view);
        Py_CLEAR(b->slots[k].token);
    }
    PyMem_Free(b->slots);
    b->slots = NULL;
    b->count = b->capacity = 0;
}

static void Batch_dealloc(Batch *b) {
#if HAVE_WORKER
    if (b->started) {
        Py_BEGIN_ALLOW_THREADS
        stop_worker(b, 1);
        Py_END_ALLOW_THREADS
    }
#endif
    release_slots(b);
#if HAVE_WORKER
    if (b->sync_ready) {
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->mutex);
    }
#endif
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *Batch_add(Batch *b, PyObject *args) {
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "add() takes a token and the check() arguments");
        return NULL;
    }
    if (b->finished) {
        PyErr_SetString(PyExc_RuntimeError, "add() after join()");
        return NULL;
    }
    PyObject *token = PyTuple_GET_ITEM(args, 0);
    PyObject *obj;
    TreeJob job;
    if (parse_tree_args(args, 1, &obj, &job) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    job.base = (const char *)view.buf;
    int result = -2;
    if (!tree_layout_ok(&job, view.len)) result = 0;
    int queue = 0;
#if HAVE_WORKER
    if (result == -2 && b->started) { /* hand it over only to an idle worker */
        pthread_mutex_lock(&b->mutex);
        queue = !b->busy && b->next == b->count;
        pthread_mutex_unlock(&b->mutex);
    } else if (result == -2) {
        queue = b->inline_nodes + job.n > INLINE_NODES;
    }
#endif
    if (result == -2 && !queue) {
        b->inline_nodes += job.n;
        RUN_PASS(job.n, result = tree_check(&job));
        if (result < 0) {
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
        if (b->finished) { /* another thread joined meanwhile: this verdict has nowhere to go */
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_RuntimeError, "join() ran during add()");
            return NULL;
        }
        if (result == 1) { /* nothing to remember */
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
    }
    /* remember the slot: a queued job, or a failed one reported by join() */
#if HAVE_WORKER
    pthread_mutex_lock(&b->mutex);
#endif
    if (b->count == b->capacity) {
        Py_ssize_t cap = b->capacity ? 2 * b->capacity : 64;
        Slot *grown = (size_t)cap < PY_SSIZE_T_MAX / sizeof(Slot)
                          ? (Slot *)PyMem_Realloc(b->slots, (size_t)cap * sizeof(Slot))
                          : NULL;
        if (!grown) {
#if HAVE_WORKER
            pthread_mutex_unlock(&b->mutex);
#endif
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
        b->slots = grown;
        b->capacity = cap;
    }
    Slot *s = &b->slots[b->count];
    s->job = job;
    s->view = view;
    s->token = Py_NewRef(token);
    s->result = result;
    b->count++;
#if HAVE_WORKER
    if (queue && result == -2) {
        if (!b->started) {
            b->next = b->count - 1; /* everything before ran inline */
            if (pthread_create(&b->thread, NULL, worker_main, b) == 0) b->started = 1;
            /* else no thread: the job stays pending and join() runs it */
        }
        if (b->started) pthread_cond_signal(&b->wake);
    }
    pthread_mutex_unlock(&b->mutex);
#endif
    Py_RETURN_NONE;
}

static PyObject *Batch_join(Batch *b, PyObject *Py_UNUSED(ignored)) {
    if (b->finished) {
        PyErr_SetString(PyExc_RuntimeError, "join() called twice");
        return NULL;
    }
    b->finished = 1;
#if HAVE_WORKER
    if (b->started) {
        Py_BEGIN_ALLOW_THREADS
        stop_worker(b, 0);
        Py_END_ALLOW_THREADS
    }
#endif
    PyObject *failed = PyList_New(0);
    int oom = 0;
    for (Py_ssize_t k = 0; failed && k < b->count; k++) {
        int rc = b->slots[k].result;
        if (rc == -2) { /* never picked up (thread could not start): run it now */
            Py_BEGIN_ALLOW_THREADS
            rc = tree_check(&b->slots[k].job);
            Py_END_ALLOW_THREADS
        }
        if (rc < 0) oom = 1;
        else if (rc == 0 && PyList_Append(failed, b->slots[k].token) < 0) Py_CLEAR(failed);
    }
    release_slots(b);
    if (failed && oom) {
        Py_DECREF(failed);
        return PyErr_NoMemory();
    }
    return failed;
}

static PyMethodDef batch_methods[] = {
    {"add", (PyCFunction)Batch_add, METH_VARARGS,
     "add(token, nodes, itemsize, off_left, off_right, off_feature, off_missing, node_count, "
     "n_features, max_depth): queue one tree check (see module doc)."},
    {"join", (PyCFunction)Batch_join, METH_NOARGS,
     "Wait for every queued check; return the tokens whose check failed."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "safeload.validate._treecheck.Batch",
    .tp_basicsize = sizeof(Batch),
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Tree checks run beside the caller; see the module doc.",
    .tp_methods = batch_methods,
    .tp_new = Batch_new,
};

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"check", check, METH_VARARGS, "Structural checks of a tree node array (see module doc)."},
    {"check_predictor", check_predictor, METH_VARARGS,
     "Structural checks of a HistGradientBoosting predictor node array (see module doc)."},
    {"check_splits", check_splits, METH_VARARGS,
     "Feature-width and categorical-mask checks over a list of predictor node arrays (see "
     "module doc)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_treecheck",
    "C kernels of safeload.validate: one pass over tree and predictor nodes.", -1, methods,
};

PyMODINIT_FUNC PyInit__treecheck(void) {
    if (PyType_Ready(&BatchType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "HAVE_WORKER", HAVE_WORKER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
