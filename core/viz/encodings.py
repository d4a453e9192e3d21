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


# What each encoding of `core.encodings.datasets.window_encodings` shows: the titles of its columns and rows,
# what its colour means (None for RGB pictures), its colour scale and range, and a one-line caption.
ENCODING_INFO: dict[str, dict] = {
    "chart": dict(x="time (oldest left)", y="price (high at top)", color=None,
                  caption="the window's candles drawn as an RGB picture, what the chart CNNs read; a candle "
                          "needs a pixel column, so a window longer than the image shows its last (image size) "
                          "candles"),
    "indicator image": dict(x="indicator channel", y="time step in window", color="scaled value",
                            colorscale="Viridis", zmin=0.0, zmax=1.0,
                            caption="one row per bar, one column per feature, scaled to [0, 1] with "
                                    "bounds fitted on the training segment"),
    "GASF": dict(x="time step j", y="time step i", color="cos(φi+φj)", colorscale="RdBu_r", zmin=-1.0, zmax=1.0,
                 caption="Gramian angular summation field: closes rescaled to [-1, 1] within the window, "
                         "φ = arccos(close), pixel (i, j) = cos(φi+φj)"),
    "GADF": dict(x="time step j", y="time step i", color="sin(φi−φj)", colorscale="RdBu_r", zmin=-1.0, zmax=1.0,
                 caption="Gramian angular difference field: the same angles, pixel (i, j) = sin(φi−φj)"),
    "recurrence": dict(x="time step j", y="time step i", color="distance (0 = recurs)", colorscale="Viridis",
                       zmin=0.0, zmax=1.0,
                       caption="recurrence plot: distance between the (z-scored) closes at steps i and j, "
                               "divided by the window's largest; dark = the price returns to an earlier level"),
}


MAX_NAMED_CHANNELS = 40  # up to this many indicator-image columns are named under the panel (else on hover)


def encoding_captions(names: Sequence[str]) -> str:
    """One line per known encoding in `names`, "**name**: what it shows", for a caption under the figure."""
    return "  \n".join(f"**{n}**: {ENCODING_INFO[n]['caption']}" for n in names if n in ENCODING_INFO)


def _image_trace(img: np.ndarray, colorscale: str = "RdBu_r", info: Mapping | None = None,
                 columns: Sequence[str] | None = None) -> go.BaseTraceType:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 3:
        return go.Image(z=a.astype(np.uint8))
    if a.ndim != 2:
        raise ValueError(f"an encoding image must be (H, W) or (H, W, 3), got {a.shape}")
    info = info or {}
    color = info.get("color")
    x = list(columns) if columns is not None and len(columns) == a.shape[1] else None
    return go.Heatmap(z=a, x=x, colorscale=info.get("colorscale", colorscale), zmin=info.get("zmin"),
                      zmax=info.get("zmax"), showscale=color is not None,
                      colorbar=dict(title=dict(text=color, side="right"), thickness=10) if color else None)


def window_with_encodings_figure(
    window: pd.DataFrame, encodings: Mapping[str, np.ndarray], height: int | None = None,
    channel_names: Sequence[str] | None = None,
) -> go.Figure:
    """The window's candles, then each encoding of it (RGB arrays as images, 2D as heatmaps), at most three
    panels a row.

    Heatmaps are drawn with row 0 at the top, the way the model reads the array. A square array (the Gramian
    angular fields, the recurrence plot, the chart picture) is drawn square: its y axis is anchored to its x
    axis at one unit per unit. Known encodings (`ENCODING_INFO`) get axis titles and a colour bar saying what
    the colour means; `channel_names` name the indicator image's columns (under it, up to MAX_NAMED_CHANNELS,
    and on hover).
    """
    names = list(encodings)
    n_panels = 1 + len(names)
    cols = min(3, n_panels)
    rows = -(-n_panels // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=["candles", *names],
                        horizontal_spacing=0.14 if cols > 1 else 0.04, vertical_spacing=0.16 if rows > 1 else 0.0)
    fig.add_trace(candlestick_trace(window), row=1, col=1)
    fig.update_yaxes(title_text="price", title_standoff=4, row=1, col=1)
    for i, name in enumerate(names, start=1):
        r, c = divmod(i, cols)
        r, c = r + 1, c + 1
        img = np.asarray(encodings[name])
        info = ENCODING_INFO.get(name, {})
        trace = _image_trace(img, info=info, columns=channel_names if name == "indicator image" else None)
        fig.add_trace(trace, row=r, col=c)
        trace, sub = fig.data[-1], fig.get_subplot(r, c)
        if isinstance(trace, go.Heatmap) and trace.showscale:
            # beside its own panel: plotly would stack every subplot's colour bar at the figure's right edge
            y0, y1 = sub.yaxis.domain
            trace.colorbar.update(x=sub.xaxis.domain[1] + 0.005, xanchor="left", y=(y0 + y1) / 2,
                                  yanchor="middle", len=y1 - y0, lenmode="fraction", tickfont=dict(size=9))
        fig.update_yaxes(autorange="reversed", title_text=info.get("y"), title_standoff=2,
                         tickfont=dict(size=9), showticklabels=isinstance(trace, go.Heatmap), row=r, col=c)
        named = name == "indicator image" and trace.x is not None and len(trace.x) <= MAX_NAMED_CHANNELS
        fig.update_xaxes(title_text=info.get("x"), title_standoff=2, tickfont=dict(size=8 if named else 9),
                         showticklabels=isinstance(trace, go.Heatmap) and (name != "indicator image" or named),
                         tickangle=-90 if named else None, dtick=1 if named else None, row=r, col=c)
        if img.shape[0] == img.shape[1]:
            # one unit of y per unit of x, the panel shrunk (not the range padded) to keep the pixels square;
            # pushed right so that its colour bar sits beside it
            x_id = sub.xaxis.plotly_name.replace("axis", "")
            fig.update_yaxes(scaleanchor=x_id, scaleratio=1, constrain="domain", row=r, col=c)
            fig.update_xaxes(constrain="domain", constraintoward="right", row=r, col=c)
    fig.update_layout(height=height or 340 * rows, xaxis_rangeslider_visible=False,
                      margin=dict(l=10, r=10, t=40, b=10))
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
    return window_with_encodings_figure(prepared.candles.iloc[end - window + 1: end + 1], images,
                                        channel_names=list(prepared.feature_names))


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
