"""Legacy corpus: files written by genuinely old Python / scikit-learn / numpy / joblib.

Issue "Restricted loader": every file that plain ``pickle``/``joblib`` loads correctly in today's
stack must load through ``safeload.load`` with the DEFAULT policy and reproduce the outputs the
old version gave.  (These files were produced from known-good libraries by the corpus authors,
so plain-loading them here, to know which ones today's stack handles, is acceptable.)
"""

from __future__ import annotations

import pickle
import warnings

import joblib
import pytest

import safeload

from ._probes import check_probe
from .conftest import LEGACY, load_json

FILES = (
    sorted(p for p in LEGACY.glob("*/*") if p.suffix in (".pkl", ".joblib"))
    if LEGACY.exists()
    else []
)


def _plain_load(path):
    """What today's stack does with the file (the baseline safeload must match).

    Python 2 pickles are read with ``encoding='latin1'`` as numpy and joblib document; a file
    written by ``sklearn.externals.joblib`` (gone from today's scikit-learn) is judged by its
    sibling written by the standalone joblib of the same environment.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ".skjl" in path.name:
            path = path.with_name(path.name.replace(".skjl", ".jl"))
        if path.suffix == ".joblib":
            return joblib.load(path)
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")


def _probe_for(path):
    return load_json(path.parent / (path.name.split(".")[0] + ".probe.json"))


@pytest.mark.skipif(not FILES, reason="shared legacy corpus not available")
@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_legacy_file_loads_like_plain_pickle(path):
    probe = _probe_for(path)
    try:
        plain = _plain_load(path)
        plain_ok = check_probe(plain, probe) is None
    except Exception:  # noqa: BLE001 - today's stack can not load it: not this issue's scope
        plain_ok = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = safeload.load(path)
        except safeload.SafeloadError as exc:
            if plain_ok:
                pytest.fail(f"plain pickle loads this file correctly but safeload refused: {exc}")
            return  # refusing a file today's stack can not load correctly is allowed here
        result = check_probe(model, probe)
    if plain_ok:
        assert result is None, result


@pytest.mark.skipif(not FILES, reason="shared legacy corpus not available")
@pytest.mark.parametrize(
    "name",
    [
        "MultinomialNB.p0.pkl",
        "MultinomialNB.p2.pkl",
        "MultinomialNB.skjl.joblib",
        "MultinomialNB.skjl-zlib3.joblib",
    ],
)
def test_python2_and_sklearn_externals_joblib_files_load(name):
    """Python 2.7 + scikit-learn 0.20.4 files, incl. ``sklearn.externals.joblib`` ones.

    (MultinomialNB is the estimator of that environment whose state today's scikit-learn still
    restores unchanged; the others need the migrations of the conversion issue.)
    """
    path = LEGACY / "py27_skl0204" / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = safeload.load(path)
        assert check_probe(model, _probe_for(path)) is None


def test_legacy_corpus_has_the_expected_share_of_loadable_files():
    if not FILES:
        pytest.skip("shared legacy corpus not available")
    envs = {p.parent.name for p in FILES}
    assert envs == {
        "py27_skl0204",
        "py36_skl0213",
        "py37_skl102",
        "py39_skl132",
        "py310_skl161",
        "py311_skl191",
    }
    assert len(FILES) > 1000
