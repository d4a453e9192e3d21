"""Indicators: candles with overlays and indicator panels, the features a model learns from, the labels and
the leakage-safe split. Thin: widgets in, core calls, core.viz figures out."""
from __future__ import annotations

import streamlit as st

from core.data.store import dataset_version
from ui.common import keep_settings, page_setup, load_candles, show_error

from core.features import (LABEL_KINDS, PRESET_DESCRIPTIONS, PRESETS, DatasetConfig, LabelConfig, SplitConfig,
                           available_features, gap_note, prepare_dataset)
from core.viz import indicators as vz

dataset_id = page_setup("Indicators")
# the settings survive a visit to another page (not the date range: it belongs to the dataset shown)
_keep = keep_settings("ind_kept_settings", ("ind_preset", "ind_features", "ind_label_kind", "ind_horizon",
                                            "ind_threshold", "ind_k", "ind_window", "ind_train", "ind_val",
                                            "ind_overlays", "ind_panels", "ind_show_split"))
st.title("Indicators, features and labels")


@st.cache_data(show_spinner="Computing features, labels and the split...", max_entries=4)
def _prepare(dataset_id: str, version: int, features: tuple[str, ...], label: dict, split: dict, window: int):
    """(`version`: the dataset's, so candles rewritten since - a fetch, a re-import - are computed anew.)"""
    candles = load_candles(dataset_id)
    return prepare_dataset(candles, DatasetConfig(preset=list(features), label=LabelConfig(**label),
                                                  split=SplitConfig(**split), window=window))


try:
    candles = load_candles(dataset_id)
except Exception as exc:  # a broken dataset file: say so and stop
    show_error(exc)
    st.stop()

st.caption(f"{dataset_id}: {len(candles):,} candles, {candles.index[0]:%Y-%m-%d %H:%M} to "
           f"{candles.index[-1]:%Y-%m-%d %H:%M} UTC")
if (gaps := gap_note(candles)) is not None:
    st.warning(gaps)

# ---- controls ----------------------------------------------------------------------------------------
with st.expander("Features, labels and split", expanded=True):
    c1, c2, c3 = st.columns(3)
    preset = c1.selectbox("Feature preset", list(PRESETS), key="ind_preset",
                          format_func=lambda p: f"{p} ({len(PRESETS[p])})", help="\n\n".join(
                              f"**{k}**: {v}" for k, v in PRESET_DESCRIPTIONS.items()))
    # The edit box follows the preset until the user edits it; a new preset resets it.
    if st.session_state.get("ind_features_for") != preset:
        st.session_state["ind_features"] = list(PRESETS[preset])
        st.session_state["ind_features_for"] = preset
    all_features = available_features()
    features_box = st.container()  # below the three columns (drawn after them), the full width
    # a row of its own, chips wrapping: in a third of the width one chip showed ("open...") and the rest scrolled away
    features = features_box.multiselect("Features (edit the preset)", list(all_features), key="ind_features",
                                        format_func=lambda n: n, wrap=True,
                                        help="\n\n".join(f"**{k}**: {v}" for k, v in all_features.items()))
    kind = c2.selectbox("Label", LABEL_KINDS, key="ind_label_kind",
                        help="direction3: down/flat/up beyond ±threshold; binary: up or not; vol_scaled: "
                             "threshold = k × rolling σ × √horizon; multitask: direction + magnitude + volatility")
    horizon = int(c2.number_input("Horizon (bars)", 1, 500, 12, key="ind_horizon"))
    threshold = c2.number_input("Threshold (%)", 0.0, 20.0, 0.2, step=0.05, key="ind_threshold",
                                disabled=kind not in ("direction3", "multitask")) / 100
    k = c2.number_input("k (× σ, vol_scaled)", 0.05, 10.0, 1.0, step=0.1, key="ind_k",
                        disabled=kind != "vol_scaled")
    window = int(c3.number_input("Window (bars)", 2, 1024, 64, key="ind_window"))
    train = c3.slider("Train share", 0.3, 0.9, 0.70, 0.05, key="ind_train")
    val = c3.slider("Validation share", 0.05, 0.4, 0.15, 0.05, key="ind_val")
    test = round(1.0 - train - val, 4)
    c3.caption(f"Test share: {test:.0%}. Purge gap: window + horizon = {window + horizon} bars.")

result = None
if not features:
    st.warning("Choose at least one feature.")
elif test <= 0:
    st.warning("Train + validation leave nothing for the test segment: lower one of them.")
else:
    try:
        result = _prepare(dataset_id, dataset_version(dataset_id), tuple(features),
                          {"kind": kind, "horizon": horizon, "threshold": float(threshold), "k": float(k)},
                          {"train": float(train), "val": float(val), "test": float(test)}, window)
    except Exception as exc:
        show_error(exc)

# ---- price chart -------------------------------------------------------------------------------------
st.subheader("Price and indicators")
o1, o2, o3 = st.columns([3, 3, 2])  # chips wrap (the last one was cut), and "Show split" fits its column
overlays = o1.multiselect("Overlays", vz.OVERLAYS, ["EMA 21", "Bollinger"], key="ind_overlays", wrap=True)
panels = o2.multiselect("Panels", vz.PANELS, ["Volume", "RSI", "MACD"], key="ind_panels", wrap=True)
show_split = o3.toggle("Show split", True, key="ind_show_split")
_keep()
lo, hi, step = vz.range_slider_bounds(candles)  # one bar per step, so the handles sit where the labels say
start, end = st.slider("Range", min_value=lo, max_value=hi, value=(lo, hi), step=step, key="ind_range",
                       format="YYYY-MM-DD HH:mm")
shown = candles.loc[(candles.index >= start) & (candles.index <= end)]
if len(shown) < 2:
    st.info("The range holds fewer than 2 candles: widen it.")
else:
    bands = []
    if result is not None and show_split:
        bands = [b for b in vz.split_bands(result.timestamps, result.splits, result.window, horizon)
                 if b[2] >= shown.index[0] and b[1] <= shown.index[-1]]
    try:
        st.plotly_chart(vz.price_figure(candles, overlays, panels, bands, start=start, end=end), width="stretch",
                        key="ind_price_chart")
    except Exception as exc:
        show_error(exc)

if result is not None:
    n = {k_: len(v) for k_, v in result.splits.items()}
    m = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # not "25 warm-up row..."
    m.metric("Rows after warm-up", f"{len(result.timestamps):,}",
             f"{result.raw_features.attrs.get('warmup_rows', 0)} warm-up rows dropped", delta_color="off",
             delta_arrow="off")
    m.metric("Train samples", f"{n['train']:,}")
    m.metric("Validation samples", f"{n['val']:,}")
    m.metric("Test samples", f"{n['test']:,}")
    outside = len(result.timestamps) - sum(n.values())
    st.caption(f"{outside:,} rows are in no segment's samples: the first window's lead-in ({window - 1} rows), "
               f"the last {horizon} (no label yet), the two purge gaps"
               + (" and the volatility warm-up of the labels." if kind == "vol_scaled" else "."))

    tab_f, tab_c, tab_l = st.tabs(["Feature matrix", "Correlation", "Labels"])
    with tab_f:
        st.plotly_chart(vz.feature_heatmap(result.features, result.timestamps, result.feature_names),
                        width="stretch", key="ind_feature_heatmap")
        st.caption("Each channel z-scored with mean and σ from the training rows only; display buckets average "
                   "neighbouring bars.")
    with tab_c:
        st.plotly_chart(vz.correlation_heatmap(result.raw_features), width="stretch", key="ind_corr_heatmap")
    with tab_l:
        st.plotly_chart(vz.labels_figure(result.timestamps, result.candles["close"], result.y, result.class_names),
                        width="stretch", key="ind_labels_chart")
        y_by_split = {k_: result.y[v] for k_, v in result.splits.items()}
        st.plotly_chart(vz.class_balance_figure(y_by_split, result.class_names), width="stretch",
                        key="ind_balance_chart")
