"""Candlestick rasters: geometry, colours, volume strip, batch API and input checks."""
import numpy as np
import pytest

from core.encodings.candlestick import ChartStyle, render_candles
from core.errors import UserError

STYLE = ChartStyle()


def _rand_windows(n=4, w=32, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 + np.cumsum(rng.normal(0, 1, (n, w)), axis=1)
    o = c + rng.normal(0, 0.5, c.shape)
    h = np.maximum(o, c) + rng.random(c.shape)
    lo = np.minimum(o, c) - rng.random(c.shape)
    v = rng.random(c.shape) + 0.1
    return np.stack([o, h, lo, c, v], axis=-1)


def _mask(img, color):
    return (img == np.array(color, dtype=np.uint8)).all(axis=-1)


def test_shapes_dtype_and_single_window():
    a = _rand_windows(3, 32)
    out = render_candles(a, size=64)
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    one = render_candles(a[1], size=(96, 128))
    assert one.shape == (1, 96, 128, 3)
    np.testing.assert_array_equal(render_candles(a[1], 64)[0], out[1])  # batch == one by one


def test_up_candle_green_down_candle_red_at_the_right_heights():
    # Two candles: an up one low in the range, a down one high in the range; zero volume -> no bars.
    a = np.array([[10, 12, 9, 11, 0], [18, 20, 15, 16, 0.0]])
    img = render_candles(a, size=64)[0]
    up, down = _mask(img, STYLE.up), _mask(img, STYLE.down)
    assert up[:, :32].any() and not up[:, 32:].any()
    assert down[:, 32:].any() and not down[:, :32].any()
    price_h = 64 - round(64 * STYLE.volume_frac) - 1
    rows_up = np.nonzero(up.any(axis=1))[0]
    rows_dn = np.nonzero(down.any(axis=1))[0]
    # Wick of the up candle spans low 9 (bottom row) .. high 12; the down candle reaches the top (20).
    assert rows_up.max() == price_h - 1 and rows_dn.min() == 0
    assert rows_up.min() > rows_dn.max() - 10  # up candle sits lower (larger row numbers)
    scale = (price_h - 1) / (20 - 9)
    assert rows_up.min() == round((20 - 12) * scale)
    # The body is wider than the wick: the wick column alone above the body top.
    body_top_row = round((20 - 11) * scale)
    assert up[body_top_row].sum() > up[rows_up.min()].sum() == 1


def test_volume_bars_in_bottom_strip_proportional():
    a = np.array([[10, 11, 9, 10.5, 100], [10, 11, 9, 9.5, 50.0]])
    img = render_candles(a, size=64)[0]
    vol_h = round(64 * STYLE.volume_frac)
    uv, dv = _mask(img, STYLE.up_volume), _mask(img, STYLE.down_volume)
    assert not uv[: 64 - vol_h].any() and not dv[: 64 - vol_h].any()
    assert uv[:, :32].any(axis=1).sum() == vol_h
    assert dv[:, 32:].any(axis=1).sum() == round(vol_h / 2)


def test_per_window_scaling_is_invariant_to_price_level():
    a = _rand_windows(1, 40)
    b = a.copy()
    b[..., :4] = b[..., :4] * 3 + 500  # same shape of the path at another level and scale
    np.testing.assert_array_equal(render_candles(a, 64), render_candles(b, 64))


def test_bad_inputs_raise_user_errors():
    a = _rand_windows(1, 80)
    with pytest.raises(UserError, match="cannot show 80 candles"):
        render_candles(a, size=64)
    with pytest.raises(UserError, match="between"):
        render_candles(a[:, :10], size=8)
    with pytest.raises(UserError, match="shape"):
        render_candles(np.zeros((10, 4)), 64)
    bad = a[:, :10].copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(UserError, match="missing"):
        render_candles(bad, 64)


def test_flat_window_renders_without_error():
    a = np.tile([5.0, 5, 5, 5, 1], (16, 1))
    img = render_candles(a, 64)[0]
    assert _mask(img, STYLE.up).any()
