"""Build hook for the optional C extensions; the project metadata lives in pyproject.toml.

``safeload.readers._opscan`` is the opcode pre-scan at C speed, ``safeload._speedups`` the
builder's container scan and the vocabulary check, ``safeload.validate._treecheck`` the
one-pass tree and HistGradientBoosting predictor node checks (with a POSIX worker thread that
overlaps tree checks with the build; on Windows they run inline), and ``safeload.format._crc32``
the safe-format writer's CRC-32 with carry-less multiplication (x86 PCLMULQDQ; elsewhere the
writer keeps ``zlib.crc32``), ``safeload.format._walk`` the safe-format decoder's walk over graph.json, and
``safeload.format._blockhash`` SHA-256 of array members on a thread that never takes the GIL
(needs OpenSSL's headers and libcrypto, which Python's hashlib uses).  All are optional: without a C compiler the build goes on and the
pure-Python/numpy reference implementations run (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "safeload.readers._opscan",
            ["safeload/readers/_opscan.c"],
            optional=True,
        ),
        Extension("safeload._speedups", ["safeload/_speedups.c"], optional=True),
        Extension(
            "safeload.validate._treecheck",
            ["safeload/validate/_treecheck.c"],
            optional=True,
        ),
        Extension("safeload.format._crc32", ["safeload/format/_crc32.c"], optional=True),
        Extension("safeload.format._walk", ["safeload/format/_walk.c"], optional=True),
        Extension(
            "safeload.format._blockhash",
            ["safeload/format/_blockhash.c"],
            libraries=["crypto"],
            optional=True,
        ),
    ]
)
