"""What AppTest page tests share: the plotly figures a page drew, by title."""
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
