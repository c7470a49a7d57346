"""Structure-aware mutators for the fuzz targets.

Every mutator has the signature ``mutate(data, rng, pool) -> bytes``: ``data`` is the payload of
one target (a pickle stream, a decompressed joblib stream, a zip archive ...), ``rng`` a
:class:`random.Random` (driven by hypothesis or by the fuzz driver) and ``pool`` the other seeds
of the target, for cross-overs.  Mutators never raise on odd input: when one does not apply (no
zip to edit, no opcode to splice) it falls back to a byte flip, so every call returns a mutant.

Families:

* bytes — flips, interesting values, truncation, deletion, insertion, duplication;
* opcodes — splice a fragment (a payload that would leave a canary, a huge length prefix, a
  memo bomb, a forbidden opcode ...) at an opcode boundary, delete / duplicate / swap opcodes,
  splice a run of opcodes from another seed;
* JSON — edit one node of a JSON member of a zip: huge and long numbers, deep nesting, wrong
  types, traversal strings, dropped keys, duplicated keys;
* zip — header edits: member names (``..``, absolute, duplicate), flag bits, compression
  method, CRC, declared sizes, trailing data, dropped and replaced members;
* npy — header edits of ``.npy`` members: object dtype, huge shapes, bad header lengths.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import random
import struct
import zipfile
from collections.abc import Callable, Sequence

Mutator = Callable[[bytes, random.Random, Sequence[bytes]], bytes]

_CANARY_SH = b'touch "$SAFELOAD_CANARY_DIR/fuzz"'
_CANARY_PY = (
    b"import os; open(os.path.join(os.environ['SAFELOAD_CANARY_DIR'], 'fuzz'), 'w').close()"
)


def _short(text: bytes) -> bytes:
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text


#: Opcode fragments spliced into streams.  Each one is a few opcodes that a hostile file could
#: hold: calls that would leave a canary, forbidden opcodes, lying length prefixes, memo bombs.
#: None of them may ever run or allocate what it declares.
FRAGMENTS: tuple[bytes, ...] = (
    b"cos\nsystem\n(S'" + _CANARY_SH.replace(b'"', b"") + b"'\ntR",
    _short(b"builtins") + _short(b"exec") + b"\x93" + _short(b"pass") + b"\x85R",
    b"cbuiltins\nexec\n"
    + pickle.BINUNICODE
    + struct.pack("<I", len(_CANARY_PY))
    + _CANARY_PY
    # (no MARK: exec(code) through TUPLE1)
    + b"\x85R",
    b"(cos\nsystem\nS'true'\no",  # OBJ
    b"(S'true'\nios\nsystem\n",  # INST
    b"cnumpy\nsave\n(S'safeload_canary_fuzz'\nK\x00tR",  # a file write in the cwd
    b"\x82\x01",  # EXT1
    b"\x84\x00\x00\x00\x01",  # EXT4
    b"Q",  # BINPERSID
    b"P1\n",  # PERSID
    b"\x97",  # NEXT_BUFFER
    b"r\xff\xff\xff\x7f",  # LONG_BINPUT 2**31 - 1
    b"p99999999999\n",  # PUT with a huge index
    b"\x8e" + struct.pack("<Q", 1 << 40),  # BINBYTES8 declaring 1 TiB
    b"\x8d" + struct.pack("<Q", 1 << 40),  # BINUNICODE8
    b"\x96" + struct.pack("<Q", 1 << 40),  # BYTEARRAY8
    b"\x95" + struct.pack("<Q", 1 << 40),  # FRAME
    b"\x8b" + struct.pack("<i", 1 << 30),  # LONG4 declaring 1 GiB
    b"B" + struct.pack("<i", -5),  # BINSTRING with a negative length
    b"h\x00",  # BINGET 0
    b"j\xff\xff\x00\x00",  # LONG_BINGET
    b"\x94",  # MEMOIZE
    b"2",  # DUP
    b"0",  # POP
    b"1",  # POP_MARK
    b"(",  # MARK
    b".",  # STOP
    b"b",  # BUILD
    b"R",  # REDUCE
    b"\x81",  # NEWOBJ
    b"\x92",  # NEWOBJ_EX
    b"\x93",  # STACK_GLOBAL
    b"s",  # SETITEM
    b"u",  # SETITEMS
    b"\x90",  # ADDITEMS
    b"\x91",  # FROZENSET
    b"e",  # APPENDS
    b"]" + b"(" * 64 + b"]" * 64 + b"e" * 64,  # nesting
    b"(" * 3000 + b"l" * 3000,  # deep nesting
    b")" + b"\x85" * 3000,  # deep tuple nesting
    b"\x8a\x09" + b"\xff" * 9,  # LONG1 (a big int)
    b"L" + b"9" * 5000 + b"L\n",  # a 5000-digit text LONG
    b"I" + b"9" * 6000 + b"\n",  # INT with 6000 digits (int_max_str_digits)
    b"F1e400\n",  # FLOAT inf
    b"Vsystem\n",  # text UNICODE
    b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(J\x00\x00\x00\x01\x85C\x01btR",
    b"cbuiltins\nbytearray\n(J\x00\x00\x00\x10tR",
    b"cbuiltins\nset\n(cbuiltins\nrange\n(J\x00\x00\x00\x40tRtR",
    b"ccopyreg\n_reconstructor\n(cos\nsystem\ncsubprocess\nPopen\nNtR",
    b"cnumpy\nndarray.tofile\n",
    b"cnumpy.lib._npyio_impl\nos.system\n",
    b"c__builtin__\neval\n",
)

#: The fragments that call something hostile (a shell command, exec, a file write, a
#: reconstructor given Popen, a dotted name reaching os.system): never allowed before STOP.
HOSTILE_FRAGMENTS: tuple[bytes, ...] = tuple(
    f for f in FRAGMENTS if (b"system" in f or b"exec" in f or b"save" in f) and b"R" in f
) + (b"c__builtin__\neval\n", b"cnumpy.lib._npyio_impl\nos.system\n", b"cnumpy\nndarray.tofile\n")

_INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    struct.pack("<Q", 1 << 40),
    struct.pack("<Q", (1 << 64) - 1),
    struct.pack("<i", -1),
    struct.pack("<H", 0xFFFF),
)


# --------------------------------------------------------------------------- bytes
def flip_bytes(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """XOR one to four random bytes with a random non-zero value."""
    buf = bytearray(data) or bytearray(b"\0")
    for _ in range(rng.randint(1, 4)):
        buf[rng.randrange(len(buf))] ^= rng.randint(1, 255)
    return bytes(buf)


def interesting_value(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Overwrite bytes at a random place with a boundary value (0, -1, 2**31, 2**40 ...)."""
    if not data:
        return rng.choice(_INTERESTING)
    value = rng.choice(_INTERESTING)
    pos = rng.randrange(len(data))
    return data[:pos] + value + data[pos + len(value) :]


def truncate(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Cut the data at a random position (possibly to nothing)."""
    return data[: rng.randrange(len(data) + 1)] if data else data


def delete_range(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Delete 1 to 64 bytes at a random position."""
    if not data:
        return b"\0"
    pos = rng.randrange(len(data))
    return data[:pos] + data[pos + rng.randint(1, 64) :]


def insert_bytes(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Insert 1 to 32 random bytes at a random position."""
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + rng.randbytes(rng.randint(1, 32)) + data[pos:]


def duplicate_range(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Copy a random slice of up to 256 bytes to another random position."""
    if not data:
        return b"\0"
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.randint(1, 256)]
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + chunk + data[pos:]


BYTE_MUTATORS: tuple[Mutator, ...] = (
    flip_bytes,
    interesting_value,
    truncate,
    delete_range,
    insert_bytes,
    duplicate_range,
)


# --------------------------------------------------------------------------- opcodes
def opcode_spans(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of every opcode ``pickletools.genops`` can parse from the start.

    Stops at the first opcode it can not parse (joblib's raw array bytes follow a wrapper's
    ``BUILD``; a mutated stream may be invalid), so the spans cover a valid prefix.
    """
    spans: list[tuple[int, int]] = []
    last = None
    try:
        for _op, _arg, pos in pickletools.genops(io.BytesIO(data)):
            if last is not None:
                spans.append((last, pos))
            last = pos
    except Exception:  # noqa: BLE001 - any parse failure ends the walk
        pass
    if last is not None and last < len(data):
        spans.append((last, last + 1))
    return spans


def splice_fragment(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Insert one of :data:`FRAGMENTS` at an opcode boundary (or anywhere without one)."""
    spans = opcode_spans(data)
    frag = rng.choice(FRAGMENTS)
    pos = rng.choice(spans)[rng.randint(0, 1)] if spans else rng.randrange(len(data) + 1)
    return data[:pos] + frag + data[pos:]


def replace_opcode(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Replace one whole opcode (with its argument) by a fragment."""
    spans = opcode_spans(data)
    if not spans:
        return flip_bytes(data, rng)
    start, end = rng.choice(spans)
    return data[:start] + rng.choice(FRAGMENTS) + data[end:]


def delete_opcode(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Delete one to three consecutive opcodes."""
    spans = opcode_spans(data)
    if not spans:
        return delete_range(data, rng)
    i = rng.randrange(len(spans))
    j = min(len(spans) - 1, i + rng.randint(0, 2))
    return data[: spans[i][0]] + data[spans[j][1] :]


def duplicate_opcodes(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Repeat a run of one to eight opcodes in place."""
    spans = opcode_spans(data)
    if not spans:
        return duplicate_range(data, rng)
    i = rng.randrange(len(spans))
    j = min(len(spans) - 1, i + rng.randint(0, 7))
    run = data[spans[i][0] : spans[j][1]]
    return data[: spans[j][1]] + run * rng.randint(1, 3) + data[spans[j][1] :]


def swap_opcodes(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Exchange two opcodes (with their arguments)."""
    spans = opcode_spans(data)
    if len(spans) < 2:
        return flip_bytes(data, rng)
    a, b = sorted(rng.sample(range(len(spans)), 2))
    (s1, e1), (s2, e2) = spans[a], spans[b]
    return data[:s1] + data[s2:e2] + data[e1:s2] + data[s1:e1] + data[e2:]


def crossover_opcodes(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Splice a run of up to 32 opcodes of another seed at an opcode boundary."""
    donors = [p for p in pool if p]
    if not donors:
        return splice_fragment(data, rng)
    donor = rng.choice(donors)
    dspans = opcode_spans(donor)
    if not dspans:
        return splice_fragment(data, rng)
    i = rng.randrange(len(dspans))
    j = min(len(dspans) - 1, i + rng.randint(0, 31))
    run = donor[dspans[i][0] : dspans[j][1]]
    spans = opcode_spans(data)
    pos = rng.choice(spans)[0] if spans else rng.randrange(len(data) + 1)
    return data[:pos] + run + data[pos:]


def edit_argument(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Overwrite the argument bytes of one opcode with a boundary value (lengths, indices)."""
    spans = [s for s in opcode_spans(data) if s[1] - s[0] > 1]
    if not spans:
        return interesting_value(data, rng)
    start, end = rng.choice(spans)
    value = rng.choice(_INTERESTING)[: end - start - 1]
    return data[: start + 1] + value + data[start + 1 + len(value) :]


OPCODE_MUTATORS: tuple[Mutator, ...] = (
    splice_fragment,
    replace_opcode,
    delete_opcode,
    duplicate_opcodes,
    swap_opcodes,
    crossover_opcodes,
    edit_argument,
)


# --------------------------------------------------------------------------- JSON
def _json_nodes(doc, path=()):
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_nodes(v, (*path, i))


_JSON_TEXT_REPLACEMENTS = (
    "1" * 5000,  # a 5000-digit integer (int_max_str_digits is 4300)
    "1e999999",
    "-0.0",
    "NaN",
    "[" * 50_000 + "]" * 50_000,  # deep nesting
    '{"__class__": "system", "__module__": "os", "__loader__": "ObjectNode"}',
    '{"__class__": "call", "__module__": "operator", "__loader__": "OperatorFuncNode"}',
    '"../../../etc/passwd"',
    '"/abs/path.npy"',
    '"\\u0000"',
    "null",
    "true",
    "[]",
    "{}",
    "4294967296",
    "-1",
    '"' + "A" * 100_000 + '"',
)


def _json_replace(doc, path, replacement_text: str, placeholder: str):
    """Put a unique placeholder string at ``path``; the caller swaps in the raw JSON text."""
    if not path:
        return placeholder
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = placeholder
    return doc


def mutate_json_text(text: bytes, rng: random.Random) -> bytes:
    """One JSON edit: replace a node by raw JSON text, drop a key or duplicate a key."""
    try:
        doc = json.loads(text)
    except Exception:  # noqa: BLE001 - not JSON (any more): a byte flip instead
        return flip_bytes(text, rng)
    nodes = list(_json_nodes(doc))
    path, node = rng.choice(nodes)
    action = rng.randrange(4)
    if action == 0 and isinstance(node, dict) and node:
        del node[rng.choice(list(node))]
        return json.dumps(doc).encode()
    if action == 1 and isinstance(node, dict) and node:
        key = rng.choice(list(node))
        body = json.dumps(doc)
        dup = json.dumps({key: "duplicate"})[1:-1]
        marker = json.dumps(key) + ":"
        at = body.find(marker)
        if at >= 0:
            return (body[:at] + dup + ", " + body[at:]).encode()
    if action == 2 and isinstance(node, str):
        swapped = rng.choice(["os", "builtins.eval", "numpy.load", "sklearn.base.clone", ""])
        doc = _json_replace(doc, path, "", swapped)
        return json.dumps(doc).encode()
    placeholder = "\x00safeload-fuzz\x00"
    doc = _json_replace(doc, path, "", placeholder)
    body = json.dumps(doc)
    return body.replace(json.dumps(placeholder), rng.choice(_JSON_TEXT_REPLACEMENTS), 1).encode()


# --------------------------------------------------------------------------- zip
def _zip_members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return [(info, zf.read(info)) for info in zf.infolist()]
    except Exception:  # noqa: BLE001 - not a (valid) zip any more
        return None


def _write_zip(members: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(buf, "w") as zf:
            for info, body in members:
                zf.writestr(info, body)
    return buf.getvalue()


def edit_json_member(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Rewrite the archive with one JSON member edited by :func:`mutate_json_text`."""
    members = _zip_members(data)
    if not members:
        return flip_bytes(data, rng)
    candidates = [i for i, (info, _) in enumerate(members) if info.filename.endswith(".json")]
    if not candidates:
        return flip_bytes(data, rng)
    i = rng.choice(candidates)
    info, body = members[i]
    members[i] = (info, mutate_json_text(body, rng))
    return _write_zip(members)


def _npy_header_edit(body: bytes, rng: random.Random) -> bytes:
    if not body.startswith(b"\x93NUMPY") or len(body) < 10:
        return flip_bytes(body, rng)
    (hlen,) = struct.unpack("<H", body[8:10])
    header = body[10 : 10 + hlen]
    rest = body[10 + hlen :]
    edits = (
        (b"'descr': '", b"'descr': '|O', 'x': '"),
        (b"'shape': (", b"'shape': (68719476736, "),
        (b"'shape': (", b"'shape': (-1, "),
        (b"'fortran_order': False", b"'fortran_order': True"),
        (b"'descr': '", b"'descr': [('a', '|O')], 'y': '"),
        (b"'descr': '", b"'descr': '>U99999999', 'z': '"),
    )
    old, new = rng.choice(edits)
    if rng.random() < 0.2:  # lie about the header length instead
        return (
            body[:8]
            + struct.pack("<H", rng.choice([0, 1, min(hlen + 1, 0xFFFF), 0xFFFF]))
            + body[10:]
        )
    header = header.replace(old, new, 1)
    if len(header) > 0xFFFF:  # a version-1 header length is 16 bits
        return flip_bytes(body, rng)
    return body[:8] + struct.pack("<H", len(header)) + header + rest


def edit_npy_member(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Rewrite the archive with the header of one ``.npy`` member edited."""
    members = _zip_members(data)
    if not members:
        return flip_bytes(data, rng)
    candidates = [i for i, (_, body) in enumerate(members) if body.startswith(b"\x93NUMPY")]
    if not candidates:
        return edit_json_member(data, rng, pool)
    i = rng.choice(candidates)
    info, body = members[i]
    members[i] = (info, _npy_header_edit(body, rng))
    return _write_zip(members)


def edit_zip_structure(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """One structural edit of the archive: names, duplicates, dropped or replaced members."""
    members = _zip_members(data)
    if not members:
        return flip_bytes(data, rng)
    i = rng.randrange(len(members))
    info, body = members[i]
    action = rng.randrange(6)
    if action == 0:
        info.filename = rng.choice(["../" + info.filename, "/" + info.filename, "a\0b"])
    elif action == 1:
        members.append((info, body + b" "))
    elif action == 2 and len(members) > 1:
        del members[i]
    elif action == 3:
        members[i] = (info, rng.choice(FRAGMENTS) + b".")
    elif action == 4:
        info.compress_type = zipfile.ZIP_DEFLATED
    else:
        members[i] = (info, body * rng.randint(2, 4))
    return _write_zip(members)


def edit_member_bytes(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Rewrite the archive with one byte mutator applied to one member's content."""
    members = _zip_members(data)
    if not members:
        return flip_bytes(data, rng)
    i = rng.randrange(len(members))
    info, body = members[i]
    members[i] = (info, rng.choice(BYTE_MUTATORS)(body, rng, ()))
    return _write_zip(members)


_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"


def edit_zip_header(data: bytes, rng: random.Random, pool: Sequence[bytes] = ()) -> bytes:
    """Overwrite one field of a local or central-directory header in place.

    Fields: general-purpose flags (encryption bit ...), compression method, CRC-32, compressed
    and uncompressed sizes, name length; or trailing data after the archive.
    """
    heads = [(i, _LOCAL) for i in _find_all(data, _LOCAL)]
    heads += [(i, _CENTRAL) for i in _find_all(data, _CENTRAL)]
    if not heads or rng.random() < 0.1:
        return data + rng.choice([b"PK\x05\x06", b"\0" * 16, b"cos\nsystem\n"])
    at, kind = rng.choice(heads)
    # offsets of (flags, method, crc, csize, usize, name length) in each header kind
    fields = (
        {"flags": 6, "method": 8, "crc": 14, "csize": 18, "usize": 22, "nlen": 26}
        if kind == _LOCAL
        else {"flags": 8, "method": 10, "crc": 16, "csize": 20, "usize": 24, "nlen": 28}
    )
    name = rng.choice(list(fields))
    off = at + fields[name]
    width = 2 if name in ("flags", "method", "nlen") else 4
    values = {
        "flags": [1, 8, 0x41, 0xFFFF],
        "method": [1, 9, 12, 14, 99, 0xFFFF],
        "crc": [0, 0xFFFFFFFF, rng.getrandbits(32)],
        "csize": [0, 1, 0xFFFFFFFF, 1 << 30],
        "usize": [0, 1, 0xFFFFFFFF, 1 << 30],
        "nlen": [0, 1, 0xFFFF],
    }[name]
    value = rng.choice(values).to_bytes(width, "little")
    return data[:off] + value + data[off + width :]


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, start = [], 0
    while True:
        i = data.find(needle, start)
        if i < 0:
            return out
        out.append(i)
        start = i + 1


ZIP_MUTATORS: tuple[Mutator, ...] = (
    edit_json_member,
    edit_json_member,
    edit_npy_member,
    edit_member_bytes,
    edit_zip_structure,
    edit_zip_header,
)
#: Mutators of the members only (the archive is rewritten by the target's ``encode``).
MEMBER_MUTATORS: tuple[Mutator, ...] = (
    edit_json_member,
    edit_json_member,
    edit_npy_member,
    edit_member_bytes,
    edit_zip_structure,
)


def mutate(
    data: bytes,
    rng: random.Random,
    mutators: Sequence[Mutator],
    pool: Sequence[bytes] = (),
    rounds: int | None = None,
) -> bytes:
    """Apply one to three mutators of ``mutators`` chosen by ``rng``.

    Parameters
    ----------
    data : bytes
        The payload to mutate.
    rng : random.Random
        Source of every choice (a hypothesis-drawn ``Random`` shrinks).
    mutators : sequence of Mutator
        The target's mutators.
    pool : sequence of bytes
        Other seeds, for cross-overs.
    rounds : int, optional
        Number of mutations (default: 1 to 3).

    Returns
    -------
    bytes
        The mutant.
    """
    for _ in range(rounds if rounds is not None else rng.randint(1, 3)):
        data = rng.choice(mutators)(data, rng, pool)
    return data
