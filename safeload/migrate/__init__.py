"""Migrations: rewrite the state an older scikit-learn wrote into what today's classes expect.

A file written by scikit-learn 0.20 – 1.5 often fails to load in today's stack, or — worse —
loads and gives different outputs: the tree node dtype gained ``missing_go_to_left`` (1.3), tree
classifiers store fractions instead of weighted counts in ``value`` (1.4), classes were removed
(``sklearn.ensemble._gb_losses``, ``EuclideanDistance``, ``DeprecationDict`` ...), attributes were
added or renamed (``positive``, ``clip``, ``var_``, ``_n_support`` ...).

Each rule here is small, keyed by the exact class and a range of source scikit-learn versions
(:func:`migration`), documented with the scikit-learn change it undoes, and tested on a real old
file of ``../shared/corpus/legacy`` against the outputs the old version gave.  Rules live in one
module per topic (:mod:`.trees`, :mod:`.ensembles`, :mod:`.linear`, :mod:`.svm`,
:mod:`.preprocessing`, :mod:`.text`, :mod:`.neighbors`, :mod:`.naive_bayes`, :mod:`.cluster`,
:mod:`.calibration`, :mod:`.model_selection`, :mod:`.multiclass`).

How it runs inside :func:`safeload.load` (``migrate=True``, the default):

1. The audit maps removed names that a rule consumes to inert stand-ins
   (:mod:`._standins`) instead of refusing the file; any other untrusted name is still refused.
2. While building, before an object's state is set, the state rules of its class whose version
   range contains the object's ``_sklearn_version`` (inherited from its container when absent)
   rewrite that state; stand-ins found in it are converted to today's objects.
3. After the build, objects a rule replaced (a one-vs-rest ``LogisticRegression`` becomes a
   ``OneVsRestClassifier``) are redirected, and a stand-in that is still reachable raises
   :class:`~safeload.errors.MigrationError`.  Then the content validators run on the result.

When today's classes can not reproduce an old behaviour exactly, the rule raises
:class:`~safeload.errors.MigrationError` naming the reason: no estimator whose outputs differ is
ever returned.  Rules rewrite data only; they never call anything the file named.
"""

from __future__ import annotations

from typing import Any

from ._context import AppliedMigration, MigrationContext, MigrationReport
from ._registry import Migration, VersionRange, all_rules, migration, parse_version, rules_for
from ._standins import LegacyDict, LegacyList, LegacyState, LegacyValue, make_standins

__all__ = [
    "migration",
    "Migration",
    "AppliedMigration",
    "MigrationReport",
    "MigrationContext",
    "VersionRange",
    "LegacyState",
    "LegacyDict",
    "LegacyList",
    "LegacyValue",
    "STANDINS",
    "all_rules",
    "rules_for",
    "parse_version",
    "apply",
    "load_with_report",
    "target_version",
]

#: Removed scikit-learn names (canonical spelling) that a rule consumes, and the kind of stand-in
#: the audit gives them: ``object`` (a class restored by ``NEWOBJ``/``newObj`` + state),
#: ``dict`` (a ``dict`` subclass), ``value`` (a function or class stored as a value),
#: ``reconstructor`` (a Cython ``__pyx_unpickle_*`` helper the file calls: it records the call).
STANDIN_KINDS = {
    "sklearn._loss._loss.__pyx_unpickle_CyHalfBinomialLoss": "reconstructor",
    "sklearn.ensemble._gb.MultinomialDeviance": "object",
    "sklearn.ensemble._gb.PriorProbabilityEstimator": "object",
    "sklearn.ensemble._gb_losses.MultinomialDeviance": "object",
    "sklearn.ensemble._gb_losses.BinomialDeviance": "object",
    "sklearn.ensemble._gb_losses.LeastSquaresError": "object",
    "sklearn.ensemble._hist_gradient_boosting.loss.CategoricalCrossEntropy": "object",
    "sklearn.linear_model._sgd_fast.Log": "object",
    "sklearn.metrics._dist_metrics.EuclideanDistance": "object",
    "sklearn.metrics._scorer._PredictScorer": "object",
    "sklearn.neighbors._kd_tree.BinaryTree": "object",
    "sklearn.utils.deprecation.DeprecationDict": "dict",
    "builtins.FutureWarning": "value",
    "sklearn.metrics._scorer._passthrough_scorer": "value",
}

#: Canonical ``(module, qualname)`` → stand-in, handed to :func:`safeload.audit.audit`.
STANDINS = make_standins(STANDIN_KINDS)


def target_version() -> str:
    """The installed scikit-learn version (what files are migrated to)."""
    import sklearn

    return sklearn.__version__


def apply(builder: Any, *, uses_standins: bool = False) -> MigrationContext:
    """Attach a fresh :class:`MigrationContext` to a :class:`safeload.build.Builder`.

    The builder then calls the context's hooks while it builds (state rules) and once the graph
    is built (replacements, surviving stand-ins).

    Parameters
    ----------
    builder : safeload.build.Builder
        Not yet used to build anything.
    uses_standins : bool
        True when the audit resolved removed names to :data:`STANDINS`.

    Returns
    -------
    MigrationContext
        Its :meth:`~MigrationContext.report` lists the rules applied, once the build finished.
    """
    ctx = MigrationContext(uses_standins=uses_standins)
    builder.migration = ctx
    return ctx


def load_with_report(file: Any, **kwargs: Any) -> tuple[Any, MigrationReport]:
    """Load like :func:`safeload.load` (migrations on) and say what was migrated.

    Parameters
    ----------
    file : str, os.PathLike, binary file object, bytes, or URL
        As for :func:`safeload.load`.
    **kwargs
        ``trusted``, ``policy``, ``limits`` as for :func:`safeload.load`.

    Returns
    -------
    obj : object
        The loaded (migrated) object.
    report : MigrationReport
        Source scikit-learn version, today's, and every migration applied.  No
        :class:`~safeload.errors.VersionMismatchWarning` is emitted: the report carries it.

    Raises
    ------
    SafeloadError
        Everything :func:`safeload.load` raises, and
        :class:`~safeload.errors.MigrationError` when the file can not be migrated exactly.
    """
    from ..api import _finish, make_policy
    from ..limits import DEFAULT_LIMITS
    from ..readers import read_source
    from ..source import open_source

    unknown = set(kwargs) - {"trusted", "policy", "limits"}
    if unknown:
        raise TypeError(f"load_with_report() got unexpected keyword(s): {sorted(unknown)}")
    limits = kwargs.get("limits") or DEFAULT_LIMITS
    policy = make_policy(kwargs.get("trusted"), kwargs.get("policy"))
    with open_source(file, limits) as src:
        parsed = read_source(src, limits)
    return _finish(parsed, policy, limits, migrate=True, report=True)


# the rule modules register themselves on import
from . import (  # noqa: E402
    calibration,
    cluster,
    ensembles,
    linear,
    model_selection,
    multiclass,
    naive_bayes,
    neighbors,
    preprocessing,
    svm,
    text,
    trees,
)

del calibration, cluster, ensembles, linear, model_selection, multiclass, naive_bayes
del neighbors, preprocessing, svm, text, trees
