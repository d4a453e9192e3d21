"""Background jobs for pages: a thread that makes no `st.*` calls, polled by a fragment.

A `Job` runs `fn(progress=..., cancel=...)` in a daemon thread, records the latest `Progress` events and
the result or error. Jobs live in a process-wide registry keyed by (session id, name) so that a user can
leave the page and come back to a running job. See STREAMLIT_NOTES.md ("Long jobs").
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from core.errors import UserError
from core.progress import CancelToken, Cancelled, Progress, eta_text

_REGISTRY: dict[tuple[str, str], "Job"] = {}
_LOCK = threading.Lock()


@dataclass
class Job:
    name: str
    cancel: CancelToken = field(default_factory=CancelToken)
    events: list[Progress] = field(default_factory=list)
    latest: dict[str, Progress] = field(default_factory=dict)  # last event per stage
    first: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (seconds in, fraction)
    result: Any = None
    error: Optional[str] = None     # one sentence for st.error (a UserError's text, or "Type: message")
    trace: Optional[str] = None     # the traceback, only for bugs (not UserErrors): for an expander
    cancelled: bool = False
    done: bool = False
    started_at: float = field(default_factory=time.time)
    finished_at: Optional[float] = None
    thread: Optional[threading.Thread] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_progress(self, p: Progress) -> None:
        with self._lock:
            self.latest[p.stage] = p
            self.first.setdefault(p.stage, (time.time() - self.started_at, p.fraction or 0.0))
            if p.stage != "batch":  # per-batch events only keep the latest, others are history
                self.events.append(p)

    def snapshot(self) -> tuple[list[Progress], dict[str, Progress]]:
        with self._lock:
            return list(self.events), dict(self.latest)

    def eta(self, stage: str = "batch") -> str:
        """Time so far and about how long is left, from the rate of `stage`'s events (core.progress.eta_text)."""
        with self._lock:
            p, first = self.latest.get(stage), self.first.get(stage, (0.0, 0.0))
        return eta_text(p.fraction if p else None, time.time() - self.started_at, first)

    @property
    def running(self) -> bool:
        return not self.done

    def stop(self) -> None:
        self.cancel.cancel()


def _pin_tab() -> None:
    """A reload of the tab must find the job it started: the tab's id goes into the address now."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is not None:  # not when called outside a page (tests, scripts)
        from ui.common import pin_tab

        pin_tab()


def start_job(session_id: str, name: str, fn: Callable[..., Any], **kwargs: Any) -> Job:
    """Start `fn(progress=job.on_progress, cancel=job.cancel, **kwargs)` in a thread, unless a job of that
    name is already running for this session (then that one is returned)."""
    key = (session_id, name)
    with _LOCK:
        _prune_locked()
        existing = _REGISTRY.get(key)
        if existing is not None and existing.running:
            return existing
        job = Job(name=name)
        _REGISTRY[key] = job

    def target() -> None:
        try:
            job.result = fn(progress=job.on_progress, cancel=job.cancel, **kwargs)
        except Cancelled:
            job.cancelled = True
        except UserError as exc:
            job.error = str(exc)
        except Exception as exc:  # a bug: keep the trace apart, for the page's expander
            job.error = f"{type(exc).__name__}: {exc}"
            job.trace = traceback.format_exc()
        finally:
            job.finished_at = time.time()
            job.done = True

    job.thread = threading.Thread(target=target, name=f"job-{name}", daemon=True)
    job.thread.start()
    _pin_tab()
    return job


# Finished jobs of tabs that never came back would otherwise pile up for the life of the server.
_KEEP_FINISHED_S = 6 * 3600


def _prune_locked() -> None:
    now = time.time()
    stale = [k for k, j in _REGISTRY.items() if j.done and j.finished_at and now - j.finished_at > _KEEP_FINISHED_S]
    for k in stale:
        del _REGISTRY[k]


def get_job(session_id: str, name: str) -> Optional[Job]:
    with _LOCK:
        return _REGISTRY.get((session_id, name))


def forget_job(session_id: str, name: str) -> None:
    with _LOCK:
        _REGISTRY.pop((session_id, name), None)
