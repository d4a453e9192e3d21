"""Encodings: market data as images. A window's candles beside each of its encodings, a gallery grouped by
label, the order-book depth heatmap with the price path over it, and the chart ResNet trained with transfer
learning against the same model from scratch. Thin: widgets in, core calls, core.viz figures out."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from ui.common import (job_status, keep_settings, load_candles, load_order_book, page_setup, session_id, show_error,
                       take_request)

from core.data.candles import bar_seconds
from core.data.store import dataset_version
from core.errors import UserError
from core.features import LABEL_KINDS, PRESETS, DatasetConfig, LabelConfig, SplitConfig, prepare_dataset
from core.viz import encodings as ve

dataset_id = page_setup("Encodings")
sid = session_id()
# Every setting on this page survives a visit to another page (Streamlit drops a page's widget values when
# the user leaves it); buttons and the figures' keys are not settings.
SETTING_KEYS = (
    "enc_preset", "enc_window", "enc_label", "enc_horizon", "enc_threshold", "enc_size",  # data settings
    "enc_when",  # the window shown
    "enc_gallery_kind", "enc_gallery_split", "enc_gallery_n", "enc_gallery_seed",
    "enc_book", "enc_book_n", "enc_book_axis", "enc_book_pct",
    "enc_tr_source_kind", "enc_tr_source_ds", "enc_tr_source_run", "enc_tr_source_file", "enc_tr_freeze",
    "enc_tr_size", "enc_tr_max_train", "enc_tr_epochs", "enc_tr_rows", "enc_tr_lr", "enc_tr_pick",
)
_keep_settings = keep_settings("enc_kept_settings", SETTING_KEYS)
st.title("Encodings: market data as images")
st.caption("What the 2D models read. Indicator images are scaled with bounds fitted on the training segment "
           "only; charts, Gramian angular fields and recurrence plots use nothing outside their own window.")


# Caches are keyed on the data key: (dataset id, the dataset file's version, preset, label kind, horizon,
# threshold, window), so a rewritten dataset or other settings are computed afresh and a rerun for any other
# widget (the window slider, the gallery, the book, the transfer form) reuses the work below. The figures are
# cache_resource objects, shared and never changed after they are built (st.plotly_chart only serialises
# them): a cache_data copy would cost ~12 ms of unpickling per figure and rerun, a third of a rerun.
@st.cache_data(show_spinner="Computing features, labels and the split...", max_entries=4)
def _prepare(data_key: tuple):
    dataset_id, _version, preset, kind, horizon, threshold, window = data_key
    return prepare_dataset(load_candles(dataset_id), DatasetConfig(
        preset=preset, label=LabelConfig(kind=kind, horizon=horizon, threshold=threshold),
        split=SplitConfig(), window=window))


@st.cache_data(show_spinner=False, max_entries=4)
def _indicator_scaler(data_key: tuple):
    """The indicator-image scaling (fitted on the training rows only), once per dataset and settings."""
    from core.encodings.datasets import indicator_scaler_for

    return indicator_scaler_for(_prepare(data_key))


@st.cache_resource(show_spinner=False, max_entries=8)
def _window_figure(data_key: tuple, end: int, size: int):
    return ve.window_figure(_prepare(data_key), end, size, _indicator_scaler(data_key))


@st.cache_resource(show_spinner=False, max_entries=8)
def _gallery_figure(data_key: tuple, size: int, kind: str, split: str, per_class: int, seed: int):
    scaler = _indicator_scaler(data_key) if kind == "indicator image" else None
    return ve.gallery_figure(_prepare(data_key), kind, split, per_class, seed, size, scaler)


with st.expander("Data settings", expanded=False):
    c1, c2, c3 = st.columns(3)
    presets = list(PRESETS)
    preset = c1.selectbox("Feature preset (indicator image rows)", presets, key="enc_preset",
                          index=presets.index("chapter6") if "chapter6" in presets else 0)
    window = int(c1.number_input("Window (bars)", 8, 256, 32, key="enc_window"))
    kinds = [k for k in LABEL_KINDS if k != "multitask"]
    label_kind = c2.selectbox("Label", kinds, key="enc_label")
    horizon = int(c2.number_input("Horizon (bars)", 1, 200, 12, key="enc_horizon"))
    threshold = float(c2.number_input("Threshold (%)", 0.0, 10.0, 0.2, step=0.05, key="enc_threshold")) / 100
    size = int(c3.select_slider("Image size (px)", [32, 48, 64, 96, 128, 160, 224], 64, key="enc_size"))

data_key = (dataset_id, dataset_version(dataset_id), preset, label_kind, horizon, threshold, window)
try:
    prepared = _prepare(data_key)
except Exception as exc:  # noqa: BLE001 - a sentence for the user, nothing else on the page needs it
    show_error(exc)
    _keep_settings()  # the settings further down were not drawn this time: keep them for the next run
    st.stop()

from core.encodings.datasets import ENCODING_NAMES  # noqa: E402
from core.encodings.samples import all_ends as sample_ends, end_near, window_facts  # noqa: E402

all_ends = sample_ends(prepared)

# ------------------------------------------------------------------------------------ one window, all images
st.subheader("A window and its encodings")
ts = prepared.timestamps
first, last = ts[int(all_ends[0])].to_pydatetime(), ts[int(all_ends[-1])].to_pydatetime()
step = timedelta(seconds=bar_seconds(prepared.candles, default=3600))
if "enc_when" in st.session_state:  # a time kept from another dataset or window may lie outside this range
    kept = pd.Timestamp(st.session_state["enc_when"])
    kept = kept.tz_localize("UTC") if kept.tzinfo is None else kept
    if not ts[int(all_ends[0])] <= kept <= ts[int(all_ends[-1])]:
        del st.session_state["enc_when"]
when = st.slider("Window ends at (UTC)", min_value=first, max_value=last,
                 value=ts[int(all_ends[len(all_ends) // 2])].to_pydatetime(), step=step,
                 format="YYYY-MM-DD HH:mm", key="enc_when")
try:
    end = end_near(prepared, all_ends, when)
    fig = _window_figure(data_key, end, size)
    segment, label_name = window_facts(prepared, end)
    st.caption(f"Window of {window} bars ending {ts[end]:%Y-%m-%d %H:%M} UTC · {segment} segment · "
               f"label **{label_name}** (the next {horizon} bars)")
    st.plotly_chart(fig, width="stretch", key="enc_window_fig")
    st.caption(ve.encoding_captions(ENCODING_NAMES))
except Exception as exc:  # noqa: BLE001
    show_error(exc)

# ----------------------------------------------------------------------------------------- gallery by label
st.subheader("Gallery grouped by label")
g1, g2, g3, g4 = st.columns(4)
gkind = g1.selectbox("Encoding", ENCODING_NAMES, key="enc_gallery_kind")
gsplit = g2.selectbox("Segment", ["train", "val", "test"], key="enc_gallery_split")
per_class = int(g3.slider("Examples per class", 2, 10, 6, key="enc_gallery_n"))
gseed = int(g4.number_input("Pick seed", 0, 10_000, 0, key="enc_gallery_seed"))
try:
    gfig = _gallery_figure(data_key, size, gkind, gsplit, per_class, gseed)
    if gfig is None:
        st.info("This segment has no labelled windows.")
    else:
        st.plotly_chart(gfig, width="stretch", key="enc_gallery_fig")
except Exception as exc:  # noqa: BLE001
    show_error(exc)

# ------------------------------------------------------------------------------------- order-book heatmap
st.subheader("Order-book depth heatmap")
from core.data.orderbook import list_order_books, stored_digest  # noqa: E402
from core.encodings.orderbook_heatmap import HeatmapConfig, last_snapshots, orderbook_heatmap  # noqa: E402

OFFLINE = "offline market book (simulated from these candles)"
books = {b.id: b for b in list_order_books()}
b1, b2, b3 = st.columns([2, 1, 1])
book_choice = b1.selectbox("Snapshots", [OFFLINE, *books], key="enc_book",
                           format_func=lambda b: b if b == OFFLINE else f"{b} ({books[b].snapshots:,} snapshots, "
                                                                        f"{books[b].source})")
n_snap = int(b2.number_input("Last N snapshots", 20, 5000, 300, step=20, key="enc_book_n"))
fixed = b3.radio("Price axis", ["distance from mid", "fixed price"], key="enc_book_axis",
                 help="Distance from mid is what a model reads (stationary); fixed price shows the price "
                      "path moving through the depth. The fixed grid is built from every shown snapshot, later "
                      "prices included, so it is for viewing only: models never read it.") == "fixed price"
pct = float(b3.number_input("Range ± %", 0.1, 20.0, 2.0, step=0.5, key="enc_book_pct")) / 100


@st.cache_data(show_spinner="Simulating order-book snapshots...", max_entries=4)
def _offline_book(dataset_id: str, version: int, n: int):
    from core.data.synthetic import synthetic_order_book_snapshots

    return synthetic_order_book_snapshots(load_candles(dataset_id), levels=20, seed=0, max_snapshots=n)


@st.cache_resource(show_spinner=False, max_entries=8)
def _heatmap_figure(book_key: tuple, n: int, pct: float, fixed: bool):
    """book_key: ("offline", dataset id, version) or ("stored", book id, its fingerprint)."""
    if book_key[0] == "offline":
        book = _offline_book(book_key[1], book_key[2], n)
    else:
        book = last_snapshots(load_order_book(book_key[1]), n)
    hm = orderbook_heatmap(book, HeatmapConfig(n_bins=100, pct_range=pct, anchor="first" if fixed else "mid"))
    return ve.orderbook_heatmap_figure(hm, title=f"resting size in {hm.image.shape[1]} price bins, ±{pct:.1%} "
                                                 f"({len(hm.timestamps):,} snapshots)")


try:
    if book_choice == OFFLINE:
        book_key = ("offline", dataset_id, data_key[1])
    else:
        book_key = ("stored", book_choice, stored_digest(book_choice))
    st.plotly_chart(_heatmap_figure(book_key, n_snap, pct, fixed), width="stretch", key="enc_book_fig")
    if book_choice == OFFLINE:
        st.caption(":orange[simulated] book: one snapshot per candle close, following the candles' prices.")
    if fixed:
        st.caption("Fixed price axis: for viewing only. Its grid spans every shown snapshot (later prices "
                   "included); order-book models read the distance from each snapshot's mid.")
except Exception as exc:  # noqa: BLE001
    show_error(exc)

# ------------------------------------------------------------------------------ transfer learning section
st.divider()
st.subheader("Chart ResNet: transfer vs scratch")
st.caption("Pre-train `chart_resnet18` on a source (another symbol, timeframe or the offline market), "
           "fine-tune it on this dataset with the early stages frozen, and train the same model from scratch "
           "on the same split. Both target runs are saved in the run registry. Three ResNet-18 trainings run "
           "in the background (on a GPU when there is one; on 2 CPU cores keep the charts small).")

from core.data.store import list_datasets  # noqa: E402
from core.train import transfer as tr  # noqa: E402
from ui.jobs import get_job, start_job  # noqa: E402

JOB = "transfer"
SOURCES = {"dataset": "pre-train on another dataset", "run": "an earlier chart_resnet18 run",
           "weights": "a torchvision resnet18 .pth in the workspace"}
t1, t2, t3 = st.columns(3)
src_kind = t1.radio("Start from", list(SOURCES), format_func=SOURCES.get, key="enc_tr_source_kind")
source = None
if src_kind == "dataset":
    others = [d.id for d in list_datasets() if d.id != dataset_id]
    if others:
        source = "dataset:" + t1.selectbox("Source dataset", others, key="enc_tr_source_ds")
    else:
        t1.info("Only one dataset is stored: fetch, import or generate another one on the Data page.")
elif src_kind == "run":
    runs = tr.source_runs()
    if runs:
        rid = t1.selectbox("Source run", [r.run_id for r in runs], key="enc_tr_source_run",
                           format_func=lambda r: next(f"{x.name} ({x.dataset_id})" for x in runs if x.run_id == r))
        source = f"run:{rid}"
    else:
        t1.info("No chart_resnet18 runs yet.")
else:
    files = tr.list_weight_files()
    if files:
        source = "weights:" + t1.selectbox("Weights file", files, key="enc_tr_source_file")
    else:
        t1.info(f"No weights files yet: place a torchvision resnet18 `.pth` (a state_dict) in "
                f"`{tr.workspace_hint()}`.")
freeze = int(t2.slider("Frozen stages", 0, 5, 2, key="enc_tr_freeze",
                       help="0 = none, 1 = the stem, 2 = stem + layer1, ... 5 = everything but the head."))
tr_size = int(t2.select_slider("Chart size (px)", [32, 48, 64, 96, 128, 224], 32, key="enc_tr_size",
                               help="ResNet-18 costs grow with the pixel count: 64 px is 4x the work of 32 px."))
max_train = int(t2.number_input("Max training samples (most recent, 0 = all)", 0, 1_000_000, 1500, step=250,
                                key="enc_tr_max_train"))
epochs = int(t3.number_input("Epochs (each run)", 1, 200, 3, key="enc_tr_epochs"))
rows = int(t3.number_input("Use the last N candles (0 = all)", 0, 10_000_000, 3000, step=500, key="enc_tr_rows"))
lr = float(t3.number_input("Learning rate", 1e-5, 0.1, 1e-3, format="%.5f", key="enc_tr_lr"))

job = get_job(sid, JOB)
running = job is not None and not job.done
if st.button("Compare transfer vs scratch", type="primary", key="enc_tr_start", disabled=running or source is None,
             icon=":material/compare_arrows:"):
    try:
        spec = tr.transfer_spec(dataset_id, source, freeze, preset=preset, window=window, label=label_kind,
                                horizon=horizon, threshold=threshold, rows=rows, size=tr_size, epochs=epochs,
                                lr=lr, max_train=max_train)
        start_job(sid, JOB, tr.transfer_vs_scratch, spec=spec)
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_error(exc)


def _remember(result) -> None:
    st.session_state["enc_tr_view"] = result.record_id


job_status(JOB, "Transfer comparison",
           describe=lambda r: f"fine-tuned run {r.finetuned_run_id} vs scratch run {r.scratch_run_id}",
           on_result=_remember)

records = tr.list_comparisons()
if records:
    ids = [r["id"] for r in records]
    take_request("enc_tr_view", "enc_tr_pick", ids)
    by_id = {r["id"]: r for r in records}
    pick = st.selectbox("Comparison", ids, key="enc_tr_pick",
                        format_func=lambda i: f"{i}: {by_id[i]['target_dataset_id']} from {by_id[i]['source']}, "
                                              f"{by_id[i]['freeze_stages']} stage(s) frozen")
    rec = by_id[pick]
    try:
        table, interval = tr.comparison_table(rec), tr.comparison_interval(rec)
        (st.success if interval["beats"] else st.warning)(interval["verdict"])
        if rec.get("source_overlap"):
            st.warning(rec["source_overlap"])
        left, right = st.columns([1, 1])
        left.dataframe(table, key="enc_tr_table")
        left.caption(f"Fine-tuned run `{rec['finetuned_run_id']}`, scratch run `{rec['scratch_run_id']}`"
                     + (f", source run `{rec['source_run_id']}`" if rec.get("source_run_id") else "")
                     + ". Same test split; inspect either on the Inspect page.")
        right.plotly_chart(ve.transfer_comparison_figure(tr.comparison_metrics(table)), width="stretch",
                           key="enc_tr_fig")
    except UserError as exc:
        show_error(exc)
else:
    st.info("No comparison yet: choose a source above and start one.")
_keep_settings()
