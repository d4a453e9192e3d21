"""Figures and tables for the Architectures page: the per-layer receptive-field table, the field's growth
with depth (in bars and in the dataset's time), the effective receptive field as a channels x time heatmap
beside the analytic bound, the per-dilation contribution of a WaveNet, and the model comparison table.
Pure functions: reports in, plotly figures / DataFrames out."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.inspect.receptive_field import EffectiveRF, RFReport, bars_to_time


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def layer_frame(report: RFReport, timeframe: Optional[str] = None,
                shapes: Optional[dict[str, Any]] = None) -> pd.DataFrame:
    """One row per layer on the path: geometry, jump, receptive field (and its time), output length."""
    rows = []
    for i, l in enumerate(report.layers, 1):
        row = {"#": i, "layer": l.name, "type": l.type, "kernel": l.kernel, "stride": l.stride,
               "dilation": l.dilation, "pad (left)": l.padding, "jump": l.jump,
               f"RF ({report.unit})": l.receptive_field, "start": l.start, "out length": l.out_length}
        if timeframe and report.unit == "bars":
            row["RF (time)"] = bars_to_time(l.receptive_field, timeframe)
        if shapes is not None:
            row["output shape"] = str(shapes.get(l.name, ""))
        rows.append(row)
    return pd.DataFrame(rows)


def rf_growth_figure(report: RFReport, timeframe: Optional[str] = None) -> go.Figure:
    """Receptive field after each layer (steps), with the window as a reference line; hover gives the time
    span in the dataset's timeframe."""
    depth = list(range(0, len(report.layers) + 1))
    rf = [1] + [l.receptive_field for l in report.layers]
    names = ["input"] + [l.name for l in report.layers]
    times = [bars_to_time(v, timeframe) if report.unit == "bars" else f"{v} px" for v in rf]
    fig = go.Figure(go.Scatter(
        x=depth, y=rf, mode="lines+markers", line_shape="hv", name="receptive field",
        customdata=np.array([names, times], dtype=object).T,
        hovertemplate="depth %{x}: %{customdata[0]}<br>RF %{y} " + report.unit
                      + " = %{customdata[1]}<extra></extra>"))
    # the window as a trace, not a shape: shapes on a log axis take log10 coordinates
    window_label = f"window {report.input_length} {report.unit}" + (
        f" = {bars_to_time(report.input_length, timeframe)}" if timeframe and report.unit == "bars" else "")
    fig.add_trace(go.Scatter(x=[0, max(1, len(report.layers))], y=[report.input_length] * 2, mode="lines",
                             line=dict(dash="dash", color="gray"), name=window_label, hoverinfo="name"))
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    fig.update_xaxes(title="layer depth on the longest path")
    top = max(rf + [report.input_length])
    if top > 64:  # log axis with powers of two: dilations double, so the steps read evenly
        ticks = [2 ** k for k in range(0, int(np.ceil(np.log2(top))) + 1)]
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:,}" for t in ticks])
    fig.update_yaxes(title=f"receptive field ({report.unit})")
    total = report.receptive_field
    suffix = f" = {bars_to_time(total, timeframe)}" if timeframe and report.unit == "bars" else ""
    return _layout(fig, f"Receptive field growth with depth ({total} {report.unit}{suffix})", 380)


def erf_figure(erf: EffectiveRF, row_names: Optional[Sequence[str]] = None,
               analytic_rf: Optional[int] = None, unit: str = "bars") -> go.Figure:
    """The effective receptive field: mean |gradient| over channels x time (time as bars before the last
    one), its mass per time step below, the 95 % span shaded and the analytic bound as a dashed line."""
    g = np.asarray(erf.grad_map, dtype=np.float64)
    n_rows, T = g.shape
    x = np.arange(T) - (T - 1)  # 0 = the last bar of the window
    names = list(row_names) if row_names is not None and len(row_names) == n_rows else \
        [f"ch {i}" for i in range(n_rows)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    fig.add_trace(go.Heatmap(z=g, x=x, y=names, colorscale="Viridis", colorbar=dict(title="share", len=0.7,
                                                                                         y=0.65),
                             hovertemplate="%{y}<br>bar %{x}<br>%{z:.2e}<extra></extra>",
                             name="|gradient|"), row=1, col=1)
    fig.add_trace(go.Bar(x=x, y=erf.time_profile, name="gradient mass per bar", marker_color="#4c78a8"),
                  row=2, col=1)
    lo, hi = erf.span_start - (T - 1), erf.span_end - (T - 1)
    for r in (1, 2):
        fig.add_vrect(x0=lo - 0.5, x1=hi + 0.5, fillcolor="orange", opacity=0.12, line_width=0, row=r, col=1)
    fig.add_annotation(x=(lo + hi) / 2, y=1.0, yref="paper", showarrow=False, yanchor="bottom",
                       text=f"{int(erf.mass * 100)} % of the gradient: {erf.span} {unit}")
    # Which analytic number to draw: the field of one feature when the head pools the whole window (the bound
    # is then the window itself, its left edge), else the bound passed in / stored.
    rf = analytic_rf if analytic_rf is not None else erf.analytic_rf
    pooled = bool(getattr(erf, "whole_window", False)) and getattr(erf, "feature_rf", None) is not None \
        and erf.feature_rf < T
    if pooled:
        rf = int(erf.feature_rf)
        # the width of one feature's field, set back from the last bar: the last feature itself sees fewer
        # (its field is clipped at the window's end when the layers pad on both sides)
        label = f"dashed: one feature's field is {rf} {unit} wide (shown from the last bar); the head pools all {T} {unit}"
    else:
        label = f"dashed: analytic bound {rf} {unit}"
    if rf is not None and rf <= T:
        for r in (1, 2):
            fig.add_vline(x=-(rf - 1) - 0.5, line_dash="dash", line_color="red", row=r, col=1)
        # above the plot, on a line of its own over the 95 % label: never over the bars or the heatmap; it
        # starts at the plot's edge on the dashed line's side, so a long label stays inside the figure
        frac = (T - rf) / max(T - 1, 1)
        fig.add_annotation(x=0.0 if frac <= 0.5 else 1.0, xref="paper", y=1.0, yref="paper", yshift=20,
                           showarrow=False, xanchor="left" if frac <= 0.5 else "right", yanchor="bottom",
                           text=label, font=dict(color="red", size=11))
    fig.update_xaxes(title=f"{unit} before the last one", row=2, col=1)
    if n_rows <= 40:  # name every channel (plotly skips every other name when rows are close)
        fig.update_yaxes(dtick=1, row=1, col=1)
    fig.update_yaxes(title="share", row=2, col=1)
    fig.update_layout(showlegend=False)
    _layout(fig, f"Effective receptive field ({erf.n_windows} windows, {erf.target})", max(420, 14 * n_rows + 260))
    fig.update_layout(margin_t=95)  # the title, then the analytic label, then the 95 % label above the plot
    return fig


def dilation_figure(contributions: Iterable[Any], timeframe: Optional[str] = None) -> go.Figure:
    """Share of the prediction change when each dilation level's skip output is removed."""
    items = list(contributions)
    labels = [f"d={c.dilation} ({c.block})" for c in items]
    hover = [f"RF so far {c.receptive_field} bars" + (f" = {bars_to_time(c.receptive_field, timeframe)}"
                                                      if timeframe and c.receptive_field else "")
             + f"<br>mean change of probabilities {c.change:.4f}" for c in items]
    fig = go.Figure(go.Bar(x=labels, y=[c.share for c in items], hovertext=hover, hoverinfo="text+y",
                           marker_color="#54a24b"))
    fig.update_yaxes(title="share of the change", tickformat=".0%")
    fig.update_xaxes(title="dilation level (block)")
    return _layout(fig, "Contribution of each dilation level (skip ablation)", 340)


def comparison_frame(rows: Sequence[dict[str, Any]], timeframe: Optional[str] = None) -> pd.DataFrame:
    """Models side by side. Each row: model, family, params, macs, receptive_field, unit, window,
    latency_ms (and optionally whole_window)."""
    out = []
    for r in rows:
        unit = r.get("unit", "bars")
        out.append({
            "model": r["model"], "family": r.get("family", ""),
            "parameters": int(r["params"]), "MACs / sample": int(r["macs"]),
            "RF": f"{r['receptive_field']} {unit}",
            "RF (time)": bars_to_time(r["receptive_field"], timeframe) if unit == "bars" and timeframe else "",
            "RF / window": round(r["receptive_field"] / max(1, r["window"]), 2),
            "latency (ms)": None if r.get("latency_ms") is None else round(float(r["latency_ms"]), 3),
        })
    return pd.DataFrame(out)
