"""Regression test from the attack review of session 3 on an attempt to leave safe-format members in the file
until the graph used them (reverted: the hash no longer covered the bytes used).  It holds for the
format as it is: one read of each member, hashed as read.

The finding as reported:

read_arrays(lazy=True): a lazy member queues (name, None) in `pending` for the file-hashing
thread, but when a member whose *data* is < 64 KiB while header+data >= 64 KiB is also present
(member.size >= _LARGE -> `deferred`), and the deferred total is < _THREAD_HASH, the inline
branch resolves every None from its own `digests` dict -> KeyError on the lazy member's name.
A benign file (e.g. a KNeighborsClassifier on 40 000 x 8 rows) fails to load from a path with a
bare KeyError; from bytes it loads."""

import numpy as np

import safeload


def test_benign_file_with_lazy_and_header_straddling_member_loads(tmp_path):
    arrays = {
        "lazy": np.arange(200_000, dtype=np.float64),  # 1.6 MB: left in the file (lazy)
        "straddle": np.arange(8184, dtype=np.float64),  # 65 472 data bytes + header >= 64 KiB
    }
    path = tmp_path / "a.safeload"
    safeload.dump(arrays, path)
    from_bytes = safeload.load(path.read_bytes())
    got = safeload.load(path)  # KeyError: 'arrays/000000.npy'
    for k in arrays:
        np.testing.assert_array_equal(got[k], from_bytes[k])
