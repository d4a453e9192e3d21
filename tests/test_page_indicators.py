"""The Indicators page under AppTest on the default offline market: charts render, widgets drive them."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.page_helpers import charts, column_row_of, metric_rows

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "2_Indicators.py")


def _charts(at: AppTest) -> dict[str, dict]:
    return charts(at, untitled="price")


def test_indicators_page_runs_and_reacts():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    charts = _charts(at)
    assert {"price", "Feature matrix (z-scored, train scaler)", "Feature correlation", "Labels over time",
            "Class balance"} <= set(charts)
    price = charts["price"]
    names = {t.get("name") for t in price["data"]}
    assert {"price", "EMA 21", "BB upper", "RSI 14", "MACD", "volume"} <= names
    # the split drawn as bands: train, purge, val, purge, test
    bands = [sh["name"] for sh in price["layout"].get("shapes", []) if sh.get("type") == "rect"]
    assert bands == ["train", "purge", "val", "purge", "test"]
    # the default synthetic market has 17,544 hourly bars: the price chart is downsampled to <= 2,000 (a
    # figure the browser draws quickly), and says so
    candle = next(t for t in price["data"] if t["type"] == "candlestick")
    assert 1000 < len(candle["x"]) <= 2000
    assert any("bars per point" in (a.get("text") or "") for a in price["layout"]["annotations"])
    heat = charts["Feature matrix (z-scored, train scaler)"]
    assert len(heat["data"][0]["y"]) == 15  # resnet15
    # the samples do not add up to the rows: the page says where the rest went
    m = {x.label: int(str(x.value).replace(",", "")) for x in at.metric}
    rest = m["Rows after warm-up"] - m["Train samples"] - m["Validation samples"] - m["Test samples"]
    assert any(c.value.startswith(f"{rest:,} rows are in no segment's samples") for c in at.caption)

    at.selectbox(key="ind_preset").select("dilated5").run()
    assert not at.exception
    assert len(_charts(at)["Feature matrix (z-scored, train scaler)"]["data"][0]["y"]) == 5
    at.multiselect(key="ind_overlays").set_value(["Keltner", "VWAP"]).run()
    at.multiselect(key="ind_panels").set_value(["ATR", "OBV"]).run()
    assert not at.exception
    names = {t.get("name") for t in _charts(at)["price"]["data"]}
    assert {"KC upper", "VWAP 14", "ATR 14", "OBV"} <= names and "RSI 14" not in names
    at.selectbox(key="ind_label_kind").select("binary").run()
    assert not at.exception
    balance = _charts(at)["Class balance"]
    assert [t["name"] for t in balance["data"]] == ["down", "up"]
    at.number_input(key="ind_window").set_value(256).run()
    at.slider(key="ind_train").set_value(0.5).run()
    assert not at.exception and not at.error
    # an emptied feature list is a sentence, not a crash; the price chart stays
    at.multiselect(key="ind_features").set_value([]).run()
    assert not at.exception
    assert any("at least one feature" in w.value for w in at.warning)
    assert "price" in _charts(at)


def test_settings_survive_a_visit_to_another_page():
    """Streamlit drops a page's widget values on a page change: the features, labels and split must come
    back as the user left them (the feature box once came back empty, with nothing drawn)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/2_Indicators.py").run()
    at.selectbox(key="ind_preset").select("chapter6").run()
    chosen = at.multiselect(key="ind_features").value[:3]
    at.multiselect(key="ind_features").set_value(chosen).run()
    at.selectbox(key="ind_label_kind").select("binary").run()
    at.number_input(key="ind_horizon").set_value(24).run()
    assert not at.exception and not at.warning
    at.switch_page("pages/1_Data.py").run()
    assert "ind_horizon" not in at.session_state  # Streamlit dropped the page's widgets
    at.switch_page("pages/2_Indicators.py").run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.selectbox(key="ind_preset").value == "chapter6"
    assert at.multiselect(key="ind_features").value == chosen
    assert at.selectbox(key="ind_label_kind").value == "binary" and at.number_input(key="ind_horizon").value == 24
    assert len(at.get("plotly_chart")) >= 3  # the features, labels and split are drawn again


def test_a_rewritten_dataset_is_computed_anew(shared_data):
    """The features, labels and split were cached by dataset id only: after a fetch or re-import rewrote the
    candles, the page kept showing the old ones' rows and split (with the new caption above them)."""
    from core.data.store import save_candles
    from tests.features_helpers import csv_candles

    df = csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv")
    df.attrs = {}
    ds = save_candles(df.iloc[:2000], "file", "STALE/USDT", "1h").id
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["active_dataset"] = ds
    at.run()
    rows = {m.label: m.value for m in at.metric}
    save_candles(df.iloc[:4000], "file", "STALE/USDT", "1h")  # e.g. the Data page fetched more
    at.run()
    assert not at.exception, at.exception
    grown = {m.label: m.value for m in at.metric}
    assert rows and grown != rows
    assert int(str(grown["Rows after warm-up"]).replace(",", "")) > 3900
    assert not any("gap" in w.value for w in at.warning)
    save_candles(df.iloc[:4000].drop(df.index[1000:1010]), "file", "STALE/USDT", "1h")  # ten bars missing
    at.run()
    assert any(w.value.startswith("The candles have 1 gap (10 missing bars") for w in at.warning)


def test_a_short_dataset_says_why_and_the_range_slider_reaches_its_last_bar(shared_data):
    """A new user's 48 hourly candles: the "too few" sentence counted 23 rows without saying the other 25
    were the features' warm-up (the Encodings and Train pages gave other counts), and the range slider drew
    its right handle mid-track while its label read the last bar: its step was Streamlit's default of one
    day, over a span of 47 hours."""
    from core.data.store import save_candles
    from core.features import DatasetConfig, too_few_candles
    from tests.features_helpers import csv_candles

    ds = save_candles(csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", 48), "file", "SHORT/USDT", "1h").id
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["active_dataset"] = ds
    at.run()
    assert not at.exception, at.exception
    said = [e.value for e in at.error]
    assert said == [too_few_candles(48, DatasetConfig(preset="resnet15", window=64))]
    assert said[0].startswith("48 candles are too few: the resnet15 features need 25 bars of warm-up, which "
                              "leaves 23 rows")
    rng = at.slider(key="ind_range")
    first, last = rng.proto.min, rng.proto.max  # microseconds since the epoch
    assert last - first == 47 * 3600e6
    assert rng.proto.step == 3600e6  # one bar: the span is a whole number of steps, the handles sit at the ends
    assert (last - first) % rng.proto.step == 0 and list(rng.proto.default) == [first, last]
    assert [v.hour for v in rng.value] == [0, 23]
    assert "price" in _charts(at)  # the candles are still drawn


def test_feature_chips_and_figures_wrap_on_a_narrow_window():
    """At 1,000 px with the sidebar open the feature box in a third of the width showed one chip ("open...")
    and the split figures read "25 warm-up row...": the chips wrap in a row of their own, outside the three
    columns, and the figures are a wrapping row."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    features = at.multiselect(key="ind_features")
    assert features.proto.wrap is True
    assert features.value  # the preset's features, unchanged
    assert column_row_of(at, "ind_features") == 0 and column_row_of(at, "ind_label_kind") == 3  # not in a column
    assert at.multiselect(key="ind_overlays").proto.wrap and at.multiselect(key="ind_panels").proto.wrap
    assert ["Rows after warm-up", "Train samples", "Validation samples", "Test samples"] in metric_rows(at)
