"""make_dataset: what the 2D models receive from a PreparedData and sample ends."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from core.encodings.candlestick import render_candles
from core.encodings.datasets import covered_ends, make_dataset
from core.errors import UserError

WINDOW = 16


def _prepared(t=120, c=4, seed=0):
    """A PreparedData as core.features.prepare_dataset returns it (fields per docs/ARCHITECTURE.md)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=t, freq="1h", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, t)))
    open_ = np.r_[close[0], close[:-1]]
    candles = pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) * 1.003, "low": np.minimum(open_, close) * 0.997,
        "close": close, "volume": rng.random(t) + 0.5}, index=idx)
    candles.attrs.update(source="test", symbol="BTC/USDT", timeframe="1h")
    ends = np.arange(WINDOW - 1, t)
    n = len(ends)
    splits = {"train": ends[: int(n * 0.7)], "val": ends[int(n * 0.7): int(n * 0.85)],
              "test": ends[int(n * 0.85):]}
    return SimpleNamespace(
        features=rng.normal(size=(t, c)).astype(np.float32), feature_names=[f"f{i}" for i in range(c)],
        timestamps=idx, y=rng.integers(0, 3, t).astype(np.int64), splits=splits, window=WINDOW,
        candles=candles, class_names=["down", "flat", "up"], scaler=None, targets=None)


def test_indicator_image_items_and_train_only_scaling():
    p = _prepared()
    ds = make_dataset(p, p.splits["test"], "indicator_image")
    x, y = ds[3]
    assert x.shape == (1, WINDOW, 4) and x.dtype == torch.float32 and y.dtype == torch.long
    assert 0 <= x.min() and x.max() <= 1
    assert int(y) == p.y[p.splits["test"][3]]
    # a different test segment leaves every training item unchanged
    q = _prepared()
    q.features = p.features.copy()
    q.features[p.splits["test"][0]:] += 100.0
    a, b = make_dataset(p, p.splits["train"], "indicator_image"), make_dataset(q, q.splits["train"],
                                                                                   "indicator_image")
    for i in (0, len(a) // 2, len(a) - 1):
        torch.testing.assert_close(a[i][0], b[i][0])


def test_chart_image_rendered_lazily_in_batches_and_cached():
    p = _prepared()
    ds = make_dataset(p, p.splits["val"], "chart_image", size=64)
    loader = DataLoader(ds, batch_size=5, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (5, 3, 64, 64) and xb.dtype == torch.float32 and yb.shape == (5,)
    assert 0 <= xb.min() and xb.max() <= 1 and xb.max() > 0.5
    end = p.splits["val"][2]
    window = p.candles[["open", "high", "low", "close", "volume"]].to_numpy()[end - WINDOW + 1: end + 1]
    expect = torch.from_numpy(render_candles(window, 64)[0]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(xb[2], expect)
    assert len(ds._cache) == 5
    torch.testing.assert_close(ds[2][0], expect)  # served from the cache
    small = make_dataset(p, p.splits["val"], "chart_image", size=64, cache_items=3)
    small.__getitems__(list(range(6)))
    assert len(small._cache) == 3


def test_orderbook_image_from_aligned_snapshots():
    p = _prepared(t=60)
    rows = []
    for i, t in enumerate(p.candles.index):
        mid = p.candles["close"].iloc[i]
        snap = t + pd.Timedelta(minutes=59)  # just before the candle closes
        for lvl in range(1, 6):
            rows.append((snap, "bid", lvl, mid * (1 - 0.001 * lvl), 10.0 * lvl + i))
            rows.append((snap, "ask", lvl, mid * (1 + 0.001 * lvl), 5.0 * lvl))
    book = pd.DataFrame(rows, columns=["timestamp", "side", "level", "price", "size"])
    ds = make_dataset(p, p.splits["test"], "orderbook_image", order_book=book)
    x, y = ds[0]
    assert x.shape == (1, WINDOW, 100) and 0 <= x.min() and x.max() <= 1
    # bids sit below the mid (bins < 50), asks above
    assert x[0, :, :50].sum() > 0 and x[0, :, 50:].sum() > 0
    # a book that starts late does not cover early windows: a clear error, and covered_ends to filter
    late = book[book["timestamp"] > p.candles.index[40]]
    with pytest.raises(UserError, match="covers"):
        make_dataset(p, p.splits["train"], "orderbook_image", order_book=late)
    cov = np.zeros(60, bool)
    cov[41:] = True
    assert covered_ends(np.arange(WINDOW - 1, 60), cov, WINDOW).min() == 41 + WINDOW - 1
    with pytest.raises(UserError, match="order-book snapshots"):
        make_dataset(p, p.splits["test"], "orderbook_image")


def test_sequence_delegates_to_window_dataset():
    features = pytest.importorskip("core.features")
    if not hasattr(features, "WindowDataset"):
        pytest.skip("core.features.WindowDataset has not landed yet")
    p = _prepared()
    ds = make_dataset(p, p.splits["train"], "sequence")
    assert isinstance(ds, features.WindowDataset)
    assert tuple(ds[0][0].shape) == (4, WINDOW)


def test_unknown_kind_and_bad_ends():
    p = _prepared()
    with pytest.raises(UserError, match="unknown input kind"):
        make_dataset(p, p.splits["train"], "video")
    with pytest.raises(UserError, match="sample ends"):
        make_dataset(p, np.array([2]), "indicator_image")


def test_window_and_gallery_encodings_for_display():
    from core.encodings.datasets import ENCODING_NAMES, gallery_encodings, window_encodings
    p = _prepared()
    end = int(p.splits["test"][5])
    enc = window_encodings(p, end, size=64)
    assert list(enc) == list(ENCODING_NAMES)
    assert enc["chart"].shape == (64, 64, 3) and enc["chart"].dtype == np.uint8
    assert enc["indicator image"].shape == (WINDOW, 4) and enc["GASF"].shape == (WINDOW, WINDOW)
    ds = make_dataset(p, np.array([end]), "indicator_image")
    np.testing.assert_allclose(enc["indicator image"], ds[0][0][0].numpy())
    for kind in ENCODING_NAMES:
        g = gallery_encodings(p, p.splits["val"][:4], kind, size=64)
        assert len(g) == 4
        if kind != "chart":
            np.testing.assert_allclose(g[0], window_encodings(p, int(p.splits["val"][0]))[kind], atol=1e-6)
    with pytest.raises(UserError, match="pick a bar"):
        window_encodings(p, 3)
    with pytest.raises(UserError, match="unknown encoding"):
        gallery_encodings(p, p.splits["val"][:2], "fft")


def test_one_train_only_scaler_for_window_and_gallery_indicator_images():
    """The page fits the indicator scaling once (indicator_scaler_for) and passes it to both display calls:
    the images are the ones the train-only scaling always gave, identical between the window view and the
    gallery, and a changed test segment changes none of them."""
    from core.encodings.datasets import gallery_encodings, indicator_scaler_for, window_encodings
    from core.encodings.indicator_image import fit_indicator_scaler, train_rows_of

    p = _prepared()
    ref_scaler = fit_indicator_scaler(p.features, train_rows_of(p.splits["train"], WINDOW))
    sc = indicator_scaler_for(p)
    np.testing.assert_array_equal(sc.low, ref_scaler.low)
    np.testing.assert_array_equal(sc.high, ref_scaler.high)
    scaled_all = ref_scaler.transform(p.features)  # what the images were cut from before: the whole table
    ends = np.array([p.splits["train"][0], p.splits["train"][-1], p.splits["val"][3], p.splits["test"][-1]])
    gallery = gallery_encodings(p, ends, "indicator image")
    gallery_passed = gallery_encodings(p, ends, "indicator image", scaler=sc)
    assert gallery.shape == (len(ends), WINDOW, 4)
    for i, e in enumerate(ends.tolist()):
        ref = scaled_all[e - WINDOW + 1: e + 1]
        np.testing.assert_array_equal(window_encodings(p, e)["indicator image"], ref)
        np.testing.assert_array_equal(window_encodings(p, e, scaler=sc)["indicator image"], ref)
        np.testing.assert_array_equal(gallery[i], ref)
        np.testing.assert_array_equal(gallery_passed[i], ref)

    # the scaler passed in is the one used (a leaky all-rows scaler gives other pictures, in both calls)
    leaky = fit_indicator_scaler(p.features, np.arange(len(p.features)), (0.0, 1.0))
    e = int(ends[2])
    w_leaky = window_encodings(p, e, scaler=leaky)["indicator image"]
    assert not np.allclose(w_leaky, scaled_all[e - WINDOW + 1: e + 1])
    np.testing.assert_array_equal(w_leaky, gallery_encodings(p, ends, "indicator image", scaler=leaky)[2])

    # train-only: shifting every test row leaves the scaling and a training window's image unchanged
    q = _prepared()
    q.features = p.features.copy()
    q.features[p.splits["test"][0]:] += 100.0
    sq = indicator_scaler_for(q)
    np.testing.assert_array_equal(sq.low, sc.low)
    np.testing.assert_array_equal(sq.high, sc.high)
    t = int(p.splits["train"][-1])
    np.testing.assert_array_equal(window_encodings(q, t)["indicator image"],
                                  window_encodings(p, t)["indicator image"])
    # quantiles still reach the fit
    wide = indicator_scaler_for(p, (0.0, 1.0))
    assert (wide.low <= sc.low).all() and (wide.high >= sc.high).all() and (wide.low < sc.low).any()


def _book_of(p, upto=None, minutes=59):
    """One 5-level snapshot per candle (just before its close), for the candles [0, upto)."""
    rows = []
    for i, t in enumerate(p.candles.index[:upto]):
        mid = p.candles["close"].iloc[i]
        snap = t + pd.Timedelta(minutes=minutes)
        for lvl in range(1, 6):
            rows.append((snap, "bid", lvl, mid * (1 - 0.001 * lvl), 10.0 * lvl + i))
            rows.append((snap, "ask", lvl, mid * (1 + 0.001 * lvl), 5.0 * lvl))
    return pd.DataFrame(rows, columns=["timestamp", "side", "level", "price", "size"])


def test_orderbook_training_refuses_a_price_grid_built_from_the_whole_book():
    """anchor="first" spans every snapshot's price, later ones included: a training image of bar t would
    depend on prices after t. Models read the mid-anchored heatmap only (the page may still show the grid)."""
    from core.encodings.orderbook_heatmap import HeatmapConfig

    p = _prepared(t=60)
    book = _book_of(p)
    for heatmap in (HeatmapConfig(anchor="first"), {"anchor": "first"}):
        with pytest.raises(UserError, match="for viewing only"):
            make_dataset(p, p.splits["test"], "orderbook_image", order_book=book, heatmap=heatmap)
    ds = make_dataset(p, p.splits["test"], "orderbook_image", order_book=book, heatmap=HeatmapConfig(anchor="mid"))
    assert ds[0][0].shape == (1, WINDOW, 100)


def test_encoding_options_as_dicts_are_the_dataclasses_a_saved_run_stored():
    """config.json and the CLI hold `heatmap` and `style` as dicts: they build the same inputs as the
    dataclasses; a field that does not exist is refused by name."""
    from core.encodings.candlestick import ChartStyle
    from core.encodings.orderbook_heatmap import HeatmapConfig

    p = _prepared(t=60)
    book = _book_of(p)
    a = make_dataset(p, p.splits["test"], "orderbook_image", order_book=book, heatmap={"n_bins": 20})
    b = make_dataset(p, p.splits["test"], "orderbook_image", order_book=book, heatmap=HeatmapConfig(n_bins=20))
    assert a[0][0].shape == (1, WINDOW, 20)
    torch.testing.assert_close(a[2][0], b[2][0])
    c = make_dataset(p, p.splits["test"], "chart_image", size=32, style={"volume_frac": 0.0, "up": [0, 255, 0]})
    d = make_dataset(p, p.splits["test"], "chart_image", size=32, style=ChartStyle(volume_frac=0.0, up=(0, 255, 0)))
    torch.testing.assert_close(c[1][0], d[1][0])
    with pytest.raises(UserError, match="no field 'nbins'.*n_bins, pct_range, anchor, log_size"):
        make_dataset(p, p.splits["test"], "orderbook_image", order_book=book, heatmap={"nbins": 20})
    with pytest.raises(UserError, match="no field 'volume'"):
        make_dataset(p, p.splits["test"], "chart_image", size=32, style={"volume": 0.0})


def test_a_book_that_stops_or_has_a_gap_is_not_repeated_for_later_candles():
    """By default a candle whose newest snapshot is more than 2 bars old at its close is not covered: a
    recording that stopped does not become one frozen image for every later window."""
    p = _prepared(t=60)
    stopped = _book_of(p, upto=45)
    with pytest.raises(UserError, match="covers 0 of .*2 bar"):
        make_dataset(p, p.splits["test"], "orderbook_image", order_book=stopped)
    full = _book_of(p)
    gap = full[(full["timestamp"] < p.candles.index[20]) | (full["timestamp"] > p.candles.index[24])]
    with pytest.raises(UserError, match="covers"):
        make_dataset(p, p.splits["train"], "orderbook_image", order_book=gap)
    # one missing snapshot is within 2 bars; snapshots at the candle's open (1 bar old at its close) too
    one = full[full["timestamp"].dt.floor("h") != p.candles.index[50]]
    assert len(make_dataset(p, p.splits["test"], "orderbook_image", order_book=one)) == len(p.splits["test"])
    at_open = _book_of(p, minutes=0)
    assert len(make_dataset(p, p.splits["train"], "orderbook_image", order_book=at_open)) == len(p.splits["train"])
    # asked for explicitly (and what runs saved before the limit get): no limit, the last snapshot repeats
    old = make_dataset(p, p.splits["test"], "orderbook_image", order_book=stopped, max_staleness_seconds=None)
    last = old[len(old) - 1][0][0]  # the window of candles 44..59: candle 44 has the last snapshot
    assert (last[1:] == last[0]).all() and last[0].sum() > 0
    assert len(make_dataset(p, p.splits["test"], "orderbook_image", order_book=stopped,
                            max_staleness_bars=None)) == len(p.splits["test"])
    with pytest.raises(UserError, match="covers"):
        make_dataset(p, p.splits["test"], "orderbook_image", order_book=stopped, max_staleness_bars=5)


def test_unknown_encoding_keys_are_refused_with_the_allowed_ones():
    p = _prepared()
    with pytest.raises(UserError, match="no option 'sise', 'chart_windw'; the options are size, chart_window"):
        make_dataset(p, p.splits["test"], "chart_image", sise=48, chart_windw=8)
    with pytest.raises(UserError, match="no option 'size', 'quantile'; the options are quantiles"):
        make_dataset(p, p.splits["test"], "indicator_image", size=48, quantile=(0.0, 1.0))
    with pytest.raises(UserError, match="no option 'size'.*book_id"):
        make_dataset(p, p.splits["test"], "orderbook_image", order_book=_book_of(p), size=32)
    # the keys each kind reads still work
    assert make_dataset(p, p.splits["test"], "indicator_image", quantiles=(0.0, 1.0))[0][0].shape == (1, WINDOW, 4)
    assert make_dataset(p, p.splits["test"], "chart_image", size=32, chart_window=8)[0][0].shape == (3, 32, 32)
