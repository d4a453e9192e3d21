"""The Live page in AppTest: replay stepping with the signal, size, levels, chart and log; the live mode against
the local Bybit fixture server, including the server going down (error shown, last signal kept, the loop
carries on) and coming back. AppTest never fires run_every, so ticks come from the page's own buttons."""
from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.test_live import install_run, synthetic_candles, trained  # noqa: F401 - the session fixture
from tests.page_helpers import horizontal_rows

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "9_Live.py")


def _page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_no_runs_says_where_to_get_one():
    at = _page()
    assert any("No trained runs yet" in i.value for i in at.info)
    charts = at.get("plotly_chart")
    assert len(charts) == 1 and "candlestick" in charts[0].proto.spec and "no run yet" in charts[0].proto.spec


# a trade shows its confidence; no trade shows how close the strongest side came to the threshold
SIGNAL_METRICS = {"Confidence", "Strongest side"}


def test_replay_steps_show_signal_levels_chart_and_log(trained, workspace):  # noqa: F811
    run_id = install_run(trained, workspace)
    at = _page(live_run_request=run_id)
    assert at.selectbox(key="live_run").value == run_id
    assert at.radio(key="live_mode").value == "replay"
    assert any("Press Start" in i.value for i in at.info)
    # before the first tick the chart already shows where the replayed clock stands: at the test span start
    start_chart = at.get("plotly_chart")
    assert len(start_chart) == 1 and "candlestick" in start_chart[0].proto.spec
    assert "replay clock at" in start_chart[0].proto.spec
    at.slider(key="live_threshold").set_value(0.34)
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    m = _metrics(at)
    assert {"Suggested size", "Stop", "Target", "ATR(14)"} <= set(m) and SIGNAL_METRICS & set(m)
    test_start = pd.Timestamp(json.loads((workspace / "runs" / run_id / "config.json").read_text())["test_start"])
    assert any(f"{test_start:%Y-%m-%d %H:%M} UTC bar" in md.value for md in at.markdown)  # out of sample first
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and "candlestick" in charts[0].proto.spec
    at.button(key="live_step_btn").click().run()
    table = at.dataframe[0].value
    assert len(table) == 2 and table["timestamp"].iloc[0] == test_start + pd.Timedelta(hours=1)
    assert len(list((workspace / "live" / "signals" / run_id).glob("*.jsonl"))) >= 1
    at.button(key="live_toggle").click().run()  # Start: running, and the first tick at once
    assert at.session_state["live_state"].running is True
    assert len(at.dataframe[0].value) == 3
    at.button(key="live_toggle").click().run()
    assert at.session_state["live_state"].running is False


def test_a_handed_over_run_replays_its_own_dataset(trained, workspace):  # noqa: F811
    """Home's "replay its signals live" hands over the demo run: the replay must use the run's own dataset
    (and so its test span), not a dataset kept from an earlier visit or the active one."""
    from core.data.store import save_candles

    run_id = install_run(trained, workspace)
    other = save_candles(synthetic_candles(400, seed=3), "synthetic", "ETH/USDT", "1h").id
    at = _page(live_run_request=run_id, live_replay_ds=other, active_dataset=other)
    assert at.selectbox(key="live_replay_ds").value == "synthetic-BTCUSDT-1h"
    at.selectbox(key="live_replay_ds").select(other).run()  # the user's own choice for this run is kept
    assert at.selectbox(key="live_replay_ds").value == other


def _restart(fake) -> None:
    """Bring the fixture server back on the same port (the page's client keeps its address)."""
    port = fake.server.server_address[1]
    fake.server = ThreadingHTTPServer(("127.0.0.1", port), fake.server.RequestHandlerClass)
    fake.thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    fake.thread.start()


def test_live_mode_fetch_failure_is_shown_and_the_loop_carries_on(trained, workspace, monkeypatch):  # noqa: F811
    from tests.test_data_bybit import FakeBybit

    run_id = install_run(trained, workspace)
    now_bar = pd.Timestamp.now(tz="UTC").floor("h")
    fake = FakeBybit(synthetic_candles(periods=1500, end=now_bar))  # the newest bar is still open
    monkeypatch.setenv("CNN_LAB_BYBIT_URL", fake.url)
    try:
        at = _page()
        at.radio(key="live_mode").set_value("live").run()
        assert at.text_input(key="live_symbol").value == "BTCUSDT"
        at.button(key="live_step_btn").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        first = [md.value for md in at.markdown if "UTC bar" in md.value]
        assert first and f"{now_bar - pd.Timedelta(hours=1):%Y-%m-%d %H:%M} UTC bar" in first[0]
        fake.close()                                     # the server goes down
        at.button(key="live_step_btn").click().run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert errors and "no connection to Bybit" in errors[0] and "carries on" in errors[0]
        assert "choose Source: replay" in errors[0]  # what to do here without a connection
        assert SIGNAL_METRICS & set(_metrics(at))       # the last signal stays on screen
        assert at.session_state["live_state"].errors == 1
        _restart(fake)                                   # and comes back: the next tick works again
        at.button(key="live_step_btn").click().run()
        assert not at.error and SIGNAL_METRICS & set(_metrics(at))
        assert at.session_state["live_state"].ticks == 3
        log = at.dataframe[0].value
        assert len(log) == 1 and log["mode"].iloc[0] == "live"  # same closed bar: logged once
    finally:
        fake.close()


def test_settings_survive_a_visit_to_another_page_and_the_loop_state_stays(trained, workspace):  # noqa: F811
    from core.train.archive import export_run_zip, import_run_zip

    run_id = install_run(trained, workspace)
    copy_id = import_run_zip(export_run_zip(run_id))  # a second run to choose
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/9_Live.py").run()
    assert not at.exception, at.exception
    first = at.selectbox(key="live_run").value
    chosen = next(r for r in (run_id, copy_id) if r != first)  # not the one the page starts with
    at.selectbox(key="live_run").select(chosen).run()
    at.slider(key="live_threshold").set_value(0.41).run()
    at.selectbox(key="live_sizing").select("half_kelly").run()
    at.number_input(key="live_every_replay").set_value(7).run()
    at.number_input(key="live_replay_step").set_value(3).run()
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    assert at.session_state["live_state"].ticks == 1
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception and "live_threshold" not in at.session_state  # Streamlit dropped the page's widgets
    at.switch_page("pages/9_Live.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="live_run").value == chosen
    assert at.slider(key="live_threshold").value == 0.41
    assert at.selectbox(key="live_sizing").value == "half_kelly"
    assert at.number_input(key="live_every_replay").value == 7
    assert at.number_input(key="live_replay_step").value == 3
    # the same source and settings: the replay carries on where it was, its signal still on screen
    assert at.session_state["live_state"].ticks == 1 and SIGNAL_METRICS & set(_metrics(at))
    at.button(key="live_step_btn").click().run()
    table = at.dataframe[0].value
    assert at.session_state["live_state"].ticks == 2 and len(table) == 2
    step = table["timestamp"].iloc[0] - table["timestamp"].iloc[1]
    assert step == pd.Timedelta(hours=3)  # 3 bars per tick, as chosen before the visit
    # the log table reads P(action) and the strongest side, as on the headline
    assert {"P(action)", "strongest side"} <= set(table.columns) and "confidence" not in table
    newest, m = table.iloc[0], _metrics(at)  # and agrees with the headline of the newest signal
    if newest["action"] == "flat":
        assert m["Strongest side"] == newest["strongest side"]
    else:
        assert m["Confidence"] == f"{newest['P(action)']:.2f}"
    # a run handed over by another page still wins over the kept one (and the loop follows the run)
    at.switch_page("pages/1_Data.py").run()
    at.session_state["live_run_request"] = first
    at.switch_page("pages/9_Live.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="live_run").value == first and "live_run_request" not in at.session_state
    assert at.session_state["live_state"].key[1] == first and at.session_state["live_state"].ticks == 0


def test_replay_on_another_timeframe_warns_and_bars_per_tick_start_at_the_start(trained, workspace):  # noqa: F811
    """A 1h run replayed on 4h candles is out of its training distribution: the page says so (as live mode
    does). With several bars per tick the first signal is still at the start bar, the next K bars later."""
    from core.data.store import save_candles
    from core.data.synthetic import generate_market

    run_id = install_run(trained, workspace)
    at = _page(live_run_request=run_id, live_replay_step=3)
    at.button(key="live_step_btn").click().run()
    test_start = pd.Timestamp(json.loads((workspace / "runs" / run_id / "config.json").read_text())["test_start"])
    assert any(f"{test_start:%Y-%m-%d %H:%M} UTC bar" in md.value for md in at.markdown)
    assert not any("trained on" in w.value for w in at.warning)
    at.button(key="live_step_btn").click().run()
    assert any(f"{test_start + pd.Timedelta(hours=3):%Y-%m-%d %H:%M} UTC bar" in md.value for md in at.markdown)
    c4 = next(iter(generate_market("BTC/USDT", "4h", periods=1300, seed=5).values()))
    ds4 = save_candles(c4, "synthetic", "BTC/USDT", "4h").id
    at.run()
    at.selectbox(key="live_replay_ds").select(ds4).run()
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    assert any("The run was trained on 1h candles; its signals on 4h bars are out of its training distribution"
               in w.value for w in at.warning)


def test_bars_per_tick_says_bars_between_are_not_decided_and_an_all_flat_log_says_why(trained,  # noqa: F811
                                                                                      workspace):
    run_id = install_run(trained, workspace)
    at = _page(live_run_request=run_id)
    assert "only every N-th bar is decided" in at.number_input(key="live_replay_step").help
    at.slider(key="live_threshold").set_value(0.95)
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    assert (at.dataframe[0].value["action"] == "flat").all()
    assert any(c.value.startswith("Every tick so far was flat") and "0.95 threshold" in c.value
               and "Lower the threshold" in c.value for c in at.caption)


def test_the_all_flat_note_names_the_highest_side_and_is_silent_once_a_tick_traded():
    from core.viz.live import all_flat_note

    log = pd.DataFrame({"action": ["flat", "flat"], "prob_up": [0.41, 0.52], "prob_down": [0.3, 0.2]})
    note = all_flat_note(log, 0.6)
    assert note == ("Every tick so far was flat: the strongest side, up or down, stayed below the 0.60 threshold "
                    "(the highest was 0.52). Lower the threshold to see trades.")
    assert all_flat_note(log.assign(action=["flat", "long"]), 0.6) is None
    assert all_flat_note(log.iloc[:0], 0.6) is None


# the signal log's columns shown at first: they fit a narrow window (the whole log ran off its right edge)
LOG_SHOWN = ["timestamp", "action", "P(action)", "strongest side", "price", "size", "stop", "target"]


def test_the_signal_log_shows_few_columns_at_first_and_keeps_the_rest_one_click_away(trained,  # noqa: F811
                                                                                      workspace):
    """A narrow window (1000 px, sidebar open) cut the 16-column log at its right edge. The page shows the
    signal's own columns first, the bar pinned while the rest scrolls; every other column is still in the
    table (the toolbar's eye icon shows it), the caption says where, and the single source is named once.
    A log of several sources shows the source per row."""
    from core.data.store import save_candles

    run_id = install_run(trained, workspace)
    at = _page(live_run_request=run_id)
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    log = at.dataframe[0]
    assert list(log.proto.column_order) == LOG_SHOWN
    hidden = {"notional", "logged_at", "mode", "source", "run_id", "prob_up", "prob_down", "prob_flat"}
    assert hidden <= set(log.value.columns)  # not dropped: shown from the table's toolbar
    config = json.loads(log.proto.columns)
    pinned = [k for k, v in config.items() if v.get("pinned")]
    assert len(pinned) == 1 and pinned[0].endswith("timestamp") and config[pinned[0]]["label"] == "bar (UTC)"
    caption = next(c.value for c in at.caption if c.value.startswith("Logged once per bar"))
    source = log.value["source"].iloc[0]
    assert f"from {source}." in caption and "eye icon shows more columns" in caption
    assert all(w in caption for w in ("notional", "class probabilities", "logged at", "source"))
    other = save_candles(synthetic_candles(400, seed=3), "synthetic", "ETH/USDT", "1h").id
    at.run()
    at.selectbox(key="live_replay_ds").select(other).run()
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    log = at.dataframe[0]
    assert log.value["source"].nunique() == 2 and list(log.proto.column_order) == LOG_SHOWN + ["source"]
    caption = next(c.value for c in at.caption if c.value.startswith("Logged once per bar"))
    assert f"from {source}" not in caption


def test_the_buttons_and_the_signal_figures_wrap_on_a_narrow_window(trained, workspace):  # noqa: F811
    """In a sixth of the width each (columns 1:1:1:3) the buttons read "St...", "St...", "R..." at 1,000 px, and
    the five figures in five columns "do..." and "132..." : each row is a wrapping row of its own now."""
    run_id = install_run(trained, workspace)
    at = _page(live_run_request=run_id)
    at.button(key="live_step_btn").click().run()
    assert not at.exception, at.exception
    rows = horizontal_rows(at)
    keys = [[getattr(e, "key", None) for e in row] for row in rows]
    assert ["live_toggle", "live_step_btn", "live_reset"] in keys
    figures = [[e.label for e in row] for row in rows if row and all(type(e).__name__ == "Metric" for e in row)]
    assert len(figures) == 1 and figures[0][1:] == ["Suggested size", "Stop", "Target", "ATR(14)"]
    assert figures[0][0] in SIGNAL_METRICS


def test_the_base_fraction_is_greyed_under_kelly_sizing_as_on_the_backtest_page(trained, workspace):  # noqa: F811
    """Kelly sizes from the confidence, the win/loss ratio and its cap: the base fraction box says so by being
    greyed, and the sizing box explains the four rules (core.backtest.config, shared with the Backtest page)."""
    from core.backtest.config import SIZING_HELP, uses_base_fraction

    assert [uses_base_fraction(s) for s in ("fixed", "confidence", "kelly", "half_kelly")] == [True, True, False, False]
    run_id = install_run(trained, workspace)
    at = _page(live_run_request=run_id)
    assert at.selectbox(key="live_sizing").help == SIZING_HELP and not at.number_input(key="live_fraction").disabled
    at.selectbox(key="live_sizing").set_value("half_kelly").run()
    assert not at.exception and at.number_input(key="live_fraction").disabled
