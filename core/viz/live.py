"""Figures and tables of the Live page and of the home-page demo (pure: data in, plotly figure or table out).

- `live_figure(candles, signals, current)`: the latest candles with the logged signals as markers, the
  current signal's entry, stop and target levels, and the class probabilities of the logged bars below.
- `signal_table(signals)`: the signal log for st.dataframe (what was done, P(action), the strongest side);
  `signal_log_view` its columns shown at first and its caption.
- `signal_headline`, `signal_figures`, `heads_caption`: the current signal in words and figures;
  `loop_status`, `loop_error`: the loop's state and latest failure (core.live.session.LiveSession).
- `probability_bars(signal, threshold)`: the current bar's class probabilities against the threshold.
- `equity_figure(equity, buy_and_hold)`: strategy equity against buy and hold (demo summary).
- `demo_classification_table(summary)`, `demo_trading_table(summary)`: model vs baselines, strategy vs
  buy and hold.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data.candles import bar_seconds

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
LONG_COLOR = "#2ca02c"
SHORT_COLOR = "#d62728"
CLASS_COLORS = {"down": SHORT_COLOR, "flat": "#7f7f7f", "up": LONG_COLOR}


def _get(sig: Any, key: str, default: Any = None) -> Any:
    if sig is None:
        return default
    if isinstance(sig, Mapping):
        return sig.get(key, default)
    return getattr(sig, key, default)


def source_title(source: str) -> str:
    """A signal source for reading: "replay:synthetic-BTC/USDT-1h" -> "replay of synthetic BTC/USDT 1h",
    "bybit_linear:BTCUSDT" -> "Bybit linear BTCUSDT (live)"."""
    kind, _, rest = str(source).partition(":")
    if kind == "replay":
        return "replay of " + rest.replace("-", " ").strip()
    if kind.startswith("bybit_"):
        return f"Bybit {kind[6:]} {rest} (live)"
    return str(source)


def live_figure(candles: pd.DataFrame, signals: Optional[pd.DataFrame] = None, current: Any = None,
                bars: int = 150, title: str = "", height: int = 560) -> go.Figure:
    """Candles of the last `bars` bars, logged signals (▲ long below the low, ▼ short above the high),
    the current signal's entry / stop / target as horizontal lines, and P(class) of the logged bars."""
    c = candles.iloc[-int(bars):] if candles is not None else pd.DataFrame()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26], vertical_spacing=0.04)
    if len(c):
        fig.add_trace(go.Candlestick(x=c.index, open=c["open"], high=c["high"], low=c["low"], close=c["close"],
                                     name="price", increasing_line_color=UP_COLOR,
                                     decreasing_line_color=DOWN_COLOR, showlegend=False), row=1, col=1)
    s = signals if signals is not None else pd.DataFrame()
    if len(s) and len(c):
        s = s[(pd.to_datetime(s["timestamp"], utc=True) >= c.index[0]) &
              (pd.to_datetime(s["timestamp"], utc=True) <= c.index[-1])]
        s = s.sort_values("timestamp")
        ts = pd.to_datetime(s["timestamp"], utc=True)
        pad = (c["high"] - c["low"]).median() * 0.6 if len(c) else 0.0
        hi = c["high"].reindex(ts).to_numpy()
        lo = c["low"].reindex(ts).to_numpy()
        for action, sym, color, y in (("long", "triangle-up", LONG_COLOR, lo - pad),
                                      ("short", "triangle-down", SHORT_COLOR, hi + pad)):
            m = (s["action"] == action).to_numpy()
            if m.any():
                fig.add_trace(go.Scatter(x=ts[m], y=y[m], mode="markers", name=f"{action} signal",
                                         marker={"symbol": sym, "size": 11, "color": color},
                                         customdata=s.loc[m, "confidence"].to_numpy(),
                                         hovertemplate=f"{action} %{{x}}<br>confidence %{{customdata:.2f}}"
                                                       "<extra></extra>"), row=1, col=1)
        for col in [k for k in s.columns if k.startswith("prob_")]:
            name = col[5:]
            fig.add_trace(go.Scatter(x=ts, y=s[col], mode="lines+markers", name=f"P({name})",
                                     line={"color": CLASS_COLORS.get(name), "width": 1.5},
                                     marker={"size": 4}), row=2, col=1)
    action = _get(current, "action")
    if action in ("long", "short") and len(c):
        x0 = pd.Timestamp(_get(current, "timestamp"))
        x1 = c.index[-1] + pd.Timedelta(seconds=bar_seconds(c, default=3600)) * 6
        for key, color, label in (("price", "#444", "entry"), ("stop", SHORT_COLOR, "stop"),
                                  ("target", LONG_COLOR, "target")):
            level = _get(current, key)
            if level is None or not np.isfinite(level):
                continue
            fig.add_trace(go.Scatter(x=[x0, x1], y=[level, level], mode="lines+text", name=label,
                                     text=["", f"{label} {level:,.2f}"], textposition="top left",
                                     line={"color": color, "dash": "dash" if key != "price" else "dot"}),
                          row=1, col=1)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1], row=2, col=1)
    # the legend sits in the top margin, right-aligned, clear of the title and of the price panel
    fig.update_layout(height=height, title=title or None, xaxis_rangeslider_visible=False,
                      margin={"l": 50, "r": 20, "t": 80 if title else 40, "b": 30},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "right", "x": 1})
    return fig


def probability_bars(signal: Any, threshold: Optional[float] = None, height: int = 220) -> go.Figure:
    probs = dict(_get(signal, "probabilities", {}) or {})
    names = list(probs)
    fig = go.Figure(go.Bar(x=names, y=[probs[n] for n in names],
                           marker_color=[CLASS_COLORS.get(n, "#1f77b4") for n in names],
                           text=[f"{probs[n]:.2f}" for n in names], textposition="outside", cliponaxis=False))
    if threshold is not None:  # grey shows on the dark and the light theme; the value is said in the title,
        # not beside the line, where it printed over a bar's own value
        fig.add_hline(y=threshold, line={"dash": "dash", "color": "#999"})
    fig.update_layout(height=height, yaxis={"range": [0, 1.15], "title": "probability"},
                      title={"text": f"dashed: threshold {threshold:.2f}" if threshold is not None else "",
                             "font": {"size": 12}},
                      margin={"l": 40, "r": 10, "t": 30 if threshold is not None else 20, "b": 30}, showlegend=False)
    return fig


SIGNAL_COLUMNS = ["timestamp", "action", "P(action)", "strongest side", "price", "size", "notional", "stop",
                  "target", "mode", "source", "run_id", "logged_at"]
# what each column of `signal_table` means (the page shows these as column tooltips)
SIGNAL_TABLE_HELP = {
    "P(action)": "probability of the side traded: P(up) for a long, P(down) for a short; empty for flat (no "
                 "trade: see the strongest side)",
    "strongest side": "the more likely of up and down, with its probability; a flat row stayed flat because it "
                      "was below the threshold",
    "size": "suggested fraction of equity (0 when flat)",
    "notional": "size x account equity (USDT)",
}


def _strongest_side(signals: pd.DataFrame) -> pd.Series:
    """'up 0.48' / 'down 0.61' per row: the more likely direction and its probability (None without them)."""
    sides = [c for c in ("up", "down") if f"prob_{c}" in signals]
    if not sides:
        return pd.Series([None] * len(signals), index=signals.index, dtype=object)
    p = signals[[f"prob_{c}" for c in sides]].apply(pd.to_numeric, errors="coerce")
    best = p.fillna(-1.0).to_numpy().argmax(axis=1)
    value = p.to_numpy()[np.arange(len(p)), best]
    return pd.Series([None if not np.isfinite(v) else f"{sides[b]} {v:.2f}" for b, v in zip(best, value)],
                     index=signals.index, dtype=object)


def all_flat_note(signals: Optional[pd.DataFrame], threshold: float) -> Optional[str]:
    """One line for a log in which every tick so far was flat (None otherwise): why, and what to change."""
    if signals is None or signals.empty or "action" not in signals or (signals["action"] != "flat").any():
        return None
    cols = [c for c in ("prob_up", "prob_down") if c in signals]
    top = pd.to_numeric(signals[cols].stack(), errors="coerce").max() if cols else np.nan
    highest = f" (the highest was {top:.2f})" if np.isfinite(top) else ""
    return (f"Every tick so far was flat: the strongest side, up or down, stayed below the {threshold:.2f} "
            f"threshold{highest}. Lower the threshold to see trades.")


def signal_table(signals: pd.DataFrame) -> pd.DataFrame:
    """The signal log for reading, newest first: the action, `P(action)` (the probability of the side traded;
    empty for flat: a P(flat) of 0.07 beside "flat" read as the model being 7 % sure of what it did), the
    `strongest side` (up or down, whichever is more likely, and its probability: how close a flat bar came to
    a trade), then price, size and levels and the class probabilities. The raw log (e.g. for a CSV) is
    `core.live.log.read_signals` itself, with its `confidence` for every row."""
    if signals is None or signals.empty:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    out = signals.rename(columns={"confidence": "P(action)"})
    out["strongest side"] = _strongest_side(signals)
    cols = [c for c in SIGNAL_COLUMNS if c in out] + [c for c in out if c.startswith("prob_")]
    out = out[cols].copy()
    for c in ("P(action)", "size") + tuple(k for k in cols if k.startswith("prob_")):
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").round(3)
    if "P(action)" in out and "action" in out:
        out.loc[out["action"] == "flat", "P(action)"] = np.nan
    for c in ("price", "stop", "target", "notional"):
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").round(2)
    for c in ("timestamp", "logged_at"):  # times, not text: the page shows them in UTC minutes
        if c in out:
            out[c] = pd.to_datetime(out[c], utc=True, errors="coerce")
    return out


# the log's columns shown at first: what a signal is (bar, action, how sure, how close to a trade) and what to do
# with it (price, size, levels) fit a narrow window; the others stay one click away in the table's column menu
LOG_SHOWN = ["timestamp", "action", "P(action)", "strongest side", "price", "size", "stop", "target"]
LOG_MORE = "notional, the class probabilities (prob_...), logged at, mode, source and run"


def signal_log_view(table: pd.DataFrame, run_id: str) -> tuple[list[str], str]:
    """The columns of a `signal_table` shown at first (a source column only when the log mixes sources) and
    the caption under the log's title (one source is named there instead)."""
    sources = sorted(table["source"].dropna().astype(str).unique()) if "source" in table else []
    shown = [c for c in LOG_SHOWN if c in table] + (["source"] if len(sources) > 1 else [])
    caption = (f"Logged once per bar and settings in the workspace (live/signals/{run_id}/), newest first"
               + (f", from {sources[0]}" if len(sources) == 1 else "") + ". "
               "P(action) is the probability of the side traded (empty for flat); the strongest side says how "
               "close a flat bar came to a trade. Hover the table for its toolbar: the eye icon shows more "
               f"columns ({LOG_MORE}), the frame icon opens it full screen. The CSV is the raw log (its "
               "`confidence` is P(action), and P(no trade) for a flat bar).")
    return shown, caption


def signal_headline(signal: Any) -> str:
    """The current signal as a markdown heading: the action (coloured), the bar and its close."""
    arrow = {"long": ":green[▲ LONG]", "short": ":red[▼ SHORT]", "flat": ":gray[● FLAT]"}[signal.action]
    return f"### {arrow} &nbsp; {signal.timestamp:%Y-%m-%d %H:%M} UTC bar · close {signal.price:,.2f}"


def signal_figures(signal: Any, threshold: float, sizing: str) -> list[tuple[str, str, Optional[str]]]:
    """(label, value, help) of the current signal's figures. A flat bar shows how far its strongest side is from
    trading, not P(flat); a trade shows the probability of the side it acts on."""
    probs = signal.probabilities
    if signal.action == "flat":
        side = max((c for c in ("up", "down") if c in probs), key=lambda c: probs[c])
        first = ("Strongest side", f"{side} {probs[side]:.2f}", f"below the {threshold:.2f} threshold, so no trade")
    else:
        first = ("Confidence", f"{signal.confidence:.2f}", "probability of the side acted on")
    return [first,
            ("Suggested size", f"{signal.size * 100:.1f} %", f"{sizing} sizing: {signal.notional:,.0f} USDT"),
            ("Stop", "-" if signal.stop is None else f"{signal.stop:,.2f}", None),
            ("Target", "-" if signal.target is None else f"{signal.target:,.2f}", None),
            ("ATR(14)", f"{signal.atr:,.2f}", None)]


def heads_caption(signal: Any) -> Optional[str]:
    """A multi-task run's predicted return and volatility over the horizon (None for a classifier)."""
    if not signal.extra:
        return None
    return " · ".join(f"predicted {k} over the horizon: {v * 100:{'+' if k == 'magnitude' else ''}.2f} %"
                      for k, v in signal.extra.items())


def loop_status(session: Any, replay: bool, interval: int) -> str:
    """The loop's state in a line: running or paused, where from, ticks and failures."""
    where = "replay" if replay else "Bybit"
    ticks = f"{session.ticks} tick{'s' if session.ticks != 1 else ''}, {session.errors} failed"
    if session.running:
        return f":green[running] · {where} · a tick every {interval} s · {ticks}"
    return f"paused · {where} · {ticks}"


def loop_error(session: Any, unreachable: str) -> Optional[str]:
    """The latest tick's failure as a sentence (None after a good tick); without a connection to Bybit
    (`unreachable`, the feed's own sentence) it points to the offline replay."""
    if not session.last_error:
        return None
    offline = (" Without a connection, choose Source: replay to see the model's signals on stored candles."
               if session.last_error == unreachable else "")
    return (f"{session.last_error} (at {session.error_at or 'now'}; the loop carries on and tries again"
            f"{' at the next tick' if session.running else ' when you step or start'}).{offline}")


def equity_figure(equity: pd.Series, buy_and_hold: Optional[pd.Series] = None, title: str = "",
                  height: int = 380) -> go.Figure:
    """Strategy equity against buy and hold over the same span (both start at the same capital)."""
    fig = go.Figure()
    if buy_and_hold is not None and len(buy_and_hold):
        fig.add_trace(go.Scatter(x=buy_and_hold.index, y=buy_and_hold.to_numpy(), name="buy and hold",
                                 line={"color": "#7f7f7f"}))
    if equity is not None and len(equity):
        fig.add_trace(go.Scatter(x=equity.index, y=equity.to_numpy(), name="model strategy",
                                 line={"color": "#1f77b4", "width": 2}))
    fig.update_layout(height=height, title=title or None, yaxis_title="equity",
                      margin={"l": 50, "r": 20, "t": 50 if title else 20, "b": 30},
                      legend={"orientation": "h", "y": 1.02, "x": 0})
    return fig


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v * 100:.1f} %" if pct else f"{v:.3f}"


def demo_classification_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The model against each baseline on the same test split."""
    rows = []
    entries = [(f"model: {summary.get('model_name', 'CNN')}", summary.get("metrics") or {})]
    entries += [(f"baseline: {k}", v) for k, v in (summary.get("baselines") or {}).items()]
    for label, m in entries:
        rows.append({"": label, "accuracy": _fmt(m.get("accuracy")),
                     "balanced accuracy": _fmt(m.get("balanced_accuracy")), "macro F1": _fmt(m.get("macro_f1"))})
    return pd.DataFrame(rows)


def demo_trading_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The model's strategy against buy and hold over the same out-of-sample span, after costs."""
    rows = []
    for label, key in (("model strategy", "backtest"), ("buy and hold", "buy_and_hold")):
        bm = summary.get(key) or {}
        rows.append({"": label, "total return": _fmt(bm.get("total_return"), pct=True),
                     "Sharpe": _fmt(bm.get("sharpe")), "max drawdown": _fmt(bm.get("max_drawdown"), pct=True),
                     "trades": "-" if bm.get("n_trades") is None else str(int(bm["n_trades"]))})
    return pd.DataFrame(rows)
