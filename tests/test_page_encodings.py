"""The Encodings page in AppTest on real BTC candles: a window beside its encodings, the gallery grouped by
label, the order-book heatmap (offline and recorded books), bad settings as a sentence, and the transfer vs
scratch comparison started from the page."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from features_helpers import csv_candles

ROOT = Path(__file__).resolve().parents[1]


def _save(shared_data, name: str, symbol: str, rows: int) -> str:
    from core.data.store import save_candles

    return save_candles(csv_candles(shared_data / name, rows), "file", symbol, "1h").id


@pytest.fixture
def btc(shared_data) -> str:
    return _save(shared_data, "binance_spot_BTCUSDT_1h.csv", "BTC/USDT", 900)


def _page(ds: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "5_Encodings.py"), default_timeout=240)
    at.session_state["active_dataset"] = ds
    at.run()
    assert not at.exception, at.exception
    return at


def _chart(at: AppTest, key_part: str) -> dict:
    for c in at.get("plotly_chart"):
        if key_part in c.proto.id:
            return json.loads(c.proto.spec)
    raise AssertionError(f"no chart {key_part!r}; have {[c.proto.id for c in at.get('plotly_chart')]}")


def _shape(z) -> tuple[int, ...]:
    if isinstance(z, dict):
        return tuple(int(v) for v in str(z["shape"]).split(","))
    return np.asarray(z).shape


def test_window_and_its_encodings_follow_the_chosen_time(btc):
    at = _page(btc)
    assert not at.error, [e.value for e in at.error]
    fig = _chart(at, "enc_window_fig")
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles == ["candles", "chart", "indicator image", "GASF", "GADF", "recurrence"]
    assert fig["data"][0]["type"] == "candlestick" and len(fig["data"][0]["x"]) == 32  # the window's bars
    assert _shape(fig["data"][3]["z"]) == (32, 32)  # GASF of a 32-bar window

    cap = next(c.value for c in at.caption if c.value.startswith("Window of 32 bars"))
    slider = at.slider(key="enc_when")
    later = slider.value + timedelta(hours=100)
    slider.set_value(later).run()
    assert not at.exception, at.exception
    cap2 = next(c.value for c in at.caption if c.value.startswith("Window of 32 bars"))
    assert cap2 != cap and f"{pd.Timestamp(later).floor('h'):%Y-%m-%d}" in cap2
    fig2 = _chart(at, "enc_window_fig")
    assert fig2["data"][0]["x"][-1] != fig["data"][0]["x"][-1]

    at.select_slider(key="enc_size").set_value(48).run()
    assert not at.exception, at.exception
    chart = _chart(at, "enc_window_fig")["data"][1]
    assert chart["type"] == "image"


def test_gallery_groups_windows_by_label(btc):
    at = _page(btc)
    gal = _chart(at, "enc_gallery_fig")
    titles = [a["text"] for a in gal["layout"]["annotations"] if a["text"]]
    assert any(t.startswith("down #") for t in titles) and any(t.startswith("up #") for t in titles)
    assert len(gal["data"]) == 3 * 6  # three classes x six examples per class (blank cells included)
    at.selectbox(key="enc_gallery_kind").select("chart").run()
    at.slider(key="enc_gallery_n").set_value(3).run()
    assert not at.exception, at.exception
    gal = _chart(at, "enc_gallery_fig")
    assert len(gal["data"]) == 9 and "chart, train segment" in json.dumps(gal["layout"]["title"])


def test_orderbook_heatmap_offline_and_recorded(btc, shared_data):
    from core.data.orderbook import save_order_book
    from core.encodings.orderbook_heatmap import wide_book_to_long

    at = _page(btc)
    hm = _chart(at, "enc_book_fig")
    heat = next(t for t in hm["data"] if t["type"] == "heatmap")
    assert _shape(heat["z"]) == (100, 300)  # 100 price bins x the last 300 snapshots
    assert any(t["type"] == "scatter" and t["name"] == "mid price" for t in hm["data"])

    wide = pd.read_csv(shared_data / "binance_spot_BTCUSDT_L2top20_20240808.csv", nrows=400)
    save_order_book(wide_book_to_long(wide), "binance-btc-l2", "binance", "BTC/USDT")
    at = _page(btc)
    at.selectbox(key="enc_book").select("binance-btc-l2").run()
    at.number_input(key="enc_book_n").set_value(100).run()
    at.radio(key="enc_book_axis").set_value("fixed price").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    hm = _chart(at, "enc_book_fig")
    heat = next(t for t in hm["data"] if t["type"] == "heatmap")
    assert _shape(heat["z"])[0] >= 100 and _shape(heat["z"])[1] <= 100  # fixed grid: >= 100 bins when the price moved
    assert hm["layout"]["yaxis"]["title"]["text"] == "price"


def test_bad_settings_are_a_sentence_not_a_trace(shared_data):
    short = _save(shared_data, "binance_spot_BTCUSDT_1h.csv", "BTC/USDT", 150)
    at = _page(short)
    at.number_input(key="enc_window").set_value(200).run()
    assert not at.exception
    assert at.error and "Traceback" not in at.error[0].value and len(at.error[0].value) > 20


def test_transfer_section_needs_a_source_and_says_so(btc):
    at = _page(btc)
    assert any("Only one dataset" in i.value for i in at.info)
    assert at.button(key="enc_tr_start").disabled
    at.radio(key="enc_tr_source_kind").set_value("weights").run()
    assert any("torchvision resnet18" in i.value for i in at.info)
    assert any("No comparison yet" in i.value for i in at.info)


def test_settings_survive_a_visit_to_another_page(btc, shared_data):
    """Streamlit drops a page's widget values when the user visits another page; the Encodings page puts
    every setting back (data settings, the window shown, gallery, order book, transfer form), and a kept
    time outside another dataset's range falls back to the default instead of failing."""
    eth = _save(shared_data, "binance_spot_ETHUSDT_1h.csv", "ETH/USDT", 320)  # ends long before BTC's 900 bars
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    at.session_state["active_dataset"] = btc
    at.run()
    at.switch_page("pages/5_Encodings.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="enc_preset").select("dilated5")
    at.number_input(key="enc_window").set_value(24)
    at.selectbox(key="enc_label").select("binary")
    at.number_input(key="enc_horizon").set_value(6)
    at.number_input(key="enc_threshold").set_value(0.3)
    at.select_slider(key="enc_size").set_value(48)
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    late = at.slider(key="enc_when").value + timedelta(hours=100)  # past the end of the 320 ETH bars
    settings = {
        ("slider", "enc_when"): late,
        ("selectbox", "enc_gallery_kind"): "GADF", ("selectbox", "enc_gallery_split"): "val",
        ("slider", "enc_gallery_n"): 4, ("number_input", "enc_gallery_seed"): 7,
        ("number_input", "enc_book_n"): 200, ("radio", "enc_book_axis"): "fixed price",
        ("number_input", "enc_book_pct"): 3.0,
        ("select_slider", "enc_tr_size"): 64, ("slider", "enc_tr_freeze"): 3,
        ("number_input", "enc_tr_max_train"): 1000, ("number_input", "enc_tr_epochs"): 5,
        ("number_input", "enc_tr_rows"): 2000, ("number_input", "enc_tr_lr"): 0.002,
    }
    for (kind, key), value in settings.items():
        widget = getattr(at, kind)(key=key)
        widget.select(value) if kind == "selectbox" else widget.set_value(value)
    at.run()
    at.radio(key="enc_tr_source_kind").set_value("weights").run()  # hides the source-dataset pick
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    data = {"enc_preset": "dilated5", "enc_window": 24, "enc_label": "binary", "enc_horizon": 6,
            "enc_threshold": 0.3, "enc_size": 48}
    want = {**data, **{key: value for (_, key), value in settings.items()}, "enc_tr_source_kind": "weights"}

    at.switch_page("pages/1_Data.py").run()
    assert not at.exception, at.exception
    assert "enc_window" not in at.session_state and "enc_tr_lr" not in at.session_state  # Streamlit dropped them
    at.switch_page("pages/5_Encodings.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert {k: at.session_state[k] for k in want} == want
    assert at.number_input(key="enc_window").value == 24 and at.select_slider(key="enc_size").value == 48
    assert at.slider(key="enc_when").value == late and at.radio(key="enc_tr_source_kind").value == "weights"
    # the page drew what the kept settings say, not its defaults
    assert any(c.value.startswith("Window of 24 bars ending") for c in at.caption)
    assert "GADF, val segment" in json.dumps(_chart(at, "enc_gallery_fig")["layout"]["title"])
    assert _chart(at, "enc_book_fig")["layout"]["yaxis"]["title"]["text"] == "price"

    # the hidden pick came back too, and a kept time outside another dataset's span is not an error
    at.radio(key="enc_tr_source_kind").set_value("dataset").run()
    assert at.selectbox(key="enc_tr_source_ds").value == eth
    at.switch_page("pages/1_Data.py")
    at.session_state["active_dataset"] = eth
    at.run()
    at.switch_page("pages/5_Encodings.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    from core.data.store import load_candles

    eth_bars = load_candles(eth).index
    assert eth_bars[0] <= pd.Timestamp(at.slider(key="enc_when").value) <= eth_bars[-1] < pd.Timestamp(late)
    assert at.number_input(key="enc_window").value == 24 and at.selectbox(key="enc_gallery_kind").value == "GADF"


def test_reruns_reuse_the_prepared_data_and_the_train_only_scaler(btc, shared_data, monkeypatch):
    """Moving the window, changing the gallery or the transfer form neither prepares the dataset again nor
    refits the indicator-image scaling; other data settings or a rewritten dataset do."""
    import core.encodings.datasets as enc_datasets
    import core.features as features

    calls = {"prepare": 0, "fit": 0}
    real_prepare, real_fit = features.prepare_dataset, enc_datasets.fit_indicator_scaler

    def prepare(*a, **k):
        calls["prepare"] += 1
        return real_prepare(*a, **k)

    def fit(*a, **k):
        calls["fit"] += 1
        return real_fit(*a, **k)

    monkeypatch.setattr(features, "prepare_dataset", prepare)
    monkeypatch.setattr(enc_datasets, "fit_indicator_scaler", fit)
    at = _page(btc)
    assert calls == {"prepare": 1, "fit": 1}
    first = _chart(at, "enc_window_fig")["data"][2]["z"]  # the indicator image
    slider = at.slider(key="enc_when")
    slider.set_value(slider.value + timedelta(hours=30)).run()
    at.selectbox(key="enc_gallery_kind").select("indicator image").run()
    at.number_input(key="enc_gallery_seed").set_value(3).run()
    at.number_input(key="enc_tr_epochs").set_value(4).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert calls == {"prepare": 1, "fit": 1}
    assert _chart(at, "enc_window_fig")["data"][2]["z"] != first  # another window, same scaling
    assert "indicator image, train segment" in json.dumps(_chart(at, "enc_gallery_fig")["layout"]["title"])

    at.number_input(key="enc_window").set_value(20).run()
    assert calls == {"prepare": 2, "fit": 2}
    assert any(c.value.startswith("Window of 20 bars") for c in at.caption)

    _save(shared_data, "binance_spot_BTCUSDT_1h.csv", "BTC/USDT", 700)  # the same dataset id, rewritten
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert calls == {"prepare": 3, "fit": 3}
    from core.data.store import load_candles
    last = load_candles(btc).index[-1]
    assert pd.Timestamp(at.slider(key="enc_when").value) <= last < pd.Timestamp("2024-02-07", tz="UTC")


@pytest.mark.slow
def test_transfer_vs_scratch_from_the_page(shared_data):
    from ui.jobs import get_job

    target = _save(shared_data, "binance_spot_BTCUSDT_1h.csv", "BTC/USDT", 320)
    source = _save(shared_data, "binance_spot_ETHUSDT_1h.csv", "ETH/USDT", 320)
    at = _page(target)
    at.number_input(key="enc_window").set_value(16)
    at.number_input(key="enc_horizon").set_value(4)
    at.selectbox(key="enc_tr_source_ds").select(source)
    at.select_slider(key="enc_tr_size").set_value(32)
    at.number_input(key="enc_tr_epochs").set_value(1)
    at.number_input(key="enc_tr_rows").set_value(0)
    at.button(key="enc_tr_start").click().run()
    assert not at.exception, at.exception
    job = get_job(at.session_state["_session_id"], "transfer")
    assert job is not None
    job.thread.join(280)
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Transfer comparison done" in s.value for s in at.success)
    verdicts = [m.value for m in [*at.success, *at.warning] if m.value.startswith("Fine-tuning ")]
    assert len(verdicts) == 1 and "% CI" in verdicts[0]  # the difference comes with its interval
    table = at.dataframe[0].value
    assert list(table.columns) == ["fine-tuned", "scratch", "fine-tuned - scratch"]
    assert table.loc["accuracy", "fine-tuned - scratch"] == pytest.approx(
        table.loc["accuracy", "fine-tuned"] - table.loc["accuracy", "scratch"])
    bars = _chart(at, "enc_tr_fig")
    assert [t["name"] for t in bars["data"]] == ["fine-tuned", "scratch"]


def test_a_damaged_order_book_is_a_sentence_not_a_trace(btc, shared_data, workspace):
    from core.data.orderbook import load_order_book, save_order_book
    from core.encodings.orderbook_heatmap import wide_book_to_long
    from core.errors import DataError

    wide = pd.read_csv(shared_data / "binance_spot_BTCUSDT_L2top20_20240808.csv", nrows=400)
    save_order_book(wide_book_to_long(wide), "damaged-book", "binance", "BTC/USDT")
    p = workspace / "data" / "orderbooks" / "damaged-book.parquet"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # a copy cut short
    with pytest.raises(DataError, match="order book 'damaged-book' is damaged.*record or simulate it again"):
        load_order_book("damaged-book")
    at = _page(btc)
    at.selectbox(key="enc_book").select("damaged-book").run()
    assert not at.exception, at.exception
    assert any("'damaged-book' is damaged" in e.value and "Traceback" not in e.value for e in at.error), \
        [e.value for e in at.error]


def test_the_fixed_price_axis_is_said_to_be_for_viewing_only(btc):
    at = _page(btc)
    at.radio(key="enc_book_axis").set_value("fixed price").run()
    assert any("for viewing only" in c.value for c in at.caption)


def test_a_short_dataset_gets_the_one_too_few_sentence(shared_data):
    """48 candles: the page said "15 rows are too few" where the Indicators page said 23 and Train 48; the
    sentence now starts from the candles and says the chapter6 features' warm-up took 33 of them."""
    from core.features import DatasetConfig, LabelConfig, too_few_candles

    short = _save(shared_data, "binance_spot_BTCUSDT_1h.csv", "BTC/USDT", 48)
    at = _page(short)
    said = [e.value for e in at.error]
    assert said == [too_few_candles(48, DatasetConfig(preset="chapter6", window=32,
                                                      label=LabelConfig(horizon=12)))]
    assert said[0].startswith("48 candles are too few: the chapter6 features need 33 bars of warm-up, which "
                              "leaves 15 rows, and windows of 32 bars with a 12-bar horizon")
    assert said[0].endswith("use a longer dataset or a shorter window.")
