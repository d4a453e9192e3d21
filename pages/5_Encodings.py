"""Encodings: market data as images. A window's candles beside each of its encodings, a gallery grouped by
label, the order-book depth heatmap with the price path over it, and the chart ResNet trained with transfer
learning against the same model from scratch. Thin: widgets in, core calls, core.viz figures out."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import streamlit as st

from ui.common import job_status, load_candles, page_setup, session_id, show_error

from core.errors import UserError
from core.features import LABEL_KINDS, PRESETS, DatasetConfig, LabelConfig, SplitConfig, prepare_dataset
from core.viz import encodings as ve

dataset_id = page_setup("Encodings")
sid = session_id()
st.title("Encodings: market data as images")
st.caption("What the 2D models read. Indicator images are scaled with bounds fitted on the training segment "
           "only; charts, Gramian angular fields and recurrence plots use nothing outside their own window.")


@st.cache_data(show_spinner="Computing features, labels and the split...", max_entries=4)
def _prepare(dataset_id: str, preset: str, kind: str, horizon: int, threshold: float, window: int):
    return prepare_dataset(load_candles(dataset_id), DatasetConfig(
        preset=preset, label=LabelConfig(kind=kind, horizon=horizon, threshold=threshold),
        split=SplitConfig(), window=window))


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

try:
    prepared = _prepare(dataset_id, preset, label_kind, horizon, threshold, window)
except Exception as exc:  # noqa: BLE001 - a sentence for the user, nothing else on the page needs it
    show_error(exc)
    st.stop()

from core.encodings.datasets import (ENCODING_NAMES, gallery_encodings, gallery_ends,  # noqa: E402
                                     window_encodings)
from core.encodings.samples import end_near  # noqa: E402

class_names = list(prepared.class_names)
all_ends = np.sort(np.concatenate([prepared.splits[s] for s in ("train", "val", "test")]))
split_of = {int(e): s for s in ("train", "val", "test") for e in prepared.splits[s]}

# ------------------------------------------------------------------------------------ one window, all images
st.subheader("A window and its encodings")
ts = prepared.timestamps
first, last = ts[int(all_ends[0])].to_pydatetime(), ts[int(all_ends[-1])].to_pydatetime()
step = (ts[1] - ts[0]).to_pytimedelta() if len(ts) > 1 else timedelta(hours=1)
when = st.slider("Window ends at (UTC)", min_value=first, max_value=last,
                 value=ts[int(all_ends[len(all_ends) // 2])].to_pydatetime(), step=step,
                 format="YYYY-MM-DD HH:mm", key="enc_when")
try:
    end = end_near(prepared, all_ends, when)
    images = window_encodings(prepared, end, size=size)
    lab = int(prepared.y[end])
    st.caption(f"Window of {window} bars ending {ts[end]:%Y-%m-%d %H:%M} UTC · {split_of.get(end, '?')} segment · "
               f"label **{class_names[lab] if lab >= 0 else 'undefined'}** (the next {horizon} bars)")
    st.plotly_chart(ve.window_with_encodings_figure(prepared.candles.iloc[end - window + 1: end + 1], images),
                    width="stretch", key="enc_window_fig")
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
    gends = gallery_ends(prepared, gsplit, per_class, gseed)
    if len(gends) == 0:
        st.info("This segment has no labelled windows.")
    else:
        gimgs = gallery_encodings(prepared, gends, gkind, size=size)
        st.plotly_chart(ve.encoding_gallery_figure(gimgs, prepared.y[gends], class_names, per_class,
                                                   title=f"{gkind}, {gsplit} segment"),
                        width="stretch", key="enc_gallery_fig")
except Exception as exc:  # noqa: BLE001
    show_error(exc)

# ------------------------------------------------------------------------------------- order-book heatmap
st.subheader("Order-book depth heatmap")
from core.data.orderbook import list_order_books, load_order_book  # noqa: E402
from core.encodings.orderbook_heatmap import HeatmapConfig, orderbook_heatmap  # noqa: E402

OFFLINE = "offline market book (simulated from these candles)"
books = {b.id: b for b in list_order_books()}
b1, b2, b3 = st.columns([2, 1, 1])
book_choice = b1.selectbox("Snapshots", [OFFLINE, *books], key="enc_book",
                           format_func=lambda b: b if b == OFFLINE else f"{b} ({books[b].snapshots:,} snapshots, "
                                                                        f"{books[b].source})")
n_snap = int(b2.number_input("Last N snapshots", 20, 5000, 300, step=20, key="enc_book_n"))
fixed = b3.radio("Price axis", ["distance from mid", "fixed price"], key="enc_book_axis",
                 help="Distance from mid is what a model reads (stationary); fixed price shows the price "
                      "path moving through the depth.") == "fixed price"
pct = float(b3.number_input("Range ± %", 0.1, 20.0, 2.0, step=0.5, key="enc_book_pct")) / 100


@st.cache_data(show_spinner="Simulating order-book snapshots...", max_entries=4)
def _offline_book(dataset_id: str, n: int):
    from core.data.synthetic import synthetic_order_book_snapshots

    return synthetic_order_book_snapshots(load_candles(dataset_id), levels=20, seed=0, max_snapshots=n)


@st.cache_data(show_spinner="Loading order book...", max_entries=4)
def _stored_book(book_id: str):
    return load_order_book(book_id)


try:
    if book_choice == OFFLINE:
        book = _offline_book(dataset_id, n_snap)
    else:
        book = _stored_book(book_choice)
        stamps = book["timestamp"].drop_duplicates().sort_values()
        book = book[book["timestamp"] >= stamps.iloc[max(0, len(stamps) - n_snap)]]
    hm = orderbook_heatmap(book, HeatmapConfig(n_bins=100, pct_range=pct, anchor="first" if fixed else "mid"))
    st.plotly_chart(ve.orderbook_heatmap_figure(hm, title=f"resting size in 100 price bins, ±{pct:.1%} "
                                                          f"({len(hm.timestamps):,} snapshots)"),
                    width="stretch", key="enc_book_fig")
    if book_choice == OFFLINE:
        st.caption(":orange[simulated] book: one snapshot per candle close, following the candles' prices.")
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
from core.train.config import DataConfig, TrainConfig  # noqa: E402
from core.train.runs import list_runs  # noqa: E402
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
    runs = [r for r in list_runs() if r.model_name == tr.DEFAULT_MODEL and r.status != "failed"]
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
        spec = tr.TransferSpec(
            target_dataset_id=dataset_id, source=source, freeze_stages=freeze,
            data=DataConfig(preset=preset, window=window, label=label_kind, horizon=horizon, threshold=threshold,
                            max_rows=rows or None, encoding={"size": tr_size}),
            train=TrainConfig(epochs=epochs, batch_size=64, lr=lr, patience=max(2, epochs // 3), seed=0,
                              baselines=["majority", "logistic"], max_train_samples=max_train or None))
        spec.parsed_source()
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
    want = st.session_state.get("enc_tr_view")
    if want in ids and st.session_state.get("enc_tr_pick") != want and st.session_state.get("_enc_tr_for") != want:
        st.session_state["enc_tr_pick"] = want
        st.session_state["_enc_tr_for"] = want
    by_id = {r["id"]: r for r in records}
    pick = st.selectbox("Comparison", ids, key="enc_tr_pick",
                        format_func=lambda i: f"{i}: {by_id[i]['target_dataset_id']} from {by_id[i]['source']}, "
                                              f"{by_id[i]['freeze_stages']} stage(s) frozen")
    rec = by_id[pick]
    try:
        table = tr.comparison_table(rec)
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
