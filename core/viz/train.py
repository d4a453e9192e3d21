"""Figures and tables of training runs (pure: data in, plotly figure or DataFrame out).

- `history_figure(history)`: loss and accuracy curves per epoch (train vs validation), best epoch marked.
- `confusion_figure(confusion, class_names)`: the test confusion matrix, row-normalised (recall) with counts.
- `baseline_bars(metrics, baselines)`: CNN vs each baseline on the headline metrics.
- `comparison_figure(vs_best_baseline)`: CNN minus the best baseline with bootstrap intervals per metric.
- `lr_schedule_figure(epochs, warmup, lr, min_lr)`: the learning rate the trainer will use, step by step.
- `per_class_table(metrics)`, `comparison_table(metrics, baselines)`: tables for st.dataframe.
- `folds_figure(folds)`, `folds_table(folds)`: a walk-forward evaluation fold by fold;
  `walk_forwards_table(docs)`: the saved evaluations side by side.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.train.config import loss_name  # noqa: F401 - the pages call it vt.loss_name
from core.train.runs import status_words

CNN_COLOR = "#1f77b4"
BASE_COLORS = {"majority": "#999999", "logistic": "#ff7f0e", "mlp": "#2ca02c"}
METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                 "roc_auc": "ROC AUC", "log_loss": "log loss"}


def epoch_ticks(n_epochs: int) -> dict[str, Any]:
    """x-axis settings with whole-epoch ticks only: every epoch up to 12, else a round integer step
    (2, 5, 10, 20, 25, 50, ...) giving at most ~10 ticks. Plotly's own choice puts ticks at 1.2, 1.4, ...
    on a short run, and an epoch 1.2 does not exist."""
    n = max(int(n_epochs or 0), 1)
    step = 1
    if n > 12:
        step = next(d * 10 ** k for k in range(12) for d in (1, 2, 2.5, 5)
                    if float(d * 10 ** k).is_integer() and n / (d * 10 ** k) <= 10)
    return {"tickmode": "linear", "tick0": 0 if step > 1 else 1, "dtick": int(step), "tickformat": "d"}


def history_figure(history: pd.DataFrame, total_epochs: Optional[int] = None, title: str = "",
                   loss: str = "") -> go.Figure:
    """Loss (left; `loss` names it: the training loss, not the test log loss) and accuracy (right) per epoch;
    works on a partial history while training runs."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(loss or "loss", "accuracy"), horizontal_spacing=0.08)
    h = history if history is not None else pd.DataFrame()
    if not h.empty:
        x = h["epoch"]
        for col, name, dash, c in (("train_loss", "train loss", "dot", 1), ("val_loss", "val loss", "solid", 1),
                                   ("train_accuracy", "train accuracy", "dot", 2),
                                   ("val_accuracy", "val accuracy", "solid", 2)):
            if col in h:
                fig.add_trace(go.Scatter(x=x, y=h[col], name=name, mode="lines+markers",
                                         line={"dash": dash, "color": CNN_COLOR if "val" in col else "#7f7f7f"}),
                              row=1, col=c)
        if "best" in h and h["best"].astype(bool).any():
            best = int(h.loc[h["best"].astype(bool), "epoch"].iloc[-1])
            for c in (1, 2):
                fig.add_vline(x=best, line={"dash": "dash", "color": "green", "width": 1}, row=1, col=c)
            fig.add_annotation(x=best, y=1.02, yref="paper", xref="x", text=f"best epoch {best}",
                               showarrow=False, font={"color": "green", "size": 11})
    if total_epochs:
        fig.update_xaxes(range=[0.5, total_epochs + 0.5])
    last = int(pd.to_numeric(h["epoch"]).max()) if not h.empty and "epoch" in h else 0
    fig.update_xaxes(title_text="epoch", **epoch_ticks(max(int(total_epochs or 0), last)))
    fig.update_layout(height=340, margin={"l": 40, "r": 20, "t": 50, "b": 40}, title=title or None,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def confusion_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str = "") -> go.Figure:
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    text = [[f"{int(cm[i, j])}<br>{norm[i, j] * 100:.0f}%" for j in range(cm.shape[1])] for i in range(cm.shape[0])]
    fig = go.Figure(go.Heatmap(z=norm, x=[f"pred {c}" for c in class_names], y=[f"true {c}" for c in class_names],
                               text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                               colorbar={"title": "share of row"}))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=330, margin={"l": 60, "r": 20, "t": 60, "b": 40},
                      title=title or "confusion matrix<br><sup>test split, each row sums to 100 %</sup>")
    return fig


def baseline_bars(metrics: dict[str, Any], baselines: dict[str, dict[str, Any]],
                  names: Sequence[str] = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")) -> go.Figure:
    fig = go.Figure()
    labels = [METRIC_LABELS[n] for n in names]
    fig.add_trace(go.Bar(name="CNN", x=labels, y=[metrics.get(n) for n in names], marker_color=CNN_COLOR))
    for b, m in baselines.items():
        fig.add_trace(go.Bar(name=b, x=labels, y=[m.get(n) for n in names],
                             marker_color=BASE_COLORS.get(b, "#bcbd22")))
    fig.update_layout(barmode="group", height=320, margin={"l": 40, "r": 20, "t": 60, "b": 40},
                      title="test metrics: CNN vs baselines<br><sup>the same split, the same labels</sup>",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def comparison_figure(vs: dict[str, Any]) -> go.Figure:
    """Difference to the best baseline, in points, with the bootstrap interval, for each metric."""
    items = [vs] + list((vs.get("others") or {}).values()) if vs else []
    fig = go.Figure()
    for it in items:
        d, lo, hi = it["diff"] * 100, it["ci_low"] * 100, it["ci_high"] * 100
        color = "green" if it.get("beats") else ("crimson" if it.get("worse") else "gray")
        fig.add_trace(go.Scatter(
            x=[d], y=[f"{METRIC_LABELS.get(it['metric'], it['metric'])}<br>vs {it['baseline']}"], mode="markers",
            marker={"size": 12, "color": color}, showlegend=False,
            error_x={"type": "data", "symmetric": False, "array": [hi - d], "arrayminus": [d - lo]},
            hovertemplate=f"{it['verdict']}<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#888888", "width": 1})  # seen on the light and the dark theme
    conf = int(round(items[0]["confidence"] * 100)) if items else 95
    fig.update_layout(height=100 + 70 * max(1, len(items)), margin={"l": 40, "r": 20, "t": 60, "b": 40},
                      title=f"CNN minus best baseline<br><sup>points, {conf} % block-bootstrap interval</sup>",
                      xaxis_title="difference (points)")  # "(percentage points" was cut at half width
    return fig


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    rows = [{"class": c, **v} for c, v in (metrics.get("per_class") or {}).items()]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def heads_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The multi-task regression heads on the test split (empty for a classifier): MAE and RMSE in the
    target's units, correlation with the target, and the MAE of always answering the training mean."""
    rows = [{"head": name, "MAE": h.get("mae"), "MAE of the training mean": h.get("mae_train_mean"),
             "RMSE": h.get("rmse"), "correlation": h.get("corr"), "samples": h.get("n")}
            for name, h in (metrics.get("heads") or {}).items()]
    return pd.DataFrame(rows, columns=["head", "MAE", "MAE of the training mean", "RMSE", "correlation", "samples"])


def comparison_table(metrics: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> pd.DataFrame:
    names = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"]
    rows = [{"model": "CNN", **{METRIC_LABELS[n]: metrics.get(n) for n in names}, "description": ""}]
    for b, m in baselines.items():
        rows.append({"model": b, **{METRIC_LABELS[n]: m.get(n) for n in names}, "description": m.get("description", "")})
    return pd.DataFrame(rows)


def history_from_events(events: Sequence[Any]) -> pd.DataFrame:
    """The live history table from a job's `Progress` events (stage "epoch" carries the epoch's metrics)."""
    rows = [dict(e.metrics) for e in events if getattr(e, "stage", None) == "epoch" and e.metrics]
    return pd.DataFrame(rows)


def lr_schedule_figure(epochs: int, warmup: float, lr: float, min_lr: float, steps_per_epoch: int = 50,
                       title: str = "") -> go.Figure:
    """The learning rate of `core.train.trainer.lr_factor` (linear warm-up, cosine to `min_lr`) over training,
    with epochs on the x axis (`steps_per_epoch` only sets the resolution of the curve)."""
    from core.train.trainer import lr_factor

    total = max(1, int(epochs) * steps_per_epoch)
    warm = int(round(float(warmup) * steps_per_epoch))
    ratio = min(1.0, float(min_lr) / float(lr)) if lr > 0 else 1.0
    steps = np.arange(total + 1)
    y = [float(lr) * lr_factor(int(s), total, warm, ratio) for s in steps]
    fig = go.Figure(go.Scatter(x=steps / steps_per_epoch, y=y, mode="lines", line={"color": CNN_COLOR},
                               hovertemplate="epoch %{x:.2f}<br>lr %{y:.2e}<extra></extra>", name="lr"))
    if warm:
        fig.add_vline(x=warm / steps_per_epoch, line={"dash": "dot", "color": "gray", "width": 1})
    warm_text = f"{float(warmup):g} warm-up epoch(s)" if warm else "no warm-up"
    if warm >= total:
        shape = f"the whole run is warm-up (up to {float(lr):.0e})"
    elif ratio >= 1.0:
        shape = f"{warm_text}, then constant at {float(lr):.0e}"
    else:
        shape = f"{warm_text}, cosine to {float(min_lr):.0e}"
    fig.update_layout(height=250, margin={"l": 50, "r": 20, "t": 60, "b": 40},
                      title=title or f"learning rate<br><sup>{shape}</sup>",
                      xaxis_title="epoch", yaxis={"tickformat": ".1e"}, showlegend=False)
    fig.update_xaxes(range=[0, max(1, int(epochs))], **epoch_ticks(int(epochs)))  # no "epoch 0.5" ticks
    return fig


def folds_figure(folds: Sequence[dict[str, Any]], metric: str = "accuracy", mode: str = "expanding") -> go.Figure:
    """A walk-forward evaluation fold by fold: the CNN's and each baseline's `metric` on each fold's test block."""
    label = METRIC_LABELS.get(metric, metric)
    x = [f"fold {f['fold']}<br>{str(f['test_start'])[:10]}" for f in folds]
    fig = go.Figure()
    fig.add_trace(go.Bar(name="CNN", x=x, y=[f["metrics"].get(metric) for f in folds], marker_color=CNN_COLOR,
                         customdata=[[f["n_test"], f["status"]] for f in folds],
                         hovertemplate=f"CNN {label} %{{y:.3f}}<br>%{{customdata[0]}} test samples, "
                                       "%{customdata[1]}<extra></extra>"))
    names = list(dict.fromkeys(b for f in folds for b in (f.get("baselines") or {})))
    for b in names:
        fig.add_trace(go.Bar(name=b, x=x, y=[(f.get("baselines") or {}).get(b, {}).get(metric) for f in folds],
                             marker_color=BASE_COLORS.get(b, "#bcbd22"),
                             hovertemplate=f"{b} {label} %{{y:.3f}}<extra></extra>"))
    sizes = {f["n_train"] for f in folds if f.get("n_train") is not None}
    same = mode != "expanding" or (len(sizes) == 1 and len(folds) > 1)  # rolling, or capped training samples
    note = "every fold trains on equally many samples" if same else "later folds train on more history"
    # two short lines: one long line was cut at the page's width ("... train on more histor")
    fig.update_layout(barmode="group", height=360, margin={"l": 40, "r": 20, "t": 70, "b": 40},
                      title=f"{label} on each fold's test block<br><sup>{note}</sup>",
                      legend={"orientation": "h", "y": -0.25})
    return fig


FIRST_EPOCH_NOTE = ("Every fold's best validation epoch was the first: the model stopped improving right away; "
                    "more data, a lower learning rate or another model may help.")


def fold_warnings(folds: Sequence[dict[str, Any]]) -> list[str]:
    """Each fold's run warnings (an empty class, a constant answer, ...) as "Fold k: ..." sentences, and
    `FIRST_EPOCH_NOTE` when every fold's best validation epoch was its first (nothing learnt after it)."""
    out = [f"Fold {f.get('fold')}: {w}" for f in folds if isinstance(f.get("warnings"), list)
           for w in f["warnings"] if isinstance(w, str)]
    epochs = [f.get("best_epoch") for f in folds]
    if epochs and all(isinstance(e, (int, float)) and int(e) == 1 for e in epochs):
        out.append(FIRST_EPOCH_NOTE)
    return out


def folds_table(folds: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per fold: its test span and sizes, the CNN's accuracy and macro F1 against the best baseline's."""
    rows = []
    for f in folds:
        bl = f.get("baselines") or {}
        best = max(bl, key=lambda b: bl[b].get("accuracy") or 0.0) if bl else None
        acc = f["metrics"].get("accuracy")
        rows.append({"fold": f["fold"], "test from": str(f["test_start"])[:16], "test to": str(f["test_end"])[:16],
                     "train samples": f["n_train"], "test samples": f["n_test"], "status": status_words(f["status"]),
                     "best epoch": f.get("best_epoch"), "CNN accuracy": acc,
                     "CNN macro F1": f["metrics"].get("macro_f1"), "best baseline": best,
                     "baseline accuracy": bl[best].get("accuracy") if best else None,
                     "CNN - baseline (points)": None if best is None or acc is None
                     else 100 * (acc - bl[best]["accuracy"])})
    return pd.DataFrame(rows)


def walk_forwards_table(docs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per saved walk-forward evaluation (`core.train.evaluate.list_walk_forwards()`), to compare them:
    the CNN's out-of-sample accuracy and macro F1, the best baseline, and the difference with its interval."""
    rows = []
    for d in docs:
        m, vs = d.get("metrics") or {}, d.get("vs_best_baseline") or {}
        cfg = d.get("config") or {}
        data = cfg.get("data_config") or {}
        # the answer first (a wide table cut at the page's edge must not hide it): the difference, its
        # interval and the verdict, then what was evaluated
        rows.append({
            "evaluation": d.get("name") or d.get("wf_id"),
            "CNN - baseline (points)": None if vs.get("diff") is None else 100 * vs["diff"],
            "95 % CI": "" if vs.get("ci_low") is None else f"{100 * vs['ci_low']:+.1f} to {100 * vs['ci_high']:+.1f}",
            "verdict": "" if not vs else ("beats it" if vs.get("beats") else "worse" if vs.get("worse")
                                          else "within noise"),
            "best baseline": vs.get("baseline"), "model": d.get("model_name"), "dataset": d.get("dataset_id"),
            "labels": f"{data.get('label', '')} h={data.get('horizon', '')}", "folds": d.get("n_folds"),
            "predictions": m.get("n"), "accuracy": m.get("accuracy"), "macro F1": m.get("macro_f1"),
            "beats it": bool(vs.get("beats")), "id": d.get("wf_id")})
    return pd.DataFrame(rows)


# ---- the sentences the Train page shows (kept here so the page only lays them out) ------------------------

def training_summary(train: Any, here: Any = None, input_kind: str = "sequence", multitask: bool = False) -> str:
    """How a TrainConfig trains (`here`: the device "auto" resolves to on this machine): loss, class weights,
    augmentations (and whether they apply to a model reading `input_kind`), clipping, early stopping, device."""
    from core.train.trainer import UNAUGMENTED_INPUTS

    decay = f"weight decay {train.weight_decay:g}" + ("" if train.decay_norms_and_biases or not train.weight_decay
                                                      else ", not on biases and norms")
    parts = [f"AdamW ({decay})",
             loss_name(train, multitask).replace("class-weighted ", "")]  # the weights are said next
    if train.class_weights == "balanced":
        parts.append("classes weighted by the training split's balance")
    elif isinstance(train.class_weights, list):
        parts.append(f"class weights {', '.join(f'{w:g}' for w in train.class_weights)}")
    if train.augments and input_kind not in UNAUGMENTED_INPUTS:
        aug = [f"noise {train.noise_std:g}" if train.noise_std else "",
               f"scaling {train.scale_min:g}-{train.scale_max:g}" if (train.scale_min, train.scale_max) != (1, 1)
               else "", f"time warp {train.time_warp:g}" if train.time_warp else "",
               f"window slicing {train.window_slice:g}" if train.window_slice else ""]
        parts.append(f"augmentation of train batches ({', '.join(a for a in aug if a)})")
    parts.append(f"gradient clipping at {train.clip:g}" if train.clip else "no gradient clipping")
    parts.append(f"early stopping on {train.monitor} (patience {train.patience})" if train.patience
                 else "no early stopping (patience 0)")
    text = (", ".join(parts) + f"; the best epoch's weights (by {train.monitor}) are kept; device {train.device}"
            + (f" ({here} here)." if train.device == "auto" and here is not None else "."))
    if train.augments and input_kind in UNAUGMENTED_INPUTS:
        text += (" The augmentations are not used for this model: its input is a rendered image, with no time "
                 "axis to add noise along, scale, warp or slice.")
    return text


def interval_note(vs: dict[str, Any], walk_forward: bool = False) -> str:
    """How far to trust the verdict's interval: how it was drawn and, measured, how often its kind errs."""
    if not vs or vs.get("block") is None:
        return ""
    def count(key: str) -> str:
        v = vs.get(key)
        return f"{int(v):,}" if isinstance(v, (int, float)) else "?"

    return (f"Paired block bootstrap over {count('n')} test samples in blocks of {vs['block']} "
            f"({count('n_boot')} resamples). The {int(round(vs.get('confidence', 0.95) * 100))} % is "
            "nominal: neighbouring bars hang together, and between two models with no real difference whose "
            "answers persist, such an interval still excludes 0 in about 10 % of test spans (answers lasting 16 "
            "bars) to about 23 % (256 bars) instead of 5 % (measured over 120 simulated spans each). "
            "A narrow win is a hint"
            + ("." if walk_forward else "; a walk-forward evaluation is the firmer test."))


def headline_values(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value text) of the headline metrics, "n/a" where a metric is missing."""
    from core.train.metrics import HEADLINE

    return [(METRIC_LABELS[k], "n/a" if metrics.get(k) is None else f"{metrics[k]:.3f}") for k in HEADLINE]


def run_caption(config: dict[str, Any], metrics_doc: dict[str, Any]) -> str:
    """What a run is: model, dataset, status, best epoch, test span and size, device and precision."""
    m = metrics_doc.get("metrics") or {}

    def when(ts: Any) -> str:
        try:
            return f"{pd.Timestamp(ts):%Y-%m-%d %H:%M}"
        except (TypeError, ValueError):
            return str(ts)
    return (f"{config.get('model_name')} on {config.get('dataset_id')} · status **{metrics_doc.get('status')}** · "
            f"best epoch {metrics_doc.get('best_epoch')} · test {when(config.get('test_start'))} to "
            f"{when(config.get('test_end'))} UTC ({m.get('n')} samples) · trained on {config.get('device', 'cpu')} in "
            f"{config.get('precision', 'fp32')}")


def walk_forward_label(doc: dict[str, Any]) -> str:
    """A saved walk-forward evaluation in a picker: its name (or id), model and number of folds."""
    return f"{doc.get('name') or doc.get('wf_id')} · {doc.get('model_name')} · {doc.get('n_folds')} folds"


def walk_forward_caption(config: dict[str, Any], predictions: pd.DataFrame, n_folds: int) -> str:
    """What a walk-forward evaluation covers: model, dataset, folds and its out-of-sample span."""
    ts = predictions["timestamp"]
    return (f"{config.get('model_name')} on {config.get('dataset_id')} · {n_folds} folds · {len(predictions):,} "
            f"out-of-sample predictions from {ts.iloc[0]:%Y-%m-%d %H:%M} to {ts.iloc[-1]:%Y-%m-%d %H:%M} UTC")
