"""CNN Trading Lab: the home page (Streamlit directory mode: this file + one file per page in pages/).

Run with `make run` or `python -m streamlit run app.py`. The home page says what the app is, links the
pipeline's pages that exist, and summarises the active dataset (the offline synthetic market by default).
"""
from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from ui.common import load_candles, page_setup, show_error

ROOT = Path(__file__).resolve().parent

# The pipeline in the order a user walks it. A step links to its page once pages/N_<Name>.py exists;
# until then it is listed without a link (page_link to a missing file would raise).
PIPELINE = [
    ("Data", "Candles from Bybit (ccxt), the offline synthetic market, or a CSV/Parquet file; order books."),
    ("Indicators", "Technical features, labels and leakage-safe chronological splits."),
    ("Architectures", "The CNN zoo (ResNet-1D, ConvNeXt-1D, dilated/WaveNet, TCN...) and receptive fields."),
    ("Encodings", "Market data as images: indicator images, candlestick rasters, GAF, order-book heatmaps."),
    ("Train", "Train a model in the background and watch its curves; honest baselines."),
    ("Inspect", "Feature maps, attributions and effective receptive fields of a trained run."),
    ("Backtest", "Signals from probabilities, fees, slippage, sizing and stops; equity curves."),
    ("Live", "Signals on fresh candles."),
    ("Experiments", "Compare runs and sweeps."),
]


def _pages() -> dict[str, Path]:
    """Existing page files by their Streamlit name (file name without the number prefix), lower-cased."""
    out: dict[str, Path] = {}
    for path in sorted((ROOT / "pages").glob("*.py")):
        m = re.match(r"[0-9]*[_ -]*(.*)\.py$", path.name)
        if m and m.group(1):
            out[m.group(1).lower()] = path
    return out


def _link(path: Path, label: str) -> bool:
    """A link to `path`; False when the running server does not know the page yet (a file added after
    it started: Streamlit reads pages/ at start-up when the file watcher is off)."""
    from streamlit.errors import StreamlitPageNotFoundError

    try:
        st.page_link(str(path.relative_to(ROOT)), label=label, icon=":material/arrow_forward:")
        return True
    except StreamlitPageNotFoundError:
        return False


dataset_id = page_setup("Home", icon=":material/home:")

st.title("CNN Trading Lab")
st.markdown(
    "A workbench for convolutional neural networks on crypto markets: get candles, turn them into "
    "features or images, train a CNN, look inside it, and backtest its signals with fees and risk "
    "rules. Everything runs on this machine; with no internet it uses an offline **synthetic** market "
    "(simulated prices, labelled as such wherever they are shown)."
)

# --- one-click demo (issue 8): the button that runs data -> features -> model -> backtest goes here ---

st.subheader("The pipeline")
pages = _pages()
listed = set()
for step, (name, what) in enumerate(PIPELINE, start=1):
    path = pages.get(name.lower())
    col_link, col_text = st.columns([1, 4], vertical_alignment="center")
    with col_link:
        if path is None or not _link(path, f"{step}. {name}"):
            st.markdown(f":gray[{step}. {name}]")
            path = None
        else:
            listed.add(name.lower())
    with col_text:
        st.markdown(what if path is not None else f":gray[{what} (not built yet)]")
for key, path in pages.items():  # pages added later that the list above does not know yet
    if key not in listed:
        _link(path, path.stem.split("_", 1)[-1].replace("_", " "))

st.subheader("Active dataset")
try:
    from core.data.store import dataset_info
    from core.viz.data import candlestick_figure

    info = dataset_info(dataset_id)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Dataset", f"{info.symbol} {info.timeframe}", help=dataset_id)
    c2.metric("Source", info.source)
    c3.metric("Bars", f"{info.rows:,}")
    c4.metric("Span", f"{(info.end - info.start).days} days" if info.start is not None else "-",
              help=f"{info.start} to {info.end}")
    st.plotly_chart(candlestick_figure(load_candles(dataset_id), height=420), width="stretch",
                    key="home_candles")
    st.caption("Change the active dataset in the sidebar; fetch, import or generate more on the Data page.")
except Exception as exc:  # noqa: BLE001 - the home page must still show what the app is
    show_error(exc)
