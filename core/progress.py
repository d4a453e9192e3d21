"""The progress-callback protocol and cancel flag shared by every long job (fetch, train, sweep).

A job takes `progress: ProgressCallback | None` and `cancel: CancelToken | None`; it calls
`progress(Progress(...))` as it goes and checks `cancel.raise_if_cancelled()` at safe points.
Pages adapt this to `st.progress`; the CLI to a terminal bar.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class Cancelled(Exception):
    """Raised inside a job when its CancelToken was set."""


@dataclass
class Progress:
    stage: str                      # "fetch", "epoch", "batch", "sweep", ...
    done: float                     # units done so far
    total: Optional[float] = None   # None when unknown
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> Optional[float]:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """A thread-safe cancel flag."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on cancel; True if cancelled."""
        return self._event.wait(max(0.0, seconds))

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def duration_text(seconds: float) -> str:
    """A duration as a user reads it: "45 s", "3 min 05 s", "1 h 02 min"."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def eta_text(fraction: Optional[float], elapsed: float, since: tuple[float, float] = (0.0, 0.0)) -> str:
    """How long a job has run and, once its rate is known, about how long is left at that rate: `fraction`
    done after `elapsed` seconds; `since` = (seconds, fraction) when the rate started to be measured (the
    first step, after the set-up). Empty when nothing can be said yet."""
    if fraction is None or elapsed < 0:
        return ""
    t0, f0 = since
    done, spent = fraction - f0, elapsed - t0
    text = f"{duration_text(elapsed)} so far"
    if fraction >= 1.0 or done < 0.02 or spent < 2.0:  # too little seen for a rate
        return text
    return f"{text}, about {duration_text(spent / done * (1.0 - fraction))} left at this speed"


def report(progress: Optional[ProgressCallback], *args: Any, **kwargs: Any) -> None:
    """Call `progress` with a Progress built from the arguments, if a callback was given."""
    if progress is not None:
        progress(Progress(*args, **kwargs))


def check(cancel: Optional[CancelToken]) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()
