"""Figures of the Encodings page: structure a user sees (traces, titles, overlay)."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.encodings.candlestick import render_candles
from core.encodings.gaf import gramian_angular_field
from core.encodings.orderbook_heatmap import HeatmapConfig, orderbook_heatmap
from core.viz.encodings import encoding_gallery_figure, orderbook_heatmap_figure, window_with_encodings_figure


def _window(n=24, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 + rng.normal(0, 1, n).cumsum()
    o = np.r_[c[0], c[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) + 0.3, "low": np.minimum(o, c) - 0.3,
                         "close": c, "volume": rng.random(n)}, index=idx)


def test_window_beside_its_encodings():
    w = _window()
    enc = {"chart": render_candles(w.to_numpy(), 64)[0], "GASF": gramian_angular_field(w["close"].to_numpy())}
    fig = window_with_encodings_figure(w, enc)
    kinds = [type(t).__name__ for t in fig.data]
    assert kinds == ["Candlestick", "Image", "Heatmap"]
    assert [a.text for a in fig.layout.annotations] == ["candles", "chart", "GASF"]
    assert fig.layout.yaxis3.autorange == "reversed"


def test_gallery_grouped_by_label():
    imgs = np.random.default_rng(0).random((7, 16, 16))
    labels = np.array([0, 2, 2, 0, 2, 2, 2])
    fig = encoding_gallery_figure(imgs, labels, ["down", "flat", "up"], per_class=3)
    titles = sorted(a.text for a in fig.layout.annotations if a.text)
    assert titles == sorted(["down #1", "down #2", "up #1", "up #2", "up #3"])
    assert len(fig.data) == 9 and all(isinstance(t, go.Image) for t in fig.data)
    rgb = encoding_gallery_figure(np.zeros((2, 8, 8, 3), np.uint8), [1, 0], ["a", "b"], per_class=1)
    assert len(rgb.data) == 2


def test_orderbook_heatmap_with_price_path():
    ts = pd.date_range("2024-01-01", periods=30, freq="1s", tz="UTC")
    rows = []
    for i, t in enumerate(ts):
        mid = 100 + 0.02 * i
        rows += [(t, "bid", 1, mid - 0.05, 5.0), (t, "ask", 1, mid + 0.05, 3.0)]
    book = pd.DataFrame(rows, columns=["timestamp", "side", "level", "price", "size"])
    fixed = orderbook_heatmap_figure(orderbook_heatmap(book, HeatmapConfig(n_bins=20, pct_range=0.01,
                                                                           anchor="first")))
    heat, path = fixed.data
    assert isinstance(heat, go.Heatmap) and isinstance(path, go.Scatter)
    # one grid over the whole path: 100 * 0.99 .. 100.58 * 1.01 in bins of 0.1 (20 bins over +-1 % of 100)
    assert np.asarray(heat.z).shape == (26, 30)
    assert min(heat.y) < 100 * 0.99 + 0.1 and max(heat.y) > 100.58 * 1.01 - 0.1
    assert np.asarray(path.y)[-1] > np.asarray(path.y)[0]  # the rising mid is drawn
    assert min(heat.y) < 100 < max(heat.y)  # absolute price axis
    rel = orderbook_heatmap_figure(orderbook_heatmap(book, HeatmapConfig(n_bins=20, pct_range=0.01)))
    assert rel.data[1].yaxis == "y2" and rel.layout.yaxis2.tickmode == "auto"  # round price ticks, not "sync"


def test_transfer_comparison_bars():
    from core.viz.encodings import transfer_comparison_figure

    fig = transfer_comparison_figure({"fine-tuned": {"accuracy": 0.55, "macro_f1": 0.5, "roc_auc": None},
                                      "scratch": {"accuracy": 0.5, "macro_f1": 0.45}})
    assert [t.name for t in fig.data] == ["fine-tuned", "scratch"]
    assert list(fig.data[0].x) == ["accuracy", "balanced accuracy", "macro f1", "roc auc"]
    assert list(fig.data[0].text) == ["0.550", "n/a", "0.500", "n/a"]
    assert fig.layout.barmode == "group"


def test_square_encodings_are_square_with_axis_titles_and_colour_bars():
    """GASF, GADF, the recurrence plot and the chart are N x N: drawn with one y unit per x unit (they were
    stretched into tall rectangles); every heatmap says what its rows, columns and colours are."""
    from core.encodings.recurrence import recurrence_plot
    from core.viz.encodings import ENCODING_INFO, encoding_captions

    w = _window(32)
    close = w["close"].to_numpy()
    enc = {"chart": render_candles(w.to_numpy(), 64)[0],
           "indicator image": np.random.default_rng(1).random((32, 6)),
           "GASF": gramian_angular_field(close, "summation"), "GADF": gramian_angular_field(close, "difference"),
           "recurrence": recurrence_plot(close)}
    fig = window_with_encodings_figure(w, enc, channel_names=[f"f{i}" for i in range(6)])
    assert [a.text for a in fig.layout.annotations] == ["candles", *enc]
    axes = {name: (fig.layout[t.xaxis.replace("x", "xaxis")], fig.layout[t.yaxis.replace("y", "yaxis")])
            for name, t in zip(enc, fig.data[1:])}
    for name in ("chart", "GASF", "GADF", "recurrence"):
        x, y = axes[name]
        assert y.scaleanchor == x.plotly_name.replace("axis", "") and y.scaleratio == 1, name
        assert y.constrain == "domain" and x.constrain == "domain", name
    assert axes["indicator image"][1].scaleanchor is None  # 32 x 6: fills its panel
    for name in ("indicator image", "GASF", "GADF", "recurrence"):
        x, y = axes[name]
        assert x.title.text and y.title.text, name
        trace = fig.data[1 + list(enc).index(name)]
        assert trace.showscale and trace.colorbar.title.text == ENCODING_INFO[name]["color"], name
        assert x.domain[1] < trace.colorbar.x < x.domain[1] + 0.05  # beside its own panel
    assert axes["GASF"][1].title.text == "time step i" and axes["GASF"][0].title.text == "time step j"
    assert fig.data[3].colorbar.title.text == "cos(φi+φj)" and fig.data[4].colorbar.title.text == "sin(φi−φj)"
    assert (fig.data[3].zmin, fig.data[3].zmax) == (-1, 1)  # a fixed scale: colours compare across windows
    assert axes["indicator image"][0].title.text == "indicator channel"
    assert list(fig.data[2].x) == [f"f{i}" for i in range(6)]
    ind_x = axes["indicator image"][0]
    assert ind_x.showticklabels and ind_x.dtick == 1  # every column named under the panel, not only on hover
    assert fig.layout.yaxis.title.text == "price"
    lines = encoding_captions(list(enc)).split("  \n")
    assert len(lines) == 5 and lines[2].startswith("**GASF**") and "cos(φi+φj)" in lines[2]
