"""Gramian angular fields and recurrence plots against their definitions."""
import numpy as np
import pytest

from core.encodings.gaf import gramian_angular_field, paa
from core.encodings.recurrence import recurrence_plot
from core.errors import UserError


def test_gasf_gadf_match_the_definition_on_a_hand_example():
    x = np.array([1.0, 3.0, 2.0, 5.0])
    # rescaled to [-1, 1]: (x - 1) / 4 * 2 - 1 = [-1, 0, -0.5, 1]
    xt = np.array([-1.0, 0.0, -0.5, 1.0])
    phi = np.arccos(xt)
    expect_s = np.cos(phi[:, None] + phi[None, :])
    expect_d = np.sin(phi[:, None] - phi[None, :])
    np.testing.assert_allclose(gramian_angular_field(x, "summation"), expect_s, atol=1e-6)
    np.testing.assert_allclose(gramian_angular_field(x, "difference"), expect_d, atol=1e-6)
    # a few entries by hand: GASF[0,0] = cos(2 pi) = 1; GASF[1,1] = cos(pi) = -1; GADF diagonal = 0
    g = gramian_angular_field(x)
    assert g[0, 0] == pytest.approx(1.0) and g[1, 1] == pytest.approx(-1.0)
    assert np.allclose(np.diag(gramian_angular_field(x, "difference")), 0)


def test_gaf_batch_symmetry_and_paa():
    rng = np.random.default_rng(1)
    xb = rng.normal(size=(5, 64)).cumsum(1)
    gs = gramian_angular_field(xb, image_size=16)
    assert gs.shape == (5, 16, 16) and gs.dtype == np.float32
    np.testing.assert_allclose(gs, gs.transpose(0, 2, 1), atol=1e-6)  # GASF symmetric
    gd = gramian_angular_field(xb, "difference")
    np.testing.assert_allclose(gd, -gd.transpose(0, 2, 1), atol=1e-6)  # GADF antisymmetric
    np.testing.assert_allclose(gramian_angular_field(xb[2]), gramian_angular_field(xb)[2])
    np.testing.assert_allclose(paa(np.arange(12.0)[None], 4), [[1, 4, 7, 10]])
    np.testing.assert_allclose(paa(np.arange(10.0)[None], 3), [[1, 4, 7.5]])  # uneven segments 0-2, 3-5, 6-9
    with pytest.raises(UserError):
        gramian_angular_field(xb, "product")


def test_recurrence_plot_distances_and_threshold():
    x = np.array([0.0, 1.0, 0.0, 1.0, 2.0])
    rp = recurrence_plot(x)
    z = (x - x.mean()) / x.std()
    d = np.abs(z[:, None] - z[None, :])
    np.testing.assert_allclose(rp, d / d.max(), atol=1e-6)
    rb = recurrence_plot(x, threshold=1e-9)
    assert rb[0, 2] == 1 and rb[1, 3] == 1 and rb[0, 1] == 0 and np.all(np.diag(rb) == 1)
    rp_pct = recurrence_plot(x, percentage=50)
    np.testing.assert_array_equal(rp_pct, (d <= 0.5 * d.max()).astype(np.float32))


def test_recurrence_embedding_shape_and_errors():
    xb = np.random.default_rng(2).normal(size=(3, 30))
    assert recurrence_plot(xb, dimension=3, time_delay=2).shape == (3, 26, 26)
    with pytest.raises(UserError):
        recurrence_plot(np.arange(4.0), dimension=3, time_delay=2)
    with pytest.raises(UserError):
        recurrence_plot(xb, threshold=0.1, percentage=10)
