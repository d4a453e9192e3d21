"""The Data page under AppTest: the chart of the active dataset, switching sources, generating the
synthetic market, importing good and bad files (bad ones lose nothing), deleting with a confirm, a fetch
that cannot reach Bybit, and synthetic order books."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.page_helpers import column_row_of, horizontal_rows, metric_rows, row_keys

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "1_Data.py"


def small_candles(n: int = 200, seed: int = 1, start: str = "2024-03-01") -> pd.DataFrame:
    """A valid little 1h candle table (for tests that need a second dataset)."""
    rng = np.random.default_rng(seed)
    close = 2000 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    open_ = np.r_[2000.0, close[:-1]]
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.uniform(1, 5, n)}, index=idx)


@pytest.fixture
def at() -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def chart_titles(at: AppTest) -> list[str]:
    return [str(json.loads(el.proto.spec).get("layout", {}).get("title", {}).get("text", ""))
            for el in at.get("plotly_chart")]


def table(at: AppTest, first_column: str, containing: str | None = None) -> pd.DataFrame:
    """The displayed table whose first column is `first_column` (and holds `containing`, when given).
    (AppTest does not expose st.dataframe keys, so tables are found by their content.)"""
    for el in at.dataframe:
        df = el.value
        if len(df.columns) and df.columns[0] == first_column:
            if containing is None or containing in df.iloc[:, 0].astype(str).tolist():
                return df
    raise AssertionError(f"no table with first column {first_column!r} holding {containing!r}")


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def dataset_ids() -> list[str]:
    from core.data import store

    return [d.id for d in store.list_datasets()]


def test_default_page_shows_the_synthetic_market_and_its_quality(at):
    titles = chart_titles(at)
    assert titles and "synthetic" in titles[0] and "BTC/USDT" in titles[0]
    # the quality report lists rows, gaps, duplicates and zero-volume bars of the stored candles
    items = table(at, "item", "zero volume bars")
    quality = dict(zip(items["item"], items["value"]))
    assert int(quality["rows"]) > 10_000
    for k in ("duplicates", "gap count", "zero volume bars"):
        assert k in quality
    assert table(at, "dataset")["dataset"].tolist() == dataset_ids()


def test_last_bars_view_draws_stored_candles(at):
    at.radio(key="chart_view").set_value("Last 1,000 bars").run()
    assert not at.exception
    assert "1,000 bars" in chart_titles(at)[0] and "shown as" not in chart_titles(at)[0]


def test_switching_source_shows_its_widgets(at):
    at.radio(key="data_source").set_value("bybit").run()
    assert not at.exception
    assert at.text_input(key="bybit_symbol").value == "BTC/USDT"
    assert at.selectbox(key="bybit_market").options == ["Spot", "USDT linear perpetual"]
    at.radio(key="data_source").set_value("file").run()
    assert not at.exception
    assert at.get("file_uploader")


def test_generate_synthetic_market_makes_it_active(at):
    at.selectbox(key="synth_symbol").select("ETH/USDT")
    at.number_input(key="synth_days").set_value(20)
    at.number_input(key="synth_seed").set_value(7)
    at.checkbox(key="synth_replace").check()  # the offline market already holds ETH/USDT 1h
    at.button(key="synth_generate").click().run()
    assert not at.exception, at.exception
    assert not at.error, errors(at)
    active = at.session_state["active_dataset"]
    assert "ETH" in active and active in dataset_ids()
    assert "ETH/USDT" in chart_titles(at)[0] and "480 bars" in chart_titles(at)[0]


def test_generate_a_single_candle_is_refused_with_a_sentence(at, workspace):
    # 1d candles over 1 day is one candle: it would crash the range sliders of Indicators and Backtest
    before, active = dataset_ids(), at.session_state["active_dataset"]
    at.selectbox(key="synth_tf").select("1d")
    at.number_input(key="synth_days").set_value(1)
    at.button(key="synth_generate").click().run()
    assert not at.exception, at.exception
    assert "A dataset needs at least 2 candles; this span holds 1 1d candle" in errors(at)
    assert dataset_ids() == before and at.session_state["active_dataset"] == active


def _upload(at: AppTest, name: str, data: bytes, symbol: str = "SOL/USDT") -> AppTest:
    at.radio(key="data_source").set_value("file").run()
    at.get("file_uploader")[0].set_value((name, data, "text/csv"))
    at.text_input(key="import_symbol").set_value(symbol)
    at.run()
    at.button(key="import_go").click().run()
    return at


def test_bad_csv_shows_an_error_and_loses_nothing(at, workspace):
    before = dataset_ids()
    active = at.session_state["active_dataset"]
    files_before = sorted((p.name, p.stat().st_size) for p in workspace.rglob("*") if p.is_file())
    _upload(at, "bad.csv", b"time,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n")  # no volume
    assert not at.exception, at.exception
    assert "volume" in errors(at)
    assert dataset_ids() == before
    assert at.session_state["active_dataset"] == active
    files_after = sorted((p.name, p.stat().st_size) for p in workspace.rglob("*") if p.is_file())
    assert files_after == files_before


def test_out_of_range_timestamps_are_a_sentence_on_the_page(at):
    # epoch microseconds of the year 2286 used to reach the page as "Something went wrong"
    before, active = dataset_ids(), at.session_state["active_dataset"]
    rows = "".join(f"{10**16 + i * 3_600_000_000},{100 + i},{102 + i},{99 + i},{101 + i},5\n" for i in range(6))
    _upload(at, "far.csv", b"timestamp,open,high,low,close,volume\n" + rows.encode())
    assert not at.exception, at.exception
    assert "The timestamp at data row 1 ('10000000000000000') is outside the dates" in errors(at)
    assert dataset_ids() == before and at.session_state["active_dataset"] == active


def test_good_csv_imports_with_a_report(at):
    df = small_candles(100)
    shuffled = pd.concat([df, df.iloc[:3]]).sample(frac=1.0, random_state=0)  # 3 duplicates, unsorted
    raw = shuffled.reset_index()
    raw["timestamp"] = raw["timestamp"].dt.as_unit("ms").astype("int64")  # epoch ms, as exchanges export
    raw.columns = [c.upper() for c in raw.columns]  # names match case-insensitively
    _upload(at, "sol.csv", raw.to_csv(index=False).encode())
    assert not at.exception, at.exception
    assert not at.error, errors(at)
    active = at.session_state["active_dataset"]
    assert "SOL" in active and active in dataset_ids()
    report = table(at, "item", "duplicates dropped")
    items = dict(zip(report["item"], report["value"]))
    assert items["duplicates dropped"] == "3"
    assert items["re-sorted by time"] == "True" and items["rows"] == "100" and items["timestamp format"] == "ms"
    assert "It is now the active dataset" in at.success[0].value and "UTC" in at.success[0].value
    assert "100 bars" in chart_titles(at)[0]
    # a refused file next: its error stands alone, not beside the last import's green "Imported" box
    _upload(at, "bad.csv", b"time,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n")
    assert "volume" in errors(at) and not at.success


def test_an_import_or_generation_never_silently_replaces_a_held_dataset(at, workspace):
    """Importing a second file under the same symbol, or generating the default market again, replaced the
    dataset without a word (breaking the runs trained on it). Now it asks; ticking "replace" goes on."""
    from core.data import store

    _upload(at, "sol.csv", small_candles(100).reset_index().to_csv(index=False).encode())
    ds = at.session_state["active_dataset"]
    assert store.dataset_info(ds).rows == 100
    _upload(at, "sol.csv", small_candles(50).reset_index().to_csv(index=False).encode())
    assert not at.exception, at.exception
    words = " ".join(w.value for w in at.warning)
    assert f"A dataset {ds} is already held (100 candles" in words and "Nothing was changed" in words
    assert not at.success  # the first import's "Imported ..." box is gone: it would contradict the warning
    assert store.dataset_info(ds).rows == 100
    at.checkbox(key="import_replace").check().run()
    at.button(key="import_go").click().run()
    assert not at.exception and not at.error, errors(at)
    assert store.dataset_info(ds).rows == 50
    # the offline market: generating BTC/USDT 1h again asks first too
    at.radio(key="data_source").set_value("synthetic").run()
    default = store.ensure_default_dataset()
    rows = store.dataset_info(default).rows
    at.number_input(key="synth_days").set_value(20)
    at.button(key="synth_generate").click().run()
    assert any("is already held" in w.value for w in at.warning) and store.dataset_info(default).rows == rows


def test_a_name_suffix_keeps_a_short_market_beside_the_default(at, workspace):
    """Generating a 2-day BTC/USDT 1h market was refused (synthetic-BTCUSDT-1h is held) with Replace the only
    way on: a name suffix keeps both, the variant becomes active and every dataset list shows it."""
    from core.data import store

    default = store.ensure_default_dataset()
    rows = store.dataset_info(default).rows
    at.number_input(key="synth_days").set_value(2)
    at.button(key="synth_generate").click().run()
    assert any("is already held" in w.value and "name suffix" in w.value for w in at.warning)
    at.text_input(key="synth_suffix").set_value("short")
    at.button(key="synth_generate").click().run()
    assert not at.exception and not at.error, errors(at)
    assert at.session_state["active_dataset"] == "synthetic-BTCUSDT-1h-short"
    assert store.dataset_info("synthetic-BTCUSDT-1h-short").rows == 48
    assert store.dataset_info(default).rows == rows  # kept, with the runs on it
    assert "synthetic-BTCUSDT-1h-short" in at.selectbox(key="ds_pick").options
    held = next(d.value for d in at.dataframe if "dataset" in d.value.columns)
    assert "synthetic-BTCUSDT-1h-short" in list(held["dataset"])
    sidebar = next(s for s in at.sidebar.selectbox)
    assert {"synthetic-BTCUSDT-1h", "synthetic-BTCUSDT-1h-short"} <= set(sidebar.options)
    # synthetic order books work for the variant too (its id still starts "synthetic")
    assert not at.button(key="ob_synth").disabled
    # a suffix the workspace cannot hold as a name is a sentence, and nothing is stored
    at.text_input(key="synth_suffix").set_value("../x")
    at.button(key="synth_generate").click().run()
    assert not at.exception
    assert "Not a usable name suffix" in errors(at) or "not a usable name suffix" in errors(at)
    assert len(store.list_datasets()) == 3


def _fake_run_on(ds_id: str) -> None:
    """A minimal saved run whose config names `ds_id` (enough for the run list)."""
    import numpy as np
    import torch
    from sklearn.preprocessing import StandardScaler

    from core.train import runs

    cfg = {"dataset_id": ds_id, "model_name": "cnn1d", "model_config": {}, "data_config": {}, "train_config": {},
           "class_names": ["down", "up"], "input_kind": "sequence", "feature_names": ["a"], "in_channels": 1,
           "status": "completed", "created_at": "2024-01-01T00:00:00+00:00", "name": "on it"}
    runs.save_run("20240101-000000-cnn1d-abcdef", cfg, pd.DataFrame({"epoch": [1]}), {"status": "completed"},
                  {"w": torch.ones(1)}, StandardScaler().fit(np.ones((2, 1))), pd.DataFrame())


def test_delete_needs_a_confirm(at):
    from core.data import store

    extra = store.save_candles(small_candles(50), "file", "ADA/USDT", "1h").id
    _fake_run_on(extra)
    at.run()
    at.selectbox(key="ds_pick").select(extra).run()
    at.button(key="ds_delete").click().run()
    assert extra in dataset_ids()  # not yet
    assert any("1 run was trained on it" in w.value for w in at.warning)  # what deleting it breaks
    at.button(key="ds_delete_cancel").click().run()
    assert extra in dataset_ids()
    at.button(key="ds_delete").click().run()
    at.button(key="ds_delete_confirm").click().run()
    assert not at.exception, at.exception
    assert extra not in dataset_ids()
    assert extra not in table(at, "dataset")["dataset"].tolist()


def test_failed_fetch_says_no_connection(at, monkeypatch):
    import ccxt

    def offline(*args, **kwargs):
        raise ccxt.NetworkError("bybit GET https://api.bybit.com/v5/market/kline: connection refused")

    # Bybit is unreachable in tests anyway; make the failure immediate instead of waiting on retries.
    monkeypatch.setattr(ccxt.bybit, "fetch", offline, raising=True)
    monkeypatch.setattr(ccxt.bybit, "load_markets", offline, raising=True)
    from core.data import bybit

    fast = bybit.RetryConfig
    monkeypatch.setattr(bybit, "RetryConfig", lambda **kw: fast(**{**kw, "backoff_s": 0.01}))
    at.radio(key="data_source").set_value("bybit").run()
    at.button(key="fetch_start").click().run()
    from ui.jobs import _REGISTRY

    deadline = time.time() + 60
    while time.time() < deadline and any(not j.done for j in _REGISTRY.values()):
        time.sleep(0.1)
    at.run()  # AppTest never fires run_every: rerun by hand to see the job's outcome
    assert not at.exception, at.exception
    assert "No connection to Bybit: use the offline market or import a file" in errors(at)
    assert not any("Traceback" in e.value for e in at.error)


def test_synthetic_order_books_draw_depth_and_heatmap(at):
    at.button(key="ob_synth").click().run()
    assert not at.exception, at.exception
    assert not at.error, errors(at)
    titles = chart_titles(at)
    assert any(t.startswith("Depth") and "synthetic" in t for t in titles)
    assert any(t.startswith("Heatmap") for t in titles)
    # the snapshot is picked by its time, not an index 0-999, and the close-time stamp is said
    snap = at.select_slider(key="ob_snapshot")
    assert snap.label == "Snapshot (UTC)"
    assert len(snap.options) == 1000 and snap.value == snap.options[-1] == "2026-01-01 00:00 UTC"
    assert snap.options[0] == "2025-11-20 09:00 UTC"  # 1,000 hourly closes back from the last
    assert any("snapshot is taken at each candle's close" in c.value and "2026-01-01 00:00 UTC" in c.value
               for c in at.caption)
    snap.set_value("2025-11-20 09:00 UTC").run()
    assert not at.exception and not at.error
    assert any(t.startswith("Depth") and "2025-11-20 09:00" in t for t in chart_titles(at))


def test_fetch_shows_progress_and_cancel_stops_it(at, monkeypatch):
    import ccxt

    from core.data import bybit
    from ui.jobs import _REGISTRY

    def unreachable(*args, **kwargs):
        raise ccxt.NetworkError("connection refused")

    # A fetch stuck retrying (no network): it must show progress and stop when the user cancels.
    monkeypatch.setattr(ccxt.bybit, "load_markets", unreachable, raising=True)
    slow = bybit.RetryConfig
    monkeypatch.setattr(bybit, "RetryConfig", lambda **kw: slow(**{**kw, "retries": 1000, "first_call_retries": 1000,
                                                                   "backoff_s": 0.05,
                                                                   "max_backoff_s": 0.05}))
    at.radio(key="data_source").set_value("bybit").run()
    at.button(key="fetch_start").click().run()
    assert not at.exception, at.exception
    assert at.get("progress"), "a running fetch shows a progress bar"
    at.run()
    assert not at.error, [(j.error, j.trace) for j in _REGISTRY.values()]
    assert at.button(key="fetch_start").disabled  # no second fetch while one runs
    at.button(key="fetch_cancel").click().run()
    deadline = time.time() + 30
    while time.time() < deadline and any(not j.done for j in _REGISTRY.values()):
        time.sleep(0.05)
    at.run()
    assert not at.exception, at.exception
    assert any("cancelled" in w.value for w in at.warning)
    assert not at.error


def test_settings_survive_a_visit_to_another_page(workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/1_Data.py").run()
    at.radio(key="data_source").set_value("file").run()
    at.text_input(key="import_symbol").set_value("MYCOIN/USDT")
    at.selectbox(key="import_tf").select("4h").run()
    at.switch_page("pages/2_Indicators.py").run()
    assert "import_symbol" not in at.session_state  # Streamlit dropped the page's widgets
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception, at.exception
    assert at.radio(key="data_source").value == "file"
    assert at.text_input(key="import_symbol").value == "MYCOIN/USDT" and at.selectbox(key="import_tf").value == "4h"


def test_figures_and_dataset_buttons_wrap_on_a_narrow_window(at):
    """At 1,000 px with the sidebar open the six quality figures read "17..." and "73...", the dataset buttons
    "Make ..." and "D...", the start date "2024 / 0" and the Bybit range "2026 / 10 /": the figures and buttons
    are wrapping rows now, the inputs in rows of at most three (two for the date range)."""
    assert ["Rows", "Span", "Gaps", "Missing bars", "Duplicates", "Zero-volume bars"] in metric_rows(at)
    keys = [row_keys(row) for row in horizontal_rows(at)]
    assert any(len(k) == 3 and k[0] == "ds_activate" and "ds_download" in k[1] and k[2] == "ds_delete"
               for k in keys), keys
    assert column_row_of(at, "synth_start") == 3 and column_row_of(at, "synth_symbol") == 3
    at.radio(key="data_source").set_value("bybit").run()
    assert not at.exception, at.exception
    assert column_row_of(at, "bybit_range") == 2


def test_a_cached_order_book_is_read_again_when_the_book_is_replaced_over_the_same_span(workspace, monkeypatch):
    """The Data page's snapshot slider reruns the page, so the book is cached; the cache key is the book's
    fingerprint, not its span: the Encodings page keyed it by snapshot count and first/last time, and kept
    showing the old prices of a book recorded again over the same span."""
    from core.data import orderbook as ob
    from core.data.store import save_candles
    from ui.common import load_order_book

    n = 48
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    c = 100 + np.arange(n, dtype=float)
    candles = pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 5.0}, index=idx)
    ds = save_candles(candles, "synthetic", "BTC/USDT", "1h").id
    book_id = ob.make_synthetic_order_book(ds, levels=5, max_snapshots=10).id
    reads = []
    real = ob.load_order_book
    monkeypatch.setattr(ob, "load_order_book", lambda b: reads.append(b) or real(b))
    first = load_order_book(book_id)
    load_order_book(book_id)
    assert reads == [book_id]  # cached: the slider's reruns read no table
    moved = first.assign(price=first["price"] * 1.01)
    ob.save_order_book(moved, book_id, "synthetic", "BTC/USDT")  # same snapshots, same span, other prices
    again = load_order_book(book_id)
    assert reads == [book_id, book_id] and again["price"].to_numpy() == pytest.approx(moved["price"].to_numpy())
