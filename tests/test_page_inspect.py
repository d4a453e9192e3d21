"""The Inspect page in AppTest: a real (tiny) trained run, a window picked by number and by date, feature
maps of a chosen layer, attributions over time under the candles, probabilities, the receptive field."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.train.config import DataConfig, TrainConfig
from features_helpers import csv_candles

ROOT = Path(__file__).resolve().parents[1]


def _dataset(shared_data, rows=700) -> str:
    from core.data.store import save_candles

    return save_candles(csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", rows), "file", "BTC/USDT",
                        "1h").id


def _train(ds: str, model: str, **model_config) -> str:
    from core.train.trainer import train_run

    res = train_run(ds, model, model_config, DataConfig(preset="chapter6", window=24, horizon=4),
                    TrainConfig(epochs=1, batch_size=64, baselines=["majority"], n_boot=100, seed=1),
                    name=f"tiny {model}")
    return res.run_id


def _page(ds: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "6_Inspect.py"), default_timeout=180)
    if ds:
        at.session_state["active_dataset"] = ds  # no default market needed
    at.run()
    assert not at.exception, at.exception
    return at


def _specs(at: AppTest) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _spec_with(at: AppTest, text: str) -> dict:
    found = [s for s in _specs(at).values() if text in json.dumps(s.get("layout", {}).get("title", ""))]
    assert found, f"no chart titled with {text!r}"
    return found[0]


def _shape(z) -> tuple[int, ...]:
    """Shape of a plotly array (plain list, or the typed-array dict plotly 6 sends)."""
    if isinstance(z, dict):
        return tuple(int(v) for v in str(z["shape"]).split(","))
    return np.asarray(z).shape


def _len(x) -> int:
    return _shape(x)[0]


def test_no_runs_says_what_to_do(shared_data):
    at = _page(_dataset(shared_data, 300))
    assert any("No trained runs yet" in i.value for i in at.info)


def test_inspect_a_1d_run(shared_data):
    from core.train.runs import load_run

    ds = _dataset(shared_data)
    rid = _train(ds, "cnn1d")
    run = load_run(rid)
    at = _page(ds)
    assert not at.error, [e.value for e in at.error]
    n_test = len(run.predictions)
    # default: the last test window; its prediction is the saved one
    md = " ".join(m.value for m in at.markdown)
    last_ts = run.predictions["timestamp"].iloc[-1]
    assert f"{last_ts:%Y-%m-%d %H:%M}" in md
    saved = run.predictions.iloc[-1][[f"prob_{c}" for c in run.class_names]].to_numpy(float)
    assert f"**{run.class_names[int(np.argmax(saved))]}** ({saved.max():.0%})" in md

    # pick a window by number, then by date
    at.number_input(key="insp_pos").set_value(3).run()
    assert not at.exception, at.exception
    assert f"{run.predictions['timestamp'].iloc[3]:%Y-%m-%d %H:%M}" in " ".join(m.value for m in at.markdown)
    day = run.predictions["timestamp"].iloc[n_test // 2]
    at.date_input(key="insp_date").set_value(day.date()).run()
    assert not at.exception, at.exception
    pos = at.number_input(key="insp_pos").value
    picked = run.predictions["timestamp"].iloc[pos]
    assert abs(picked - (pd.Timestamp(day.date(), tz="UTC") + pd.Timedelta(hours=12))) <= pd.Timedelta(hours=1)

    # feature maps: every layer can be chosen (shapes shown); a conv layer is a channels x time heatmap
    options = at.selectbox(key="insp_layer").options
    assert "features.0  (32, 24)" in options and "fc  (3,)" in options and len(options) >= 10
    at.selectbox(key="insp_layer").select("features.4").run()
    assert not at.exception, at.exception
    fm = _spec_with(at, "features.4 (64, 12)")
    assert fm["data"][0]["type"] == "heatmap" and _shape(fm["data"][0]["z"]) == (64, 12)
    top = _spec_with(at, "features.4: most active channels")
    assert len(top["data"]) == at.slider(key="insp_topk").value

    # attributions: candles on top and one row per method, bar for bar
    attr = _spec_with(at, "how strongly each bar moves")
    kinds = [t["type"] for t in attr["data"]]
    assert kinds[0] == "candlestick" and kinds.count("bar") == 3
    # the title says what is drawn (unsigned, scaled magnitudes), a caption how the methods differ
    title = json.dumps(attr["layout"]["title"])
    assert "|attribution|, scaled to the largest" in title and "pushed" not in title
    assert any("Saliency" in c.value and "baseline" in c.value and "coarse in time" in c.value for c in at.caption)
    assert all(_len(t["x"]) == 24 for t in attr["data"][1:])
    assert any("the attributions add up to" in c.value for c in list(at.caption) + list(at.warning))
    assert not any("grad cam is zero" in w.value for w in at.warning)
    # a window where no position pushes towards the class: an empty Grad-CAM row is said, not left blank
    from core.inspect import attributions

    real = attributions.attribute
    attributions.attribute = lambda m, x, method, target, **kw: (
        np.zeros(np.asarray(x).shape[-1]) if method == "grad_cam" else real(m, x, method, target, **kw))
    try:
        at.number_input(key="insp_pos").set_value(5).run()
    finally:
        attributions.attribute = real
    assert any("grad cam is zero over the whole window" in w.value for w in at.warning)
    # receptive field in bars, averaged over real test windows
    assert any("95 % of the gradient mass" in c.value for c in at.caption)
    _spec_with(at, "effective receptive field")
    _spec_with(at, "predicted probabilities")


def _click_price_chart(at: AppTest, when: pd.Timestamp) -> None:
    """A click on a point of the test-period chart, as the browser sends it (AppTest cannot click a chart:
    the selection goes in as that chart's widget state, with the other widgets' states)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    chart = next(c for c in at.get("plotly_chart") if "test period" in json.dumps(json.loads(c.proto.spec)["layout"]))
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(
        {"selection": {"points": [{"x": f"{when:%Y-%m-%d %H:%M:%S}", "point_index": 0, "curve_number": 0}],
                       "point_indices": [0], "box": [], "lasso": []}})))
    at._run(widget_state=states)


def test_the_date_box_follows_the_window_and_says_when_a_date_is_outside(shared_data):
    """The date box shows the chosen window's day after a chart click or a new window number (a typed date
    is applied once and kept); a day outside the test windows is said in a sentence and snaps to the
    nearest window, instead of being silently ignored."""
    from core.train.runs import load_run

    ds = _dataset(shared_data)
    run = load_run(_train(ds, "cnn1d"))
    ts = run.predictions["timestamp"]
    n = len(ts)
    at = _page(ds)
    assert at.date_input(key="insp_date").value == ts.iloc[-1].date()  # the default (last) window's day
    # a typed date is applied, and the box keeps it
    day = ts.iloc[n // 3].date()
    at.date_input(key="insp_date").set_value(day).run()
    assert not at.exception, at.exception
    pos = at.number_input(key="insp_pos").value
    assert at.date_input(key="insp_date").value == day and ts.iloc[pos].date() == day
    # a chart click moves the window: the box follows it
    clicked = ts.iloc[n - 10]
    _click_price_chart(at, clicked)
    assert not at.exception, at.exception
    assert at.number_input(key="insp_pos").value == n - 10
    assert at.date_input(key="insp_date").value == clicked.date()
    assert f"{clicked:%Y-%m-%d %H:%M}" in " ".join(m.value for m in at.markdown)
    # so does a new window number
    at.number_input(key="insp_pos").set_value(2).run()
    assert at.date_input(key="insp_date").value == ts.iloc[2].date()
    at.run()  # and it stays put on a plain rerun
    assert at.number_input(key="insp_pos").value == 2 and at.date_input(key="insp_date").value == ts.iloc[2].date()
    # a day before the test windows: said, and the first window is shown
    first, last = ts.iloc[0], ts.iloc[-1]
    at.date_input(key="insp_date").set_value((first - pd.Timedelta(days=40)).date()).run()
    assert not at.exception, at.exception
    said = " ".join(i.value for i in at.info)
    assert f"pick a date between {first:%Y-%m-%d} and {last:%Y-%m-%d} UTC" in said and "before the first" in said
    assert at.number_input(key="insp_pos").value == 0 and at.date_input(key="insp_date").value == first.date()
    at.run()
    assert not at.info  # said once
    # and one after the data
    at.date_input(key="insp_date").set_value((last + pd.Timedelta(days=400)).date()).run()
    assert any("after the last" in i.value and f"and {last:%Y-%m-%d} UTC" in i.value for i in at.info)
    assert at.number_input(key="insp_pos").value == n - 1 and at.date_input(key="insp_date").value == last.date()


def test_inspect_a_2d_indicator_image_run_shows_grids(shared_data):
    ds = _dataset(shared_data)
    _train(ds, "cnn_ta")
    at = _page(ds)
    assert not at.error, [e.value for e in at.error]
    at.selectbox(key="insp_layer").select("features.2").run()
    assert not at.exception, at.exception
    spec = _spec_with(at, "features.2 (64, 24, 6)")
    # (C, H, W) maps come as a facet grid of images, one per channel
    assert all(t["type"] == "image" for t in spec["data"]) and len(spec["data"]) == 64
    attr = _spec_with(at, "how strongly each bar moves")
    assert all(_len(t["x"]) == 24 for t in attr["data"][1:])


def test_a_model_without_convolutions_gets_a_sentence_for_grad_cam(shared_data):
    ds = _dataset(shared_data)
    _train(ds, "logistic")
    at = _page(ds)
    assert any("grad cam" in w.value and "convolution" in w.value for w in at.warning)
    attr = _spec_with(at, "how strongly each bar moves")
    assert [t["type"] for t in attr["data"]].count("bar") == 2  # saliency and integrated gradients still shown
    # a causal model reads the last step only: no Grad-CAM offered (nor a warning); a pooled one has it back
    tcn = _train(ds, "tcn", channels=8, levels=2)
    at.run()  # the new run is listed
    at.selectbox(key="insp_run").set_value(tcn).run()
    assert at.multiselect(key="insp_methods_causal").options == ["saliency", "integrated gradients"]
    assert not any("grad cam" in w.value for w in at.warning)
    cnn = _train(ds, "cnn1d", channels=8, layers=2)
    at.run()
    at.selectbox(key="insp_run").set_value(cnn).run()
    assert "grad_cam" in at.multiselect(key="insp_methods").value


@pytest.mark.slow
def test_inspect_a_chart_run_maps_pixels_to_candles(shared_data):
    from core.train.trainer import train_run

    ds = _dataset(shared_data, 500)
    train_run(ds, "chart_resnet18", {}, DataConfig(preset="chapter6", window=24, horizon=4, encoding={"size": 32,
                                                                                                  "chart_window": 16}),
              TrainConfig(epochs=1, batch_size=32, baselines=[], max_train_samples=32, seed=1))
    at = _page(ds)
    assert not at.error, [e.value for e in at.error]
    inp = next(s for s in _specs(at).values() if "what the model sees" in json.dumps(s["layout"]))
    assert [t["type"] for t in inp["data"]] == ["candlestick", "image"]
    assert _len(inp["data"][0]["x"]) == 16  # the charted bars, not the 24-bar data window
    attr = _spec_with(at, "how strongly each bar moves")
    assert all(_len(t["x"]) == 16 for t in attr["data"][1:])
    at.selectbox(key="insp_layer").select("layer1.0.conv1").run()
    assert not at.exception, at.exception
    spec = _spec_with(at, "layer1.0.conv1 (64, 8, 8)")
    assert all(t["type"] == "image" for t in spec["data"])


def test_a_grown_dataset_keeps_the_runs_test_period_and_a_changed_one_warns(shared_data):
    """Datasets grow in place: the page shows the windows the run was scored on (not a split of today's
    dataset, which would call training windows "test"), and says so when rows of its span were replaced."""
    from core.data.store import load_candles, save_candles
    from core.train.runs import load_run

    ds = _dataset(shared_data, 700)
    rid = _train(ds, "cnn1d")
    stored = load_run(rid).predictions
    save_candles(csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", 1000), "file", "BTC/USDT", "1h")
    at = _page(ds)
    assert not at.warning, [w.value for w in at.warning]
    first, last = stored["timestamp"].iloc[[0, -1]]
    assert any(f"{len(stored):,} test windows {first:%Y-%m-%d} .. {last:%Y-%m-%d}" in c.value for c in at.caption)
    grown = load_candles(ds)
    save_candles(grown.drop(grown.index[200:230]), "file", "BTC/USDT", "1h")  # 30 bars of its span gone
    at = _page(ds)
    assert any("has changed since this run was trained" in w.value for w in at.warning)
    repriced = grown.copy()
    repriced[["open", "high", "low", "close"]] *= 1.001  # the same times, other prices: a corrected file
    save_candles(repriced, "file", "BTC/USDT", "1h")
    at = _page(ds)
    assert any("no longer holds the candles this run learnt from" in w.value for w in at.warning)


def test_settings_survive_a_visit_to_another_page(shared_data):
    """The run, the window, the layer and the attribution settings are still what the user chose after
    visiting another page (Streamlit drops a page's widget values when it is left)."""
    ds = _dataset(shared_data)
    rid = _train(ds, "cnn1d")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["active_dataset"] = ds
    at.run()
    at.switch_page("pages/6_Inspect.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="insp_run").value == rid
    assert at.selectbox(key="insp_run").format_func(rid).endswith(" · completed")  # a stopped run says so
    at.number_input(key="insp_pos").set_value(5).run()
    at.selectbox(key="insp_layer").select("features.4").run()
    at.multiselect(key="insp_methods").set_value(["saliency"]).run()
    at.select_slider(key="insp_erf_n").set_value(16).run()
    assert not at.exception, at.exception
    window = [m.value for m in at.markdown if "Window ending" in m.value]
    at.switch_page("pages/2_Indicators.py").run()
    assert not at.exception and "insp_pos" not in at.session_state  # Streamlit dropped the page's widgets
    at.switch_page("pages/6_Inspect.py").run()
    assert not at.exception, at.exception
    assert at.number_input(key="insp_pos").value == 5
    assert [m.value for m in at.markdown if "Window ending" in m.value] == window  # the same window, not the last
    assert at.selectbox(key="insp_layer").value == "features.4"
    assert at.multiselect(key="insp_methods").value == ["saliency"]
    assert at.select_slider(key="insp_erf_n").value == 16
    attr = _spec_with(at, "how strongly each bar moves")
    assert [t["type"] for t in attr["data"]].count("bar") == 1  # the figures follow the kept settings
    _spec_with(at, "features.4 (64, 12)")


def test_every_attribution_method_chip_is_visible(shared_data):
    """In a third of the tab's width the methods' chips stayed in one row and the third one was cut (at 1000 px
    none was readable). The Methods box has a row of its own, its chips wrapping when they do not fit, and all
    methods are chosen at first, each named in words."""
    ds = _dataset(shared_data)
    _train(ds, "cnn1d", channels=8, layers=2)
    at = _page(ds)
    tab = next(t for t in at.tabs if t.label == "Attributions")
    methods = at.multiselect(key="insp_methods")
    assert methods.value == ["saliency", "integrated_gradients", "grad_cam"]
    assert [methods.format_func(m) for m in methods.value] == ["saliency", "integrated gradients", "grad cam"]
    assert any(child is methods for child in tab.children.values())  # the tab's full width, not a column
    assert not any(len(col.multiselect) for col in tab.columns)
    assert methods.proto.HasField("wrap") and methods.proto.wrap  # chips wrap instead of being cut
    # the other two settings still sit side by side below it
    assert [len(col.selectbox) + len(col.select_slider) for col in tab.columns][:2] == [1, 1]
