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


def report(progress: Optional[ProgressCallback], *args: Any, **kwargs: Any) -> None:
    """Call `progress` with a Progress built from the arguments, if a callback was given."""
    if progress is not None:
        progress(Progress(*args, **kwargs))


def check(cancel: Optional[CancelToken]) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()
