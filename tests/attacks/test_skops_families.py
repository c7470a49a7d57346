"""Family *skops* (catalogue rows K1-K4): hostile skops files, for ``load`` and ``scan``.

skops files are zips whose ``schema.json`` names, per node, a loader and a
``__module__.__class__``.  The advisories: an ``OperatorFuncNode`` that shows a harmless type
while dispatching ``operator.call`` (K1, CVE-2025-54412), a ``MethodNode`` calling a method of a
trusted object under a misleading name (K2, CVE-2025-54413), ``Card.get_model`` falling back to
``joblib.load`` for a file that is not a zip (K3, CVE-2025-54886), and loaders that constructed
objects of untrusted types (K4, CVE-2024-37065).  Each test builds several variants of its own
(different gadgets, nodes and nesting) from a real skops file and checks that ``load`` refuses
it with a ``SafeloadError`` without running anything (the canary fixture) and that ``scan``
reports it unsafe, naming the hostile type.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile

import numpy as np
import pytest

import safeload

from ._pickle_builder import G, containers, dumps
from .conftest import Untrusted, assert_refused

CMD = 'touch "$SAFELOAD_CANARY_DIR/skops"'


def _base() -> tuple[dict, list[tuple[str, bytes]]]:
    import skops.io
    from sklearn.preprocessing import StandardScaler

    data = skops.io.dumps(StandardScaler().fit(np.arange(6.0).reshape(3, 2)))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    schema = json.loads(dict(members)["schema.json"])
    return schema, [(n, b) for n, b in members if n != "schema.json"]


def _skops_file(schema: dict, members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in members:
            zf.writestr(name, body)
        zf.writestr("schema.json", json.dumps(schema))
    return buf.getvalue()


def _json_node(value: str) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True, "__id__": 1}  # fmt: skip


def _list_node(*items: dict) -> dict:
    return {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
            "content": list(items), "__id__": 2}  # fmt: skip


#: node name -> (a schema node, names that must be reported)
NODES = {
    "K1-operator-call": (
        {
            "__class__": "call",
            "__module__": "operator",
            "__loader__": "OperatorFuncNode",
            "attrs": {"func": "call"},
            "content": _list_node(_json_node("os.system"), _json_node(CMD)),
            "__id__": 3,
        },
        ["operator.call"],
    ),
    "K1-operator-methodcaller": (
        {
            "__class__": "methodcaller",
            "__module__": "operator",
            "__loader__": "OperatorFuncNode",
            "attrs": {"func": "methodcaller"},
            "content": _list_node(_json_node("system"), _json_node(CMD)),
            "__id__": 4,
        },
        ["operator.methodcaller"],
    ),
    "K2-method-node": (
        {
            "__class__": "StandardScaler",
            "__module__": "sklearn.preprocessing._data",
            "__loader__": "MethodNode",
            "content": {
                "func": "system",
                "obj": {
                    "__class__": "module",
                    "__module__": "os",
                    "__loader__": "ObjectNode",
                    "content": {},
                    "__id__": 5,
                },
            },  # fmt: skip
            "__id__": 6,
        },
        ["sklearn.preprocessing._data.StandardScaler.system", "os.module.system"],
    ),
    "K4-object-node-os": (
        {
            "__class__": "system",
            "__module__": "os",
            "__loader__": "ObjectNode",
            "content": _json_node(CMD),
            "__id__": 7,
        },  # fmt: skip
        ["os.system"],
    ),
    "K4-type-node-eval": (
        {
            "__class__": "eval",
            "__module__": "builtins",
            "__loader__": "TypeNode",
            "content": {"__class__": "eval", "__module__": "builtins"},
            "__id__": 8,
        },  # fmt: skip
        ["builtins.eval"],
    ),
    "K4-function-node-exec": (
        {
            "__class__": "function",
            "__module__": "builtins",
            "__loader__": "FunctionNode",
            "content": {"module_path": "builtins", "function": "exec"},
            "__id__": 9,
        },  # fmt: skip
        ["builtins.exec", "builtins.function"],  # skops spells the node's type "function"
    ),
    "K4-unknown-loader": (
        {
            "__class__": "Popen",
            "__module__": "subprocess",
            "__loader__": "ReduceNode",
            "content": _json_node(CMD),
            "__id__": 10,
        },  # fmt: skip
        ["subprocess.Popen"],
    ),
}

#: where the hostile node goes: an attribute of the estimator, nested in a list, the root
PLACES = ("attribute", "nested", "root")


def _hostile(node_name: str, place: str) -> bytes:
    schema, members = _base()
    node = copy.deepcopy(NODES[node_name][0])
    if place == "root":  # the root object itself; the file-level keys (protocol ...) are kept
        extra = {
            k: v
            for k, v in schema.items()
            if k not in ("__class__", "__module__", "__loader__", "content")
        }
        schema = {**node, **extra}
    elif place == "attribute":
        schema["content"]["content"]["mean_"] = node
    else:
        schema["content"]["content"]["extra_"] = _list_node(_json_node("x"), _list_node(node))
    return _skops_file(schema, members)


def _names_in(report) -> str:
    return " ".join(report.untrusted_types) + " " + " ".join(f.message for f in report.findings)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("node", list(NODES))
def test_hostile_skops_node(node, place):
    data = _hostile(node, place)
    with pytest.raises(safeload.SafeloadError):
        safeload.loads(data)
    report = safeload.scan(data)
    assert not report.safe, [f.message for f in report.findings]
    assert report.format == "skops", report.format
    # a hostile type is named, or the node is refused as malformed
    names = _names_in(report)
    assert any(name in names for name in NODES[node][1]) or any(
        f.rule_id == "SL024" for f in report.findings
    ), (NODES[node][1], names)


def test_unmodified_skops_file_is_not_reported_unsafe_for_its_types():
    """Control: the base file of these variants names only trusted types."""
    schema, members = _base()
    report = safeload.scan(_skops_file(schema, members))
    assert report.format == "skops"
    assert report.untrusted_types == [], report.untrusted_types


@pytest.mark.parametrize("box", ["raw", "zlib", "gzip", "xz"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_k3_pickle_named_like_a_skops_file(tmp_path, box, protocol):
    """K3: a pickle (plain or joblib-compressed) saved as ``model.skops``: safeload decides by
    content, so it is audited as the pickle it is, never loaded as one blindly."""
    path = tmp_path / "model.skops"
    path.write_bytes(containers(dumps(G("os", "system")(CMD), protocol))[box])
    assert_refused(path, Untrusted("os.system"))
    assert "os.system" in safeload.scan(path).untrusted_types
