"""Inspect: look inside a trained run. Pick a window of its test period (click the price chart, or by date),
see the input channels, the feature maps of every layer, the most active channels, attributions over time
drawn under the candles, the predicted probabilities and the effective receptive field. Thin: widgets in,
core calls, core.viz figures out."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import streamlit as st

from ui.common import keep_settings, page_setup, pick_saved, show_error

page_setup("Inspect")
# the run, the window and the view settings survive a visit to another page (not the date box: it follows the
# window, whose number is kept)
_keep = keep_settings("insp_kept_settings", ("insp_run", "insp_pos", "insp_layer", "insp_topk", "insp_methods",
                                             "insp_methods_causal", "insp_target", "insp_ig_steps", "insp_erf_n"))
st.title("Inspect a trained model")

from core.data.store import dataset_version  # noqa: E402
from core.train.runs import list_runs, load_run, status_words  # noqa: E402
from core.backtest.api import load_run_candles  # noqa: E402

runs = [r for r in list_runs() if not str(r.status).startswith("failed")]
if not runs:
    st.info("No trained runs yet: train one on the Train page (the quick preset takes under a minute), then "
            "come back to look inside it.")
    st.stop()

from core.encodings.samples import (date_outside_note, end_near, sample_batch, sample_for_run,  # noqa: E402
                                    selectable_ends)
from core.inspect import attributions as attr  # noqa: E402
from core.inspect.feature_maps import capture_feature_maps, most_active_channels  # noqa: E402
from core.viz import encodings as ve  # noqa: E402
from core.viz import inspect as vi  # noqa: E402

rid = pick_saved("Run", {r.run_id: f"{r.name} · {r.model_name} on {r.dataset_id} · {status_words(r.status)}"
                         for r in runs}, "insp_run", run_prefix="")


@st.cache_resource(show_spinner="Loading the run's model and data...", max_entries=3)
def _load(run_id: str, data_version: int):
    """The run, its data rebuilt on the span it was trained on, and its model (per dataset version, so a
    dataset changed since is seen)."""
    run = load_run(run_id)
    candles = load_run_candles(run)
    prepared = run.prepare(candles)
    return run, prepared, run.model("cpu"), run.data_note(prepared, candles)


try:
    ds_of_run = next(r.dataset_id for r in runs if r.run_id == rid)
    data_v = dataset_version(ds_of_run)
    run, prepared, model, note = _load(rid, data_v)
except Exception as exc:  # noqa: BLE001 - a deleted dataset, a broken run: a sentence, not a trace
    show_error(exc)
    st.stop()

cfg = run.config
if note:
    st.warning(note)
kind = str(cfg.get("input_kind") or "sequence")
class_names = run.class_names
ends = selectable_ends(prepared, "test")
if len(ends) == 0:
    st.warning("This run's test period holds no labelled windows.")
    st.stop()
stamps = pd.DatetimeIndex(prepared.timestamps[ends])
m = (run.metrics.get("metrics") or {})
st.caption(f"{cfg.get('model_name')} · input **{kind}** · {len(ends):,} test windows "
           f"{stamps[0]:%Y-%m-%d} .. {stamps[-1]:%Y-%m-%d} · test accuracy "
           f"{m.get('accuracy', float('nan')):.3f}")

# ------------------------------------------------------------------------------------------ choose a window
ss = st.session_state
first_day, last_day = stamps[0].date(), stamps[-1].date()


def _follow(p: int) -> None:
    """The date box shows the day of the chosen window (set before the box is drawn: from a callback, or at
    the top of a run)."""
    ss["insp_date"] = stamps[int(p)].date()


if ss.get("_insp_pos_for") != rid or not 0 <= int(ss.get("insp_pos", -1)) < len(ends):
    ss["insp_pos"] = len(ends) - 1
    ss["_insp_pos_for"] = rid
    _follow(ss["insp_pos"])
if ss.get("insp_date") is None:  # first visit, back from another page (its widget state was dropped)
    _follow(ss["insp_pos"])


def _pos_of(when) -> int:
    return int(np.searchsorted(ends, end_near(prepared, ends, when)))


def _on_click() -> None:
    pts = ((ss.get("insp_price") or {}).get("selection") or {}).get("points") or []
    if pts and pts[0].get("x") is not None:
        ss["insp_pos"] = _pos_of(pts[0]["x"])
        _follow(ss["insp_pos"])


def _on_number() -> None:
    _follow(ss["insp_pos"])


def _on_date() -> None:
    """A typed date is applied once (the box keeps what was typed); a day outside the test windows snaps to the
    nearest one, and the box and a sentence say so."""
    day = ss.get("insp_date")
    if day is None:
        _follow(ss["insp_pos"])
        return
    ss["insp_pos"] = _pos_of(pd.Timestamp(day) + pd.Timedelta(hours=12))
    if note := date_outside_note(day, first_day, last_day, stamps[ss["insp_pos"]]):
        ss["_insp_date_note"] = note
        _follow(ss["insp_pos"])


c1, c2 = st.columns([1, 1])
# (bounds wide on purpose: a browser refuses a date outside min/max without telling the page, so the page
# takes any date and says when it is outside the test windows)
c1.date_input("Jump to date (UTC)", value=None, min_value=min(first_day, dt.date(1970, 1, 1)),
              max_value=max(last_day, dt.date(2100, 12, 31)), key="insp_date", on_change=_on_date,
              help=f"Test windows run from {first_day:%Y-%m-%d} to {last_day:%Y-%m-%d} UTC.")
c2.number_input(f"Test window # (0 .. {len(ends) - 1})", 0, len(ends) - 1, key="insp_pos", on_change=_on_number)
if ss.get("_insp_date_note"):
    st.info(ss.pop("_insp_date_note"))
pos = int(ss["insp_pos"])
_keep()  # again at the end: the layer list is only known further down
end = int(ends[pos])
close = pd.Series(prepared.candles["close"].to_numpy()[ends], index=stamps)
st.plotly_chart(vi.test_set_figure(close, run.predictions, class_names, selected=stamps[pos]), width="stretch",
                key="insp_price", on_select=_on_click, selection_mode="points")

try:
    sample = sample_for_run(prepared, cfg, end)
except Exception as exc:  # noqa: BLE001 - e.g. an order book that was deleted since training
    show_error(exc)
    st.stop()
probs = attr.predict_proba(model, sample.x)
pred = int(np.argmax(probs))
truth = f"actual **{class_names[sample.y]}**" if sample.y >= 0 else "actual: undefined"
st.markdown(f"Window ending **{sample.timestamp:%Y-%m-%d %H:%M} UTC** ({sample.n_bars} bars): predicted "
            f"**{class_names[pred]}** ({probs[pred]:.0%}), {truth}.")


@st.cache_data(show_spinner="Capturing feature maps...", max_entries=4)
def _feature_maps(run_id: str, end: int, _model, _x):  # (run_id: "<run>@<dataset version>" from here on)
    return capture_feature_maps(_model, _x)


@st.cache_data(show_spinner="Computing attributions...", max_entries=16)
def _attributions(run_id: str, end: int, methods: tuple, target, steps: int, kind: str, n_bars: int, _model, _x):
    """Per method: one score per bar; failures (e.g. Grad-CAM without a convolution) as sentences."""
    profiles, notes, gap = {}, [], None
    for method in methods:
        try:
            if method == "integrated_gradients":
                ig = attr.integrated_gradients(_model, _x, target, steps=steps)
                raw, gap = ig.attributions, (ig.delta, ig.f_x - ig.f_baseline)
            else:
                raw = attr.attribute(_model, _x, method, target)
                if method == "grad_cam" and not np.any(raw):
                    notes.append("grad cam is zero over the whole window: no position of its layer pushes the "
                                 "model towards this class (Grad-CAM keeps only positive evidence). Saliency and "
                                 "integrated gradients still show where the input matters.")
            profiles[method] = attr.time_profile(raw, kind, n_bars)
        except Exception as exc:  # noqa: BLE001 - one method failing leaves the others
            notes.append(f"{method.replace('_', ' ')}: {exc}")
    return profiles, notes, gap


@st.cache_data(show_spinner="Computing input gradients over test windows...", max_entries=8)
def _erf(run_id: str, n: int, n_bars: int, _model, _prepared, _cfg, _ends):
    pick = _ends[np.unique(np.linspace(0, len(_ends) - 1, min(n, len(_ends))).round().astype(int))]
    return attr.run_receptive_field(_model, sample_batch(_prepared, _cfg, pick), _cfg["input_kind"], n_bars)


tabs = st.tabs(["Input and prediction", "Feature maps", "Attributions", "Receptive field"])

# ----------------------------------------------------------------------------------------- input, prediction
with tabs[0]:
    left, right = st.columns([2, 1])
    if kind == "chart_image":
        left.plotly_chart(ve.window_with_encodings_figure(
            sample.candles, {"what the model sees": (np.clip(sample.x.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)}),
            width="stretch", key="insp_input")
    else:
        left.plotly_chart(vi.input_channels_figure(sample.x, sample.channel_names,
                                                   sample.candles.index if kind != "orderbook_image" else None),
                          width="stretch", key="insp_input")
    right.plotly_chart(vi.probabilities_figure(probs, class_names, sample.y if sample.y >= 0 else None),
                       width="stretch", key="insp_probs")

# ------------------------------------------------------------------------------------------- feature maps
with tabs[1]:
    maps = _feature_maps(f"{rid}@{data_v}", end, model, sample.x)
    names = [n for n, a in maps.items() if a.ndim >= 1]
    shaped = {n: f"{n}  {tuple(maps[n].shape)}" for n in names}
    spatial = [n for n in names if maps[n].ndim >= 2 and maps[n][0].size > 1]  # not pooled to 1x1
    default = spatial[-1] if spatial else names[-1]
    if ss.get("_insp_layer_for") != rid:
        ss["insp_layer"] = default
        ss["_insp_layer_for"] = rid
    a, b = st.columns([3, 1])
    layer = a.selectbox(f"Layer ({len(names)}, in the order the model runs them)", names,
                        format_func=shaped.get, key="insp_layer",
                        help="The output of each layer for this window, recorded with forward hooks. The shape "
                             "is channels × positions (time steps, or height × width for an image model); "
                             "the default is the last layer that still has positions.")
    k = int(b.slider("Most active channels", 1, 16, 6, key="insp_topk"))
    fmap = maps[layer]
    st.plotly_chart(vi.feature_map_figure(layer, fmap), width="stretch", key="insp_fmap")
    top = most_active_channels(fmap, k)
    st.plotly_chart(vi.most_active_channels_figure(layer, fmap, top), width="stretch", key="insp_top")
    st.caption("Channels ranked by mean |activation| over their positions for this window: "
               + ", ".join(f"ch {c} ({s:.3g})" for c, s in top))

# ------------------------------------------------------------------------------------------- attributions
with tabs[2]:
    last_step = attr.reads_last_step(model)  # Grad-CAM refuses these
    offered = [m for m in attr.METHODS if not (last_step and m == "grad_cam")]
    # (its own choice for the causal models: going back to a pooled model brings Grad-CAM back with it)
    # a row of its own, chips wrapping: in a third of the width the chips stayed in one row and the last was cut
    methods = st.multiselect("Methods", offered, offered,
                            key="insp_methods_causal" if last_step else "insp_methods",
                            format_func=lambda s: s.replace("_", " "),
                            wrap=True,
                            help=None if not last_step else "No Grad-CAM: this causal model's head reads only the "
                            "last step of its feature map, so a map over time would credit bars it never sees.")
    b, c = st.columns(2)
    target = b.selectbox("Explain the class", ["predicted", *class_names], key="insp_target")
    steps = int(c.select_slider("Integrated-gradients steps", [16, 32, 64, 128], 32, key="insp_ig_steps"))
    tgt = None if target == "predicted" else class_names.index(target)
    profiles, notes, ig_gap = _attributions(f"{rid}@{data_v}", end, tuple(methods), tgt, steps, kind, sample.n_bars, model, sample.x)
    if profiles:
        st.plotly_chart(vi.attribution_figure(sample.candles, profiles,
                                              title=vi.attribution_title(
                                                  class_names[tgt if tgt is not None else pred])),
                        width="stretch", key="insp_attr")
        st.caption(vi.ATTRIBUTION_METHODS_NOTE)
    for n in notes:
        st.warning(n)
    if ig_gap is not None:
        from core.inspect.attributions import completeness_note

        (st.warning if abs(ig_gap[0]) > 0.1 * max(abs(ig_gap[1]), 1e-3) else st.caption)(completeness_note(*ig_gap))

# ----------------------------------------------------------------------------------------- receptive field
with tabs[3]:
    n_win = int(st.select_slider("Test windows to average over", [8, 16, 32, 64, 128], 32, key="insp_erf_n"))

    try:
        erf = _erf(f"{rid}@{data_v}", n_win, sample.n_bars, model, prepared, cfg, ends)
        rows = sample.channel_names if kind != "chart_image" else None
        st.plotly_chart(vi.receptive_field_figure(erf.profile, erf.span95, erf.channel_time, rows, erf.analytic_rf,
                                                  whole_window=erf.whole_window), width="stretch", key="insp_erf")
        st.caption(f"Averaged over {erf.n_windows} test windows: 95 % of the gradient mass lies in the last "
                   f"**{erf.span95}** of {len(erf.profile)} bars; centre of mass {erf.centre_lag:.1f} bars back"
                   + (f"; {erf.rf_note}" if erf.rf_note else "") + ".")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)

_keep()
