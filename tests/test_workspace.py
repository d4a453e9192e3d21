"""The workspace: every path stays inside it, names are plain, writes are atomic."""
from __future__ import annotations

import os
import stat

import pytest

from core.workspace import atomic_write, atomic_write_json, read_json, safe_name, workspace_root, ws_path


def test_root_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_LAB_WORKSPACE", str(tmp_path / "ws"))
    assert workspace_root() == (tmp_path / "ws").resolve()
    assert (tmp_path / "ws").is_dir()


@pytest.mark.parametrize("parts", [("..", "etc"), ("runs", "..", "..", "x"), ("/etc/passwd",)])
def test_paths_cannot_escape(parts):
    with pytest.raises(ValueError, match="escapes the workspace"):
        ws_path(*parts)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "x" * 200, "a\\b", "a..b", "abc\n"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ValueError):
        safe_name(name)


def test_plain_names_pass():
    assert safe_name("run-2026_11.v1") == "run-2026_11.v1"


def test_atomic_write_round_trip_and_permissions():
    p = ws_path("runs", "r1", "config.json")
    atomic_write_json(p, {"a": 1})
    assert read_json(p) == {"a": 1}
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    assert [f.name for f in p.parent.iterdir()] == ["config.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp():
    p = ws_path("x.json")
    atomic_write_json(p, {"v": 1})

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(p, broken)
    assert read_json(p) == {"v": 1}
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]


def test_jsonable_makes_strict_json():
    import json

    import numpy as np
    import pandas as pd

    from core.workspace import jsonable

    out = jsonable({"nan": float("nan"), "inf": np.float32("inf"), "n": np.int64(3), "a": np.array([1.5, np.nan]),
                    "t": (pd.Timestamp("2026-01-01", tz="UTC"), pd.Timedelta(hours=1)), 1: [np.float64(2.5)]})
    assert out == {"nan": None, "inf": None, "n": 3, "a": [1.5, None],
                   "t": ["2026-01-01T00:00:00+00:00", 3600.0], "1": [2.5]}
    json.dumps(out, allow_nan=False)


def test_unique_name_adds_a_counter_when_taken():
    from core.workspace import unique_name

    root = ws_path("runs")
    root.mkdir(parents=True)
    assert unique_name(root, "r") == "r"
    (root / "r").mkdir()
    (root / "r-2").mkdir()
    assert unique_name(root, "r") == "r-3"
