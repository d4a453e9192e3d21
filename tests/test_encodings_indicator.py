"""CNN-TA indicator images: train-only scaling (no look-ahead), shapes, range."""
import numpy as np
import pytest

from core.encodings.indicator_image import (
    IndicatorImageScaler, fit_indicator_scaler, indicator_images, to_uint8, train_rows_of,
)
from core.errors import UserError


def _features(t=300, c=5, seed=0):
    return np.random.default_rng(seed).normal(size=(t, c)).cumsum(0).astype(np.float32)


def test_changing_test_data_changes_no_train_image():
    f = _features()
    window, train_ends, test_ends = 20, np.arange(19, 200), np.arange(220, 300)
    rows = train_rows_of(train_ends, window)
    img_a = indicator_images(f, train_ends, window, fit_indicator_scaler(f, rows))
    g = f.copy()
    g[200:] = g[200:] * 50 + 1000  # a wild test segment (a regime the training never saw)
    img_b = indicator_images(g, train_ends, window, fit_indicator_scaler(g, rows))
    np.testing.assert_array_equal(img_a, img_b)
    # the chapter's global min/max scaling would fail this check:
    def global_scale(x):
        return (x - x.min()) / (x.max() - x.min())
    assert not np.allclose(global_scale(f)[:200], global_scale(g)[:200])
    # test images are clipped into the fixed range, not rescaled by their own values
    test_imgs = indicator_images(g, test_ends, window, fit_indicator_scaler(g, rows))
    assert test_imgs.min() >= 0 and test_imgs.max() <= 1 and ((test_imgs == 0) | (test_imgs == 1)).mean() > 0.9


def test_image_content_shape_and_scaling():
    f = _features(100, 3)
    sc = fit_indicator_scaler(f, np.arange(60), quantiles=(0.0, 1.0))
    imgs = indicator_images(f, np.array([15, 40, 59]), 16, sc)
    assert imgs.shape == (3, 16, 3) and imgs.dtype == np.float32
    expect = (f[25:41] - f[:60].min(0)) / (f[:60].max(0) - f[:60].min(0))
    np.testing.assert_allclose(imgs[1], expect, rtol=1e-5, atol=1e-6)
    assert imgs.min() >= 0 and imgs.max() <= 1
    assert to_uint8(imgs).dtype == np.uint8 and to_uint8(np.array([1.0]))[0] == 255
    rt = IndicatorImageScaler.from_dict(sc.to_dict())
    np.testing.assert_allclose(rt.transform(f), sc.transform(f))


def test_errors():
    f = _features(50, 2)
    sc = fit_indicator_scaler(f, np.arange(30))
    with pytest.raises(UserError, match="sample ends"):
        indicator_images(f, np.array([5]), 10, sc)
    with pytest.raises(UserError, match="fitted on 2"):
        sc.transform(np.zeros((4, 3)))
    with pytest.raises(UserError):
        fit_indicator_scaler(f, np.array([], dtype=int))
