/*
 * SHA-256 of array members beside the loader, without the GIL (OpenSSL's libcrypto, the
 * library Python's hashlib uses).  safeload/format/archive.py keeps a pure-Python path
 * (hashlib on a `_thread` worker) as the reference and for builds without this module.
 *
 *   Hasher()
 *   Hasher.add(head, data) -> int
 *       Queue SHA-256(head + data) (a bytes header and any C-contiguous buffer) and return its
 *       index.  The hasher holds a buffer export of `data` until the job is hashed and a
 *       later read() or wait() gives the buffers of the jobs done so far back (in job order),
 *       or join(): the caller must not write it meanwhile.  When the worker thread already has a digest waiting, this one is
 *       computed at once on the calling thread (the data was just read, so it is in the CPU
 *       cache, and both cores hash); otherwise it goes to the worker, which starts on the
 *       first add and never takes the GIL.
 *   Hasher.set_file(fd)
 *       Keep a duplicate of the file descriptor `fd` (close-on-exec; closed when the hasher
 *       finishes) for read(); once per hasher.
 *   Hasher.read(offset, head, buffer) -> int
 *       Queue a pread of len(buffer) bytes at `offset` of that file into `buffer` (a writable
 *       C-contiguous buffer), then SHA-256(head + buffer) as add() does.  The worker thread
 *       fills the buffers in read() order, without the GIL, whenever no job it could hash
 *       is waiting (hashes first: the caller reads while it waits); the hash of one waits
 *       for its read.  read() starts no thread: the worker starts at the first wait() whose
 *       job's read is still pending, at join() when two or more jobs are left, or at add()
 *       (below).  The caller must not touch `buffer` before wait() returned for its index.
 *   Hasher.wait(index)
 *       Block (without the GIL) until the read of job `index` is done, reading the next
 *       blocks on this thread too; raises EOFError when the file ended first, OSError when
 *       pread failed.  Jobs from add() are ready at once.
 *   Hasher.join() -> list[str]
 *       Hash (and read) what is still queued on this thread too, wait for the worker,
 *       and return the hex digests in add() / read() order.  The hasher is finished then
 *       (add() and read() raise RuntimeError); a failed read raises EOFError or OSError.
 *   A Hasher dropped without join() cancels the queued digests, waits for the one in hand and
 *   releases every buffer.
 *
 * Reads and hashes overlap the caller's decode: it waits only for the member it needs next
 * (docs/PERFORMANCE.md, session 6).  The worker of read() jobs starts only when the caller
 * first waits (wait() or join()): in a process forked from the one that imported the
 * libraries, the Python code the caller runs before that makes copy-on-write faults, and with a
 * second thread of the process busy on the other CPU each fault interrupts it to flush its TLB.
 * Both threads then ran at about half speed; an 8 MB member read and hashed from the first
 * wait() on loads in 6.73 ms instead of 7.14 in the benchmark's forked children
 * (docs/PERFORMANCE.md, session 11).
 *
 * Why: hashlib needs the GIL between two updates, so a worker thread waits up to the switch
 * interval (5 ms) whenever the loader runs Python (decoding the graph), and the hashing piles
 * up at the end of the load (docs/PERFORMANCE.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    Py_buffer view;
    PyObject *head; /* bytes */
    int state;      /* 0 queued, 1 taken, 2 done, -1 failed */
    int rstate;     /* 0 bytes present, 1 read pending, 2 read in hand, -1 read failed */
    int rerrno;     /* errno of a failed pread; 0: the file ended first */
    long long offset; /* file offset of a read() job */
    unsigned char md[32];
} Job;

typedef struct {
    PyObject_HEAD
    Job *jobs;
    Py_ssize_t count, capacity, next; /* next: the first job nobody took yet */
    Py_ssize_t released;              /* jobs before it gave their buffers back */
    pthread_mutex_t mutex;
    pthread_cond_t wake, done;
    pthread_t thread;
    Py_ssize_t rnext; /* no job before it waits for its read */
    int fd;           /* dup of set_file()'s descriptor, -1 without */
    int sync_ready, started, closing, cancelled, finished, running, start_failed;
    int reads_pending;
} Hasher;

static void release_done(Hasher *h);
static void *worker_main(void *arg);

/* Start the worker thread if it is not running (mutex held, GIL not needed): once, never
 * after join() or stop_worker() (`closing`), and not again after pthread_create failed.
 * Without a thread, wait() reads and join() reads and hashes on the calling thread alone. */
static void start_worker(Hasher *h) {
    if (h->started || h->closing || h->start_failed || h->count == 0) return;
    if (pthread_create(&h->thread, NULL, worker_main, h) == 0)
        h->started = 1;
    else
        h->start_failed = 1;
}

/* SHA-256(head + data) into md; 0 on success. No Python calls: runs without the GIL. */
static int sha256_two(const void *head, size_t head_len, const void *data, size_t len,
                      unsigned char *md) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int out_len = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             (head_len == 0 || EVP_DigestUpdate(ctx, head, head_len) == 1) &&
             (len == 0 || EVP_DigestUpdate(ctx, data, len) == 1) &&
             EVP_DigestFinal_ex(ctx, md, &out_len) == 1 && out_len == 32;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* Hash a job from its snapshot (no mutex, no GIL): 2 done, -1 failed. */
static int run_job(Job *snapshot) {
    return sha256_two(PyBytes_AS_STRING(snapshot->head), (size_t)PyBytes_GET_SIZE(snapshot->head),
                      snapshot->view.buf, (size_t)snapshot->view.len, snapshot->md) == 0
               ? 2
               : -1;
}

/* Move `next` past the jobs add() hashed itself (mutex held). */
static void skip_taken(Hasher *h) {
    while (h->next < h->count) {
        Job *job = &h->jobs[h->next];
        if (job->state == 0 && job->rstate == -1) job->state = -1; /* nothing to hash */
        if (job->state == 0) break;
        h->next++;
    }
}

/* Take the next queued job whose bytes are present (mutex held); -1 when none is ready. */
static Py_ssize_t take(Hasher *h, Job *snapshot) {
    skip_taken(h);
    if (h->next >= h->count || h->cancelled || h->jobs[h->next].rstate != 0) return -1;
    Py_ssize_t k = h->next++;
    h->jobs[k].state = 1;
    *snapshot = h->jobs[k];
    return k;
}

static void finish_job(Hasher *h, Py_ssize_t k, Job *snapshot, int state) {
    memcpy(h->jobs[k].md, snapshot->md, 32);
    h->jobs[k].state = state;
}

static Py_ssize_t take_read(Hasher *h, Job *snapshot);
static void run_read(Hasher *h, Py_ssize_t k, Job *snapshot);

/* The worker thread: hashes the jobs whose bytes are present, in order, and reads the next
 * pending read() job when none is; never takes the GIL.  One thread for both: a separate
 * reader thread made three busy threads on two vCPUs, and in a forked process each
 * copy-on-write fault then sent a TLB-shootdown interrupt to the other CPU
 * (docs/PERFORMANCE.md, session 10). */
static void *worker_main(void *arg) {
    Hasher *h = (Hasher *)arg;
    pthread_mutex_lock(&h->mutex);
    for (;;) {
        Job snapshot;
        Py_ssize_t k = -1, j = -1;
        while ((k = take(h, &snapshot)) < 0 && (j = take_read(h, &snapshot)) < 0 &&
               !h->closing)
            pthread_cond_wait(&h->wake, &h->mutex);
        if (j >= 0) {
            run_read(h, j, &snapshot);
            continue;
        }
        if (k < 0) break;
        h->running = 1;
        pthread_mutex_unlock(&h->mutex);
        int state = run_job(&snapshot);
        pthread_mutex_lock(&h->mutex);
        finish_job(h, k, &snapshot, state);
        h->running = 0;
        pthread_cond_broadcast(&h->done);
    }
    pthread_mutex_unlock(&h->mutex);
    return NULL;
}

/* pread the whole job into its buffer; 0, or -1 with errno (0: the file ended first). */
static int read_job(int fd, char *buf, size_t len, long long offset) {
    while (len > 0) {
        ssize_t got = pread(fd, buf, len, (off_t)offset);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (got == 0) {
            errno = 0;
            return -1;
        }
        buf += got;
        len -= (size_t)got;
        offset += got;
    }
    return 0;
}

/* Take the next job waiting for its read (mutex held): marks it in hand; -1 when none. */
static Py_ssize_t take_read(Hasher *h, Job *snapshot) {
    while (h->rnext < h->count && h->jobs[h->rnext].rstate != 1) h->rnext++;
    if (h->cancelled || h->rnext >= h->count) return -1;
    Py_ssize_t k = h->rnext++;
    h->jobs[k].rstate = 2;
    *snapshot = h->jobs[k];
    return k;
}

/* Read a job taken by take_read (mutex held on entry and exit, released meanwhile). */
static void run_read(Hasher *h, Py_ssize_t k, Job *snapshot) {
    pthread_mutex_unlock(&h->mutex);
    int failed = read_job(h->fd, (char *)snapshot->view.buf, (size_t)snapshot->view.len,
                          snapshot->offset);
    int err = errno;
    pthread_mutex_lock(&h->mutex);
    h->jobs[k].rstate = failed ? -1 : 0;
    h->jobs[k].rerrno = failed ? err : 0;
    h->reads_pending--;
    pthread_cond_broadcast(&h->wake);
    pthread_cond_broadcast(&h->done);
}

static PyObject *Hasher_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Hasher() takes no arguments");
        return NULL;
    }
    Hasher *h = (Hasher *)type->tp_alloc(type, 0);
    if (!h) return NULL;
    h->fd = -1; /* before any failure below: the dealloc closes a descriptor >= 0 */
    if (pthread_mutex_init(&h->mutex, NULL) != 0) {
        Py_DECREF(h);
        return PyErr_Format(PyExc_OSError, "pthread_mutex_init failed");
    }
    if (pthread_cond_init(&h->wake, NULL) != 0) {
        pthread_mutex_destroy(&h->mutex);
        Py_DECREF(h);
        return PyErr_Format(PyExc_OSError, "pthread_cond_init failed");
    }
    if (pthread_cond_init(&h->done, NULL) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->mutex);
        Py_DECREF(h);
        return PyErr_Format(PyExc_OSError, "pthread_cond_init failed");
    }
    h->sync_ready = 1;
    return (PyObject *)h;
}

/* Stop the worker (cancel: skip what is queued) and wait for it.  No GIL needed. */
static void stop_worker(Hasher *h, int cancel) {
    if (h->started) { /* first: it may be reading from fd */
        pthread_mutex_lock(&h->mutex);
        h->closing = 1;
        if (cancel) h->cancelled = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->mutex);
        pthread_join(h->thread, NULL);
        h->started = 0;
    }
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
}

static void release_jobs(Hasher *h) {
    for (Py_ssize_t k = 0; k < h->count; k++) {
        PyBuffer_Release(&h->jobs[k].view);
        Py_CLEAR(h->jobs[k].head);
    }
    PyMem_Free(h->jobs);
    h->jobs = NULL;
    h->count = h->capacity = h->next = h->released = 0;
}

static void Hasher_dealloc(Hasher *h) {
    if (h->started || h->fd >= 0) {
        Py_BEGIN_ALLOW_THREADS
        stop_worker(h, 1);
        Py_END_ALLOW_THREADS
    }
    release_jobs(h);
    if (h->sync_ready) {
        pthread_cond_destroy(&h->done);
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->mutex);
    }
    Py_TYPE(h)->tp_free((PyObject *)h);
}

/* Append a queued job (mutex and GIL held); its index, or -1 when out of memory.  The jobs
 * array may move: the threads work on snapshots of a job's fields. */
static Py_ssize_t push_job(Hasher *h, Py_buffer *view, PyObject *head) {
    if (h->count == h->capacity) {
        Py_ssize_t cap = h->capacity ? 2 * h->capacity : 64;
        Job *grown = (size_t)cap < PY_SSIZE_T_MAX / sizeof(Job)
                         ? (Job *)PyMem_Realloc(h->jobs, (size_t)cap * sizeof(Job))
                         : NULL;
        if (!grown) return -1;
        h->jobs = grown;
        h->capacity = cap;
    }
    Py_ssize_t k = h->count++;
    Job *job = &h->jobs[k];
    memset(job, 0, sizeof(Job));
    job->view = *view;
    job->head = Py_NewRef(head);
    return k;
}

static PyObject *Hasher_add(Hasher *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "add(head: bytes, data: buffer)");
        return NULL;
    }
    if (h->finished) {
        PyErr_SetString(PyExc_RuntimeError, "add() after join()");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    pthread_mutex_lock(&h->mutex);
    Py_ssize_t k = push_job(h, &view, args[0]);
    if (k < 0) {
        pthread_mutex_unlock(&h->mutex);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Job *job = &h->jobs[k];
    /* the worker is behind (a job it has not taken yet): hash this one here, now; take()
     * skips it */
    skip_taken(h);
    int here = h->started && h->next < k;
    if (here) job->state = 1;
    Job snapshot = *job;
    if (!here) start_worker(h); /* else no thread: join() hashes everything here */
    if (!here && h->started) pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mutex);
    if (here) {
        int state;
        Py_BEGIN_ALLOW_THREADS
        state = run_job(&snapshot);
        pthread_mutex_lock(&h->mutex);
        finish_job(h, k, &snapshot, state);
        pthread_mutex_unlock(&h->mutex);
        Py_END_ALLOW_THREADS
    }
    return PyLong_FromSsize_t(k);
}

static PyObject *Hasher_set_file(Hasher *h, PyObject *arg) {
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (value < 0 || value > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "set_file() needs a file descriptor");
        return NULL;
    }
    int fd = (int)value;
    if (h->fd >= 0 || h->finished) {
        PyErr_SetString(PyExc_RuntimeError, "set_file() once, before join()");
        return NULL;
    }
    /* close-on-exec, as Python's own descriptors (PEP 446): a process another thread starts
     * during the load must not inherit the model file */
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return PyErr_SetFromErrno(PyExc_OSError);
    h->fd = own;
    Py_RETURN_NONE;
}

static PyObject *Hasher_read(Hasher *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyLong_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "read(offset: int, head: bytes, buffer)");
        return NULL;
    }
    if (h->finished) {
        PyErr_SetString(PyExc_RuntimeError, "read() after join()");
        return NULL;
    }
    if (h->fd < 0) {
        PyErr_SetString(PyExc_RuntimeError, "read() needs set_file() first");
        return NULL;
    }
    long long offset = PyLong_AsLongLong(args[0]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "read() offset < 0");
        return NULL;
    }
    release_done(h);
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) return NULL;
    pthread_mutex_lock(&h->mutex);
    Py_ssize_t k = push_job(h, &view, args[1]);
    if (k < 0) {
        pthread_mutex_unlock(&h->mutex);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    h->jobs[k].offset = offset;
    h->jobs[k].rstate = view.len > 0 ? 1 : 0;
    if (view.len > 0) h->reads_pending++;
    /* no thread yet: the first wait() or join() starts it (module doc) */
    if (h->started) pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mutex);
    return PyLong_FromSsize_t(k);
}

/* Give back the buffers of the jobs done (read and hashed, or failed) since the last call,
 * in job order (GIL held, mutex not): an array the decode is done with is freed then, not
 * at join() (docs/PERFORMANCE.md, session 10).  Their digests and states stay. */
static void release_done(Hasher *h) {
    for (;;) {
        Py_buffer views[32];
        PyObject *heads[32];
        int n = 0;
        pthread_mutex_lock(&h->mutex);
        while (n < 32 && h->released < h->count) {
            Job *job = &h->jobs[h->released];
            if ((job->state != 2 && job->state != -1) || job->rstate > 0) break;
            views[n] = job->view;
            heads[n] = job->head;
            memset(&job->view, 0, sizeof(Py_buffer)); /* release_jobs() skips it */
            job->head = NULL;
            n++;
            h->released++;
        }
        pthread_mutex_unlock(&h->mutex);
        for (int i = 0; i < n; i++) {
            PyBuffer_Release(&views[i]);
            Py_XDECREF(heads[i]);
        }
        if (n < 32) return;
    }
}

/* Raise for the failed read of job k (GIL held). */
static PyObject *read_failed(Py_ssize_t k, int err) {
    if (err == 0) return PyErr_Format(PyExc_EOFError, "the file ended inside job %zd", k);
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *Hasher_wait(Hasher *h, PyObject *arg) {
    Py_ssize_t k = PyLong_AsSsize_t(arg);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (h->finished || k < 0 || k >= h->count) {
        PyErr_SetString(PyExc_IndexError, "wait() on a job index add() or read() returned");
        return NULL;
    }
    int rstate, err;
    pthread_mutex_lock(&h->mutex);
    rstate = h->jobs[k].rstate;
    if (rstate > 0) {
        pthread_mutex_unlock(&h->mutex);
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&h->mutex);
        start_worker(h);
        /* read the next blocks here too, beside the worker (the reads are what the caller
         * waits for; the worker hashes what is read) */
        while (h->jobs[k].rstate > 0) {
            Job snapshot;
            Py_ssize_t j = take_read(h, &snapshot);
            if (j >= 0)
                run_read(h, j, &snapshot);
            else
                pthread_cond_wait(&h->done, &h->mutex);
        }
        Py_END_ALLOW_THREADS
        rstate = h->jobs[k].rstate;
    }
    err = h->jobs[k].rerrno;
    pthread_mutex_unlock(&h->mutex);
    if (rstate < 0) return read_failed(k, err);
    release_done(h);
    Py_RETURN_NONE;
}

static PyObject *Hasher_join(Hasher *h, PyObject *Py_UNUSED(ignored)) {
    if (h->finished) {
        PyErr_SetString(PyExc_RuntimeError, "join() called twice");
        return NULL;
    }
    h->finished = 1;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&h->mutex);
    skip_taken(h);
    if (h->reads_pending > 0 || h->count - h->next > 1) start_worker(h); /* work for two */
    if (h->started) pthread_cond_signal(&h->wake);
    for (;;) { /* hash the queued jobs here too, beside the worker, as their reads finish */
        Job snapshot;
        Py_ssize_t k = take(h, &snapshot);
        if (k < 0) {
            if (h->reads_pending > 0) {
                k = take_read(h, &snapshot);
                if (k >= 0)
                    run_read(h, k, &snapshot);
                else
                    pthread_cond_wait(&h->done, &h->mutex);
                continue;
            }
            break;
        }
        pthread_mutex_unlock(&h->mutex);
        int state = run_job(&snapshot);
        pthread_mutex_lock(&h->mutex);
        finish_job(h, k, &snapshot, state);
    }
    h->closing = 1; /* no thread starts after join(), whatever another caller does */
    pthread_mutex_unlock(&h->mutex);
    stop_worker(h, 0);
    Py_END_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < h->count; k++) { /* a failed read explains its failed hash */
        if (h->jobs[k].rstate < 0) {
            int err = h->jobs[k].rerrno;
            release_jobs(h);
            return read_failed(k, err);
        }
    }
    PyObject *out = PyList_New(h->count);
    int failed = 0;
    for (Py_ssize_t k = 0; out && k < h->count; k++) {
        if (h->jobs[k].state != 2) {
            failed = 1;
            break;
        }
        char hex[65];
        static const char digits[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
            hex[2 * i] = digits[h->jobs[k].md[i] >> 4];
            hex[2 * i + 1] = digits[h->jobs[k].md[i] & 15];
        }
        PyObject *s = PyUnicode_FromStringAndSize(hex, 64);
        if (!s) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, k, s);
    }
    release_jobs(h);
    if (failed) {
        Py_XDECREF(out);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        return NULL;
    }
    return out;
}

static PyMethodDef hasher_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Hasher_add, METH_FASTCALL,
     "add(head, data) -> index: queue SHA-256(head + data) (see module doc)."},
    {"set_file", (PyCFunction)Hasher_set_file, METH_O,
     "set_file(fd): read() from a duplicate of this descriptor (see module doc)."},
    {"read", (PyCFunction)(void (*)(void))Hasher_read, METH_FASTCALL,
     "read(offset, head, buffer) -> index: pread into buffer, then hash (see module doc)."},
    {"wait", (PyCFunction)Hasher_wait, METH_O,
     "wait(index): block until that job's bytes were read (see module doc)."},
    {"join", (PyCFunction)Hasher_join, METH_NOARGS,
     "Hash what is queued, wait for the worker; return the hex digests in add() order."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HasherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "safeload.format._blockhash.Hasher",
    .tp_basicsize = sizeof(Hasher),
    .tp_dealloc = (destructor)Hasher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SHA-256 digests computed beside the caller without the GIL (module doc).",
    .tp_methods = hasher_methods,
    .tp_new = Hasher_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_blockhash", "SHA-256 beside the loader, without the GIL.", -1, NULL,
};

PyMODINIT_FUNC PyInit__blockhash(void) {
    if (PyType_Ready(&HasherType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&HasherType);
    if (PyModule_AddObject(m, "Hasher", (PyObject *)&HasherType) < 0) {
        Py_DECREF(&HasherType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
