"""Tests for ``safeload.validate``: content validators of type-trusted objects.

Valid objects come from fitting real estimators on small deterministic data; corrupted ones are
built the way a hostile pickle would build them: take the object's state, change one value, and
rebuild through ``__setstate__`` / ``__dict__`` (no constructor checks run).
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from safeload.errors import SafeloadError, ValidationError
from safeload.limits import DEFAULT_LIMITS, Limits
from safeload.validate import has_validator, register, registered_names, validate

sklearn = pytest.importorskip("sklearn")

from sklearn.cluster import BisectingKMeans, KMeans  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    RandomTreesEmbedding,
)
from sklearn.feature_extraction import DictVectorizer, FeatureHasher  # noqa: E402
from sklearn.feature_extraction.text import (  # noqa: E402
    CountVectorizer,
    HashingVectorizer,
    TfidfVectorizer,
)
from sklearn.metrics import DistanceMetric  # noqa: E402
from sklearn.neighbors import (  # noqa: E402
    BallTree,
    KDTree,
    KernelDensity,
    KNeighborsClassifier,
    KNeighborsRegressor,
    NearestNeighbors,
    RadiusNeighborsClassifier,
)
from sklearn.preprocessing import OneHotEncoder, SplineTransformer  # noqa: E402
from sklearn.svm import SVC, SVR, NuSVC, NuSVR, OneClassSVM  # noqa: E402
from sklearn.tree import (  # noqa: E402
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
)
from sklearn.tree._tree import Tree  # noqa: E402

L = DEFAULT_LIMITS
RNG = np.random.RandomState(0)
X = RNG.rand(120, 5)
Y = (X[:, 0] + X[:, 1] > 1).astype(int) + (X[:, 2] > 0.7)
Y_REG = X[:, 0] * 3 + X[:, 3]
X_NAN = X.copy()
X_NAN[::7, 1] = np.nan

warnings.filterwarnings("ignore", category=FutureWarning)  # SVC(probability=True) deprecation


def _raises(obj, *fragments):
    """Assert ``validate(obj)`` raises a ValidationError whose message has all fragments."""
    with pytest.raises(ValidationError) as info:
        validate(obj, L)
    msg = str(info.value)
    prefix = f"{type(obj).__module__}.{type(obj).__qualname__}: "
    assert msg.startswith(prefix), msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


def _snapshot(obj) -> bytes:
    return pickle.dumps(obj, protocol=5)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clf_tree():
    return DecisionTreeClassifier(random_state=0).fit(X, Y)


@pytest.fixture(scope="module")
def hgb_cat():
    Xc = np.c_[X[:, :3], RNG.randint(0, 6, X.shape[0])]
    y = np.isin(Xc[:, 3], [1, 3, 4]).astype(int) ^ (Xc[:, 0] > 0.8)
    est = HistGradientBoostingClassifier(max_iter=8, categorical_features=[3], random_state=0)
    est.fit(Xc, y)
    cat_splits = sum(
        int(((p.nodes["is_leaf"] == 0) & (p.nodes["is_categorical"] == 1)).sum())
        for it in est._predictors
        for p in it
    )
    assert cat_splits > 0, "fixture must contain categorical splits"
    return est


def _rebuild_tree(tree, mutate=None, **scalars):
    """A new Tree from a mutated copy of ``tree.__getstate__()`` (what a pickle can do)."""
    st = tree.__getstate__()
    st = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
    st.update(scalars)
    if mutate is not None:
        mutate(st)
    new = Tree(tree.n_features, tree.n_classes, tree.n_outputs)
    new.__setstate__(st)
    return new


def _internal(tree):
    return np.flatnonzero(tree.children_left != -1)


def _rebuild_binary_tree(tree, index, value):
    st = list(tree.__getstate__())
    st[index] = value
    new = type(tree).__new__(type(tree))
    new.__setstate__(tuple(st))
    return new


# --------------------------------------------------------------------------- registry


def test_registry_api_by_name_class_and_mro():
    class Base:
        pass

    class Child(Base):
        pass

    class Other:
        pass

    seen = []

    @register(f"{Base.__module__}:{Base.__qualname__}")
    def _check_base(obj, limits):
        seen.append(("base", type(obj).__name__))

    @register(Other)
    def _check_other(obj, limits):
        raise KeyError("unexpected")

    assert has_validator(Base) and has_validator(Child) and has_validator(Other)
    assert not has_validator(int)
    assert validate(Child(), L) is None
    assert seen == [("base", "Child")]
    # an unexpected exception inside a validator is still a ValidationError
    with pytest.raises(ValidationError, match="KeyError"):
        validate(Other(), L)
    assert validate(object(), L) is None
    with pytest.raises(TypeError):
        register("not_a_dotted_name")
    with pytest.raises(TypeError):
        register("pkg.*")
    assert "sklearn.tree._tree.Tree" in registered_names()


def test_validation_error_is_a_safeload_error():
    assert issubclass(ValidationError, SafeloadError)
    assert issubclass(ValidationError, ValueError)


def test_has_validator_is_cached_and_fast():
    for tp in (Tree, DecisionTreeClassifier, sp.csr_matrix, dict):
        has_validator(tp)
    t = time.perf_counter()
    for _ in range(100_000):
        has_validator(Tree)
        has_validator(dict)
    assert time.perf_counter() - t < 0.5


# --------------------------------------------------------------------------- valid objects


def _valid_objects():
    Xs = sp.csr_matrix(X)
    Xc = np.c_[X[:, :4], RNG.randint(0, 5, X.shape[0])]
    objs = {
        "DecisionTreeClassifier": DecisionTreeClassifier(random_state=0).fit(X, Y),
        "DecisionTreeRegressor": DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, Y_REG),
        "ExtraTreeClassifier": ExtraTreeClassifier(random_state=0).fit(X, Y),
        "DecisionTree pruned": DecisionTreeClassifier(ccp_alpha=0.02, random_state=0).fit(X, Y),
        "DecisionTree best-first": DecisionTreeRegressor(max_leaf_nodes=9).fit(X, Y_REG),
        "DecisionTree with NaN": DecisionTreeClassifier(random_state=0).fit(X_NAN, Y),
        "DecisionTree monotonic": DecisionTreeRegressor(
            monotonic_cst=[1, 0, 0, -1, 0], random_state=0
        ).fit(X, Y_REG),
        "DecisionTree multioutput": DecisionTreeClassifier(random_state=0).fit(X, np.c_[Y, Y > 0]),
        "RandomForestClassifier": RandomForestClassifier(8, random_state=0).fit(X, Y),
        "RandomForestRegressor sparse": RandomForestRegressor(4, random_state=0).fit(Xs, Y_REG),
        "ExtraTreesClassifier": ExtraTreesClassifier(6, random_state=0).fit(X, Y),
        "GradientBoostingClassifier": GradientBoostingClassifier(n_estimators=6).fit(X, Y),
        "GradientBoostingClassifier binary": GradientBoostingClassifier(n_estimators=4).fit(
            X, Y > 0
        ),
        "GradientBoostingRegressor": GradientBoostingRegressor(n_estimators=5).fit(X, Y_REG),
        "IsolationForest": IsolationForest(n_estimators=5, max_features=3, random_state=0).fit(X),
        "RandomTreesEmbedding": RandomTreesEmbedding(n_estimators=4, random_state=0).fit(X),
        "HistGradientBoostingClassifier cat": HistGradientBoostingClassifier(
            max_iter=6, categorical_features=[4], random_state=0
        ).fit(Xc, Y),
        "HistGradientBoostingRegressor": HistGradientBoostingRegressor(max_iter=5).fit(X, Y_REG),
        "HistGradientBoosting NaN multiclass": HistGradientBoostingClassifier(max_iter=4).fit(
            X_NAN, Y
        ),
        "KNN kd_tree": KNeighborsClassifier(algorithm="kd_tree", leaf_size=5).fit(X, Y),
        "KNN ball_tree mahalanobis": KNeighborsClassifier(
            algorithm="ball_tree", metric="mahalanobis", metric_params={"VI": np.eye(5)}
        ).fit(X, Y),
        "KNN brute": KNeighborsClassifier(algorithm="brute").fit(X, Y),
        "KNN multioutput": KNeighborsClassifier().fit(X, np.c_[Y, Y > 0]),
        "KNeighborsRegressor": KNeighborsRegressor(algorithm="kd_tree").fit(X, Y_REG),
        "RadiusNeighborsClassifier": RadiusNeighborsClassifier(radius=2.0).fit(X, Y),
        "NearestNeighbors sparse": NearestNeighbors().fit(Xs),
        "KernelDensity": KernelDensity().fit(X),
        "KernelDensity weighted ball": KernelDensity(algorithm="ball_tree").fit(
            X, sample_weight=np.linspace(0.5, 2.0, X.shape[0])
        ),
        "KDTree": KDTree(X, leaf_size=4),
        "BallTree minkowski w": BallTree(X, metric="minkowski", p=3, w=np.arange(1.0, 6.0)),
        "BallTree seuclidean": BallTree(X, metric="seuclidean", V=np.ones(5)),
        "BallTree haversine": BallTree(X[:, :2], metric="haversine"),
        "KDTree float32": KDTree(X.astype(np.float32)),
        "SVC dense proba": SVC(probability=True, random_state=0).fit(X, Y),
        "SVC sparse": SVC().fit(Xs, Y),
        "SVC binary": SVC(kernel="linear").fit(X, Y > 0),
        "SVC precomputed": SVC(kernel="precomputed").fit(X @ X.T, Y),
        "NuSVC": NuSVC(nu=0.3).fit(X, Y),
        "SVC sparse proba weighted": SVC(
            probability=True, class_weight="balanced", random_state=0
        ).fit(Xs, Y),
        "SVR": SVR().fit(X, Y_REG),
        "NuSVR dense": NuSVR().fit(X, Y_REG),
        "NuSVR sparse": NuSVR().fit(Xs, Y_REG),
        "OneClassSVM dense": OneClassSVM().fit(X),
        "OneClassSVM sparse": OneClassSVM().fit(Xs),
        "KMeans": KMeans(3, n_init=1, random_state=0).fit(X),
        "BisectingKMeans": BisectingKMeans(4, random_state=0).fit(X),
        "RandomState": np.random.RandomState(3),
        "Generator MT19937": np.random.Generator(np.random.MT19937(1)),
        "Generator Philox": np.random.Generator(np.random.Philox(2)),
        "default_rng": np.random.default_rng(4),
        "structured dtypes": [
            Tree.__getstate__(DecisionTreeClassifier().fit(X, Y).tree_)["nodes"].dtype,
            np.dtype([("a", "O"), ("b", ("<f8", (2,)))], align=True),
            np.dtype({"names": ["x"], "formats": ["<f8"], "titles": ["T"]}),
            np.dtype([("n", [("a", "i1"), ("b", ">f8")])]),
            np.dtype(("<f4", (2, 3))),
            np.dtype("U7"),
            np.dtype("V5"),
            np.dtype("M8[ns]"),
        ],
        "CountVectorizer": CountVectorizer().fit(["the cat sat", "the dog ran far"]),
        "TfidfVectorizer": TfidfVectorizer(max_features=3).fit(["a cat sat", "the dog ran"]),
        "HashingVectorizer": HashingVectorizer(n_features=64),
        "FeatureHasher": FeatureHasher(n_features=16),
        "DictVectorizer": DictVectorizer().fit([{"a": 1, "b": 2}, {"c": 3}]),
        "SplineTransformer": SplineTransformer(n_knots=4).fit(X),
        "SplineTransformer periodic": SplineTransformer(degree=2, extrapolation="periodic").fit(X),
        "OneHotEncoder": OneHotEncoder().fit(RNG.randint(0, 4, (40, 3))),
        "OneHotEncoder drop infrequent": OneHotEncoder(
            drop="first", min_frequency=4, handle_unknown="infrequent_if_exist"
        ).fit(RNG.randint(0, 7, (40, 3))),
        "OneHotEncoder if_binary strings": OneHotEncoder(
            drop="if_binary", handle_unknown="ignore"
        ).fit(np.array([["a", "x"], ["b", "y"], ["a", "z"]], dtype=object)),
        "OneHotEncoder float nan": OneHotEncoder(handle_unknown="ignore").fit(
            np.array([[1.0], [np.nan], [0.5], [1.0]])
        ),
        "DistanceMetric euclidean": DistanceMetric.get_metric("euclidean"),
        "DistanceMetric mahalanobis": DistanceMetric.get_metric("mahalanobis", VI=np.eye(3)),
        "DistanceMetric minkowski": DistanceMetric.get_metric("minkowski", p=1.5),
        "DistanceMetric32 seuclidean": DistanceMetric.get_metric(
            "seuclidean", V=np.ones(2), dtype=np.float32
        ),
    }
    base = sp.random(7, 12, density=0.3, random_state=0, format="coo")
    for fmt in ("csr", "csc", "coo", "bsr", "dia", "lil", "dok"):
        for kind in ("matrix", "array"):
            objs[f"{fmt}_{kind}"] = getattr(sp, f"{fmt}_{kind}")(base)
    objs["bsr blocks"] = sp.bsr_array(
        sp.random(6, 8, density=0.5, random_state=1), blocksize=(2, 4)
    )
    objs["csr_array 1-D"] = sp.csr_array(np.array([0.0, 1.0, 0.0, 2.0]))
    objs["coo_array 3-D"] = sp.coo_array(RNG.rand(2, 3, 4) * (RNG.rand(2, 3, 4) > 0.5))
    objs["dok_array 1-D"] = sp.dok_array(np.array([0.0, 1.0, 0.0, 2.0]))
    objs["csr empty"] = sp.csr_matrix((3, 4))
    objs["dia empty"] = sp.dia_matrix((3, 4))
    return objs


def _inner_objects(obj):
    """Yield ``obj`` and the nested objects the loader would validate first."""
    out, seen = [], set()

    def walk(o):
        if id(o) in seen:
            return
        seen.add(id(o))
        if type(o) in (list, tuple):
            for x in o:
                walk(x)
            return
        if type(o) is dict:
            for x in o.values():
                walk(x)
            return
        if isinstance(o, np.ndarray):
            walk(o.dtype)
            if o.dtype == object:
                for x in o.ravel():
                    walk(x)
            return
        if isinstance(o, np.dtype):
            o = pickle.loads(pickle.dumps(o))  # what the loader builds: a dtype after setstate
        if isinstance(o, np.random.Generator):
            walk(o.bit_generator)
            walk(o.bit_generator.seed_seq)
        if isinstance(o, KDTree | BallTree):
            walk(o.__getstate__()[11])
        elif isinstance(o, DecisionTreeClassifier | DecisionTreeRegressor) and hasattr(o, "tree_"):
            walk(o.tree_)
        if hasattr(o, "__dict__") and not isinstance(o, type):
            for x in vars(o).values():
                walk(x)
        out.append(o)  # bottom-up: children first

    walk(obj)
    return [o for o in out if has_validator(type(o))]


VALID = _valid_objects()


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_objects_pass_and_are_not_modified(name):
    inner = _inner_objects(VALID[name])
    assert inner, f"{name}: nothing to validate"
    for obj in inner:
        before = _snapshot(obj)
        assert validate(obj, L) is None
        assert _snapshot(obj) == before, f"{type(obj).__name__} was modified by validate"


def test_kinds_of_validated_objects_cover_the_families():
    kinds = {type(o).__name__ for obj in VALID.values() for o in _inner_objects(obj)}
    for expected in (
        "Tree",
        "TreePredictor",
        "_BinMapper",
        "KDTree",
        "BallTree",
        "EuclideanDistance64",
        "MahalanobisDistance64",
        "SVC",
        "NuSVR",
        "OneClassSVM",
        "csr_matrix",
        "csc_array",
        "coo_array",
        "bsr_matrix",
        "dia_array",
        "lil_matrix",
        "dok_array",
        "VoidDType",
        "RandomState",
        "MT19937",
        "Philox",
        "SeedSequence",
        "BisectingKMeans",
        "BSpline",
    ):
        assert expected in kinds, expected


# --------------------------------------------------------------------------- Tree


def test_tree_child_out_of_range(clf_tree):
    t = clf_tree.tree_
    k = int(_internal(t)[3])

    def mutate(st):
        st["nodes"]["left_child"][k] = 10**6

    msg = _raises(_rebuild_tree(t, mutate), f"children_left[{k}] = 1000000 is outside [0, ")
    assert msg.endswith(f"[0, {t.node_count})")


def test_tree_child_negative(clf_tree):
    t = clf_tree.tree_
    k = int(_internal(t)[1])

    def mutate(st):
        st["nodes"]["right_child"][k] = -7

    _raises(_rebuild_tree(t, mutate), f"children_right[{k}] = -7 is outside")


@pytest.mark.parametrize("target", ["self", "root", "parent"])
def test_tree_child_pointing_backwards(clf_tree, target):
    t = clf_tree.tree_
    internal = _internal(t)
    k = int(internal[-1])
    parent = int(np.flatnonzero((t.children_left == k) | (t.children_right == k))[0])
    value = {"self": k, "root": 0, "parent": parent}[target]

    def mutate(st):
        st["nodes"]["left_child"][k] = value

    _raises(_rebuild_tree(t, mutate), f"children_left[{k}] = {value} does not come after")


def test_tree_half_leaf(clf_tree):
    t = clf_tree.tree_
    k = int(_internal(t)[2])

    def mutate(st):
        st["nodes"]["left_child"][k] = -1

    _raises(_rebuild_tree(t, mutate), f"children_left[{k}] = -1 but children_right", "TREE_LEAF")


@pytest.mark.parametrize("value", [-3, 5, 10**9])
def test_tree_feature_out_of_range(clf_tree, value):
    t = clf_tree.tree_
    k = int(_internal(t)[0])

    def mutate(st):
        st["nodes"]["feature"][k] = value

    _raises(_rebuild_tree(t, mutate), f"feature[{k}] = {value} is outside [0, 5)")


def test_tree_node_with_two_parents(clf_tree):
    t = clf_tree.tree_
    a, b = (int(i) for i in _internal(t)[:2])
    shared = int(t.children_right[b])

    def mutate(st):
        st["nodes"]["left_child"][a] = shared  # forward, in range, but now shared

    assert shared > a
    _raises(_rebuild_tree(t, mutate), "parents")


def test_tree_missing_go_to_left_flag(clf_tree):
    t = clf_tree.tree_
    k = int(_internal(t)[0])

    def mutate(st):
        st["nodes"]["missing_go_to_left"][k] = 7

    _raises(_rebuild_tree(t, mutate), f"missing_go_to_left[{k}] = 7 is not 0 or 1")


def test_tree_node_count_larger_than_capacity(clf_tree):
    t = clf_tree.tree_
    # Tree.__setstate__ clamps node_count to the node array, but node_count is a public
    # attribute: the check must come before the node array is wrapped.
    new = _rebuild_tree(t)
    new.node_count = new.capacity + 50
    _raises(new, f"node_count = {t.capacity + 50} is larger than the node array")
    _raises(_rebuild_tree(t, node_count=0), "node_count = 0")
    _raises(_rebuild_tree(t, node_count=-5), "node_count = -5")


@pytest.mark.parametrize("max_depth", [0, -1, 10**12])
def test_tree_max_depth(clf_tree, max_depth):
    _raises(_rebuild_tree(clf_tree.tree_, max_depth=max_depth), "max_depth")


def test_decision_tree_estimator_width(clf_tree):
    est = copy.deepcopy(clf_tree)
    est.n_features_in_ = 7
    _raises(est, "tree_.n_features = 5", "n_features_in_ = 7")
    del est.n_features_in_
    _raises(est, "n_features_in_")


def test_forest_tree_width():
    rf = RandomForestClassifier(3, random_state=0).fit(X, Y)
    narrow = DecisionTreeClassifier(random_state=0).fit(X[:, :3], Y)
    rf.estimators_[1] = narrow
    _raises(rf, "estimators_[1].tree_.n_features = 3", "n_features_in_ = 5")


def test_gradient_boosting_stage_shape():
    gb = GradientBoostingClassifier(n_estimators=3).fit(X, Y)
    bad = copy.deepcopy(gb)
    bad.estimators_ = bad.estimators_[:, :2]
    _raises(bad, "estimators_ has shape (3, 2)", "n_trees_per_iteration_")
    bad = copy.deepcopy(gb)
    bad.estimators_[1, 2] = DecisionTreeRegressor().fit(X[:, :4], Y)
    _raises(bad, "estimators_[1, 2].tree_.n_features = 4", "n_features_in_ = 5")


def test_isolation_forest_feature_subsets():
    iso = IsolationForest(n_estimators=3, max_features=3, random_state=0).fit(X)
    iso.estimators_features_[0] = iso.estimators_features_[0][:2]
    _raises(iso, "estimators_[0].tree_.n_features = 3", "2 columns")


# --------------------------------------------------------------------------- HGB


def _rebuilt_predictor(pred, field, index, value):
    new = copy.deepcopy(pred)
    new.nodes = new.nodes.copy()
    new.nodes[field][index] = value
    return new


def _first_internal(pred, categorical=None):
    nodes = pred.nodes
    mask = nodes["is_leaf"] == 0
    if categorical is not None:
        mask &= nodes["is_categorical"] == int(categorical)
    return int(np.flatnonzero(mask)[0])


def _cat_predictor(hgb):
    for it in hgb._predictors:
        for p in it:
            if ((p.nodes["is_leaf"] == 0) & (p.nodes["is_categorical"] == 1)).any():
                return p
    raise AssertionError


def test_hgb_predictor_child_out_of_range(hgb_cat):
    pred = hgb_cat._predictors[0][0]
    k = _first_internal(pred)
    _raises(_rebuilt_predictor(pred, "left", k, 10**6), f"nodes['left'][{k}] = 1000000 is outside")


def test_hgb_predictor_child_backwards(hgb_cat):
    pred = hgb_cat._predictors[0][0]
    k = _first_internal(pred)
    _raises(_rebuilt_predictor(pred, "right", k, k), f"nodes['right'][{k}] = {k} does not come")


def test_hgb_predictor_leaf_flag_and_negative_feature(hgb_cat):
    pred = hgb_cat._predictors[0][0]
    k = _first_internal(pred)
    _raises(_rebuilt_predictor(pred, "is_leaf", k, 3), "is_leaf")
    _raises(_rebuilt_predictor(pred, "feature_idx", k, -2), f"nodes['feature_idx'][{k}] = -2")


def test_hgb_predictor_bitset_idx(hgb_cat):
    pred = _cat_predictor(hgb_cat)
    k = _first_internal(pred, categorical=True)
    _raises(_rebuilt_predictor(pred, "bitset_idx", k, 99), f"nodes['bitset_idx'][{k}] = 99")


def test_hgb_predictor_bitset_shape_and_dtype(hgb_cat):
    pred = copy.deepcopy(_cat_predictor(hgb_cat))
    pred.raw_left_cat_bitsets = pred.raw_left_cat_bitsets[:, :4].copy()
    _raises(pred, "raw_left_cat_bitsets has shape")
    pred = copy.deepcopy(_cat_predictor(hgb_cat))
    pred.nodes = pred.nodes.astype([(n, "f8") for n in pred.nodes.dtype.names])
    _raises(pred, "nodes has dtype")
    pred.nodes = None
    _raises(pred, "nodes is a NoneType")


def test_hgb_estimator_feature_bound(hgb_cat):
    est = copy.deepcopy(hgb_cat)
    pred = est._predictors[1][0]
    k = _first_internal(pred, categorical=False)
    pred.nodes = pred.nodes.copy()
    pred.nodes["feature_idx"][k] = 4
    _raises(est, "_predictors[1][0].nodes['feature_idx']", "= 4 is outside [0, 4)")


def test_hgb_estimator_categorical_split_on_numeric_feature(hgb_cat):
    est = copy.deepcopy(hgb_cat)
    pred = _cat_predictor(est)
    k = _first_internal(pred, categorical=True)
    numeric = int(np.flatnonzero(est._bin_mapper.is_categorical_ == 0)[0])
    pred.nodes = pred.nodes.copy()
    pred.nodes["feature_idx"][k] = numeric
    _raises(est, f"categorical split on feature {numeric}")


def test_hgb_in_fit_and_predictor_list(hgb_cat):
    est = copy.deepcopy(hgb_cat)
    est._in_fit = True
    _raises(est, "_in_fit")
    est = copy.deepcopy(hgb_cat)
    est._predictors = est._predictors[:2] + [[]]
    _raises(est, "_predictors[2]")


def test_bin_mapper(hgb_cat):
    mapper = copy.deepcopy(hgb_cat._bin_mapper)
    mapper.bin_thresholds_ = mapper.bin_thresholds_[:2]
    _raises(mapper, "bin_thresholds_ has 2 entries")
    mapper = copy.deepcopy(hgb_cat._bin_mapper)
    f = int(np.flatnonzero(mapper.is_categorical_)[0])
    mapper.bin_thresholds_[f] = np.array([0.0, 1.0, 300.0])
    _raises(mapper, f"bin_thresholds_[{f}][2] = ", "category code")
    mapper = copy.deepcopy(hgb_cat._bin_mapper)
    mapper.is_categorical_ = mapper.is_categorical_.astype(np.int64)
    _raises(mapper, "is_categorical_ has dtype int64")


# --------------------------------------------------------------------------- KD / Ball trees


@pytest.fixture(scope="module")
def kd():
    return KDTree(X, leaf_size=5)


def test_kdtree_idx_array_out_of_range(kd):
    idx = kd.__getstate__()[1].copy()
    idx[7] = 10**6
    _raises(_rebuild_binary_tree(kd, 1, idx), "idx_array[7] = 1000000 is outside [0, 120)")
    idx[7] = -1
    _raises(_rebuild_binary_tree(kd, 1, idx), "idx_array[7] = -1")


def test_kdtree_idx_array_not_a_permutation(kd):
    idx = kd.__getstate__()[1].copy()
    idx[3] = idx[4]
    _raises(_rebuild_binary_tree(kd, 1, idx), "not a permutation")


def test_kdtree_node_ranges(kd):
    nd = kd.__getstate__()[2].copy()
    nd["idx_end"][2] = 10**6
    _raises(_rebuild_binary_tree(kd, 2, nd), "node_data['idx_end'][2] = 1000000")
    nd = kd.__getstate__()[2].copy()
    nd["idx_start"][1] = nd["idx_end"][1] + 1
    _raises(_rebuild_binary_tree(kd, 2, nd), "node_data[1] has idx_start")
    nd = kd.__getstate__()[2].copy()
    nd["is_leaf"][-1] = 0
    _raises(_rebuild_binary_tree(kd, 2, nd), f"node_data[{len(nd) - 1}] is not a leaf")


def test_kdtree_shapes_and_scalars(kd):
    st = kd.__getstate__()
    _raises(_rebuild_binary_tree(kd, 3, st[3][:, :-1].copy()), "node_bounds has shape")
    _raises(_rebuild_binary_tree(kd, 4, 0), "leaf_size = 0")
    _raises(_rebuild_binary_tree(kd, 6, st[6] + 2), "n_nodes")
    _raises(_rebuild_binary_tree(kd, 5, st[5] + 1), "n_nodes")
    _raises(_rebuild_binary_tree(kd, 12, np.ones(3)), "sample_weight has shape")


def test_kdtree_metric(kd):
    _raises(_rebuild_binary_tree(kd, 11, None), "dist_metric is a NoneType")
    bad = DistanceMetric.get_metric("mahalanobis", VI=np.eye(5))
    _raises(_rebuild_binary_tree(kd, 11, bad), "MahalanobisDistance64 is not one of")


def test_balltree_metric_width():
    bt = BallTree(X, metric="mahalanobis", VI=np.eye(5))
    _raises(
        _rebuild_binary_tree(bt, 11, DistanceMetric.get_metric("mahalanobis", VI=np.eye(3))),
        "mat (VI) of shape (3, 3)",
        "5 features",
    )
    _raises(
        _rebuild_binary_tree(bt, 11, DistanceMetric.get_metric("seuclidean", V=np.ones(4))),
        "vec (V) of shape (4,)",
    )
    _raises(_rebuild_binary_tree(bt, 11, DistanceMetric.get_metric("haversine")), "haversine")


def test_distance_metric_state():
    m = DistanceMetric.get_metric("mahalanobis", VI=np.eye(3))
    new = type(m).__new__(type(m))
    new.__setstate__((2.0, np.zeros(1), np.ones((3, 2))))
    _raises(new, "must be square")
    m = DistanceMetric.get_metric("minkowski", p=3)
    new = type(m).__new__(type(m))
    new.__setstate__((-1.0, np.zeros(0), np.zeros((1, 1))))
    _raises(new, "p = -1.0 must be > 0")


def test_neighbors_estimator_labels_and_counts():
    knn = KNeighborsClassifier(algorithm="brute").fit(X, Y)
    bad = copy.deepcopy(knn)
    bad._y = bad._y.copy()
    bad._y[5] = 1000
    _raises(bad, "_y[5] = 1000 is outside [0, 3)")
    bad = copy.deepcopy(knn)
    bad.n_samples_fit_ = 500
    _raises(bad, "n_samples_fit_ = 500")
    bad = copy.deepcopy(KNeighborsClassifier(algorithm="kd_tree").fit(X, Y))
    bad._tree = KDTree(X[:50])
    _raises(bad, "_tree was built on data of shape (50, 5)")


# --------------------------------------------------------------------------- sparse


def _csr():
    return sp.csr_matrix(sp.random(6, 9, density=0.4, random_state=3))


@pytest.mark.parametrize("cls", [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.csc_array])
def test_compressed_index_out_of_range(cls):
    m = cls(_csr())
    m.indices = m.indices.copy()
    m.indices[4] = 10**6
    _raises(m, "indices[4] = 1000000 is outside [0, ")


def test_compressed_indptr_decreasing_and_start():
    m = _csr()
    m.indptr = m.indptr.copy()
    m.indptr[2], m.indptr[3] = m.indptr[3], m.indptr[2] - 1
    _raises(m, "indptr[3]", "non-decreasing")
    m = _csr()
    m.indptr = m.indptr + 1
    _raises(m, "indptr[0] = 1")
    m = _csr()
    m.indptr = m.indptr.copy()
    m.indptr[-1] += 5
    _raises(m, "indptr[-1]")
    m = _csr()
    m.indptr = m.indptr[:-1].copy()
    _raises(m, "indptr has 6 entries, expected 7")


def test_compressed_garbage_types():
    m = _csr()
    m.indices = m.indices.astype(np.float64)
    _raises(m, "indices has dtype float64")
    m = _csr()
    m.indices = list(m.indices)
    _raises(m, "indices is a list")
    m = _csr()
    m.data = m.data[:-1]
    _raises(m, "indices has", "data has")
    m = _csr()
    m._shape = (6, -9)
    _raises(m, "_shape[1] = -9")
    m = _csr()
    m._shape = "big"
    _raises(m, "_shape is a str")


def test_compressed_sorted_flag_is_checked():
    m = _csr()
    m.indices = m.indices.copy()
    row = int(np.argmax(np.diff(m.indptr) >= 2))
    a, b = m.indptr[row], m.indptr[row] + 1
    m.indices[a], m.indices[b] = m.indices[b], m.indices[a]
    validate(m, L)  # unsorted is legal
    m._has_sorted_indices = True
    _raises(m, "_has_sorted_indices is set")


def test_compressed_slack_is_not_pruned_in_place():
    m = _csr()
    m.indices = np.r_[m.indices, 0].astype(m.indices.dtype)
    m.data = np.r_[m.data, 0.0]
    indices, data = m.indices, m.data
    validate(m, L)  # scipy's check_format runs on a copy: it would prune the slack
    assert m.indices is indices and m.data is data


def test_coo_bsr_dia_lil_dok_corruptions():
    coo = sp.coo_array(_csr())
    row, col = coo.coords
    row = row.copy()
    row[2] = 6
    coo.coords = (row, col)
    _raises(coo, "coords[0][2] = 6 is outside [0, 6)")
    coo = sp.coo_matrix(_csr())
    coo.has_canonical_format = True
    coo.coords = (coo.coords[0][::-1].copy(), coo.coords[1][::-1].copy())
    coo.data = coo.data[::-1].copy()
    _raises(coo, "has_canonical_format")

    bsr = sp.bsr_matrix(sp.random(6, 8, density=0.5, random_state=1), blocksize=(2, 4))
    bsr.indices = bsr.indices.copy()
    bsr.indices[0] = 2
    _raises(bsr, "indices[0] = 2 is outside [0, 2)")
    bsr = sp.bsr_matrix(sp.random(6, 8, density=0.5, random_state=1), blocksize=(2, 4))
    bsr.data = np.zeros((len(bsr.indices), 4, 4))
    _raises(bsr, "blocksize (4, 4)")

    dia = sp.dia_matrix(np.eye(4) + np.eye(4, k=1))
    dia.offsets = np.zeros_like(dia.offsets)
    _raises(dia, "duplicate")
    dia = sp.dia_array(np.eye(4))
    dia.data = np.ones((3, 4))
    _raises(dia, "3 diagonals")

    lil = sp.lil_matrix(_csr())
    lil.rows[1] = [0, 100]
    lil.data[1] = [1.0, 2.0]
    _raises(lil, "rows[1] holds column 100")
    lil = sp.lil_array(_csr())
    lil.rows[0] = [3, 1]
    lil.data[0] = [1.0, 1.0]
    _raises(lil, "rows[0] is not strictly increasing")
    lil.rows[0] = [1.5]
    lil.data[0] = [1.0]
    _raises(lil, "is not an integer")

    dok = sp.dok_matrix((4, 5))
    dok[1, 2] = 3.0
    dok._dict[(7, 1)] = 1.0
    _raises(dok, "_dict key (7, 1) is outside")
    dok = sp.dok_array((4, 5))
    dok._dict["x"] = 1.0
    _raises(dok, "not a (row, col) tuple")


# --------------------------------------------------------------------------- SVM


@pytest.fixture(scope="module")
def svc():
    return SVC(random_state=0).fit(X, Y)


def test_svm_n_support_inconsistent(svc):
    bad = copy.deepcopy(svc)
    bad._n_support = bad._n_support + np.array([5, 0, 0], dtype=np.int32)
    _raises(bad, "sum(_n_support)")
    bad._n_support = np.array([-2, 2 + int(svc._n_support[0]), *svc._n_support[1:]], np.int32)
    _raises(bad, "_n_support[0] = -2")
    bad._n_support = svc._n_support[:1].copy()
    _raises(bad, "_n_support has 1 entries")
    bad._n_support = svc._n_support.astype(np.int64)
    _raises(bad, "_n_support has dtype int64")


def test_svm_dual_coef_intercept_prob(svc):
    bad = copy.deepcopy(svc)
    bad._dual_coef_ = bad._dual_coef_[:, :-1].copy()
    _raises(bad, "_dual_coef_ has shape")
    bad = copy.deepcopy(svc)
    bad._intercept_ = bad._intercept_[:1].copy()
    _raises(bad, "_intercept_ has 1 entries, expected", "= 3")
    bad = copy.deepcopy(svc)
    bad._probA = np.ones(7)
    _raises(bad, "_probA has 7 entries")
    bad = copy.deepcopy(svc)
    bad._effective_probability = True
    _raises(bad, "probability estimates are enabled")
    bad = copy.deepcopy(svc)
    bad.support_vectors_ = bad.support_vectors_[:, :3].copy()
    _raises(bad, "support_vectors_ has 3 columns")
    bad = copy.deepcopy(svc)
    bad.support_ = "garbage"
    _raises(bad, "support_ is a str")


def test_svm_support_index_precomputed():
    est = SVC(kernel="precomputed").fit(X @ X.T, Y)
    est.support_ = est.support_.copy()
    est.support_[0] = 10**6
    _raises(est, "support_[0] = 1000000 is outside [0, 120)")


def test_svm_sparse():
    est = NuSVR().fit(sp.csr_matrix(X), Y_REG)
    bad = copy.deepcopy(est)
    bad._dual_coef_.data = bad._dual_coef_.data[:-1].copy()
    _raises(bad, "_dual_coef_ stores")
    bad = copy.deepcopy(est)
    bad.support_vectors_.indices = bad.support_vectors_.indices.astype(np.int64)
    _raises(bad, "support_vectors_.indices has dtype int64")
    bad = copy.deepcopy(est)
    bad.support_vectors_ = bad.support_vectors_.toarray()
    _raises(bad, "support_vectors_ is a ndarray, not a CSR matrix")
    bad = copy.deepcopy(est)
    bad._impl = "rocket"
    _raises(bad, "_impl = 'rocket'")


# --------------------------------------------------------------------------- other families


def test_kmeans_centers():
    km = KMeans(2, n_init=1, random_state=0).fit(X)
    km.cluster_centers_ = np.ascontiguousarray(km.cluster_centers_[:, :3])
    _raises(km, "cluster_centers_ has shape (2, 3)")
    km.cluster_centers_ = np.asfortranarray(np.ones((2, 5)))
    _raises(km, "not C-contiguous")


def test_bisecting_kmeans_tree_centers():
    est = BisectingKMeans(4, random_state=0).fit(X)
    bad = copy.deepcopy(est)
    bad._bisecting_tree.right.center = bad._bisecting_tree.right.center[:3].copy()
    _raises(bad, "_bisecting_tree.right.center has shape (3,), expected (5,)")
    bad = copy.deepcopy(est)
    bad._bisecting_tree.left.left = bad._bisecting_tree
    _raises(bad, "reached twice")


def _dtype_with_state(dt, **changes):
    """Rebuild ``dt`` through ``np.dtype.__setstate__`` with some state entries replaced."""
    f, args, state = dt.__reduce__()
    state = list(state)
    keys = ("version", "byteorder", "subarray", "names", "fields", "itemsize", "alignment", "flags")
    for key, value in changes.items():
        state[keys.index(key)] = value
    new = f(*args)
    new.__setstate__(tuple(state))
    return new


def test_dtype_field_offset_outside_itemsize():
    dt = np.dtype([("a", "<i8"), ("b", "<f8")])
    bad = _dtype_with_state(dt, fields={"a": (np.dtype("<i8"), 0), "b": (np.dtype("<f8"), 10**8)})
    _raises(bad, "is not a valid dtype", "100000008 bytes")
    node = _dtype_with_state(
        Tree.__getstate__(DecisionTreeClassifier().fit(X, Y).tree_)["nodes"].dtype, itemsize=8
    )
    _raises(node, "not a valid dtype")


def test_dtype_object_field_with_cleared_flags():
    dt = np.dtype([("a", "O"), ("b", "<f8")])
    bad = _dtype_with_state(dt, flags=0)
    assert not bad.hasobject  # numpy trusted the pickled flags
    _raises(bad, "flags=0", "numpy builds flags=")


def test_random_state_positions():
    rs = np.random.RandomState(0)
    st = rs.get_state()
    for pos in (625, -1, 10**9):
        bad = np.random.RandomState()
        bad.set_state((st[0], st[1], pos, 0, 0.0))
        _raises(bad, f"state['pos'] = {pos} is outside [0, 624]")
    mt = np.random.MT19937(0)
    state = mt.state
    state["state"]["pos"] = 700
    mt.state = state
    _raises(mt, "state['pos'] = 700")
    ph = np.random.Philox(0)
    state = ph.state
    state["buffer_pos"] = -5
    ph.state = state
    _raises(ph, "buffer_pos = -5")
    ss = np.random.SeedSequence(5)
    f, args, state = ss.__reduce_ex__(2)
    state = list(state)
    state[3] = 10**6  # pool_size
    new = f(*args)
    new.__setstate__(tuple(state))
    _raises(new, "pool has 4 words but pool_size = 1000000")


def test_bspline_state():
    spl = SplineTransformer(n_knots=4).fit(X).bsplines_[0]
    for attr, value, fragment in (
        ("k", -3, "k = -3 is outside"),
        ("_c", np.ones((2, 6)), "c has shape (2, 6)"),
        ("_t", np.arange(10.0)[::-1].copy(), "not non-decreasing"),
        ("_t", np.full(10, np.nan), "NaN"),
        ("_c", np.ones((6, 6), dtype=np.float32), "dtype float32"),
        ("extrapolate", "sometimes", "extrapolate"),
        ("_asarray", np.load, "_asarray is numpy.load"),
    ):
        bad = copy.deepcopy(spl)
        setattr(bad, attr, value)
        _raises(bad, fragment)


def test_vectorizer_vocabulary():
    cv = CountVectorizer().fit(["alpha beta gamma", "beta delta"])
    bad = copy.deepcopy(cv)
    bad.vocabulary_["alpha"] = 50_000_000
    _raises(bad, "vocabulary_['alpha'] = 50000000 is outside [0, 4)")
    bad = copy.deepcopy(cv)
    bad.vocabulary_["alpha"] = bad.vocabulary_["beta"]
    _raises(bad, "permutation")
    bad = copy.deepcopy(cv)
    bad.vocabulary_["alpha"] = 1.0
    _raises(bad, "is not an integer")
    dv = DictVectorizer().fit([{"a": 1, "b": 2}])
    dv.vocabulary_["a"] = -1
    _raises(dv, "vocabulary_['a'] = -1")


def test_feature_hasher_n_features():
    for est in (FeatureHasher(), HashingVectorizer()):
        est.n_features = 0
        _raises(est, "n_features = 0 is outside [1, 2147483647]")
        est.n_features = 2.5
        _raises(est, "n_features = 2.5 is not an integer")


def test_one_hot_encoder():
    enc = OneHotEncoder().fit(RNG.randint(0, 4, (40, 3)))
    bad = copy.deepcopy(enc)
    bad._n_features_outs = [4, 4, 2]
    _raises(bad, "feature 2 can be encoded as column 3", "_n_features_outs[2]")
    bad = copy.deepcopy(enc)
    bad.categories_[1] = bad.categories_[1][::-1].copy()
    _raises(bad, "categories_[1] is not strictly increasing")
    bad = copy.deepcopy(
        OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist").fit(
            RNG.randint(0, 7, (40, 2))
        )
    )
    bad._default_to_infrequent_mappings[0] = np.full(7, 40)
    _raises(bad, "feature 0 can be encoded as column 40")
    # drop="first": codes 0..3 lose code 0 and shift down, so 3 columns are enough, 2 are not
    dropped = OneHotEncoder(drop="first").fit(RNG.randint(0, 4, (40, 2)))
    assert dropped._n_features_outs == [3, 3]
    validate(dropped, L)
    dropped._n_features_outs = [3, 2]
    _raises(dropped, "feature 1 can be encoded as column 2", "_n_features_outs[1]")


def test_garbage_never_escapes_as_another_exception(svc, hgb_cat, clf_tree):
    cases = []
    est = copy.deepcopy(svc)
    est._n_support = None
    cases.append(est)
    est = copy.deepcopy(hgb_cat)
    est._predictors = 5
    cases.append(est)
    est = copy.deepcopy(clf_tree)
    est.tree_ = "not a tree"
    cases.append(est)
    m = _csr()
    m.__dict__.pop("indptr")
    cases.append(m)
    knn = KNeighborsClassifier().fit(X, Y)
    knn._fit_X = {"a": 1}
    cases.append(knn)
    enc = OneHotEncoder().fit(RNG.randint(0, 4, (10, 2)))
    enc._n_features_outs = object()
    cases.append(enc)
    for obj in cases:
        with pytest.raises(ValidationError):
            validate(obj, L)


def test_limits_bound_dok_and_vocabulary_walks():
    small = Limits(max_items=3)
    dok = sp.dok_array((10, 10))
    for i in range(5):
        dok[i, i] = 1.0
    with pytest.raises(SafeloadError):
        validate(dok, small)
    validate(dok, L)


# --------------------------------------------------------------------------- performance


def test_tree_validation_is_vectorised():
    rng = np.random.RandomState(1)
    Xb = rng.rand(20_000, 10)
    yb = rng.randint(0, 2, 20_000)  # noise: a deep tree of ~7k nodes
    tree = DecisionTreeClassifier(random_state=0).fit(Xb, yb).tree_
    assert tree.node_count > 5_000
    validate(tree, L)
    t = time.perf_counter()
    for _ in range(20):
        validate(tree, L)
    per_tree = (time.perf_counter() - t) / 20
    assert per_tree < 0.02, f"{per_tree * 1e3:.1f} ms for {tree.node_count} nodes"


# --------------------------------------------------------------------------- the point: C code


_PREDICT_CORRUPTED = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    from sklearn.tree._tree import Tree
    with open(sys.argv[1], "rb") as fh:
        est, n_features, n_classes, n_outputs, state, X = pickle.load(fh)
    tree = Tree(n_features, n_classes, n_outputs)
    tree.__setstate__(state)
    est.tree_ = tree
    print("prediction sum", float(est.predict_proba(X).sum()), flush=True)
    """
)


def _run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )


def test_corrupted_tree_crashes_predict_but_validate_rejects_it(clf_tree, tmp_path):
    t = clf_tree.tree_

    def mutate(st):
        st["nodes"]["left_child"][0] = 10**9

    corrupted = _rebuild_tree(t, mutate)
    _raises(corrupted, "children_left[0] = 1000000000 is outside")

    state = t.__getstate__()
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    mutate(state)
    payload = tmp_path / "tree.pkl"
    est = copy.deepcopy(clf_tree)
    del est.tree_
    with open(payload, "wb") as fh:
        pickle.dump((est, t.n_features, t.n_classes, t.n_outputs, state, X), fh)
    proc = _run(_PREDICT_CORRUPTED, str(payload))
    if proc.returncode >= 0:
        pytest.skip(f"corrupted predict did not crash here (rc={proc.returncode}): {proc.stdout}")
    assert proc.returncode < 0, "predict on the corrupted tree died from a signal"


_CRASHERS = {
    "CountVectorizer.toarray": (
        """
        from sklearn.feature_extraction.text import CountVectorizer
        cv = CountVectorizer().fit(["alpha beta gamma", "beta delta"])
        cv.vocabulary_["alpha"] = 2_000_000_000
        """,
        "cv",
        "print(cv.transform(['alpha beta'] * 50).toarray().sum())",
    ),
    "FeatureHasher n_features=0": (
        """
        from sklearn.feature_extraction import FeatureHasher
        h = FeatureHasher(n_features=8)
        h.n_features = 0
        """,
        "h",
        "print(h.transform([{'a': 1}]))",
    ),
    "RandomState pos": (
        """
        import numpy as np
        rs = np.random.RandomState(0)
        st = rs.get_state()
        rs.set_state((st[0], st[1], 10**9, 0, 0.0))
        """,
        "rs",
        "print(rs.randint(0, 10, 5))",
    ),
    "dtype field offset": (
        """
        import numpy as np
        f, args, state = np.dtype([("a", "<i8"), ("b", "<f8")]).__reduce__()
        state = list(state)
        state[4] = {"a": (np.dtype("<i8"), 0), "b": (np.dtype("<f8"), 10**9)}
        dt = f(*args); dt.__setstate__(tuple(state))
        """,
        "dt",
        "print(np.zeros(4, dtype=dt)['b'].sum())",
    ),
    "BSpline negative degree": (
        """
        import numpy as np
        from scipy.interpolate import BSpline
        spl = BSpline(np.arange(10.0), np.ones(6), 3)
        spl.k = -3
        """,
        "spl",
        "print(spl(np.linspace(0, 9, 5)))",
    ),
    "KDTree leaf_size=0": (
        """
        from sklearn.neighbors import KDTree
        import numpy as np
        kd = KDTree(np.random.RandomState(0).rand(50, 3))
        st = list(kd.__getstate__()); st[4] = 0
        kd = KDTree.__new__(KDTree); kd.__setstate__(tuple(st))
        """,
        "kd",
        "print(kd.query(np.zeros((1, 3)), k=2, breadth_first=True))",
    ),
}


@pytest.mark.parametrize("name", sorted(_CRASHERS))
def test_other_crashers_are_rejected(name):
    setup, var, use = _CRASHERS[name]
    setup = textwrap.dedent(setup)
    namespace: dict = {}
    exec(setup, namespace)
    _raises(namespace[var])
    proc = _run(setup + "\n" + use)
    if proc.returncode >= 0:
        pytest.skip(f"{name}: did not crash here (rc={proc.returncode})")
    assert proc.returncode < 0


# --------------------------------------------------------------------------- through the loader


def test_loader_runs_the_validators(clf_tree):
    safeload = pytest.importorskip("safeload")
    try:
        ok = safeload.loads(pickle.dumps(RandomForestClassifier(3, random_state=0).fit(X, Y)))
    except Exception as exc:  # the loader is developed concurrently
        pytest.skip(f"safeload.loads is not usable here: {type(exc).__name__}: {exc}")
    assert ok.predict(X).shape == (X.shape[0],)

    est = copy.deepcopy(clf_tree)

    def mutate(st):
        st["nodes"]["feature"][0] = 10**9

    est.tree_ = _rebuild_tree(clf_tree.tree_, mutate)
    with pytest.raises(ValidationError, match=r"feature\[0\] = 1000000000"):
        safeload.loads(pickle.dumps(est))

    rs = np.random.RandomState(0)
    st = rs.get_state()
    rs.set_state((st[0], st[1], 10**9, 0, 0.0))
    with pytest.raises(ValidationError, match="pos"):
        safeload.loads(pickle.dumps(rs))


# --------------------------------------------------------------------------- property test

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SMALL = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y)
_N_NODES = _SMALL.tree_.node_count

_values = st.one_of(
    st.integers(-3, _N_NODES + 3),
    st.sampled_from([-1, -2, 5, 6, 2**31 - 1, -(2**31), 10**6, 2**62]),
)
_mutation = st.one_of(
    st.tuples(
        st.just("set"),
        st.integers(0, _N_NODES - 1),
        st.sampled_from(["left_child", "right_child", "feature", "missing_go_to_left"]),
        _values,
    ),
    st.tuples(st.just("swap"), st.integers(0, _N_NODES - 1), st.just(""), st.just(0)),
    st.tuples(st.just("leaf"), st.integers(0, _N_NODES - 1), st.just(""), st.just(0)),
)

_PREDICT_MANY = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    import scipy.sparse as sp
    from sklearn.tree._tree import Tree
    with open(sys.argv[1], "rb") as fh:
        n_features, n_classes, n_outputs, states, X = pickle.load(fh)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    Xnan = X32.copy(); Xnan[::3, :] = np.nan
    Xs = sp.csr_matrix(X32)
    for i, state in enumerate(states):
        tree = Tree(n_features, n_classes, n_outputs)
        tree.__setstate__(state)
        tree.predict(X32); tree.apply(Xnan); tree.apply(Xs)
        tree.decision_path(X32); tree.decision_path(Xs)
        tree.compute_feature_importances(); tree.compute_node_depths()
        out = np.zeros(X32.shape[0])
        tree.compute_partial_dependence(X32[:, :2].copy(), np.array([0, 1], np.intp), out)
    print("ok", len(states), flush=True)
    """
)


def _apply_mutations(state, mutations):
    nodes = state["nodes"]
    for op, k, field, value in mutations:
        if op == "swap":
            nodes["left_child"][k], nodes["right_child"][k] = (
                nodes["right_child"][k],
                nodes["left_child"][k],
            )
        elif op == "leaf":
            nodes["left_child"][k] = nodes["right_child"][k] = -1
        elif field == "missing_go_to_left":
            nodes[field][k] = value % 256
        else:
            nodes[field][k] = value


def test_random_tree_mutations_are_rejected_or_safe(tmp_path):
    tree = _SMALL.tree_
    accepted: list[dict] = []
    rejected = []

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(_mutation, min_size=1, max_size=3))
    @example([("swap", 0, "", 0)])
    @example([("set", 0, "feature", 4), ("set", 0, "missing_go_to_left", 1)])
    @example([("set", 0, "left_child", 10**6)])
    def run(mutations):
        state = tree.__getstate__()
        state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
        _apply_mutations(state, mutations)
        new = Tree(tree.n_features, tree.n_classes, tree.n_outputs)
        new.__setstate__(state)
        try:
            validate(new, L)
        except ValidationError as exc:
            assert str(exc).startswith("sklearn.tree._tree.Tree: ")
            rejected.append(mutations)
            return
        accepted.append(state)

    run()
    print(f"random mutations: {len(accepted)} accepted, {len(rejected)} rejected")
    assert accepted and rejected
    payload = tmp_path / "states.pkl"
    with open(payload, "wb") as fh:
        pickle.dump((tree.n_features, tree.n_classes, tree.n_outputs, accepted, X), fh)
    proc = _run(_PREDICT_MANY, str(payload))
    assert proc.returncode == 0, (
        f"an accepted tree broke predict (rc={proc.returncode}): {proc.stderr[-2000:]}"
    )
    assert proc.stdout.strip() == f"ok {len(accepted)}"
