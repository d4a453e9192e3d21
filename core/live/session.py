"""One live or replay loop's state between ticks: the Live page keeps one per source in its session, the CLI one
per command. `tick` makes the feed on first use, moves a replay's clock (not on the first tick, which decides
where the clock was put), and counts what happened; nothing here raises for a user-facing problem."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import pandas as pd

from core.live.signals import LiveModel, Signal, TickResult, tick

# makes the feed of a source: (feed, a sentence about where a replay starts, or None)
FeedMaker = Callable[[], tuple[Any, Optional[str]]]


@dataclass
class LiveSession:
    key: Any = None                      # the source this state belongs to (a new source: a new session)
    running: bool = False
    last: Optional[Signal] = None        # the latest signal
    last_tick: float = 0.0               # time.monotonic() of the latest tick
    ticks: int = 0
    errors: int = 0
    last_error: Optional[str] = None
    error_at: Optional[str] = None       # wall-clock time of the latest error, HH:MM:SS
    feed: Any = None
    candles: Optional[pd.DataFrame] = None  # the latest ticks' candles, for the chart (the last 300)
    finished: bool = False               # replay: the data ran out
    notes: list[str] = field(default_factory=list)  # warnings about the latest signal (gaps, timeframe)
    start_note: Optional[str] = None     # replay: the start moved out of the indicators' warm-up

    def ensure_feed(self, make: FeedMaker) -> Any:
        """The source's feed, made once (a replay keeps its clock in it, a Bybit client is reused)."""
        if self.feed is None:
            self.feed, self.start_note = make()
        return self.feed

    def tick(self, lm: LiveModel, make: FeedMaker, cfg: Any = None, step: int = 1) -> Optional[TickResult]:
        """One turn: the first tick decides where the clock stands, later ones move a replay `step` bars.
        None when the feed could not be made (a bad symbol or market: counted and said as an error)."""
        self.last_tick = time.monotonic()
        try:
            feed = self.ensure_feed(make)
        except Exception as exc:  # noqa: BLE001 - said on the page, the loop carries on
            self._failed(str(exc))
            return None
        res = tick(lm, feed, cfg, advance=step if self.ticks else 0)
        self.ticks += 1
        if getattr(feed, "mode", "") == "replay":
            self.finished = res.finished
            self.running = self.running and not res.finished
        if res.error:
            self._failed(res.error)
        else:
            self.last_error = None
            self.notes, self.last = res.notes, res.signal
            self.candles = res.candles.iloc[-300:] if res.candles is not None else None
        return res

    def _failed(self, error: str) -> None:
        self.errors += 1
        self.last_error = error
        self.error_at = time.strftime("%H:%M:%S")

    def due(self, interval: float) -> bool:
        """Whether a running loop's next tick is due (a little early is fine: the timer is not exact)."""
        return self.running and time.monotonic() - self.last_tick >= interval * 0.9

    def toggle(self) -> None:
        """Start (the next look takes a tick at once) or pause."""
        self.running = not self.running
        if self.running:
            self.last_tick = 0.0

    def reset(self) -> None:
        """Back to the start of the same source: a new feed, no ticks."""
        for f in fields(self):
            if f.name != "key":
                setattr(self, f.name, f.default_factory() if callable(f.default_factory) else f.default)


__all__ = ["FeedMaker", "LiveSession"]
