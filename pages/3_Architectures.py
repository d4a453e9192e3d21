"""Architectures: pick a model of the zoo and its settings; its layers and receptive field (in bars and in the
active dataset's time), the effective receptive field on real windows next to the analytic bound, and several
models side by side. Thin: widgets in, core.inspect calls, core.viz.architectures figures out."""
from __future__ import annotations

import json

import streamlit as st

from ui.common import keep_settings, load_candles, model_settings, page_setup, show_error

dataset_id = page_setup("Architectures")
# the model, its settings and the comparison survive a visit to another page
_keep = keep_settings("arch_kept_settings", ("arch_model", "arch_window", "arch_preset", "arch_levels",
                                             "arch_compare", "arch_erf_windows"), ("arch_cfg_",))

from core.data.store import dataset_info, dataset_version
from core.features import PRESETS
from core.inspect.receptive_field import bars_to_time, dataset_effective_rf, window_advice
from core.inspect.summary import registry_analysis
from core.models import get_spec, list_models
from core.viz import architectures as va

st.title("Architectures and receptive fields")
st.caption("How far back each model looks: the receptive field walked layer by layer (kernel, stride, "
           "dilation, padding), and the effective field measured with gradients on real windows.")


@st.cache_data(show_spinner="Building the model and walking its layers...", max_entries=64)
def _analyse(name: str, config_json: str, window: int, n_features: int):
    return registry_analysis(name, window, n_features, latency_runs=5, **json.loads(config_json))


@st.cache_data(show_spinner="Back-propagating through real windows of the active dataset...", max_entries=8)
def _effective(dataset_id: str, version: int, name: str, config_json: str, preset: str, window: int,
               n_windows: int):  # (version: the dataset's, so rewritten candles are measured anew)
    return dataset_effective_rf(load_candles(dataset_id), name, json.loads(config_json), preset=preset,
                                window=window, n_windows=n_windows)


try:  # only the timeframe is needed here (the metadata, not the candle table)
    timeframe = dataset_info(dataset_id).timeframe or None
    dataset_ok = True
except Exception as exc:  # a broken dataset: the architecture part still works, in bars
    show_error(exc)
    timeframe, dataset_ok = None, False

specs = {s.name: s for s in list_models()}
names = list(specs)

# ---- model and settings ------------------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 1])
name = c1.selectbox("Model", names, index=names.index("wavenet") if "wavenet" in names else 0, key="arch_model",
                    format_func=lambda n: f"{n} ({specs[n].family}, {specs[n].input_kind})")
spec = get_spec(name)
c1.caption(spec.description + (" · causal" if spec.causal else ""))
unit = "px" if spec.input_kind == "chart_image" else "bars"
window = int(c2.number_input("Chart image size (px)" if unit == "px" else "Window (bars)", 4, 4096, 64,
                             key="arch_window"))
preset_names = list(PRESETS)
preset = c3.selectbox("Feature preset", preset_names, index=preset_names.index("resnet15")
                      if "resnet15" in preset_names else 0, key="arch_preset",
                      format_func=lambda p: f"{p} ({len(PRESETS[p])} features)")
n_features = len(PRESETS[preset])
if spec.input_kind == "orderbook_image":
    n_features = int(c3.number_input("Price levels (heatmap width)", 2, 200, 20, key="arch_levels"))

with st.expander(f"Settings of {name}", expanded=True):
    config, errors = model_settings(spec.defaults, {}, f"arch_cfg_{name}_", n_cols=4)
config = {k: v for k, v in config.items() if v != spec.defaults.get(k)}  # only what differs from defaults
config_json = json.dumps(config, sort_keys=True)

report = summary = None
if errors:
    for e in errors:
        st.error(e)
else:
    try:
        report, summary = _analyse(name, config_json, window, n_features)
    except Exception as exc:
        show_error(exc)

# ---- the analytic field ------------------------------------------------------------------------------------
if report is not None:
    m = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # in fifths: "4,946,..."
    m.metric(f"Receptive field ({unit})", f"{report.receptive_field:,}")
    m.metric("Receptive field (time)", bars_to_time(report.receptive_field, timeframe)
             if unit == "bars" and timeframe else "—", help=f"in the active dataset's timeframe ({timeframe})")
    m.metric("Parameters", f"{summary.params:,}")
    m.metric("MACs per sample", f"{summary.macs:,}")
    m.metric("CPU latency", f"{summary.latency_ms:.2f} ms" if summary.latency_ms is not None else "—",
             help="fastest of 5 single-window forward passes on this machine's CPU, after warm-up (busy cores "
                  "only add time)")
    advice = window_advice(report, timeframe)
    if advice is not None:
        (st.warning if advice[0] == "warning" else st.info)(advice[1])
    for note in report.notes:
        st.caption(note)

    if not report.layers:
        st.info(f"{name} has no convolution or pooling: nothing grows with depth.")
    else:
        st.plotly_chart(va.rf_growth_figure(report, timeframe), width="stretch", key="arch_growth_chart")
        st.markdown("**Layers on the longest path**")
        shapes = {l.name: l.output_shape for l in summary.layers}
        st.dataframe(va.layer_frame(report, timeframe, shapes), hide_index=True,
                     height=min(420, 38 + 35 * len(report.layers)), key="arch_layers")
        st.caption("`jump`: input bars between neighbouring outputs of a layer; `start`: the first input bar "
                   "that output 0 sees (negative: padding). Output t sees bars start + t·jump … "
                   "start + t·jump + RF − 1.")

# ---- the effective field -----------------------------------------------------------------------------------
st.subheader("Effective receptive field")
st.caption("Mean |∂ output / ∂ input| of the freshly initialised model (seed 0) over validation windows of the "
           "active dataset, per channel and bar: where the prediction actually looks. Trained runs: Inspect page.")
e1, e2 = st.columns([1, 3], vertical_alignment="bottom")  # the button beside the slider: in a quarter it was cut
n_windows = int(e1.slider("Windows", 8, 256, 64, step=8, key="arch_erf_windows"))
request = [dataset_id, name, config_json, preset, window, n_windows]
if e2.button("Compute on real windows", key="arch_erf_btn", icon=":material/bolt:",
             disabled=report is None or not dataset_ok):
    st.session_state["arch_erf_request"] = request
if report is not None and dataset_ok and st.session_state.get("arch_erf_request") == request:
    try:
        res = _effective(dataset_id, dataset_version(dataset_id), name, config_json, preset, window, n_windows)
    except Exception as exc:
        show_error(exc)
        res = None
    if res is not None:
        erf = res["erf"]
        figures = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")
        with figures:  # a row above the chart: in a quarter of the width the labels were cut
            st.metric(f"{'Whole window, head pools' if erf.whole_window else 'Analytic bound'} ({unit})",
                      f"{erf.analytic_rf:,}", help=erf.rf_note or "what can reach the output: the receptive field "
                      "of a model that reads its last step")
            st.metric(f"95 % of the gradient ({unit})", f"{erf.span:,}",
                      help="the shortest run of consecutive bars holding 95 % of the gradient mass")
            st.metric("95 % look-back from the last bar", f"{erf.lookback:,}")
            if erf.utilisation is not None:
                st.metric("RF utilisation", f"{erf.utilisation:.0%}",
                          help="effective span / analytic field (capped by the window)")
        st.plotly_chart(va.erf_figure(erf, res["row_names"], erf.analytic_rf, unit),
                        width="stretch", key="arch_erf_chart")
        if res["contributions"]:
            st.plotly_chart(va.dilation_figure(res["contributions"], timeframe), width="stretch",
                            key="arch_dilation_chart")
            st.caption("Each bar: the mean change of the predicted class probabilities (total-variation "
                       "distance) when that block's skip output is replaced by zeros, as a share of all blocks. "
                       "It measures the level's direct path to the head; its effect through later blocks stays.")
else:
    st.info("Press **Compute on real windows** to measure where this model looks on the active dataset.")

# ---- side by side ------------------------------------------------------------------------------------------
st.subheader("Side by side")
default_compare = [n for n in ("cnn1d", "resnet18_1d", "convnext1d", "wavenet", "tcn", "multiscale_cnn")
                   if n in specs]
compare = st.multiselect("Models (default settings, same window and features)", names, default_compare,
                         key="arch_compare")
_keep()
rows = []
for other in compare:
    try:
        rep_o, sum_o = _analyse(other, "{}", window, n_features)
    except Exception as exc:  # one model that cannot take this window does not hide the others
        st.caption(f"{other}: {exc}")
        continue
    rows.append({"model": other, "family": specs[other].family, "params": sum_o.params, "macs": sum_o.macs,
                 "receptive_field": rep_o.receptive_field, "unit": rep_o.unit, "window": rep_o.input_length,
                 "latency_ms": sum_o.latency_ms})
if rows:
    st.dataframe(va.comparison_frame(rows, timeframe), hide_index=True, key="arch_compare_table")
    st.caption("Chart models are compared in pixels on a square image of the window's size; latency is the "
               "fastest of 5 single-window CPU forward passes.")
