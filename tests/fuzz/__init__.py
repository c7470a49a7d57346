"""Fuzz targets for every reader (issue 8): registry, mutators, harness.

``targets.TARGETS`` maps a reader name to its seeds and mutators; ``harness.run_one`` loads and
scans one input and lists what broke the contract (an exception other than ``SafeloadError``, a
hang, a canary, a written file, a file loaded that ``scan`` calls unsafe).  The short run is
``tests/test_fuzz_short.py``; ``make fuzz`` runs ``tools/fuzz.py`` for longer.
"""
