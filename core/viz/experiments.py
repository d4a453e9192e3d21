"""Figures and tables of the Experiments page (pure: data in, plotly figure or DataFrame out).

- `curves_figure(histories)`: training curves of several runs overlaid (loss | accuracy; val solid,
  train dotted, one colour per run).
- `metric_bars(metrics)`: test metrics of several runs side by side, each with its best baseline marked.
- `equity_figure(curves, benchmarks)`: out-of-sample equity of several runs on one chart, each rebased to
  1.0 at its first bar, with buy and hold over the same spans dashed.
- `sweep_figure(summary, cells, rank_by)`: the sweep ranking: mean +- std across seeds per group, every
  seed as a dot, so the spread is visible next to the differences; in the ranking's order (validation where
  it was ranked on validation), its top row marked "top on validation", the bars always the test split.
- `sweep_progress_table(cells)`: per-cell status of a running sweep.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.train.runs import status_words
from core.viz.train import epoch_ticks

BASELINE_COLOR = "#d62728"  # best-baseline marks (visible on the dark and the light theme)
BUY_HOLD_COLOR = "#7f7f7f"
# One colour per run, shared by every chart of the page; reds and grey are left out so that no run looks
# like the baseline marks or the buy-and-hold line.
# D3 first: its first colours are far apart in hue (blue, orange, green, purple), where Plotly's blue-violet and
# purple read as one run beside each other; the reds stay the baseline's
PALETTE = [c for c in qualitative.D3 + qualitative.Plotly
           if c.lower() not in {"#ef553b", "#d62728", BASELINE_COLOR.lower(), BUY_HOLD_COLOR.lower()}]
METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                 "roc_auc": "ROC AUC", "log_loss": "log loss", "vs_baseline": "CNN minus best baseline"}


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def curves_figure(histories: Mapping[str, pd.DataFrame], title: str = "training curves",
                  losses: Optional[Mapping[str, str]] = None) -> go.Figure:
    """`losses` (run label -> loss name) titles the loss panel; losses that differ between runs are said to be
    incomparable (a focal loss of 0.4 is not better than a cross-entropy of 1.0): compare the accuracy."""
    kinds = sorted(set((losses or {}).values()))
    loss_title = ("loss" if not kinds else f"loss: {kinds[0]}" if len(kinds) == 1
                  else "training losses differ between runs: not comparable")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(loss_title, "accuracy"), horizontal_spacing=0.08)
    for i, (label, h) in enumerate(histories.items()):
        if h is None or h.empty or "epoch" not in h:
            continue
        for col, c, dash, show in (("val_loss", 1, "solid", True), ("train_loss", 1, "dot", False),
                                   ("val_accuracy", 2, "solid", False), ("train_accuracy", 2, "dot", False)):
            if col in h:
                fig.add_trace(go.Scatter(x=h["epoch"], y=h[col], mode="lines+markers", legendgroup=label,
                                         name=label if show else f"{label} {col}", showlegend=show,
                                         line={"color": _color(i), "dash": dash},
                                         hovertemplate=f"{label}<br>{col} %{{y:.4f}} (epoch %{{x}})"
                                                       f"{'<br>' + losses[label] if losses and label in losses else ''}"
                                                       "<extra></extra>"),
                              row=1, col=c)
    last = max((int(pd.to_numeric(h["epoch"]).max()) for h in histories.values()
                if h is not None and not h.empty and "epoch" in h), default=1)
    fig.update_xaxes(title_text="epoch", **epoch_ticks(last))
    fig.update_layout(height=360, title=f"{title} (solid: validation, dotted: train)",
                      margin={"l": 40, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def metric_bars(metrics: Mapping[str, Mapping[str, Mapping[str, Optional[float]]]],
                keys: Sequence[str] = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"),
                title: str = "test metrics (out of sample)") -> go.Figure:
    """`metrics`: label -> {"model": {metric: value}, "best_baseline": {metric: value}}.

    The value is written inside each bar near its foot, so the baseline mark (a red dash across the bar, at
    the baseline's score) never strikes through it; the y axis leaves room above the tallest bar or mark."""
    fig = go.Figure()
    x = [METRIC_LABELS.get(k, k) for k in keys]
    shown: list[float] = []
    legend_done = False
    for i, (label, m) in enumerate(metrics.items()):
        vals = [m.get("model", {}).get(k) for k in keys]
        shown += [float(v) for v in vals if v is not None and np.isfinite(v)]
        fig.add_trace(go.Bar(x=x, y=[np.nan if v is None else v for v in vals], name=label,
                             marker_color=_color(i), offsetgroup=str(i),
                             text=[("" if v is None else f"{v:.3f}") for v in vals], textposition="inside",
                             insidetextanchor="start", textangle=0))
        base = [m.get("best_baseline", {}).get(k) for k in keys]
        if any(b is not None for b in base):
            shown += [float(b) for b in base if b is not None and np.isfinite(b)]
            fig.add_trace(go.Scatter(x=x, y=[np.nan if b is None else b for b in base], mode="markers",
                                     name="best baseline (of each run)", offsetgroup=str(i),
                                     legendgroup="best baseline", showlegend=not legend_done,
                                     marker={"symbol": "line-ew-open", "size": 30, "color": BASELINE_COLOR,
                                             "line": {"width": 4, "color": BASELINE_COLOR}},
                                     hovertemplate=f"{label}<br>best baseline %{{y:.3f}}<extra></extra>"))
            legend_done = True
    yaxis: dict[str, Any] = {"title": "score"}
    if shown:
        lo, hi = min(0.0, min(shown)), max(0.0, max(shown))
        pad = 0.12 * (hi - lo if hi > lo else 1.0)
        yaxis["range"] = [lo - (pad if lo < 0 else 0.0), hi + pad]
    fig.update_layout(barmode="group", height=380, title=f"{title}; red dash: that run's best baseline",
                      yaxis=yaxis, margin={"l": 40, "r": 20, "t": 60, "b": 40},
                      legend={"orientation": "h", "y": -0.2}, scattermode="group")
    return fig


def equity_figure(curves: Mapping[str, pd.Series], benchmarks: Optional[Mapping[str, pd.Series]] = None,
                  title: str = "out-of-sample equity (rebased to 1.0)") -> go.Figure:
    fig = go.Figure()
    for i, (label, eq) in enumerate(curves.items()):
        if eq is None or len(eq) == 0:
            continue
        eq = eq.astype(float)
        fig.add_trace(go.Scatter(x=eq.index, y=eq / eq.iloc[0], mode="lines", name=label,
                                 line={"color": _color(i)}))
    seen: set[tuple[Any, Any]] = set()
    for i, (label, bh) in enumerate((benchmarks or {}).items()):
        if bh is None or len(bh) == 0:
            continue
        key = (bh.index[0], bh.index[-1], round(float(bh.iloc[-1] / bh.iloc[0]), 10))
        if key in seen:  # runs on the same data and span share one buy and hold line
            continue
        seen.add(key)
        bh = bh.astype(float)
        fig.add_trace(go.Scatter(x=bh.index, y=bh / bh.iloc[0], mode="lines", name=f"buy and hold ({label})",
                                 line={"color": BUY_HOLD_COLOR, "dash": "dash", "width": 1}))
    fig.add_hline(y=1.0, line={"color": "#bbbbbb", "width": 1})
    fig.update_layout(height=380, title=title, yaxis_title="equity / start", margin={"l": 40, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def sweep_figure(summary: pd.DataFrame, cells: pd.DataFrame, rank_by: str,
                 title: str = "") -> go.Figure:
    """Horizontal: one row per group in the ranking's order (top on top, chosen on validation where the
    summary says so), bar = test mean across seeds, whisker = std, dots = seeds; the dotted line is the mean
    of the best baseline on the same test splits."""
    fig = go.Figure()
    if summary is None or summary.empty:
        fig.update_layout(title="no finished cells yet", height=200)
        return fig
    order = list(summary["group"])[::-1]
    mean, std = summary[f"{rank_by}_mean"], summary[f"{rank_by}_std"].fillna(0.0)
    values = {g: f"{m:.3f} ± {s:.3f}" for g, m, s in zip(summary["group"], mean, std)}
    # The value goes on the group's tick label, not on the bar: text on the bar sat under the seed dots and
    # the whisker, which cluster around the bar's end.
    fig.add_trace(go.Bar(y=summary["group"], x=mean, orientation="h", name="mean across seeds",
                         error_x={"type": "data", "array": std, "visible": True, "color": "#888888"},
                         marker_color="#9ecae1", customdata=[values[g] for g in summary["group"]],
                         hovertemplate="%{y}: %{customdata}<extra></extra>"))
    done = cells[cells["run_id"].notna()] if "run_id" in cells else cells
    if rank_by in done:
        fig.add_trace(go.Scatter(y=done["group"], x=done[rank_by], mode="markers", name="one seed",
                                 marker={"color": "#08519c", "size": 8, "symbol": "circle-open"},
                                 text=[f"seed {s}" for s in done.get("seed", [])],
                                 hovertemplate="%{text}: %{x:.4f}<extra></extra>"))
    base_col = f"best_baseline_{rank_by}"
    if base_col in done and done[base_col].notna().any():
        # named in the legend (above the plot) rather than by an annotation that the legend would cover
        fig.add_vline(x=float(done[base_col].mean()), line={"dash": "dot", "color": BASELINE_COLOR})
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="best baseline (mean)",
                                 line={"dash": "dot", "color": BASELINE_COLOR}, hoverinfo="skip"))
    # the x range holds the whiskers, the seeds and the baseline line with a margin (a line is not autoranged)
    right = [float(v) for v in list(mean + std) + list(done[rank_by] if rank_by in done else [])
             + list(done[base_col] if base_col in done else []) if v is not None and np.isfinite(v)]
    left = [float(v) for v in list(mean - std) + list(done[rank_by] if rank_by in done else [])
            if v is not None and np.isfinite(v)]
    if right:
        lo, hi = min([0.0] + left), max([0.0] + right)
        pad = 0.05 * ((hi - lo) or 1.0)
        fig.update_xaxes(range=[lo - (pad if lo < 0 else 0.0), hi + pad])
    label = METRIC_LABELS.get(rank_by, rank_by)
    on = summary.attrs.get("ranked_on", "test")
    top = str(summary["group"].iloc[0])
    fig.update_yaxes(categoryorder="array", categoryarray=order, tickmode="array", tickvals=order,
                     ticktext=[f"{g}{f' (top on {on})' if g == top else ''}<br>{values[g]}" for g in order])
    # the order is the ranking's, the bars are the test split: a title that says both, so a top row with a
    # shorter bar reads as what it is (picked on validation, not leading on test)
    heading = (f"order: validation {label}, top first; bars: test {label}" if on == "validation"
               else f"order and bars: test {label}, top first")
    fig.update_layout(height=max(280, 130 + 45 * len(summary)), xaxis_title=f"{label} (test split)",
                      title=title or (f"{heading}<br>"
                                      f"<sup>bars: test {label}, mean ± std across seeds; dots = seeds</sup>"),
                      margin={"l": 20, "r": 20, "t": 95, "b": 50},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"})
    return fig


def sweep_progress_table(cells: Mapping[Any, Mapping[str, Any]], plan: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """One row per cell: its name, status (in words: "stopped early"), progress (0-100) and the latest message."""
    names = {int(c["index"]): c.get("name", "") for c in plan}
    rows = []
    indices = sorted(set(names) | {int(i) for i in cells})
    for i in indices:
        s = cells.get(i, cells.get(str(i), {})) or {}
        rows.append({"cell": i, "name": names.get(i, ""), "status": status_words(s.get("status") or "waiting"),
                     "progress": round(100 * float(s.get("fraction") or 0.0)), "message": s.get("message") or ""})
    return pd.DataFrame(rows, columns=["cell", "name", "status", "progress", "message"])


__all__ = ["curves_figure", "metric_bars", "equity_figure", "sweep_figure", "sweep_progress_table"]
