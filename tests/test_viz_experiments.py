"""Figures of the Experiments page, as a user reads them on the app's dark theme (and a light one)."""
from __future__ import annotations

import numpy as np
from plotly.colors import hex_to_rgb

from core.viz import experiments as vx

METRICS = {
    "walk tcn 2ep": {"model": {"accuracy": 0.452, "balanced_accuracy": 0.332, "macro_f1": 0.312, "roc_auc": 0.516},
                     "best_baseline": {"accuracy": 0.45, "balanced_accuracy": 0.333, "macro_f1": 0.31,
                                       "roc_auc": 0.514}},
    "demo": {"model": {"accuracy": 0.465, "balanced_accuracy": 0.342, "macro_f1": 0.322, "roc_auc": 0.505},
             "best_baseline": {"accuracy": 0.46, "balanced_accuracy": 0.34, "macro_f1": 0.32, "roc_auc": 0.505}},
}
DARK_BG, LIGHT_BG = (14, 17, 23), (255, 255, 255)  # Streamlit's dark and light backgrounds


def _contrast(a, b) -> float:
    def lum(rgb):
        c = [v / 255 for v in rgb]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_baseline_marks_are_visible_on_dark_and_light_and_named_once():
    fig = vx.metric_bars(METRICS)
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == 2
    for t in marks:
        for color in (t.marker.color, t.marker.line.color):
            rgb = hex_to_rgb(color)
            assert _contrast(rgb, DARK_BG) >= 3 and _contrast(rgb, LIGHT_BG) >= 3, color
    assert sum(bool(t.showlegend) for t in marks) == 1 and "best baseline" in marks[0].name
    assert "black" not in fig.layout.title.text
    # no run is drawn in the baseline colour
    bar_colors = {t.marker.color.lower() for t in fig.data if t.type == "bar"}
    assert vx.BASELINE_COLOR.lower() not in bar_colors and "#ef553b" not in bar_colors


def test_value_labels_sit_inside_the_bars_and_the_axis_has_headroom():
    fig = vx.metric_bars(METRICS)
    bars = [t for t in fig.data if t.type == "bar"]
    for b in bars:
        # written inside, at the foot of the bar: a baseline dash near the bar's top cannot strike them
        assert b.textposition == "inside" and b.insidetextanchor == "start"
        assert list(b.text)[3] in ("0.516", "0.505")
    top = max(max(b.y) for b in bars)
    lo, hi = fig.layout.yaxis.range
    assert lo == 0 and hi >= top * 1.1  # the tallest bar (ROC AUC) and its mark are not clipped
    # negative scores (CNN minus baseline) keep room below zero too
    neg = vx.metric_bars({"r": {"model": {"vs_baseline": -0.04, "accuracy": 0.5}}}, keys=("vs_baseline", "accuracy"))
    lo, hi = neg.layout.yaxis.range
    assert lo < -0.04 and hi > 0.5 and np.isfinite([lo, hi]).all()


def test_sweep_ranking_value_is_readable_and_the_legend_clears_the_axis_title():
    import pandas as pd

    summary = pd.DataFrame({"group": ["model=cnn1d", "model=tcn"], "balanced_accuracy_mean": [0.389, 0.35],
                            "balanced_accuracy_std": [0.039, 0.01]})
    summary.attrs["ranked_on"] = "validation"
    cells = pd.DataFrame({"group": ["model=cnn1d", "model=cnn1d", "model=tcn", "model=tcn"], "seed": [0, 1, 0, 1],
                          "balanced_accuracy": [0.36, 0.417, 0.343, 0.357], "run_id": ["a", "b", "c", "d"],
                          "best_baseline_balanced_accuracy": [0.47] * 4})
    fig = vx.sweep_figure(summary, cells, "balanced_accuracy")
    bar = fig.data[0]
    # no text drawn on the bar, where the seed dots and the whisker sit; the value is on the tick label
    assert bar.text is None and "0.389 ± 0.039" in bar.hovertemplate.replace("%{customdata}", bar.customdata[0])
    ticks = dict(zip(fig.layout.yaxis.tickvals, fig.layout.yaxis.ticktext))
    assert "0.389 ± 0.039" in ticks["model=cnn1d"] and "0.350 ± 0.010" in ticks["model=tcn"]
    # the order is validation's, the bars are test: the title and the top row's label say so
    assert "(top on validation)" in ticks["model=cnn1d"] and "top on" not in ticks["model=tcn"]
    assert "order: validation balanced accuracy" in fig.layout.title.text
    assert "bars: test balanced accuracy" in fig.layout.title.text
    assert "ranked by validation" not in fig.layout.title.text
    # the legend sits above the plot, clear of the x-axis title below it, and names the baseline line
    assert fig.layout.legend.yanchor == "bottom" and fig.layout.legend.y >= 1.0
    assert "best baseline (mean)" in [t.name for t in fig.data]
    assert not fig.layout.annotations  # nothing written over the plot area
    assert fig.layout.margin.t >= 80  # room for the title and the legend row above the plot
    lo, hi = fig.layout.xaxis.range
    assert lo <= 0 and hi > 0.47 and hi > 0.417 + 0.039  # the baseline line and the whiskers stay in view


def test_runs_side_by_side_get_colours_far_apart():
    from core.viz.experiments import BASELINE_COLOR, BUY_HOLD_COLOR, PALETTE

    # Plotly's first and fourth (blue-violet, purple) read as one run; D3's blue, orange, green, purple do not
    assert PALETTE[:4] == ["#1F77B4", "#FF7F0E", "#2CA02C", "#9467BD"]
    assert not {BASELINE_COLOR.lower(), BUY_HOLD_COLOR.lower()} & {c.lower() for c in PALETTE}


def test_sweep_progress_says_statuses_in_words():
    table = vx.sweep_progress_table({0: {"status": "early_stopped", "fraction": 1.0}, 1: {"status": "running"}},
                                    [{"index": 0, "name": "a"}, {"index": 1, "name": "b"}, {"index": 2, "name": "c"}])
    assert list(table["status"]) == ["stopped early", "running", "waiting"]
