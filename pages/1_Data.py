"""Data: get candles (offline synthetic market, Bybit via ccxt, or a file), look at them, manage datasets,
record and inspect order books. Thin: widgets in, core calls, core.viz figures out."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from ui.common import page_setup, load_candles, show_error, session_id, set_active_dataset, refresh_datasets
from ui.common import job_status, keep_settings, load_order_book, sentence
from ui.jobs import get_job, start_job

from core.data import store, candles as cd
from core.viz import data as vz

dataset_id = page_setup("Data")
sid = session_id()
# the settings survive a visit to another page (not the file, not "replace": each import decides that anew)
_keep = keep_settings("data_kept_settings", (
    "chart_view", "data_source", "synth_symbol", "synth_tf", "synth_start", "synth_days", "synth_seed",
    "bybit_market", "bybit_symbol", "bybit_tf", "bybit_range", "import_symbol", "import_tf", "import_drop_nan",
    "ob_market", "ob_symbol", "ob_every", "ob_duration", "ob_depth", "ob_pick"))
st.title("Data")
st.caption("Where the candles come from: the offline synthetic market, Bybit through ccxt, or your own file. The "
           "active dataset (sidebar) is what every page works on; order books feed the heatmap models.")

SOURCES = {"synthetic": "Offline synthetic market", "bybit": "Bybit (ccxt)", "file": "Import a file"}
MARKETS = {"spot": "Spot", "linear": "USDT linear perpetual"}
TIMEFRAMES = list(cd.TIMEFRAMES)


def _fetched(r) -> None:
    set_active_dataset(r.dataset)


def _recorded(r) -> None:
    st.session_state["ob_pick"] = r.id


REPLACE = "Replace a dataset of the same name"


def _runs_on(ds_id: str) -> str:
    """' N runs were trained on it and ...' (empty when none): what replacing or deleting a dataset breaks."""
    from core.train.runs import list_runs

    n = sum(r.dataset_id == ds_id for r in list_runs())
    return (f" {n} run{'s were' if n != 1 else ' was'} trained on it and could no longer be backtested or "
            "inspected." if n else "")


def _not_replaced(exc: store.DatasetExists, other: str = "choose another symbol or timeframe") -> None:
    """Storing would silently replace a held dataset (and break the runs trained on it): say so and ask."""
    st.session_state.pop("import_report", None)  # the last import's success box would contradict this
    st.warning(f"{sentence(str(exc))}.{_runs_on(exc.info.id)} Tick \"{REPLACE}\" to go on, "
               f"or {other}. Nothing was changed.")


# --- the active dataset ------------------------------------------------------------------------------
try:
    df = load_candles(dataset_id)
    view = st.radio("View", ["Whole history", "Last 1,000 bars"], horizontal=True, key="chart_view",
                    label_visibility="collapsed")
    shown = df.iloc[-1000:] if view == "Last 1,000 bars" else df
    st.plotly_chart(vz.candlestick_figure(shown), width="stretch", key="data_candles")
    report = cd.quality_report(df)
    figures = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # six columns: "17..."
    for label, value in ([
        ("Rows", f"{report['rows']:,}"), ("Span", f"{report['span_days']:,.0f} days"),
        ("Gaps", f"{report['gap_count']:,}"), ("Missing bars", f"{report['missing_bars']:,}"),
        ("Duplicates", f"{report['duplicates']:,}"), ("Zero-volume bars", f"{report['zero_volume_bars']:,}"),
    ]):
        figures.metric(label, value)
    with st.expander("Quality report in full", expanded=False, key="quality_expander"):
        q1, q2 = st.columns([1, 2])
        q1.dataframe(vz.report_table(report), hide_index=True, key="quality_table")
        q2.plotly_chart(vz.gaps_figure(df), width="stretch", key="gaps_chart")
except Exception as exc:  # noqa: BLE001
    show_error(exc)

# --- get data ------------------------------------------------------------------------------------------
st.subheader("Get data")
source = st.radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="data_source")
if source == "synthetic":
    from core.data import synthetic

    with st.form("synth_form", border=False):
        # two rows of three: in five columns the start date read "2024 / 0" and the symbol "BTC/US"
        c1, c2, c3 = st.columns(3)
        sym = c1.selectbox("Symbol", list(synthetic.PROFILES), key="synth_symbol")
        tf = c2.selectbox("Timeframe", TIMEFRAMES, index=TIMEFRAMES.index("1h"), key="synth_tf")
        start = c3.date_input("Start", dt.date(2024, 1, 1), key="synth_start")
        c4, c5, c6 = st.columns(3, vertical_alignment="bottom")
        days = c4.number_input("Span (days)", 1, 3650, 365, key="synth_days")
        seed = c5.number_input("Seed", 0, 2**31 - 1, 42, key="synth_seed")
        suffix = c6.text_input("Name suffix (optional)", key="synth_suffix", placeholder="e.g. short",
                               help="Keeps this market beside one of the same symbol and timeframe: 'short' "
                                    "stores synthetic-BTCUSDT-1h-short. Letters, digits, '.', '_' or '-'.")
        replace = st.checkbox(REPLACE, key="synth_replace")
        go_synth = st.form_submit_button("Generate", icon=":material/auto_awesome:", key="synth_generate")
    if go_synth:
        try:
            with st.spinner("Generating..."):
                t0 = pd.Timestamp(start, tz="UTC")
                info = store.make_synthetic_datasets([sym], tf, start=t0, end=t0 + pd.Timedelta(days=int(days)),
                                                     seed=int(seed), replace=replace, suffix=suffix)[0]
            set_active_dataset(info.id)
            st.rerun()
        except store.DatasetExists as exc:
            _not_replaced(exc, "give it a name suffix to keep both (or choose another symbol or timeframe)")
        except Exception as exc:  # noqa: BLE001
            show_error(exc)
elif source == "bybit":
    c1, c2 = st.columns(2)  # two rows of two: in a quarter of the width the date range read "2026 / 10 /"
    market = c1.selectbox("Market", list(MARKETS), format_func=MARKETS.get, key="bybit_market")
    sym = c2.text_input("Symbol", "BTC/USDT", key="bybit_symbol")
    c3, c4 = st.columns(2)
    tf = c3.selectbox("Timeframe", TIMEFRAMES, index=TIMEFRAMES.index("1h"), key="bybit_tf")
    today = dt.date.today()
    rng = c4.date_input("Range", (today - dt.timedelta(days=30), today), key="bybit_range")
    running = (job := get_job(sid, "fetch")) is not None and not job.done
    if st.button("Fetch", key="fetch_start", disabled=running, icon=":material/download:"):
        if not isinstance(rng, (tuple, list)) or len(rng) != 2:
            st.error("Pick a start and an end date.")
        else:
            from core.data import bybit

            start_job(sid, "fetch", bybit.fetch_candles, symbol=sym.strip(), market_type=market, timeframe=tf,
                      start=dt.datetime.combine(rng[0], dt.time(), dt.timezone.utc),
                      end=dt.datetime.combine(rng[1] + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
    job_status("fetch", "Fetch", on_result=_fetched,
               describe=lambda r: f"{r.dataset}, {r.rows:,} candles ({r.rows_added:,} new, {r.requests} requests)"
                                  + (f". {r.note()}" if r.left_out else ""))
else:
    from core.data import importer

    up = st.file_uploader("CSV or Parquet with timestamp, open, high, low, close, volume",
                          type=["csv", "parquet"], key="import_file")
    c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
    sym = c1.text_input("Symbol", "BTC/USDT", key="import_symbol")
    tf = c2.selectbox("Timeframe", ["detect", *TIMEFRAMES], key="import_tf",
                      help="'detect' takes the most common spacing of the timestamps.")
    drop_nan = c3.checkbox("Drop rows with missing values (counted in the report)", key="import_drop_nan")
    replace = c3.checkbox(REPLACE, key="import_replace")
    if st.button("Import", key="import_go", disabled=up is None, icon=":material/upload:"):
        try:
            _, report = importer.import_candles(up.getvalue(), sym, None if tf == "detect" else tf,
                                                filename=up.name, nan_policy="drop" if drop_nan else "refuse",
                                                replace=replace)
            set_active_dataset(report.dataset)
            st.session_state["import_report"] = report
            st.rerun()
        except store.DatasetExists as exc:
            _not_replaced(exc)
        except Exception as exc:  # noqa: BLE001
            st.session_state.pop("import_report", None)  # the last import's success box would read as this one's
            show_error(exc)
    if (report := st.session_state.get("import_report")) is not None:
        st.success(f"Imported {report.dataset}: {report.summary()}. It is now the active dataset (sidebar): the "
                   "other pages work on it.")
        st.dataframe(vz.report_table(report), hide_index=True, key="import_report_table")

# --- datasets held -------------------------------------------------------------------------------------
st.subheader("Datasets held")
infos = store.list_datasets()
st.container(key="datasets_count").caption(
    f"{len(infos)} dataset{'s' if len(infos) != 1 else ''} held, {sum(i.rows for i in infos):,} candles in all")
st.dataframe(vz.datasets_table(infos), hide_index=True, key="datasets_table")
ids = [i.id for i in infos]
c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
ds_buttons = c2.container(horizontal=True)  # at their own width, wrapping: in sixths they read "Make ..." and "D..."
if st.session_state.get("_ds_pick_follows") != dataset_id or st.session_state.get("ds_pick") not in ids:
    st.session_state["_ds_pick_follows"] = dataset_id  # the picker follows the active dataset when it changes
    st.session_state["ds_pick"] = dataset_id if dataset_id in ids else (ids[0] if ids else None)
pick = c1.selectbox("Dataset", ids, key="ds_pick")
if ds_buttons.button("Make active", key="ds_activate", disabled=pick == dataset_id):
    set_active_dataset(pick)
    st.rerun()
ds_buttons.download_button("CSV", data=lambda: store.load_candles(pick).to_csv().encode(), file_name=f"{pick}.csv",
                           mime="text/csv", key="ds_download", on_click="ignore", icon=":material/download:")
if ds_buttons.button("Delete", key="ds_delete", icon=":material/delete:"):
    st.session_state["confirm_delete"] = pick
if st.session_state.get("confirm_delete") == pick:
    st.warning(f"Delete {pick} and its files?{_runs_on(pick)} This cannot be undone.")
    d1, d2, _ = st.columns([1, 1, 6])
    if d1.button("Yes, delete", key="ds_delete_confirm", type="primary"):
        try:
            store.delete_dataset(pick)
        except Exception as exc:  # noqa: BLE001
            show_error(exc)
        st.session_state.pop("confirm_delete", None)
        refresh_datasets()
        st.rerun()
    if d2.button("Keep it", key="ds_delete_cancel"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()

# --- order books --------------------------------------------------------------------------------------
st.subheader("Order books")
from core.data import orderbook as ob  # noqa: E402

with st.expander("Record Bybit order books", key="ob_record_expander"):
    c1, c2, c3, c4, c5 = st.columns(5)
    ob_market = c1.selectbox("Market", list(MARKETS), format_func=MARKETS.get, key="ob_market")
    ob_sym = c2.text_input("Symbol", "BTC/USDT", key="ob_symbol")
    depth = c3.number_input("Top N levels", 1, 200, 20, key="ob_depth")
    every = c4.number_input("Every (s)", 1, 3600, 5, key="ob_every")
    dur = c5.number_input("Duration (s)", 5, 24 * 3600, 60, key="ob_duration")
    ob_running = (j := get_job(sid, "orderbook")) is not None and not j.done
    if st.button("Record", key="ob_start", disabled=ob_running, icon=":material/fiber_manual_record:"):
        from core.data import bybit

        start_job(sid, "orderbook", bybit.record_order_book, symbol=ob_sym.strip(), market_type=ob_market,
                  levels=int(depth), interval_s=float(every), duration_s=float(dur))
    job_status("orderbook", "Order-book recording", on_result=_recorded,
               describe=lambda r: f"{r.id}, {r.snapshots:,} snapshots")

synthetic_active = dataset_id.startswith("synthetic")
if st.button("Make synthetic order books for the active dataset", key="ob_synth", disabled=not synthetic_active,
             help="One snapshot per candle close (the last 1,000 candles), following the synthetic price path."
                  + ("" if synthetic_active else " Only for a synthetic market: real candles get real books, "
                                                 "recorded from Bybit above, not invented depth.")):
    try:
        with st.spinner("Making order books..."):
            made = ob.make_synthetic_order_book(dataset_id, levels=20, max_snapshots=1000)
        st.session_state["ob_pick"] = made.id
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
books = {b.id: b for b in ob.list_order_books()}
if not books:
    st.info("No order-book snapshots stored yet: record some from Bybit, or make synthetic ones.")
else:
    if st.session_state.get("ob_pick") not in books:
        st.session_state.pop("ob_pick", None)
    book_id = st.selectbox("Stored snapshots", list(books), key="ob_pick",
                           format_func=lambda b: f"{b} ({books[b].snapshots:,} snapshots, {books[b].source})")
    try:
        book = load_order_book(book_id)  # cached until the book is replaced: the slider reruns the page
        times = vz.book_timestamps(book)
        labels = vz.snapshot_labels(times)
        if st.session_state.get("ob_snapshot") not in labels:  # another book: start at its latest snapshot
            st.session_state["ob_snapshot"] = labels[-1]
        i = labels.index(st.select_slider("Snapshot (UTC)", labels, key="ob_snapshot")) if len(times) > 1 else 0
        synth = " (synthetic)" if books[book_id].source == "synthetic" else ""
        if synth:
            of = books[book_id].meta.get("dataset") or "the dataset"
            st.caption(f"A snapshot is taken at each candle's close and stamped with that close time: the last "
                       f"one, {labels[-1]}, is the close of {of}'s last candle (which opened one bar earlier).")
        o1, o2 = st.columns(2)
        o1.plotly_chart(vz.depth_figure(book, times[min(i, len(times) - 1)], title=f"Depth{synth}"),
                        width="stretch", key="ob_depth_chart")
        o2.plotly_chart(vz.orderbook_heatmap_figure(book, title=f"Heatmap{synth} · {len(times):,} snapshots"),
                        width="stretch", key="ob_heatmap")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
_keep()
