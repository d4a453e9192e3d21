"""What every page shares: page config, the sidebar with the active dataset, cached loaders.

Pages run in Streamlit's directory mode (`app.py` + `pages/`): each page calls `page_setup()` first.
Cross-page choices live in session-state keys of their own (`active_dataset`), never in widget keys.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # pages run with the app folder as cwd, but be explicit
    sys.path.insert(0, str(ROOT))

ACTIVE_DATASET = "active_dataset"


def session_id() -> str:
    """A stable id for this browser tab (used to find background jobs again)."""
    if "_session_id" not in st.session_state:
        import uuid

        st.session_state["_session_id"] = uuid.uuid4().hex
    return st.session_state["_session_id"]


@st.cache_data(show_spinner=False, ttl=10)
def _dataset_ids() -> list[str]:
    from core.data.store import list_datasets

    return [d.id for d in list_datasets()]


def refresh_datasets() -> None:
    _dataset_ids.clear()
    load_candles.clear()


@st.cache_data(show_spinner="Loading candles...", max_entries=8)
def load_candles(dataset_id: str):
    from core.data.store import load_candles as _load

    return _load(dataset_id)


def active_dataset() -> str:
    """The dataset every page works on; defaults to the offline synthetic market (made on first use)."""
    from core.data.store import ensure_default_dataset

    ids = _dataset_ids()
    current = st.session_state.get(ACTIVE_DATASET)
    if current not in ids:
        default = ensure_default_dataset()
        if default not in ids:
            refresh_datasets()
        current = default
        st.session_state[ACTIVE_DATASET] = current
    return current


def page_setup(title: str, icon: str = ":material/candlestick_chart:", layout: str = "wide") -> str:
    """Set the page config, draw the shared sidebar, and return the active dataset id."""
    st.set_page_config(page_title=f"{title} · CNN Trading Lab", page_icon=icon, layout=layout)
    current = active_dataset()
    ids = _dataset_ids()
    with st.sidebar:
        st.markdown("**Active dataset**")
        choice = st.selectbox(
            "Active dataset", ids, index=ids.index(current) if current in ids else 0,
            key=f"sidebar_dataset_{title}", label_visibility="collapsed",
            help="Shared by every page. Fetch, import or generate more on the Data page.",
        )
        if choice != current:
            st.session_state[ACTIVE_DATASET] = choice
            current = choice
        if current.startswith("synthetic"):
            st.caption(":orange[synthetic] offline market: simulated prices, not real trades.")
    return current


def show_error(exc: BaseException) -> None:
    """A user-facing error as a sentence; bugs get an expander with the trace."""
    from core.errors import UserError

    if isinstance(exc, UserError):
        st.error(str(exc))
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")
        import traceback

        with st.expander("Details"):
            st.code("".join(traceback.format_exception(exc)))
