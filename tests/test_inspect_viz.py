"""Figures of the Inspect page."""
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.viz.inspect import (
    attribution_figure, feature_map_figure, input_channels_figure, most_active_channels_figure,
    probabilities_figure,
)


def test_feature_maps_1d_2d_and_vectors():
    f1 = feature_map_figure("layer1", np.random.default_rng(0).random((16, 40)))
    assert isinstance(f1.data[0], go.Heatmap) and np.asarray(f1.data[0].z).shape == (16, 40)
    f2 = feature_map_figure("conv1", np.random.default_rng(0).random((10, 12, 12)), max_channels=6, wrap=4)
    assert len(f2.data) == 6 and {a.text for a in f2.layout.annotations} == {f"ch {i}" for i in range(6)}
    assert isinstance(feature_map_figure("fc", np.arange(3.0)).data[0], go.Bar)
    top = most_active_channels_figure("layer1", np.random.default_rng(0).random((16, 40)), [(3, 0.9), (7, 0.5)])
    assert [t.name.split()[1] for t in top.data] == ["3", "7"]
    assert input_channels_figure(np.zeros((1, 20, 4)), list("abcd")).data[0].y == tuple("abcd")


def test_every_input_channel_is_named_on_the_axis():
    """Plotly thins category ticks (15 channels showed 8 names): up to 40 rows, every name is a tick."""
    from core.viz.inspect import receptive_field_figure

    names = [f"feature_{i}" for i in range(15)]
    fig = input_channels_figure(np.zeros((15, 64)), names)
    assert fig.layout.yaxis.tickmode == "array" and list(fig.layout.yaxis.ticktext) == names
    assert list(fig.layout.yaxis.tickvals) == names
    rf = receptive_field_figure(np.full(64, 1 / 64), 60, np.ones((15, 64)), names, analytic_rf=61)
    assert rf.layout.yaxis2.tickmode == "array" and list(rf.layout.yaxis2.ticktext) == names
    # the heatmap grows with the rows: at least ~13 px per name
    assert rf.layout.height * rf.layout.yaxis2.domain[1] - rf.layout.height * rf.layout.yaxis2.domain[0] >= 13 * 15 - 1


def test_attributions_under_candles_and_probabilities():
    idx = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC")
    w = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}, index=idx)
    fig = attribution_figure(w, {"saliency": np.arange(10.0), "grad_cam": np.ones(10)})
    assert [type(t).__name__ for t in fig.data] == ["Candlestick", "Bar", "Bar"]
    assert max(fig.data[1].y) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="9 scores for 10"):
        attribution_figure(w, {"ig": np.ones(9)})
    p = probabilities_figure(np.array([0.2, 0.5, 0.3]), ["down", "flat", "up"], true_class=2)
    assert p.data[0].marker.color[2] != p.data[0].marker.color[0]
    assert list(p.data[0].x) == ["down", "flat", "up"]


def test_test_set_figure_colours_right_and_wrong_and_marks_the_choice():
    from core.viz.inspect import test_set_figure

    idx = pd.date_range("2025-01-01", periods=6, freq="1h", tz="UTC")
    close = pd.Series([1.0, 2, 3, 4, 5, 6], index=idx)
    preds = pd.DataFrame({"timestamp": idx, "y_true": [0, 1, 1, 0, 1, 0],
                          "prob_down": [0.9, 0.9, 0.2, 0.6, 0.1, 0.3], "prob_up": [0.1, 0.1, 0.8, 0.4, 0.9, 0.7]})
    fig = test_set_figure(close, preds, ["down", "up"], selected=idx[2])
    by_name = {t.name: t for t in fig.data}
    # the dots are named traces, so the legend says what green and red mean
    assert fig.layout.showlegend is True
    right, wrong = by_name["predicted class right"], by_name["predicted class wrong"]
    assert right.marker.color == "#26a65b" and wrong.marker.color == "#e84142"
    assert [pd.Timestamp(t) for t in right.x] == [idx[i] for i in (0, 2, 3, 4)]
    assert [pd.Timestamp(t) for t in wrong.x] == [idx[i] for i in (1, 5)]
    assert list(right.customdata) == ["down", "up", "down", "up"] and list(wrong.customdata) == ["down", "up"]
    assert by_name["close"].showlegend is False and len(by_name["close"].x) == 6  # the path, unnamed in the legend
    assert pd.Timestamp(by_name["chosen window"].x[0]) == idx[2]
    plain = test_set_figure(close)
    assert len(plain.data) == 1 and not plain.layout.showlegend
    thin = test_set_figure(pd.Series(np.arange(10_000.0), index=pd.date_range("2020", periods=10_000, freq="1h")),
                           max_points=500)
    assert len(thin.data[0].x) <= 500


def test_receptive_field_figure_in_bars_back():
    from core.viz.inspect import receptive_field_figure

    prof = np.r_[np.zeros(10), np.full(6, 1 / 6)]
    fig = receptive_field_figure(prof, 6, np.ones((3, 16)), ["a", "b", "c"], analytic_rf=8)
    bars = fig.data[0]
    assert list(bars.x)[-1] == 0 and list(bars.x)[0] == 15  # lag 0 is the last bar
    assert list(fig.data[1].y) == ["a", "b", "c"]
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "last 6 bars" in texts and "analytic RF 8" in texts
    assert len(fig.layout.yaxis2.ticktext) == 3  # every row named
    beyond = receptive_field_figure(prof, 6, analytic_rf=435)
    assert "beyond the 16-bar window" in " ".join(a.text for a in beyond.layout.annotations)
    assert all(_inside_plot(beyond, a) for a in beyond.layout.annotations if a.xref.startswith("x"))


def _inside_plot(fig, ann) -> bool:
    """Whether an annotation's text starts inside its x axis and runs towards the inside (not past the edge)."""
    if ann.xref.endswith("domain"):
        frac = ann.x
    else:
        lo, hi = fig.layout.xaxis.range
        frac = (ann.x - lo) / (hi - lo)
    if not 0 <= frac <= 1:
        return False
    return {"left": frac <= 0.6, "right": frac >= 0.4, "center": 0.2 <= frac <= 0.8}.get(ann.xanchor or "center")


@pytest.mark.parametrize("span95", [1, 6, 26, 60, 64])
def test_receptive_field_span_label_stays_inside_the_plot(span95):
    """The 95 % label was written past the right edge of the reversed axis (cut to "9...")."""
    from core.viz.inspect import receptive_field_figure

    fig = receptive_field_figure(np.full(64, 1 / 64), span95, np.ones((3, 64)), list("abc"), analytic_rf=61)
    label = next(a for a in fig.layout.annotations if a.text.startswith("95 %"))
    assert _inside_plot(fig, label), (label.x, label.xanchor)
    assert label.yanchor == "top" and label.y <= 1  # under the top of the plot, not above it


def test_pooled_maps_are_bars_and_top_channels_keep_their_indices():
    pooled = feature_map_figure("avgpool", np.arange(12.0).reshape(12, 1, 1))
    assert isinstance(pooled.data[0], go.Bar) and list(pooled.data[0].x)[:2] == ["ch 0", "ch 1"]
    assert "(12, 1, 1)" in pooled.layout.title.text
    fmap = np.random.default_rng(1).random((20, 6, 6))
    top = most_active_channels_figure("layer3", fmap, [(17, 0.9), (4, 0.8), (11, 0.7)])
    assert [a.text for a in top.layout.annotations] == ["ch 17", "ch 4", "ch 11"]


def _share_tick_labels(axis) -> list[str]:
    """The labels plotly writes on a linear share axis ("%"-formats agree between d3 and Python)."""
    assert axis.tickmode == "linear"
    lo, hi = axis.range
    k = np.arange(np.ceil((lo - axis.tick0) / axis.dtick - 1e-9), np.floor((hi - axis.tick0) / axis.dtick + 1e-9) + 1)
    return [format(axis.tick0 + i * axis.dtick, axis.tickformat) for i in k]


@pytest.mark.parametrize("top_share", [0.021, 0.004, 0.0007, 0.3, 1.0])
def test_receptive_field_share_ticks_are_distinct(top_share):
    """'.0%' wrote 0.5 % steps as '0%, 1%, 1%, 2%'."""
    from core.viz.inspect import receptive_field_figure

    prof = np.full(64, top_share / 2)
    prof[-1] = top_share
    fig = receptive_field_figure(prof, 30, analytic_rf=36)
    labels = _share_tick_labels(fig.layout.yaxis)
    assert 3 <= len(labels) <= 7 and len(set(labels)) == len(labels), labels
    assert fig.layout.yaxis.range[1] >= top_share  # the tallest bar is in view


def test_a_pooled_model_says_the_whole_window_reaches_the_output():
    from core.viz.inspect import receptive_field_figure

    fig = receptive_field_figure(np.full(64, 1 / 64), 60, np.ones((3, 64)), list("abc"), analytic_rf=36,
                                 whole_window=True)
    texts = " ".join(a.text for a in fig.layout.annotations)
    # the gradient reaching 60 bars back is explained: 36 is one feature's field, the head pools all 64 bars
    assert "analytic RF 36 per feature" in texts and "all 64 bars reach the output" in texts
    plain = receptive_field_figure(np.full(64, 1 / 64), 20, analytic_rf=36)
    assert "reach the output" not in " ".join(a.text for a in plain.layout.annotations)


def test_the_attribution_title_says_what_is_drawn_and_the_note_how_methods_differ():
    """The bars are unsigned magnitudes, scaled per row: the title says so, not "what pushed the model"."""
    from core.viz.inspect import ATTRIBUTION_METHODS_NOTE, attribution_title

    title = attribution_title("up")
    assert "up" in title and "|attribution|" in title and "scaled to the largest" in title
    assert all(len(line) <= 60 for line in re.sub(r"</?sup>", "", title).split("<br>"))  # fits a narrow window
    assert "pushed" not in title and "towards" not in title
    note = ATTRIBUTION_METHODS_NOTE.lower()
    assert "saliency" in note and "gradient" in note and "at the input" in note
    assert "integrated gradients" in note and "baseline" in note and "sum to the change" in note
    assert "grad-cam" in note and "last convolution layer" in note and "coarse in time" in note
