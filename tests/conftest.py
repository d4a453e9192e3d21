"""Shared fixtures: every test gets its own empty workspace; the real market data in ../shared/data."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("CNN_LAB_WORKSPACE", str(ws))
    return ws


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real market data expected at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch

        # the suite's models are small: one thread is as fast and does not fight the app server and
        # browser that the browser tests run beside it
        torch.set_num_threads(1)
    except ImportError:
        pass
    yield


@pytest.fixture(autouse=True)
def _clear_streamlit_caches():
    """Streamlit's caches outlive AppTest instances in one process (STREAMLIT_NOTES): every test starts
    clean, after the workspace fixture pointed CNN_LAB_WORKSPACE at a fresh folder."""
    def clear() -> None:
        st = sys.modules.get("streamlit")
        if st is not None:
            st.cache_data.clear()
            st.cache_resource.clear()

    clear()
    yield
    clear()
