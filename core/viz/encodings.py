"""Plotly figures for the Encodings page: a window's candles beside its encodings, a gallery of
encodings grouped by label, and the order-book heatmap with the price path drawn over it.

Pure functions: arrays/DataFrames in, `plotly.graph_objects.Figure` out. Big image stacks go through
`px.imshow(..., binary_string=True)` so the browser receives compact PNGs instead of huge JSON matrices.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.encodings.orderbook_heatmap import OrderBookHeatmap

UP, DOWN = "#26a65b", "#e84142"


def candlestick_trace(window: pd.DataFrame, name: str = "price") -> go.Candlestick:
    return go.Candlestick(
        x=window.index, open=window["open"], high=window["high"], low=window["low"], close=window["close"],
        name=name, increasing_line_color=UP, decreasing_line_color=DOWN, showlegend=False,
    )


def _image_trace(img: np.ndarray, colorscale: str = "RdBu_r") -> go.BaseTraceType:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 3:
        return go.Image(z=a.astype(np.uint8))
    if a.ndim != 2:
        raise ValueError(f"an encoding image must be (H, W) or (H, W, 3), got {a.shape}")
    return go.Heatmap(z=a, colorscale=colorscale, showscale=False)


def window_with_encodings_figure(
    window: pd.DataFrame, encodings: Mapping[str, np.ndarray], height: int = 340
) -> go.Figure:
    """The window's candles, then each encoding of it side by side (RGB arrays as images, 2D as heatmaps).

    Heatmaps are drawn with row 0 at the top, the way the model reads the array.
    """
    names = list(encodings)
    fig = make_subplots(rows=1, cols=1 + len(names), subplot_titles=["candles", *names],
                        column_widths=[2.0] + [1.0] * len(names), horizontal_spacing=0.04)
    fig.add_trace(candlestick_trace(window), row=1, col=1)
    for i, name in enumerate(names, start=2):
        fig.add_trace(_image_trace(encodings[name]), row=1, col=i)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=i)
        fig.update_xaxes(showticklabels=False, row=1, col=i)
    fig.update_layout(height=height, xaxis_rangeslider_visible=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def encoding_gallery_figure(
    images: np.ndarray, labels: Sequence[int], class_names: Sequence[str], per_class: int = 6,
    title: str | None = None,
) -> go.Figure:
    """One row per class, up to `per_class` encodings of that class (the first ones given, in order).

    `images` is (N, H, W) or (N, H, W, 3); a class with fewer examples leaves blank cells.
    """
    imgs = np.asarray(images)
    labels = np.asarray(labels)
    if len(imgs) != len(labels):
        raise ValueError("images and labels differ in length")
    if len(imgs) == 0:
        raise ValueError("no encodings to show")
    rgb = imgs.ndim == 4
    blank = np.zeros_like(imgs[0])
    cells, titles = [], []
    for k, name in enumerate(class_names):
        picked = np.nonzero(labels == k)[0][:per_class]
        for j in range(per_class):
            if j < len(picked):
                cells.append(imgs[picked[j]])
                titles.append(f"{name} #{j + 1}")
            else:
                cells.append(blank)
                titles.append("")
    stack = np.stack(cells)
    if not rgb:  # one shared grey scale so intensities compare across cells
        lo, hi = float(np.nanmin(imgs)), float(np.nanmax(imgs))
        stack = ((stack - lo) / (hi - lo if hi > lo else 1.0) * 255).clip(0, 255).astype(np.uint8)
    fig = px.imshow(stack, facet_col=0, facet_col_wrap=per_class, binary_string=True,
                    facet_row_spacing=0.04, facet_col_spacing=0.01)
    for ann in fig.layout.annotations:  # "facet_col=i" -> the cell's title
        i = int(ann.text.split("=")[1])
        ann.text = titles[i]
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=title, height=max(220, 150 * len(class_names) + 40),
                      margin=dict(l=10, r=10, t=50 if title else 25, b=10))
    return fig


def orderbook_heatmap_figure(hm: OrderBookHeatmap, title: str | None = None, height: int = 420) -> go.Figure:
    """Depth heatmap over time with the mid price drawn over it.

    With a fixed anchor the y axis is the price itself (the grid spans every snapshot's band, see
    `core.encodings.orderbook_heatmap`) and the mid path moves through the depth; with a
    mid anchor the y axis is the distance from mid (%) and the mid path is drawn on a second axis.
    """
    z = hm.image.T
    fixed = hm.config.anchor == "first"
    if fixed:
        y = hm.anchor_price[0] * (1 + hm.rel_centers)
        fig = go.Figure(go.Heatmap(x=hm.timestamps, y=y, z=z, colorscale="Viridis",
                                   colorbar=dict(title="log1p size" if hm.config.log_size else "size")))
        fig.add_trace(go.Scatter(x=hm.timestamps, y=hm.mid, mode="lines", name="mid price",
                                 line=dict(color="white", width=2)))
        fig.update_yaxes(title="price")
    else:
        fig = make_subplots(specs=[[{"secondary_y": True}]])
        fig.add_trace(go.Heatmap(x=hm.timestamps, y=hm.rel_centers * 100, z=z, colorscale="Viridis",
                                 colorbar=dict(x=1.08, title="log1p size" if hm.config.log_size else "size")),
                      secondary_y=False)
        fig.add_trace(go.Scatter(x=hm.timestamps, y=hm.mid, mode="lines", name="mid price",
                                 line=dict(color="white", width=2)), secondary_y=True)
        fig.update_yaxes(title_text="distance from mid (%)", secondary_y=False)
        # "auto": round price ticks (plotly.js 4 would "sync" them to the left axis' grid: odd values)
        fig.update_yaxes(title_text="mid price", secondary_y=True, showgrid=False, tickmode="auto")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", y=1.02, x=0))
    return fig


COMPARE_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


def transfer_comparison_figure(metrics: Mapping[str, Mapping[str, float]],
                               keys: Sequence[str] = COMPARE_METRICS,
                               title: str | None = "test metrics: fine-tuned vs from scratch") -> go.Figure:
    """Grouped bars: one group per metric, one bar per run (e.g. {"fine-tuned": {...}, "scratch": {...}})."""
    colors = ["#f58518", "#4c78a8", "#54a24b", "#b279a2"]
    fig = go.Figure()
    for i, (name, m) in enumerate(metrics.items()):
        vals = [m.get(k) for k in keys]
        fig.add_trace(go.Bar(name=name, x=[k.replace("_", " ") for k in keys],
                             y=[v if v is not None else 0.0 for v in vals],
                             text=[f"{v:.3f}" if v is not None else "n/a" for v in vals], textposition="outside",
                             marker_color=colors[i % len(colors)]))
    fig.update_layout(barmode="group", title=title, height=340, yaxis=dict(range=[0, 1.05]),
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), legend=dict(orientation="h", y=-0.15))
    return fig


def window_figure(prepared, end: int, size: int = 64, scaler=None) -> go.Figure:
    """The window of `prepared` ending at row `end` beside each of its encodings (`scaler`: the train-only
    indicator scaling, fitted here when not given)."""
    from core.encodings.datasets import window_encodings

    images = window_encodings(prepared, end, size=size, scaler=scaler)
    window = int(prepared.window)
    return window_with_encodings_figure(prepared.candles.iloc[end - window + 1: end + 1], images)


def gallery_figure(prepared, kind: str, split: str, per_class: int, seed: int, size: int = 64,
                   scaler=None) -> go.Figure | None:
    """`per_class` windows of each label from segment `split` as `kind` images (None when the segment has
    no labelled window); `scaler` is used for indicator images only."""
    from core.encodings.datasets import gallery_encodings, gallery_ends

    ends = gallery_ends(prepared, split, per_class, seed)
    if len(ends) == 0:
        return None
    images = gallery_encodings(prepared, ends, kind, size=size,
                               scaler=scaler if kind == "indicator image" else None)
    return encoding_gallery_figure(images, prepared.y[ends], list(prepared.class_names), per_class,
                                   title=f"{kind}, {split} segment")
