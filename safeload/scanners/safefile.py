"""safeload's safe format (``docs/FORMAT.md``): the loader's own checks, without building.

The scan runs what :func:`safeload.format.archive.load_parts` runs before it imports anything
— zip structure, manifest, hash of ``graph.json``, the verdict of every entry of the globals
table, the declared header and size of every array member — and then the build stage's static
call rules on the graph read as an inert graph (:mod:`safeload.format.inert`).  It reads no
array data: array hashes are left to ``load`` and ``verify``.
"""

from __future__ import annotations

from ..errors import SafeloadError
from ..format.archive import GRAPH, check_array_headers, open_archive
from ..format.inert import inert_graph
from ..source import Source
from .collector import Collector
from .graphcheck import check_graph

__all__ = ["scan_safe"]


def scan_safe(src: Source, col: Collector) -> str:
    """Scan one safe-format archive into ``col``; returns the format name ``"safeload"``."""
    limits = col.limits
    try:
        safe = open_archive(src.data, limits, verify=True)
    except SafeloadError as exc:
        col.add_error(exc)
        return "safeload"
    versions = safe.manifest.get("producer", {})
    if isinstance(versions, dict) and isinstance(versions.get("scikit-learn"), str):
        col.sklearn_version = versions["scikit-learn"]
    try:
        dtypes = check_array_headers(safe, src.data, limits)
        root, context = inert_graph(safe.doc, dtypes, limits)
    except SafeloadError as exc:
        for pair in _table(safe.doc):
            col.add_type_name(pair, location=GRAPH)
        col.add_error(exc, location=GRAPH)
        return "safeload"
    for pair in context.globals:
        col.add_type_name(pair, location=GRAPH)
    col.add_graph(check_graph(root, col.policy, limits), location=GRAPH)
    col.add(
        "safeload-format",
        "safeload safe-format archive: structure, manifest, graph.json hash, array headers and "
        "type names checked; array data is hashed by safeload.load and safeload verify",
        location="manifest.json",
    )
    return "safeload"


def _table(doc: dict) -> list[tuple[str, str]]:
    table = doc.get("globals")
    if not isinstance(table, list):
        return []
    return [
        (e[0], e[1])
        for e in table
        if isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) and x for x in e)
    ]
