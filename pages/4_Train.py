"""Train: pick features, labels, split, model and training settings; train in the background with live
curves; Stop keeps the best checkpoint; results beside baselines. Thin: widgets in, core calls, figures
from core.viz.train out."""
from __future__ import annotations

from functools import partial

import streamlit as st

from ui.common import job_status, keep_settings, model_settings, page_setup, sentence, session_id, show_error
from ui.jobs import get_job, start_job
from ui.train_results import run_results, walk_forward_results

dataset_id = page_setup("Train")
sid = session_id()

from core.features import LABEL_KINDS, PRESETS as FEATURE_PRESETS
from core.models import get_spec, list_models
from core.train import runs as registry
from core.data.orderbook import book_id_for, books_for_symbol, list_order_books
from core.data.store import dataset_info
from core.device import best_device
from core.errors import UserError
from core.train.config import PRESETS, model_start_config, preset, preset_model
from core.train import evaluate as wfe
from core.train.trainer import check_run_settings, model_label_note, train_run
from core.viz import train as vt

JOB = "train"
WF_JOB = "walkforward"
st.title("Train")
st.caption(f"Dataset: **{dataset_id}** (change it in the sidebar). Every run is saved in the workspace "
           "and compared with simple baselines on the same test split.")

# ------------------------------------------------------------------------------------------ settings
# Settings widgets take their defaults from the preset; picking another preset resets them.
SETTING_KEYS = ("train_feat", "train_window", "train_label", "train_horizon", "train_threshold", "train_share",
                "train_val_share", "train_test_share", "train_epochs", "train_bs", "train_lr", "train_pat",
                "train_loss", "train_ls", "train_cw", "train_cw_custom", "train_aug", "train_seed", "train_baselines",
                "train_mts")


# Settings survive a visit to another page (the running job's settings stay on screen).
KEPT = "train_kept_settings"
_keep_settings = keep_settings(KEPT, SETTING_KEYS, ("train_preset", "train_model_", "train_mc_", "train_rows",
                                                    "train_chart_size", "train_name", "train_wf_k"))


def _reset_settings() -> None:
    for key in SETTING_KEYS:
        st.session_state.pop(key, None)
        st.session_state.get(KEPT, {}).pop(key, None)


c1, c2 = st.columns(2)
pname = c1.selectbox("Training preset", list(PRESETS), key="train_preset", on_change=_reset_settings,
                     help="The source documents' training configurations; choosing one resets the settings below.")
c1.caption(PRESETS[pname]["description"])  # in full: inside the select box it was cut off
p = preset(pname)
try:
    p["model"], p["model_config"] = preset_model(pname)
except Exception as exc:  # noqa: BLE001 - no fitting model registered: the user picks one
    show_error(exc)
models = [m.name for m in list_models()]
model_name = c2.selectbox("Model", models, key=f"train_model_{pname}",
                          index=models.index(p["model"]) if p["model"] in models else 0)
spec = get_spec(model_name)
c2.caption(f"{spec.description} · input: {spec.input_kind}" + (" · causal" if spec.causal else ""))
if model_name != p["model"]:  # the preset's description names its own model
    c1.caption(f"Its data and training settings, with **{model_name}** instead of {p['model']}.")
d, t = p["data"], p["train"]

with st.expander("Data: features, labels, split", expanded=False):
    a, b, c = st.columns(3)
    fp = list(FEATURE_PRESETS)
    d.preset = a.selectbox("Feature preset", fp, index=fp.index(d.preset) if d.preset in fp else 0,
                           key="train_feat")
    d.window = int(a.number_input("Window (bars)", 8, 1024, d.window, key="train_window"))
    rows = int(a.number_input("Use the last N candles (0 = all)", 0, 10_000_000, 0, step=1000, key="train_rows"))
    d.max_rows = rows or None
    d.label = b.selectbox("Label", list(LABEL_KINDS), index=list(LABEL_KINDS).index(d.label), key="train_label")
    d.horizon = int(b.number_input("Horizon (bars)", 1, 500, d.horizon, key="train_horizon"))
    d.threshold = float(b.number_input("Threshold (%)", 0.0, 10.0, round(d.threshold * 100, 4), step=0.05,
                                       key="train_threshold", help="the move beyond which a bar is up or "
                                       "down (direction3, multitask), as on the Indicators page")) / 100
    d.train = float(c.number_input("Train share", 0.1, 0.9, d.train, step=0.05, key="train_share"))
    d.val = float(c.number_input("Validation share", 0.05, 0.5, d.val, step=0.05, key="train_val_share"))
    d.test = float(c.number_input("Test share", 0.05, 0.5, d.test, step=0.05, key="train_test_share"))

with st.expander(f"Model settings: {model_name}", expanded=False):
    # one widget per key of the model's defaults (ModelSpec.defaults), preset values first
    model_config, model_errors = model_settings(spec.defaults or {}, model_start_config(pname, model_name),
                                                f"train_mc_{pname}_{model_name}_")
    if spec.input_kind == "chart_image":
        d.encoding = {"size": int(st.number_input("Chart image size (pixels)", 32, 224, 64, step=16,
                                                  key="train_chart_size"))}
    elif spec.input_kind == "orderbook_image":
        symbol = dataset_info(dataset_id).symbol
        books = [b.id for b in books_for_symbol(symbol)]  # only this market's books: a model reads its own
        if not books:
            st.info(f"This model reads order-book snapshots of {symbol}: make or record a {symbol} book on the "
                    "Data page first." if list_order_books() else
                    "This model reads order-book snapshots: make or record a book on the Data page first.")
        else:
            own = book_id_for(dataset_id)
            d.encoding = {"book_id": st.selectbox("Order book", books, key="train_book",
                                                  index=books.index(own) if own in books else 0)}

with st.expander("Training settings", expanded=False):
    a, b, c = st.columns(3)
    t.epochs = int(a.number_input("Epochs", 1, 1000, t.epochs, key="train_epochs"))
    t.batch_size = int(a.number_input("Batch size", 2, 4096, t.batch_size, key="train_bs"))
    t.lr = float(a.number_input("Learning rate", 1e-6, 1.0, t.lr, format="%.5f", key="train_lr"))
    t.patience = int(a.number_input("Early-stopping patience (0 = off)", 0, 1000, t.patience, key="train_pat"))
    mts = int(a.number_input("Max training samples (0 = all)", 0, 10_000_000, t.max_train_samples or 0, step=1000,
                             key="train_mts"))
    t.max_train_samples = mts or None
    t.loss = b.selectbox("Loss", ["ce", "focal"], index=["ce", "focal"].index(t.loss), key="train_loss")
    t.label_smoothing = float(b.number_input("Label smoothing", 0.0, 0.5, t.label_smoothing, key="train_ls"))
    cw_opts = t.class_weight_choices()
    cw = b.selectbox("Class weights", cw_opts, key="train_cw", index=cw_opts.index(t.class_weight_choice()),
                     format_func=lambda o: f"preset {t.class_weights}" if o == "preset" else o)
    names = d.class_names()
    cw_text = b.text_input(f"Weights ({', '.join(names)})", ", ".join(["1"] * len(names)), key="train_cw_custom",
                           help="one number per class, e.g. 1.2, 0.8, 1.2") if cw == "custom" else ""
    try:
        t.choose_class_weights(cw, cw_text, names)
        weights_problem = None
    except UserError as exc:
        weights_problem = exc
    if not c.checkbox("Augment (noise, scaling, warp, slicing)", t.augments, key="train_aug"):
        t.without_augmentation()
    t.seed = int(c.number_input("Seed", 0, 2**31 - 1, t.seed, key="train_seed"))
    t.baselines = c.multiselect("Baselines", ["majority", "logistic", "mlp"], t.baselines, key="train_baselines")

# ---------------------------------------------------------------------------------------- start/stop
left, right = st.columns([2, 3])
right.plotly_chart(vt.lr_schedule_figure(t.epochs, t.warmup, t.lr, t.min_lr), width="stretch", key="train_lr_plot")
run_name = left.text_input("Run name (optional)", key="train_name", max_chars=registry.MAX_NAME)
_keep_settings()
left.caption(vt.training_summary(t, best_device(), spec.input_kind, spec.multitask))
note = model_label_note(model_name, spec.multitask, d.label)
if note:
    left.caption(note)
job = get_job(sid, JOB)
running = job is not None and not job.done
wf_job = get_job(sid, WF_JOB)
wf_running = wf_job is not None and not wf_job.done


def _check_settings() -> None:
    if model_errors:
        raise UserError(model_errors[0])
    if weights_problem:
        raise weights_problem
    check_run_settings(model_name, d, t, dataset_info(dataset_id).rows)


try:  # said as soon as a setting is wrong, not only after Start
    _check_settings()
    problem = None
except UserError as exc:
    problem = exc
    show_error(exc)
if left.button("Start training", type="primary", key="train_start", disabled=running or wf_running or bool(problem),
               icon=":material/play_arrow:"):
    try:
        _check_settings()
        # start_job owns the keyword `name`, so the run's display name is bound beforehand
        job = start_job(sid, JOB, partial(train_run, name=run_name or None), dataset_id=dataset_id,
                        model_name=model_name, model_config=model_config, data_config=d, train_config=t)
        st.session_state["train_total_epochs"] = t.epochs
        st.session_state["train_loss_name"] = vt.loss_name(t, spec.multitask)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc)
    else:
        st.rerun()  # drawn again with the job running: Start disabled, progress and Stop shown


def live() -> None:
    """Progress bar, Stop and live curves of this tab's training job (polled every second while it runs)."""
    job = get_job(sid, JOB)
    if job is None:
        return
    events, latest = job.snapshot()
    if not job.done:
        b = latest.get("batch")
        msg = b.message if b else (events[-1].message if events else "starting...")
        eta = job.eta("batch") if b else ""
        st.progress((b.fraction if b else None) or 0.0, text=f"{msg} · {eta}" if eta else msg)
        # the best checkpoint exists once an epoch has been validated: before that a Stop keeps nothing
        if st.button("Stop (keeps the best checkpoint)" if latest.get("epoch") else
                     "Stop (nothing is kept before the first epoch ends)", key="train_stop", icon=":material/stop:"):
            job.stop()
    hist = vt.history_from_events(events)
    if not hist.empty and not (job.done and job.result is not None):
        st.plotly_chart(vt.history_figure(hist, st.session_state.get("train_total_epochs"),
                                          loss=st.session_state.get("train_loss_name", "")), width="stretch",
                        key="train_live_curves")
    if job.done and st.session_state.get("train_seen_job") != job.started_at:
        st.session_state["train_seen_job"] = job.started_at
        if job.result is not None:
            st.session_state["train_view_run"] = job.result.run_id
        st.rerun(scope="app")  # refresh the run list and results once (and stop polling)
    if job.done and job.error:
        st.error(sentence(job.error))
    elif job.done and job.cancelled:
        st.warning("Stopped before the first epoch finished: nothing was saved.")


# poll only while a job runs: an idle page must not rerun every second
st.fragment(run_every="1s" if job is not None and not job.done else None, key="train_live_fragment")(live)()

with st.expander("Walk-forward evaluation: the same settings on k folds, out of sample over the later part of "
                 "the data", expanded=wf_running):
    st.caption("Each fold trains a fresh model on the bars before its test block (expanding window, purged), "
               "with the feature scaler and the baselines fitted on that fold's training rows; the test blocks "
               "follow one another, so together they are one out-of-sample series. One split can be lucky; "
               "k folds show whether the result holds across market periods. Saved below, not as a run.")
    w1, w2 = st.columns([1, 2], vertical_alignment="bottom")
    k_folds = int(w1.number_input("Folds", 2, 10, 4, key="train_wf_k"))
    if w2.button(f"Run walk-forward ({k_folds} models)", key="train_wf_start",
                 disabled=running or wf_running or bool(problem),
                 icon=":material/view_timeline:"):
        try:
            _check_settings()
            start_job(sid, WF_JOB, partial(wfe.walk_forward, name=run_name or None), dataset_id=dataset_id,
                      model_name=model_name, model_config=model_config, data_config=d, train_config=t, k=k_folds)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            show_error(exc)
        else:
            st.rerun()  # drawn again with the evaluation running: both Start buttons disabled
    job_status(WF_JOB, "Walk-forward evaluation", describe=lambda r: f"saved as {r.wf_id} (below)",
               on_result=lambda r: st.session_state.__setitem__("train_view_wf", r.wf_id),
               cancelled_note="nothing is saved (the folds only make sense together).")
_keep_settings()  # again: the fold count is drawn after the first call

st.divider()
st.subheader("Results")
run_results()
st.subheader("Walk-forward evaluations")
walk_forward_results()
