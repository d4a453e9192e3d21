"""What AppTest page tests share: the plotly figures a page drew, by title; where a page put its elements, for
the narrow-window tests (rows that wrap, `st.container(horizontal=True)`, instead of columns that cut their
text at 1,000 px with the sidebar open)."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def charts(at: AppTest, untitled: str = "") -> dict[str, dict]:
    """Every plotly chart on the page as its figure JSON, keyed by the figure's title (AppTest has no
    `plotly_chart` accessor: the spec sits in the element's proto)."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[str(spec.get("layout", {}).get("title", {}).get("text", "") or untitled)] = spec
    return out


def horizontal_rows(at: AppTest) -> list[list]:
    """The children of every horizontal, wrapping container (st.container(horizontal=True)), row by row;
    st.columns rows (also horizontal flex containers, but of columns) are not counted."""
    rows = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            proto = getattr(child, "proto", None)
            try:
                flex = proto.flex_container if proto.WhichOneof("type") == "flex_container" else None
            except (AttributeError, ValueError):
                flex = None
            if flex is not None and flex.direction == flex.Direction.HORIZONTAL and flex.wrap \
                    and not any(type(c).__name__ == "Column" for c in child.children.values()):
                rows.append(list(child.children.values()))
            walk(child)
    walk(at._tree)
    return rows


def row_keys(row: list) -> list[str]:
    """A row's widget keys (a download button has no `key` in AppTest: its element id ends with the key)."""
    return [getattr(e, "key", None) or getattr(getattr(e, "proto", None), "id", "") for e in row]


def metric_rows(at: AppTest) -> list[list[str]]:
    """The labels of each wrapping row of st.metric."""
    return [[e.label for e in row] for row in horizontal_rows(at)
            if row and all(type(e).__name__ == "Metric" for e in row)]


def in_columns(at: AppTest, element_type: str) -> list[bool]:
    """For each element of `element_type` (e.g. "Dataframe"): whether it sits inside a st.columns column."""
    out = []

    def walk(node, inside):
        for child in getattr(node, "children", {}).values():
            if type(child).__name__ == element_type:
                out.append(inside)
            walk(child, inside or type(child).__name__ == "Column")
    walk(at._tree, False)
    return out


def column_row_of(at: AppTest, key: str) -> int:
    """How many columns the row holding the widget `key` has (0: not in columns)."""
    def walk(node, n):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "key", None) == key:
                return n
            kids = list(getattr(child, "children", {}).values())
            cols = sum(type(c).__name__ == "Column" for c in kids)
            found = walk(child, cols if cols else n)
            if found is not None:
                return found
        return None
    return walk(at._tree, 0) or 0
