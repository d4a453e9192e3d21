"""The house plan's arrows, checked on the source: `core` never imports Streamlit (so it runs from the command
line and in tests without it), and inside `core` only `core.viz` imports `core.viz` (figures are for pages)."""
from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_core_never_imports_streamlit_and_only_viz_imports_viz():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 50
    streamlit = [str(f.relative_to(CORE)) for f in files
                 if any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(f))]
    assert streamlit == []
    viz = [str(f.relative_to(CORE)) for f in files if f.parent.name != "viz"
           and any(n == "core.viz" or n.startswith("core.viz.") for n in _imports(f))]
    assert viz == []
