"""Plotly figures for the Inspect page: input channels, feature maps (channels x time for 1D models,
image grids for 2D), the most active channels, attributions drawn under a candlestick chart, and the
predicted class probabilities. Pure functions: arrays in, figures out."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.viz.encodings import candlestick_trace

RIGHT, WRONG = "#26a65b", "#e84142"  # test-set points: predicted class right / wrong


def _layout(fig: go.Figure, title: str | None, height: int) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig


def input_channels_figure(x: np.ndarray, channel_names: Sequence[str] | None = None,
                          timestamps: Sequence | None = None, title: str | None = "input channels") -> go.Figure:
    """A (C, T) input as a channels x time heatmap (a (1, T, C) image input is transposed to match)."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0].T  # (1, T, C) image -> (C, T)
    if a.ndim != 2:
        raise ValueError(f"input channels must be (C, T), got {a.shape}")
    names = list(channel_names) if channel_names is not None else [f"ch {i}" for i in range(a.shape[0])]
    fig = go.Figure(go.Heatmap(z=a, x=list(timestamps) if timestamps is not None else None, y=names,
                               colorscale="RdBu_r", zmid=0))
    _every_row_label(fig, names)
    return _layout(fig, title, max(260, 14 * a.shape[0] + 80))


MAX_LABELLED_ROWS = 40  # up to this many heatmap rows, every row is named on the axis


def _every_row_label(fig: go.Figure, names: Sequence[str] | None, **where) -> None:
    """Plotly thins category tick labels to fit; a reader needs every input channel named, so up to
    `MAX_LABELLED_ROWS` rows each gets its tick (more would overlap; then plotly's own choice stands)."""
    if names is not None and 0 < len(names) <= MAX_LABELLED_ROWS:
        fig.update_yaxes(tickmode="array", tickvals=list(names), ticktext=[str(n) for n in names],
                         tickfont=dict(size=11), **where)


def _squeeze_spatial(a: np.ndarray) -> np.ndarray:
    """(C, 1, 1) or (C, 1) maps (after global pooling) are per-channel values: draw them as bars."""
    while a.ndim > 1 and a.shape[-1] == 1 and (a.ndim == 2 or a.shape[-2] == 1):
        a = a[..., 0]
    return a


def feature_map_figure(name: str, fmap: np.ndarray, max_channels: int = 64, wrap: int = 8,
                       channel_labels: Sequence[int] | None = None) -> go.Figure:
    """One layer's output: (C, T) -> channels x time heatmap; (C, H, W) -> grid of the first channels;
    (C,) (or maps pooled to 1x1) -> bars. `channel_labels` names the channels shown (default 0, 1, ...)."""
    a = _squeeze_spatial(np.asarray(fmap, dtype=np.float32))
    labels = list(channel_labels) if channel_labels is not None else list(range(a.shape[0] if a.ndim else 0))
    if a.ndim == 1:
        fig = go.Figure(go.Bar(x=[f"ch {c}" for c in labels], y=a))
        return _layout(fig, f"{name} {tuple(np.shape(fmap))}", 260)
    if a.ndim == 2:
        fig = go.Figure(go.Heatmap(z=a[:max_channels], colorscale="Viridis",
                                   hovertemplate="channel %{y}<br>t %{x}<br>%{z:.3f}<extra></extra>"))
        fig.update_xaxes(title="time step")
        fig.update_yaxes(title="channel")
        return _layout(fig, f"{name} {a.shape}", max(260, min(700, 8 * min(a.shape[0], max_channels) + 100)))
    if a.ndim == 3:
        k = min(a.shape[0], max_channels)
        sub = a[:k]
        lo, hi = float(sub.min()), float(sub.max())
        img = ((sub - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
        fig = px.imshow(img, facet_col=0, facet_col_wrap=min(wrap, k), binary_string=True,
                        facet_row_spacing=0.02, facet_col_spacing=0.01)
        for ann in fig.layout.annotations:
            ann.text = f"ch {labels[int(ann.text.split('=')[1])]}"
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        rows = -(-k // min(wrap, k))
        return _layout(fig, f"{name} {a.shape}", 120 * rows + 60)
    raise ValueError(f"cannot draw a feature map of shape {a.shape}")


def most_active_channels_figure(name: str, fmap: np.ndarray, top: Sequence[tuple[int, float]]) -> go.Figure:
    """The top channels of a layer: their activations over time (1D) or their maps (2D)."""
    a = _squeeze_spatial(np.asarray(fmap, dtype=np.float32))
    idx = [c for c, _ in top]
    if a.ndim == 2:
        fig = go.Figure([go.Scatter(y=a[c], mode="lines", name=f"ch {c} ({s:.3g})") for c, s in top])
        fig.update_xaxes(title="time step")
        return _layout(fig, f"{name}: most active channels", 320)
    if a.ndim == 3:
        return feature_map_figure(f"{name}: most active channels", a[idx], max_channels=len(idx),
                                  channel_labels=idx)
    fig = go.Figure(go.Bar(x=[f"ch {c}" for c in idx], y=[s for _, s in top]))
    return _layout(fig, f"{name}: most active channels", 260)


def attribution_title(class_name: str) -> str:
    """What the attribution rows draw: unsigned magnitudes per bar, each row scaled to its largest bar (so
    not which way a bar pushed, only how strongly). The methods differentiate the class logit."""
    # two lines: on one, a window under about 1,300 px cut the title mid-word
    return (f"how strongly each bar moves the {class_name} score (logit)"
            "<br><sup>|attribution|, scaled to the largest bar of each row</sup>")


ATTRIBUTION_METHODS_NOTE = (
    "Saliency: the gradient of the class score at the input. Integrated gradients: that gradient integrated "
    "along a path from a baseline (all zeros) to the input, so the attributions sum to the change in the score. "
    "Grad-CAM: the class activation of the last convolution layer, coarse in time (one value per position of "
    "that layer).")


def attribution_figure(window: pd.DataFrame, profiles: Mapping[str, np.ndarray],
                       title: str | None = "what the model looked at") -> go.Figure:
    """Candles of the window on top, one row per attribution method below, aligned bar by bar."""
    n = len(profiles)
    fig = make_subplots(rows=1 + n, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.5] + [0.5 / max(n, 1)] * n)
    fig.add_trace(candlestick_trace(window), row=1, col=1)
    for i, (method, prof) in enumerate(profiles.items(), start=2):
        p = np.asarray(prof, dtype=np.float64)
        if len(p) != len(window):
            raise ValueError(f"{method}: {len(p)} scores for {len(window)} candles")
        p = p / p.max() if p.max() > 0 else p
        fig.add_trace(go.Bar(x=window.index, y=p, name=method, marker=dict(color=p, colorscale="Oranges",
                                                                           cmin=0, cmax=1)), row=i, col=1)
        fig.update_yaxes(title_text=method.replace("_", " "), range=[0, 1.05], row=i, col=1)
    fig.update_layout(xaxis_rangeslider_visible=False, showlegend=False)
    return _layout(fig, title, 320 + 120 * n)


def probabilities_figure(probs: np.ndarray, class_names: Sequence[str], true_class: int | None = None,
                         title: str | None = "predicted probabilities") -> go.Figure:
    p = np.asarray(probs, dtype=np.float64)
    colors = ["#4c78a8"] * len(p)
    if true_class is not None and 0 <= true_class < len(p):
        colors[true_class] = "#f58518"
    fig = go.Figure(go.Bar(x=list(class_names), y=p, marker_color=colors, text=[f"{v:.1%}" for v in p],
                           textposition="outside"))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    if true_class is not None:
        title = f"{title}<br><sup>orange: the actual class</sup>" if title else None
    return _layout(fig, title, 300)


def test_set_figure(close: pd.Series, predictions: pd.DataFrame | None = None, class_names: Sequence[str] = (),
                    selected: pd.Timestamp | None = None, max_points: int = 3000,
                    title: str | None = "test period: click a point to inspect that window") -> go.Figure:
    """Close prices of the test period as clickable points (one per sample), the chosen one marked.

    With the run's predictions, each point is green when the predicted class was right and red when not
    (one trace each, named, so the legend says so; grey: no prediction for that window).
    Long test periods are thinned to `max_points` for display (the chosen point is always kept).
    """
    s = close.copy()
    s.index = pd.DatetimeIndex(s.index)
    keep = np.unique(np.linspace(0, len(s) - 1, min(len(s), max_points)).round().astype(int)) if len(s) else []
    shown = s.iloc[keep]
    hover = "%{x}<br>close %{y:.6g}<extra></extra>"
    if predictions is not None and len(predictions) and class_names:
        p = predictions.set_index(pd.DatetimeIndex(predictions["timestamp"]))
        p = p.reindex(shown.index)
        probs = p[[f"prob_{c}" for c in class_names]].to_numpy()
        ok = np.isfinite(probs).all(axis=1)
        pred = np.where(ok, np.nan_to_num(probs).argmax(axis=1), -1)
        right = ok & (pred == p["y_true"].to_numpy())
        custom = np.array([class_names[i] if i >= 0 else "" for i in pred], dtype=object)
        hover = "%{x}<br>close %{y:.6g}<br>predicted %{customdata}<extra></extra>"
        # The path as a faint line, the clickable points split by outcome so the legend explains the colours.
        fig = go.Figure(go.Scatter(x=shown.index, y=shown.to_numpy(), mode="lines", name="close",
                                   line=dict(color="rgba(120,120,120,0.5)", width=1), hoverinfo="skip",
                                   showlegend=False))
        for mask, name, color in ((right, "predicted class right", RIGHT),
                                  (ok & ~right, "predicted class wrong", WRONG),
                                  (~ok, "no prediction", "#999999")):
            if mask.any():
                fig.add_trace(go.Scatter(x=shown.index[mask], y=shown.to_numpy()[mask], mode="markers", name=name,
                                         marker=dict(size=5, color=color), customdata=custom[mask],
                                         hovertemplate=hover))
        show_legend = True
    else:
        fig = go.Figure(go.Scatter(x=shown.index, y=shown.to_numpy(), mode="lines+markers", name="close",
                                   line=dict(color="rgba(120,120,120,0.5)", width=1),
                                   marker=dict(size=5, color="#4c78a8"), hovertemplate=hover))
        show_legend = False
    if selected is not None:
        ts = pd.Timestamp(selected)
        if ts in s.index:
            fig.add_trace(go.Scatter(x=[ts], y=[s.loc[ts]], mode="markers", name="chosen window",
                                     marker=dict(size=14, color="rgba(0,0,0,0)", line=dict(color="#f58518", width=3)),
                                     hoverinfo="skip"))
    fig.update_layout(showlegend=show_legend, clickmode="event+select", dragmode="zoom",
                      legend=dict(orientation="h", y=1.0, x=1.0, xanchor="right", yanchor="bottom"))
    return _layout(fig, title, 300)


def receptive_field_figure(profile: np.ndarray, span95: int, channel_time: np.ndarray | None = None,
                           channel_names: Sequence[str] | None = None, analytic_rf: int | None = None,
                           title: str | None = "effective receptive field", whole_window: bool = False) -> go.Figure:
    """Share of the gradient mass per step back from the last bar (0 = the last bar); the 95 % span shaded;
    the analytic receptive field (when known) as a dashed line; a channels x time heatmap beneath.
    `whole_window`: the model's head pools its last feature map, so every bar of the window reaches the
    output although one feature sees only `analytic_rf` bars; the chart says so above the bars."""
    prof = np.asarray(profile, dtype=np.float64)
    pooled_note = bool(whole_window) and analytic_rf is not None and analytic_rf < len(prof)
    lags = np.arange(len(prof))[::-1]  # step i of the window lies lags[i] bars before the last one
    rows = 2 if channel_time is not None else 1
    n_rows = int(np.shape(channel_time)[0]) if channel_time is not None else 0
    heat_px = max(200, 14 * n_rows)  # room for every row label
    fig = make_subplots(rows=rows, cols=1, vertical_spacing=0.2 if rows == 2 else 0.1,
                        row_heights=[220, heat_px][:rows],
                        subplot_titles=["gradient mass by bars back from the last bar"
                                        + (f"<br><sup>the head pools the last layer: all {len(prof)} bars reach "
                                           f"the output, each feature sees {analytic_rf}</sup>" if pooled_note
                                           else ""),
                                        "mean |gradient| per input row and time step"][:rows])
    fig.add_trace(go.Bar(x=lags, y=prof, marker_color="#4c78a8", name="share",
                         hovertemplate="%{x} bars back: %{y:.2%}<extra></extra>"), row=1, col=1)
    fig.add_vrect(x0=-0.5, x1=span95 - 0.5, fillcolor="#f58518", opacity=0.15, line_width=0, row=1, col=1)
    # The x axis runs backwards (oldest left), so the shaded span hugs the right edge: write its label at the
    # span's left border, inside the span when there is room, else just left of it - never past the plot.
    edge = (len(prof) - span95) / max(len(prof), 1)  # the span's left border, as a share of the plot width
    inside = edge <= 0.55
    fig.add_annotation(text=f"95 % of the mass in the last {span95} bars" + ("" if inside else " \u25b8"),
                       xref="x domain", yref="y domain", x=edge, y=0.98, xanchor="left" if inside else "right",
                       yanchor="top", xshift=4 if inside else -4, showarrow=False, row=1, col=1)
    if analytic_rf is not None and analytic_rf > len(prof):
        fig.add_annotation(text=f"analytic RF {analytic_rf} bars: beyond the {len(prof)}-bar window",
                           xref="x domain", yref="y domain", x=0.01, y=0.85, xanchor="left",
                           yanchor="top", showarrow=False, row=1, col=1)
    elif analytic_rf is not None:
        fig.add_vline(x=analytic_rf - 0.5, line_dash="dash", line_color="#888", row=1, col=1,
                      annotation_text=f"analytic RF {analytic_rf}" + (" per feature (a width)" if pooled_note else ""),
                      annotation_position="top right")
    fig.update_xaxes(title_text="bars back", range=[len(prof) - 0.5, -0.5], row=1, col=1)
    fig.update_yaxes(**share_ticks(float(prof.max()) if prof.size else 0.0), row=1, col=1)
    if channel_time is not None:
        ct = np.asarray(channel_time, dtype=np.float64)
        names = list(channel_names) if channel_names is not None and len(channel_names) == ct.shape[0] else None
        fig.add_trace(go.Heatmap(z=ct, y=names, colorscale="Viridis", showscale=False,
                                 hovertemplate="row %{y}<br>step %{x}<br>%{z:.3g}<extra></extra>"), row=2, col=1)
        _every_row_label(fig, names, row=2, col=1)
        fig.update_xaxes(title_text="input step or pixel column (left = oldest)", row=2, col=1)
    fig.update_layout(showlegend=False)
    _layout(fig, title, (340 + heat_px + 60 if rows == 2 else 320) + (40 if pooled_note else 0))
    if pooled_note:  # room for the second line of the top chart's title under the figure's title
        fig.update_layout(margin_t=fig.layout.margin.t + 40)
    return fig


def share_ticks(top: float, n: int = 4) -> dict:
    """y-axis settings for shares in [0, top]: a round step (1, 2, 2.5 or 5 x 10^k) giving about `n` ticks,
    written with as many decimals as the step needs. ".0%" wrote 0.5 % steps as "0%, 1%, 1%, 2%"."""
    top = top if np.isfinite(top) and top > 0 else 1.0
    raw = top * 1.05 / n
    k = int(np.floor(np.log10(raw)))
    step = next(d * 10.0 ** k for d in (1, 2, 2.5, 5, 10) if d * 10.0 ** k >= raw)
    decimals = 0
    while decimals < 6 and abs(round(step * 100, decimals) - step * 100) > 1e-9 * max(1.0, step * 100):
        decimals += 1
    return {"tickmode": "linear", "tick0": 0.0, "dtick": step, "tickformat": f".{decimals}%",
            "range": [0, top * 1.2]}  # headroom for the labels at the top
