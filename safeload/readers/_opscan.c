/*
 * safeload.readers._opscan: the opcode pre-scan of opscan.py at C speed.
 *
 * scan(buffer, start, max_opcodes, max_memo, max_int_bytes, max_items, allow_trailing) walks
 * the opcodes of one pickle stream without building anything and returns either
 *
 *     (0, protocol, end, n_opcodes, globals, exts, persids, buffers, trailing,
 *      max_memo_index, joblib, stack_error, hash_visits, collidable, payloads)
 *
 * or, for a stream that must be refused, (error_code, a, b, c).  opscan._error() turns the
 * error tuple into the exception, so messages are defined in Python only.
 *
 * The reference is opscan._scan_opcodes_py: this file must behave exactly like it for every
 * input (tests/test_opscan.py compares both).  The input is untrusted: every read is checked
 * against the buffer length, lengths are compared without overflow, there is no recursion and
 * allocation grows only with the opcodes actually present (the stack model: at most two values
 * per opcode, each with a weight and a hash class; memo indices are bounded by the opcode count
 * or 255).  Weights saturate at 2**62,
 * so sums of two never overflow.  The GIL is released while scanning.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Argument kinds; same numbers as _INVALID ... _LINE2 in opscan.py. */
/* opscan.LARGE_PAYLOAD: bytes payloads recorded in StreamInfo.payload_offsets */
#define LARGE_PAYLOAD 65536

enum { K_INVALID, K_FIXED, K_LEN1, K_LEN4S, K_LEN4U, K_LEN8U, K_LINE, K_LINE2 };

/* Error codes; same numbers as _E_* in opscan.py. */
enum {
    E_OK, E_INVALID_OP, E_NEG_LENGTH, E_PROTO, E_FRAME, E_PAST_END, E_NO_STOP, E_TRAILING,
    E_BAD_PUT, E_MEMO_NOPS, E_MAX_MEMO, E_MAX_INT, E_MAX_OPS, E_MAX_HASH, E_MAX_COLLIDE,
    E_KEY_DEPTH
};

/* Deepest tuple nesting of a dict key or set item hashed (opscan.MAX_KEY_DEPTH): CPython's
 * tuple hash recurses once per level with no stack guard (review 7: 40,000 levels crashed a
 * thread with a 1 MiB stack) */
#define KEY_DEPTH_MAX 1000

/* Opcodes that need more than "skip the argument". */
enum {
    OP_STOP = '.', OP_PROTO = 0x80, OP_FRAME = 0x95, OP_LONG_BINPUT = 'r', OP_PUT = 'p',
    OP_STACK_GLOBAL = 0x93, OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84, OP_PERSID = 'P',
    OP_BINPERSID = 'Q', OP_NEXT_BUFFER = 0x97, OP_READONLY_BUFFER = 0x98, OP_LONG4 = 0x8b,
    OP_BINUNICODE = 'X', OP_BINSTRING = 'T', OP_LONG1 = 0x8a, OP_GET = 'g', OP_APPEND = 'a',
    OP_BINFLOAT = 'G', OP_FLOAT = 'F'
};

/* The opcode table, transcribed from pickletools.opcodes (a test compares the two). */
static const struct { unsigned char code, kind, size; } OPCODES[] = {
    {'I', K_LINE, 0},  {'J', K_FIXED, 4}, {'K', K_FIXED, 1}, {'M', K_FIXED, 2},
    {'L', K_LINE, 0},  {0x8a, K_LEN1, 0}, {0x8b, K_LEN4S, 0}, {'S', K_LINE, 0},
    {'T', K_LEN4S, 0}, {'U', K_LEN1, 0},  {'B', K_LEN4U, 0}, {'C', K_LEN1, 0},
    {0x8e, K_LEN8U, 0}, {0x96, K_LEN8U, 0}, {0x97, K_FIXED, 0}, {0x98, K_FIXED, 0},
    {'N', K_FIXED, 0}, {0x88, K_FIXED, 0}, {0x89, K_FIXED, 0}, {'V', K_LINE, 0},
    {0x8c, K_LEN1, 0}, {'X', K_LEN4U, 0}, {0x8d, K_LEN8U, 0}, {'F', K_LINE, 0},
    {'G', K_FIXED, 8}, {']', K_FIXED, 0}, {'a', K_FIXED, 0}, {'e', K_FIXED, 0},
    {'l', K_FIXED, 0}, {')', K_FIXED, 0}, {'t', K_FIXED, 0}, {0x85, K_FIXED, 0},
    {0x86, K_FIXED, 0}, {0x87, K_FIXED, 0}, {'}', K_FIXED, 0}, {'d', K_FIXED, 0},
    {'s', K_FIXED, 0}, {'u', K_FIXED, 0}, {0x8f, K_FIXED, 0}, {0x90, K_FIXED, 0},
    {0x91, K_FIXED, 0}, {'0', K_FIXED, 0}, {'2', K_FIXED, 0}, {'(', K_FIXED, 0},
    {'1', K_FIXED, 0}, {'g', K_LINE, 0},  {'h', K_FIXED, 1}, {'j', K_FIXED, 4},
    {'p', K_LINE, 0},  {'q', K_FIXED, 1}, {'r', K_FIXED, 4}, {0x94, K_FIXED, 0},
    {0x82, K_FIXED, 1}, {0x83, K_FIXED, 2}, {0x84, K_FIXED, 4}, {'c', K_LINE2, 0},
    {0x93, K_FIXED, 0}, {'R', K_FIXED, 0}, {'b', K_FIXED, 0}, {'i', K_LINE2, 0},
    {'o', K_FIXED, 0}, {0x81, K_FIXED, 0}, {0x92, K_FIXED, 0}, {0x80, K_FIXED, 1},
    {'.', K_FIXED, 0}, {0x95, K_FIXED, 8}, {'P', K_LINE, 0}, {'Q', K_FIXED, 0},
};

static unsigned char KIND[256], SIZE[256], SPECIAL[256];

/* The stack model (opscan._StackModel): semantic classes, same numbers as _S_* in opscan.py. */
enum {
    S_NONE, S_PUSH, S_NEW, S_KEEP, S_SUM, S_KEY, S_PAIRS, S_ALL, S_POP, S_MARK, S_GET, S_PUT,
    S_INT
};

#define W_CAP ((uint64_t)1 << 62)

/* Hash classes of the model's values; same numbers as _H_* in opscan.py. */
enum { H_OPAQUE, H_NARROW, H_WIDE, H_COLLIDE };

/* Per opcode: class, pops to a MARK, values popped (below the mark), values the slice must
 * hold at least, values pushed.  Derived in opscan.py from pickletools' stack_before and
 * stack_after (a test compares the two). */
static const struct { unsigned char code, sem, marked, npop, above, npush; } STACK[] = {
    {'I', S_INT, 0, 0, 0, 1},   {'J', S_PUSH, 0, 0, 0, 1},  {'K', S_PUSH, 0, 0, 0, 1},
    {'M', S_PUSH, 0, 0, 0, 1},  {'L', S_INT, 0, 0, 0, 1},   {0x8a, S_INT, 0, 0, 0, 1},
    {0x8b, S_INT, 0, 0, 0, 1},  {'S', S_PUSH, 0, 0, 0, 1},  {'T', S_PUSH, 0, 0, 0, 1},
    {'U', S_PUSH, 0, 0, 0, 1},  {'B', S_PUSH, 0, 0, 0, 1},  {'C', S_PUSH, 0, 0, 0, 1},
    {0x8e, S_PUSH, 0, 0, 0, 1}, {0x96, S_PUSH, 0, 0, 0, 1}, {0x97, S_PUSH, 0, 0, 0, 1},
    {0x98, S_KEEP, 0, 1, 0, 1}, {'N', S_PUSH, 0, 0, 0, 1},  {0x88, S_PUSH, 0, 0, 0, 1},
    {0x89, S_PUSH, 0, 0, 0, 1}, {'V', S_PUSH, 0, 0, 0, 1},  {0x8c, S_PUSH, 0, 0, 0, 1},
    {'X', S_PUSH, 0, 0, 0, 1},  {0x8d, S_PUSH, 0, 0, 0, 1}, {'F', S_PUSH, 0, 0, 0, 1},
    {'G', S_PUSH, 0, 0, 0, 1},  {']', S_PUSH, 0, 0, 0, 1},  {'a', S_KEEP, 0, 2, 0, 1},
    {'e', S_NEW, 1, 1, 0, 1},   {'l', S_NEW, 1, 0, 0, 1},   {')', S_PUSH, 0, 0, 0, 1},
    {'t', S_SUM, 1, 0, 0, 1},   {0x85, S_SUM, 0, 1, 0, 1},  {0x86, S_SUM, 0, 2, 0, 1},
    {0x87, S_SUM, 0, 3, 0, 1},  {'}', S_PUSH, 0, 0, 0, 1},  {'d', S_PAIRS, 1, 0, 0, 1},
    {'s', S_KEY, 0, 3, 0, 1},   {'u', S_PAIRS, 1, 1, 0, 1}, {0x8f, S_PUSH, 0, 0, 0, 1},
    {0x90, S_ALL, 1, 1, 0, 1},  {0x91, S_ALL, 1, 0, 0, 1},  {'0', S_POP, 0, 1, 0, 0},
    {'2', S_KEEP, 0, 1, 0, 2},  {'(', S_MARK, 0, 0, 0, 0},  {'1', S_NEW, 1, 0, 0, 0},
    {'g', S_GET, 0, 0, 0, 1},   {'h', S_GET, 0, 0, 0, 1},   {'j', S_GET, 0, 0, 0, 1},
    {'p', S_PUT, 0, 1, 0, 1},   {'q', S_PUT, 0, 1, 0, 1},   {'r', S_PUT, 0, 1, 0, 1},
    {0x94, S_PUT, 0, 1, 0, 1},  {0x82, S_PUSH, 0, 0, 0, 1}, {0x83, S_PUSH, 0, 0, 0, 1},
    {0x84, S_PUSH, 0, 0, 0, 1}, {'c', S_PUSH, 0, 0, 0, 1},  {0x93, S_NEW, 0, 2, 0, 1},
    {'R', S_NEW, 0, 2, 0, 1},   {'b', S_KEEP, 0, 2, 0, 1},  {'i', S_NEW, 1, 0, 0, 1},
    {'o', S_NEW, 1, 0, 1, 1},   {0x81, S_NEW, 0, 2, 0, 1},  {0x92, S_NEW, 0, 3, 0, 1},
    {0x80, S_NONE, 0, 0, 0, 0}, {'.', S_NONE, 0, 1, 0, 0},  {0x95, S_NONE, 0, 0, 0, 0},
    {'P', S_PUSH, 0, 0, 0, 1},  {'Q', S_NEW, 0, 1, 0, 1},
};

static unsigned char SEM[256], MARKED[256], NPOP[256], ABOVE[256], NPUSH[256];

/* opscan._ENTERS (items enter a list or a tuple) and opscan._PUSH_CLASS. */
static const unsigned char ENTERS_OPS[] = {'a', 'e', 'l', 't', 0x85, 0x86, 0x87};
static const unsigned char NARROW_OPS[] = {'N', 0x88, 0x89, ')', 'J', 'K', 'M'};
static unsigned char ENTERS[256], PUSH_CLASS[256];

/* opscan.JOBLIB_MARKERS; their lengths (19, 26, 37, 44) are distinct. */
static const char *const MARKERS[] = {
    "joblib.numpy_pickle",
    "joblib.numpy_pickle_compat",
    "sklearn.externals.joblib.numpy_pickle",
    "sklearn.externals.joblib.numpy_pickle_compat",
};
#define N_MARKERS (sizeof MARKERS / sizeof MARKERS[0])

/* Growable array of offsets; grows with opcodes found, never with declared lengths. */
typedef struct {
    uint64_t *v;
    size_t n, cap;
} vec_t;

/* The same for hash classes (kept as long as the weights: cs.n == ws.n). */
typedef struct {
    unsigned char *v;
    size_t n, cap;
} bvec_t;

static int vec_push(vec_t *a, uint64_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        uint64_t *v = PyMem_RawRealloc(a->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

typedef struct {
    /* input */
    const unsigned char *d;
    uint64_t n, start, max_ops, max_memo, max_int, max_items;
    int allow_trailing;
    /* output */
    int protocol, joblib, nomem;
    uint64_t end, nops, trailing;
    int64_t max_memo_index;
    vec_t globals, exts, persids, buffers;
    vec_t payloads;     /* BINBYTES/BINBYTES8/BYTEARRAY8 of LARGE_PAYLOAD bytes or more */
    int err;            /* E_* */
    uint64_t ev[3];     /* the error's numbers */
    unsigned ev_signed; /* bit i set: ev[i] holds an int64_t */
    /* the stack model (opscan._StackModel) */
    vec_t ws;           /* hash weights of the stack's values, bottom first */
    vec_t ds;           /* their tuple nesting (0: not a tuple, or an empty one) */
    bvec_t cs;          /* their hash classes (H_*) */
    vec_t marks;        /* positions in ws */
    uint64_t *memo;     /* weight per memo index; 0: never stored */
    unsigned char *memo_cls; /* class per memo index */
    size_t memo_cap;
    uint64_t memo_len;  /* memo entries stored (MEMOIZE's index) */
    uint64_t memo_max;  /* largest weight ever stored */
    unsigned memo_cmax; /* highest class ever stored */
    uint64_t *memo_d;   /* tuple nesting per memo index */
    uint64_t memo_dmax; /* deepest nesting ever stored */
    uint64_t hashed;    /* objects visited by the hashes so far (hash_visits) */
    uint64_t colliding; /* collidable values placed so far (collidable) */
    int64_t stack_error;
} scan_t;

static void fail(scan_t *s, int code, uint64_t a, uint64_t b, uint64_t c, unsigned sgn)
{
    s->err = code;
    s->ev[0] = a;
    s->ev[1] = b;
    s->ev[2] = c;
    s->ev_signed = sgn;
}

/* int.from_bytes(d[off:off+width], "little", signed=sgn): a short slice at the end of the
 * data gives a narrower integer, exactly as in Python. */
static int64_t read_le(const scan_t *s, uint64_t off, unsigned width, int sgn, uint64_t *uout)
{
    unsigned k = 0;
    uint64_t v = 0;
    if (off < s->n)
        k = s->n - off < width ? (unsigned)(s->n - off) : width;
    for (unsigned i = 0; i < k; i++)
        v |= (uint64_t)s->d[off + i] << (8 * i);
    if (uout)
        *uout = v;
    if (sgn && k > 0 && k < 8 && (v >> (8 * k - 1)) & 1)
        return (int64_t)(v | (~(uint64_t)0 << (8 * k)));
    return (int64_t)v;
}

/* bytes(d[off:off+len]) in JOBLIB_MARKERS */
static int is_marker(const scan_t *s, uint64_t off, uint64_t len)
{
    if (off > s->n || len > s->n - off)
        return 0;
    for (size_t i = 0; i < N_MARKERS; i++)
        if (strlen(MARKERS[i]) == len && memcmp(s->d + off, MARKERS[i], len) == 0)
            return 1;
    return 0;
}

/* opscan._check_memo; returns -1 after fail(). */
static int check_memo(scan_t *s, uint64_t index, uint64_t pos, uint64_t nops)
{
    if (index > nops) {
        fail(s, E_MEMO_NOPS, pos, index, nops, 0);
        return -1;
    }
    if (index > s->max_memo) {
        fail(s, E_MAX_MEMO, pos, index, 0, 0);
        return -1;
    }
    if ((int64_t)index > s->max_memo_index) /* index <= nops < 2**63 */
        s->max_memo_index = (int64_t)index;
    return 0;
}

static int push(scan_t *s, vec_t *a, uint64_t pos)
{
    if (vec_push(a, pos) < 0) {
        s->nomem = 1;
        return -1;
    }
    return 0;
}

/* opscan._special: fixed-size opcodes that need a look; returns -1 to stop the scan. */
static int special(scan_t *s, uint64_t pos, unsigned op, uint64_t nops)
{
    const uint64_t n = s->n;
    uint64_t u;
    switch (op) {
    case OP_PROTO:
        if (pos + 1 < n) {
            s->protocol = s->d[pos + 1];
            if (s->protocol > 5) {
                fail(s, E_PROTO, pos, (uint64_t)s->protocol, 0, 0);
                return -1;
            }
        }
        return 0;
    case OP_LONG_BINPUT:
        read_le(s, pos + 1, 4, 0, &u);
        return check_memo(s, u, pos, nops);
    case OP_FRAME:
        read_le(s, pos + 1, 8, 0, &u);
        /* pos + 9 + u > n, without overflow */
        if (n < pos + 9 || u > n - pos - 9) {
            fail(s, E_FRAME, pos, u, (uint64_t)((int64_t)n - (int64_t)pos - 9), 4);
            return -1;
        }
        return 0;
    case OP_STACK_GLOBAL:
        return push(s, &s->globals, pos);
    case OP_EXT1: case OP_EXT2: case OP_EXT4:
        return push(s, &s->exts, pos);
    case OP_BINPERSID:
        return push(s, &s->persids, pos);
    case OP_NEXT_BUFFER: case OP_READONLY_BUFFER:
        return push(s, &s->buffers, pos);
    }
    return 0;
}

/* ---- the stack model: opscan._StackModel, statement for statement ------------------------ */

/* Push a value of weight w and hash class c. */
static int wpush(scan_t *s, uint64_t w, unsigned c, uint64_t d)
{
    bvec_t *cs = &s->cs;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? 2 * cs->cap : 64;
        unsigned char *v = PyMem_RawRealloc(cs->v, cap);
        if (v == NULL) {
            s->nomem = 1;
            return -1;
        }
        cs->v = v;
        cs->cap = cap;
    }
    if (vec_push(&s->ws, w) < 0 || vec_push(&s->ds, d) < 0) {
        s->nomem = 1;
        return -1;
    }
    cs->v[cs->n++] = (unsigned char)c;
    return 0;
}

/* Drop the values above position n (ws and cs together). */
static void wtruncate(scan_t *s, size_t n)
{
    s->ws.n = n;
    s->cs.n = n;
    s->ds.n = n;
}

/* opscan._nest: the nesting of a tuple of items nested d[0:count] deep. */
static uint64_t tuple_depth(const uint64_t *d, size_t count)
{
    uint64_t m = 0;
    for (size_t i = 0; i < count; i++)
        if (d[i] > m)
            m = d[i];
    return m < KEY_DEPTH_MAX + 1 ? m + 1 : KEY_DEPTH_MAX + 1;
}

/* opscan._combine: the class of a tuple or frozenset of items of classes c[0:count]. */
static unsigned combine(const unsigned char *c, size_t count)
{
    size_t det = 0, wide = 0;
    for (size_t i = 0; i < count; i++) {
        if (c[i] == H_COLLIDE)
            return H_COLLIDE;
        if (c[i]) {
            det++;
            if (c[i] == H_WIDE)
                wide++;
        }
    }
    if (wide && det >= 2)
        return H_COLLIDE;
    if (det < count)
        return H_OPAQUE;
    return wide ? H_WIDE : H_NARROW;
}

/* _StackModel._collide over c[0], c[step], ... below c[count]: each collidable value is
 * charged the number placed before it; returns -1 after fail(). */
static int collide(scan_t *s, unsigned op, uint64_t pos, const unsigned char *c, size_t count,
                   size_t step)
{
    uint64_t t = s->hashed, k = s->colliding;
    int any = 0;
    for (size_t i = 0; i < count; i += step) {
        if (c[i] != H_COLLIDE)
            continue;
        any = 1;
        t += k < W_CAP ? k : W_CAP; /* t <= 2**62 and k capped: no overflow */
        if (t > W_CAP)
            t = W_CAP;
        k++;
    }
    if (!any)
        return 0;
    s->colliding = k;
    s->hashed = t;
    if (t > s->max_items) {
        fail(s, E_MAX_COLLIDE, pos, t, op, 0);
        return -1;
    }
    return 0;
}

/* opscan._int_class, _text_int_class */
static unsigned int_class(uint64_t nbytes)
{
    return nbytes <= 4 ? H_NARROW : nbytes < 8 ? H_WIDE : H_COLLIDE;
}

static unsigned text_int_class(uint64_t nchars)
{
    return nchars <= 9 ? H_NARROW : nchars < 18 ? H_WIDE : H_COLLIDE;
}

/* min(W_CAP, 1 + sum(w[0:count])) */
static uint64_t tuple_weight(const uint64_t *w, size_t count)
{
    uint64_t t = 1;
    for (size_t i = 0; i < count; i++) {
        t += w[i]; /* both <= 2**62: no overflow */
        if (t > W_CAP)
            t = W_CAP;
    }
    return t;
}

/* _StackModel._hash over w[0], w[step], ... below w[count]; returns -1 after fail(). */
static int hash_items(scan_t *s, unsigned op, uint64_t pos, const uint64_t *w,
                      const uint64_t *d, size_t count, size_t step)
{
    uint64_t t = s->hashed, deepest = 0;
    for (size_t i = 0; i < count; i += step) {
        if (d[i] > deepest)
            deepest = d[i];
        t += w[i];
        if (t > W_CAP)
            t = W_CAP;
    }
    s->hashed = t;
    if (t > s->max_items) {
        fail(s, E_MAX_HASH, pos, t, op, 0);
        return -1;
    }
    if (deepest > KEY_DEPTH_MAX) { /* after the budget: a hash bomb is reported as one */
        fail(s, E_KEY_DEPTH, pos, deepest, op, 0);
        return -1;
    }
    return 0;
}

/* memo[idx] = w (idx < 0: MEMOIZE, at memo_len).  idx <= max(opcodes read, 255): the callers
 * checked PUT and LONG_BINPUT indices against the opcode count. */
static int memo_put(scan_t *s, int64_t idx, uint64_t w, unsigned c, uint64_t d)
{
    uint64_t i = idx < 0 ? s->memo_len : (uint64_t)idx;
    if (i >= s->memo_cap) {
        size_t cap = s->memo_cap ? 2 * s->memo_cap : 64;
        while (cap <= i)
            cap *= 2;
        uint64_t *m = PyMem_RawRealloc(s->memo, cap * sizeof *m);
        if (m == NULL) {
            s->nomem = 1;
            return -1;
        }
        s->memo = m;
        unsigned char *mc = PyMem_RawRealloc(s->memo_cls, cap);
        if (mc == NULL) {
            s->nomem = 1;
            return -1;
        }
        s->memo_cls = mc;
        uint64_t *md = PyMem_RawRealloc(s->memo_d, cap * sizeof *md);
        if (md == NULL) {
            s->nomem = 1;
            return -1;
        }
        s->memo_d = md;
        memset(m + s->memo_cap, 0, (cap - s->memo_cap) * sizeof *m);
        memset(mc + s->memo_cap, 0, cap - s->memo_cap);
        memset(md + s->memo_cap, 0, (cap - s->memo_cap) * sizeof *md);
        s->memo_cap = cap;
    }
    if (s->memo[i] == 0)
        s->memo_len++;
    s->memo[i] = w;
    s->memo_cls[i] = (unsigned char)c;
    s->memo_d[i] = d;
    if (d > s->memo_dmax)
        s->memo_dmax = d;
    if (w > s->memo_max)
        s->memo_max = w;
    if (c > s->memo_cmax)
        s->memo_cmax = c;
    return 0;
}

/* _StackModel.step; returns -1 after fail() or on memory exhaustion. */
static int model_step(scan_t *s, unsigned op, uint64_t pos, int64_t arg, unsigned cls)
{
    vec_t *ws = &s->ws, *marks = &s->marks;
    const unsigned char *cs = s->cs.v;
    const unsigned sem = SEM[op];
    uint64_t w;
    unsigned c;
    if (sem == S_PUSH || sem == S_INT)
        return wpush(s, sem == S_INT ? (uint64_t)arg : 1, sem == S_INT ? cls : PUSH_CLASS[op], 0);
    if (sem == S_PUT) { /* the common case first (every memoized value) */
        if (ws->n <= (marks->n ? marks->v[marks->n - 1] : 0)) {
            s->stack_error = (int64_t)pos; /* stack underflow */
            return 0;
        }
        return memo_put(s, arg, ws->v[ws->n - 1], cs[ws->n - 1], s->ds.v[ws->n - 1]);
    }
    if (sem == S_MARK) {
        if (vec_push(marks, ws->n) < 0) {
            s->nomem = 1;
            return -1;
        }
        return 0;
    }
    if (sem == S_POP && marks->n && marks->v[marks->n - 1] == ws->n) {
        marks->n--;
        return 0;
    }
    if (MARKED[op]) {
        if (marks->n == 0) {
            s->stack_error = (int64_t)pos; /* could not find MARK */
            return 0;
        }
        const uint64_t i = marks->v[--marks->n];
        const uint64_t fence = marks->n ? marks->v[marks->n - 1] : 0;
        const uint64_t below = NPOP[op];
        if (i > ws->n || i < fence + below || ws->n - i < ABOVE[op]) {
            s->stack_error = (int64_t)pos; /* stack underflow */
            return 0;
        }
        const uint64_t *items = ws->v + i;
        const uint64_t *depths = s->ds.v + i;
        const unsigned char *classes = cs + i;
        const size_t count = (size_t)(ws->n - i);
        if (sem == S_PAIRS) {
            if (count % 2) {
                s->stack_error = (int64_t)pos; /* odd number of items */
                return 0;
            }
            if (hash_items(s, op, pos, items, depths, count, 2) < 0 ||
                collide(s, op, pos, classes, count, 2) < 0)
                return -1;
        }
        else if (sem == S_ALL) {
            if (hash_items(s, op, pos, items, depths, count, 1) < 0 ||
                collide(s, op, pos, classes, count, 1) < 0)
                return -1;
        }
        else if (ENTERS[op] && collide(s, op, pos, classes, count, 1) < 0)
            return -1;
        w = sem == S_SUM ? tuple_weight(items, count) : 1;
        c = sem == S_SUM || sem == S_ALL ? combine(classes, count) : H_OPAQUE;
        /* a frozenset's hash is cached, but equal keys are compared through it (review 7) */
        const uint64_t d = sem == S_SUM || sem == S_ALL ? tuple_depth(depths, count) : 0;
        wtruncate(s, (size_t)i);
        if (NPUSH[op] > below)
            return wpush(s, w, c, d);
        return 0;
    }
    const uint64_t npop = NPOP[op];
    const uint64_t fence = marks->n ? marks->v[marks->n - 1] : 0;
    if (ws->n < fence + npop) {
        s->stack_error = (int64_t)pos; /* stack underflow */
        return 0;
    }
    uint64_t d = 0;
    if (npop) {
        const uint64_t *popped = ws->v + ws->n - npop;
        const uint64_t *pdepths = s->ds.v + ws->n - npop;
        const unsigned char *classes = cs + ws->n - npop;
        if (sem == S_SUM) {
            w = tuple_weight(popped, (size_t)npop);
            c = combine(classes, (size_t)npop);
            d = tuple_depth(pdepths, (size_t)npop);
            if (collide(s, op, pos, classes, (size_t)npop, 1) < 0)
                return -1;
        }
        else if (sem == S_NEW) {
            w = 1;
            c = H_OPAQUE;
        }
        else {
            w = popped[0];
            c = classes[0];
            d = pdepths[0];
            if (op == OP_APPEND && collide(s, op, pos, classes + 1, (size_t)npop - 1, 1) < 0)
                return -1;
        }
        if (sem == S_KEY && (hash_items(s, op, pos, popped + 1, pdepths + 1, 1, 1) < 0 ||
                             collide(s, op, pos, classes + 1, 1, 1) < 0))
            return -1;
        wtruncate(s, (size_t)(ws->n - npop));
    }
    else if (sem == S_GET) {
        if (arg < 0) {
            w = s->memo_max > 1 ? s->memo_max : 1;
            c = s->memo_cmax;
            d = s->memo_dmax;
        }
        else if ((uint64_t)arg >= s->memo_cap || s->memo[arg] == 0) {
            s->stack_error = (int64_t)pos; /* Memo value not found */
            return 0;
        }
        else {
            w = s->memo[arg];
            c = s->memo_cls[arg];
            d = s->memo_d[arg];
        }
    }
    else {
        w = 1;
        c = cls;
    }
    for (unsigned k = 0; k < NPUSH[op]; k++)
        if (wpush(s, w, c, d) < 0)
            return -1;
    return 0;
}

/* The loop of opscan._scan_opcodes_py, statement for statement.  Runs without the GIL. */
static void scan_stream(scan_t *s)
{
    const unsigned char *d = s->d;
    const uint64_t n = s->n;
    uint64_t pos = s->start, nops = 0, nxt;
    uint64_t past_hi = 0; /* an 8-byte length that ran past the end (Python adds it to pos) */
    int stopped = 0;

    while (pos < n) {
        const unsigned op = d[pos];
        const unsigned kind = KIND[op];
        int64_t arg = 0;
        unsigned cls = H_OPAQUE;
        nops++;
        if (kind == K_FIXED) {
            if (SPECIAL[op]) {
                if (op == OP_STOP) {
                    /* STOP pops the result: an empty frame is an underflow too */
                    if (s->stack_error < 0 &&
                        s->ws.n <= (s->marks.n ? s->marks.v[s->marks.n - 1] : 0))
                        s->stack_error = (int64_t)pos;
                    pos += 1;
                    stopped = 1;
                    break;
                }
                if (special(s, pos, op, nops) < 0)
                    return;
            }
            nxt = pos + 1 + SIZE[op];
            /* the model follows complete opcodes only (a truncated one ends the stream) */
            if (s->stack_error < 0 && nxt <= n) {
                const unsigned sem = SEM[op];
                if (sem == S_PUSH) {
                    if (wpush(s, 1, PUSH_CLASS[op], 0) < 0)
                        return;
                }
                else {
                    if (sem == S_GET || sem == S_PUT) {
                        uint64_t u = 0;
                        if (SIZE[op])
                            read_le(s, pos + 1, SIZE[op], 0, &u);
                        arg = SIZE[op] ? (int64_t)u : -1; /* u < 2**32 */
                    }
                    if (model_step(s, op, pos, arg, H_OPAQUE) < 0)
                        return;
                }
            }
            pos = nxt;
            continue;
        }
        if (kind == K_LEN1) {
            if (pos + 1 >= n)
                break;
            uint64_t len = d[pos + 1];
            if (is_marker(s, pos + 2, len))
                goto joblib;
            if (op == OP_LONG1) {
                if (len > s->max_int) {
                    fail(s, E_MAX_INT, pos, len, op, 0);
                    return;
                }
                arg = 1 + (int64_t)(len >> 3);
                cls = int_class(len);
            }
            nxt = pos + 2 + len;
        }
        else if (kind == K_LEN4U || kind == K_LEN4S) {
            int64_t len = read_le(s, pos + 1, 4, kind == K_LEN4S, NULL);
            if (len < 0) {
                fail(s, E_NEG_LENGTH, pos, op, (uint64_t)len, 4);
                return;
            }
            if (op == OP_LONG4) {
                if ((uint64_t)len > s->max_int) {
                    fail(s, E_MAX_INT, pos, (uint64_t)len, op, 0);
                    return;
                }
                arg = 1 + (len >> 3);
                cls = int_class((uint64_t)len);
            }
            else if ((op == OP_BINUNICODE || op == OP_BINSTRING) &&
                     is_marker(s, pos + 5, (uint64_t)len))
                goto joblib;
            else if (op == 'B' && len >= LARGE_PAYLOAD && push(s, &s->payloads, pos) < 0)
                return;
            nxt = pos + 5 + (uint64_t)len; /* len < 2**32: no overflow */
        }
        else if (kind == K_LEN8U) {
            uint64_t len;
            read_le(s, pos + 1, 8, 0, &len);
            if ((op == 0x8e || op == 0x96) && len >= LARGE_PAYLOAD &&
                push(s, &s->payloads, pos) < 0)
                return;
            if (len > n - pos) { /* certainly past the end; keep the sum in two parts */
                past_hi = len;
                nxt = pos + 9;
            }
            else
                nxt = pos + 9 + len;
        }
        else if (kind == K_LINE || kind == K_LINE2) {
            const unsigned char *nl = memchr(d + pos + 1, '\n', n - pos - 1);
            if (nl == NULL) {
                pos = n + 1;
                break;
            }
            uint64_t end = (uint64_t)(nl - d);
            if (kind == K_LINE2) {
                if (push(s, &s->globals, pos) < 0)
                    return;
                if (is_marker(s, pos + 1, end - pos - 1))
                    goto joblib;
                nl = memchr(d + end + 1, '\n', n - end - 1);
                if (nl == NULL) {
                    pos = n + 1;
                    break;
                }
                end = (uint64_t)(nl - d);
            }
            else if (op == OP_PUT || op == OP_GET) {
                /* 1 to 19 ASCII digits (fits in 64 bits), like _scan_opcodes_py */
                uint64_t ndig = end - pos - 1, index = 0;
                int digits = ndig > 0 && ndig <= 19;
                for (uint64_t i = pos + 1; digits && i < end; i++) {
                    if (d[i] < '0' || d[i] > '9')
                        digits = 0;
                    else
                        index = 10 * index + (d[i] - '0');
                }
                if (op == OP_PUT) {
                    if (!digits) {
                        fail(s, E_BAD_PUT, pos, end, 0, 0);
                        return;
                    }
                    if (check_memo(s, index, pos, nops) < 0)
                        return;
                    arg = (int64_t)index; /* index <= nops */
                }
                else /* GET: other spellings fetch *some* entry: -1, the heaviest */
                    arg = !digits ? -1 : index > INT64_MAX ? INT64_MAX : (int64_t)index;
            }
            else if (op == OP_PERSID) {
                if (push(s, &s->persids, pos) < 0)
                    return;
            }
            else if (SEM[op] == S_INT) {
                arg = 1 + (int64_t)((end - pos - 1) >> 4);
                cls = text_int_class(end - pos - 1);
            }
            nxt = end + 1;
        }
        else {
            fail(s, E_INVALID_OP, pos, op, 0, 0);
            return;
        }
        if (s->stack_error < 0 && !past_hi && nxt <= n && model_step(s, op, pos, arg, cls) < 0)
            return;
        pos = nxt;
        if (nops > s->max_ops) {
            fail(s, E_MAX_OPS, nops, 0, 0, 0);
            return;
        }
        if (past_hi)
            break; /* Python's pos is now > n: the while condition ends the loop */
    }
    if (past_hi || pos > n) {
        fail(s, E_PAST_END, (uint64_t)((int64_t)pos - (int64_t)n), past_hi, 0, 1);
        return;
    }
    if (!stopped) {
        fail(s, E_NO_STOP, n, 0, 0, 0);
        return;
    }
    s->end = pos;
    s->nops = nops;
    if (nops > s->max_ops) {
        fail(s, E_MAX_OPS, nops, 0, 0, 0);
        return;
    }
    s->trailing = n - pos;
    if (s->trailing && !s->allow_trailing)
        fail(s, E_TRAILING, pos - 1, s->trailing, 0, 0);
    return;

joblib:
    s->joblib = 1;
    s->nops = nops;
}

static PyObject *to_list(const vec_t *a)
{
    PyObject *list = PyList_New((Py_ssize_t)a->n);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < a->n; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(a->v[i]);
        if (x == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

static PyObject *ev_obj(const scan_t *s, int i)
{
    if (s->ev_signed & (1u << i))
        return PyLong_FromLongLong((int64_t)s->ev[i]);
    return PyLong_FromUnsignedLongLong(s->ev[i]);
}

static PyObject *build_result(const scan_t *s)
{
    if (s->nomem)
        return PyErr_NoMemory();
    if (s->err) {
        PyObject *a = ev_obj(s, 0), *b = ev_obj(s, 1), *c = ev_obj(s, 2), *res = NULL;
        if (a && b && c)
            res = Py_BuildValue("(iOOO)", s->err, a, b, c);
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(c);
        return res;
    }
    PyObject *g = to_list(&s->globals), *e = to_list(&s->exts);
    PyObject *p = to_list(&s->persids), *b = to_list(&s->buffers), *res = NULL;
    PyObject *pl = to_list(&s->payloads);
    if (g && e && p && b && pl)
        res = Py_BuildValue("(iiKKOOOOKLOLKKO)", 0, s->protocol, (unsigned long long)s->end,
                            (unsigned long long)s->nops, g, e, p, b,
                            (unsigned long long)s->trailing, (long long)s->max_memo_index,
                            s->joblib ? Py_True : Py_False, (long long)s->stack_error,
                            (unsigned long long)s->hashed, (unsigned long long)s->colliding, pl);
    Py_XDECREF(pl);
    Py_XDECREF(g);
    Py_XDECREF(e);
    Py_XDECREF(p);
    Py_XDECREF(b);
    return res;
}

static PyObject *opscan_scan(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *obj;
    Py_ssize_t start;
    unsigned long long max_ops, max_memo, max_int, max_items;
    int allow_trailing;
    if (!PyArg_ParseTuple(args, "OnKKKKp:scan", &obj, &start, &max_ops, &max_memo, &max_int,
                          &max_items, &allow_trailing))
        return NULL;
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "start must be >= 0");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;

    scan_t s;
    memset(&s, 0, sizeof s);
    s.d = view.buf;
    s.n = (uint64_t)view.len;
    s.start = (uint64_t)start;
    s.max_ops = max_ops;
    s.max_memo = max_memo;
    s.max_int = max_int;
    s.max_items = max_items;
    s.allow_trailing = allow_trailing;
    s.max_memo_index = -1;
    s.stack_error = -1;

    Py_BEGIN_ALLOW_THREADS
    scan_stream(&s);
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    PyObject *res = build_result(&s);
    PyMem_RawFree(s.globals.v);
    PyMem_RawFree(s.exts.v);
    PyMem_RawFree(s.persids.v);
    PyMem_RawFree(s.buffers.v);
    PyMem_RawFree(s.payloads.v);
    PyMem_RawFree(s.ws.v);
    PyMem_RawFree(s.ds.v);
    PyMem_RawFree(s.cs.v);
    PyMem_RawFree(s.memo_d);
    PyMem_RawFree(s.memo_cls);
    PyMem_RawFree(s.marks.v);
    PyMem_RawFree(s.memo);
    return res;
}

static PyMethodDef methods[] = {
    {"scan", opscan_scan, METH_VARARGS,
     "scan(buffer, start, max_opcodes, max_memo, max_int_bytes, max_items, allow_trailing)"
     " -> tuple\n\n"
     "The opcode pre-scan of safeload.readers.opscan; use opscan.scan_opcodes()."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_opscan", "C opcode pre-scan for safeload.readers.opscan.", -1,
    methods, NULL, NULL, NULL, NULL,
};

/* PyModule_AddObjectRef that also drops our reference (and accepts NULL after an error). */
static int add(PyObject *m, const char *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int r = PyModule_AddObjectRef(m, name, value);
    Py_DECREF(value);
    return r;
}

PyMODINIT_FUNC PyInit__opscan(void)
{
    for (size_t i = 0; i < sizeof OPCODES / sizeof OPCODES[0]; i++) {
        KIND[OPCODES[i].code] = OPCODES[i].kind;
        SIZE[OPCODES[i].code] = OPCODES[i].size;
    }
    static const unsigned char special_ops[] = {
        OP_STOP, OP_PROTO, OP_FRAME, OP_LONG_BINPUT, OP_STACK_GLOBAL, OP_EXT1, OP_EXT2,
        OP_EXT4, OP_BINPERSID, OP_NEXT_BUFFER, OP_READONLY_BUFFER,
    };
    for (size_t i = 0; i < sizeof special_ops; i++)
        SPECIAL[special_ops[i]] = 1;
    for (size_t i = 0; i < sizeof ENTERS_OPS; i++)
        ENTERS[ENTERS_OPS[i]] = 1;
    for (size_t i = 0; i < sizeof NARROW_OPS; i++)
        PUSH_CLASS[NARROW_OPS[i]] = H_NARROW;
    PUSH_CLASS[OP_BINFLOAT] = PUSH_CLASS[OP_FLOAT] = H_WIDE;
    for (size_t i = 0; i < sizeof STACK / sizeof STACK[0]; i++) {
        const unsigned c = STACK[i].code;
        SEM[c] = STACK[i].sem;
        MARKED[c] = STACK[i].marked;
        NPOP[c] = STACK[i].npop;
        ABOVE[c] = STACK[i].above;
        NPUSH[c] = STACK[i].npush;
    }

    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* For tests: the tables, to compare with pickletools.opcodes and opscan.JOBLIB_MARKERS. */
    PyObject *markers = PyTuple_New(N_MARKERS);
    for (size_t i = 0; markers != NULL && i < N_MARKERS; i++) {
        PyObject *x = PyBytes_FromString(MARKERS[i]);
        if (x == NULL)
            Py_CLEAR(markers);
        else
            PyTuple_SET_ITEM(markers, (Py_ssize_t)i, x);
    }
    if (add(m, "JOBLIB_MARKERS", markers) < 0 ||
        add(m, "KINDS", PyBytes_FromStringAndSize((char *)KIND, 256)) < 0 ||
        add(m, "SIZES", PyBytes_FromStringAndSize((char *)SIZE, 256)) < 0 ||
        add(m, "SPECIAL", PyBytes_FromStringAndSize((char *)SPECIAL, 256)) < 0 ||
        add(m, "SEM", PyBytes_FromStringAndSize((char *)SEM, 256)) < 0 ||
        add(m, "MARKED", PyBytes_FromStringAndSize((char *)MARKED, 256)) < 0 ||
        add(m, "NPOP", PyBytes_FromStringAndSize((char *)NPOP, 256)) < 0 ||
        add(m, "ABOVE", PyBytes_FromStringAndSize((char *)ABOVE, 256)) < 0 ||
        add(m, "NPUSH", PyBytes_FromStringAndSize((char *)NPUSH, 256)) < 0 ||
        add(m, "ENTERS", PyBytes_FromStringAndSize((char *)ENTERS, 256)) < 0 ||
        add(m, "PUSH_CLASS", PyBytes_FromStringAndSize((char *)PUSH_CLASS, 256)) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
