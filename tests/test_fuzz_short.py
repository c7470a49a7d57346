"""The short fuzz run of ``make test``: every registered reader, a few hundred mutants each.

For each target of :data:`tests.fuzz.targets.TARGETS` (pickle, joblib plain and with each
compressor, skops, the safe format once ``safeload.dump`` exists) hypothesis draws a
``random.Random`` that picks a seed and one to three structure-aware mutations (opcode splices
of hostile fragments, byte flips, truncations, JSON / zip / npy header edits).  Every mutant must
load or be refused with a ``SafeloadError``, within the time bound, without a canary or a
written file, and a mutant that loads must be one ``scan`` calls safe.  The run is derandomized
(the same mutants each time, so ``make test`` is stable); ``SAFELOAD_FUZZ_RANDOM=1`` draws new
ones, ``make fuzz`` runs the same targets for longer in child processes (crashes, hangs).

The whole module takes about a minute on one core.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safeload

from .fuzz.conftest import fuzz_sandbox  # noqa: F401 - the fixture
from .fuzz.harness import run_one, save_failure
from .fuzz.mutators import FRAGMENTS, HOSTILE_FRAGMENTS, mutate
from .fuzz.targets import FUZZ_LIMITS, TARGETS, target_names

pytestmark = pytest.mark.filterwarnings("ignore")

RANDOM = os.environ.get("SAFELOAD_FUZZ_RANDOM") == "1"
ARTIFACTS = Path(
    os.environ.get("SAFELOAD_FUZZ_ARTIFACTS", Path(tempfile.gettempdir()) / "safeload-fuzz")
)


def _target(name: str):
    target = TARGETS[name]
    reason = target.unavailable()
    if reason:
        pytest.skip(reason)
    return target


@pytest.mark.parametrize("name", target_names())
def test_seeds_load_correctly(name, fuzz_sandbox):  # noqa: F811
    """The oracle is real: every unmutated seed loads to the right object (or, for formats
    safeload does not read yet, is refused as foreign), and scan agrees."""
    target = _target(name)
    seeds = target.seed_list()
    assert len(seeds) >= 4
    for seed in seeds:
        data = target.encode(seed.payload)
        try:
            obj = target.load(data, FUZZ_LIMITS)
        except safeload.FormatError:
            assert target.seeds_may_be_foreign, seed.name
            continue
        seed.check(obj)
        assert safeload.scan(data, limits=FUZZ_LIMITS).safe, seed.name


@pytest.mark.parametrize("name", target_names())
def test_short_fuzz(name, fuzz_sandbox):  # noqa: F811
    """``short_examples`` mutants of the target: only a load or a SafeloadError."""
    target = _target(name)
    target.seed_list()  # built outside the examples
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=target.short_examples,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(rng=st.randoms(use_true_random=False))
    def run(rng):
        data = target.mutant(rng)
        verdict = run_one(target, data, fuzz_sandbox)
        outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
        if not verdict.ok:
            path = save_failure(ARTIFACTS, target.name, data, verdict)
            raise AssertionError(f"reproducer {path}:\n" + "\n".join(verdict.failures))

    run()
    # the mutants really exercise the readers: most are refused, for several reasons
    refused = sum(n for k, n in outcomes.items() if k.startswith("refused:"))
    assert refused >= target.short_examples // 2, outcomes
    assert len([k for k in outcomes if k.startswith("refused:")]) >= 2, outcomes


@pytest.mark.parametrize("name", ["pickle", "joblib", "joblib-gzip"])
def test_every_fragment_spliced_before_stop(name, fuzz_sandbox):  # noqa: F811
    """Deterministic sweep: each fragment inserted before the final STOP of a seed gives an
    allowed outcome; the hostile ones (calls of os.system, exec, numpy.save ...) are refused."""
    import random

    target = _target(name)
    seed = target.seed_list()[0]
    for i, frag in enumerate(FRAGMENTS):
        payload = seed.payload
        cut = len(payload) - 1  # before STOP
        data = target.encode(payload[:cut] + frag + payload[cut:])
        verdict = run_one(target, data, fuzz_sandbox)
        assert verdict.ok, (i, frag[:40], verdict.failures)
        if frag in HOSTILE_FRAGMENTS:
            assert verdict.outcome.startswith("refused:"), (i, frag[:40], verdict.outcome)
    # and the mutate() entry point stays total on degenerate input
    rng = random.Random(0)
    for data in (b"", b".", b"\x80", b"PK\x05\x06" + b"\0" * 18):
        assert isinstance(mutate(data, rng, target.mutators), bytes)


REGRESSIONS = sorted((Path(__file__).parent / "fuzz" / "regressions").glob("*.bin"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_fuzz_regressions(path, fuzz_sandbox):  # noqa: F811
    """Inputs the fuzzers once found (``<target>-<hash>.bin``, with the report next to it as
    ``.txt``): each must now give an allowed outcome."""
    name = path.stem.rsplit("-", 1)[0]
    target = _target(name)
    verdict = run_one(target, path.read_bytes(), fuzz_sandbox)
    assert verdict.ok, verdict.failures
