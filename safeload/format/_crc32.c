/*
 * CRC-32 (the zip / gzip CRC, reflected polynomial 0xEDB88320) of the safe-format writer.
 *
 *   crc32(data, value=0) -> int      same result as zlib.crc32(data, value), for any
 *                                    C-contiguous bytes-like object (the reference).
 *   ACCELERATED                      True when the carry-less multiply path runs on this CPU
 *                                    (x86 PCLMULQDQ); otherwise the writer uses zlib.crc32,
 *                                    which is faster than the byte table kept here for tails.
 *   FOLD_CONSTANTS                   (x86 builds) the four fold constants, for the tests.
 *
 * Why: dump computes the CRC-32 of every array on the main thread while worker threads take
 * the SHA-256; zlib's CRC (about 4 GB/s) is a quarter of the write path's CPU for a forest.
 * Folding 16-byte blocks with carry-less multiplications (Gopal, Ozturk et al., "Fast CRC
 * Computation for Generic Polynomials Using PCLMULQDQ Instruction", Intel 2009) runs at memory
 * speed.  The GIL is released for large buffers.
 *
 * The fold: a 16-byte block loaded little-endian holds, at register bit j, the coefficient of
 * x^(127-j) (reflected order).  A carry-less product of two such 64-bit halves represents
 * x * A * B, so multiplying the block's high-degree half (low qword) by x^(n+64) and its
 * low-degree half by x^n, modulo P, uses the constants reflect64(x^(n+63) mod P) and
 * reflect64(x^(n-1) mod P).  The folded 128-bit remainder is congruent to the data it
 * replaces, so the CRC of (remainder, tail) with a zero register is the CRC of the data.
 * The constants are derived (and the whole path checked against zlib) in
 * tests/test_format_writer.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint32_t table[256];

static void make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ ((c & 1) ? 0xEDB88320u : 0);
        table[i] = c;
    }
}

/* the register update, byte at a time (no pre/post inversion) */
static uint32_t crc_bytes(uint32_t reg, const unsigned char *p, size_t n) {
    while (n--) reg = table[(reg ^ *p++) & 0xff] ^ (reg >> 8);
    return reg;
}

static int accelerated = 0;

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CLMUL 1
#include <immintrin.h>

/* reflect64(x^(n-1) mod P) for n = 576, 512 (fold across 64 bytes) and 192, 128 (16 bytes) */
#define K576 0x653d982200000000ULL
#define K512 0xcad38e8f00000000ULL
#define K192 0x65673b4600000000ULL
#define K128 0x9ba54c6f00000000ULL

__attribute__((target("pclmul,sse2"))) static inline __m128i fold(__m128i x, __m128i k) {
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

#define LOAD(q) _mm_loadu_si128((const __m128i *)(q))

/* the register update over n >= 64 bytes */
__attribute__((target("pclmul,sse2"))) static uint32_t crc_clmul(uint32_t reg,
                                                                const unsigned char *p,
                                                                size_t n) {
    const __m128i k64 = _mm_set_epi64x((long long)K512, (long long)K576);
    const __m128i k16 = _mm_set_epi64x((long long)K128, (long long)K192);
    /* a register value is the same as xor-ing it into the first four bytes */
    __m128i x0 = _mm_xor_si128(LOAD(p), _mm_cvtsi32_si128((int)reg));
    __m128i x1 = LOAD(p + 16), x2 = LOAD(p + 32), x3 = LOAD(p + 48);
    p += 64;
    n -= 64;
    while (n >= 64) {
        x0 = _mm_xor_si128(fold(x0, k64), LOAD(p));
        x1 = _mm_xor_si128(fold(x1, k64), LOAD(p + 16));
        x2 = _mm_xor_si128(fold(x2, k64), LOAD(p + 32));
        x3 = _mm_xor_si128(fold(x3, k64), LOAD(p + 48));
        p += 64;
        n -= 64;
    }
    x0 = _mm_xor_si128(fold(x0, k16), x1);
    x0 = _mm_xor_si128(fold(x0, k16), x2);
    x0 = _mm_xor_si128(fold(x0, k16), x3);
    while (n >= 16) {
        x0 = _mm_xor_si128(fold(x0, k16), LOAD(p));
        p += 16;
        n -= 16;
    }
    unsigned char rest[16];
    _mm_storeu_si128((__m128i *)rest, x0);
    return crc_bytes(crc_bytes(0, rest, 16), p, n);
}
#endif

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n) {
    uint32_t reg = ~crc;
#ifdef HAVE_CLMUL
    if (accelerated && n >= 64) return ~crc_clmul(reg, p, n);
#endif
    return ~crc_bytes(reg, p, n);
}

static PyObject *crc32(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    unsigned int value = 0;
    if (!PyArg_ParseTuple(args, "y*|I:crc32", &view, &value)) return NULL;
    uint32_t crc;
    if (view.len >= (1 << 16)) {
        Py_BEGIN_ALLOW_THREADS
        crc = crc_update(value, (const unsigned char *)view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        crc = crc_update(value, (const unsigned char *)view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

static PyMethodDef methods[] = {
    {"crc32", crc32, METH_VARARGS, "crc32(data, value=0) -> int, as zlib.crc32."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_crc32", "CRC-32 of the safe-format writer.", -1, methods,
};

PyMODINIT_FUNC PyInit__crc32(void) {
    make_table();
#ifdef HAVE_CLMUL
    __builtin_cpu_init();
    accelerated = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObject(m, "ACCELERATED", PyBool_FromLong(accelerated)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#ifdef HAVE_CLMUL
    /* for tests/test_crc32.py, which derives them */
    PyObject *k = Py_BuildValue("(KKKK)", K576, K512, K192, K128);
    if (k == NULL || PyModule_AddObject(m, "FOLD_CONSTANTS", k) < 0) {
        Py_XDECREF(k);
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
