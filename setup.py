"""Build hook for the optional C extension; the project metadata lives in pyproject.toml.

``safeload.readers._opscan`` is the opcode pre-scan at C speed.  It is optional: without a C
compiler the build goes on and :mod:`safeload.readers.opscan` uses its pure-Python reference
implementation (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "safeload.readers._opscan",
            ["safeload/readers/_opscan.c"],
            optional=True,
        )
    ]
)
