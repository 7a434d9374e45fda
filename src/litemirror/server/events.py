"""The member's event log: one JSON line per incident or action in ``events.jsonl``.

Every event is also logged. Writing the event log never blocks or fails
the database: an I/O error is logged and the event dropped.

Subscribers (:meth:`EventLog.subscribe`) see every event as it is emitted,
on the thread that emitted it. They must only hand the event on (put it in
a queue) and return; one that raises is logged and kept.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("litemirror.events")

_LEVEL = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class Event(msgspec.Struct, frozen=True):
    ts: float
    member: str
    kind: str
    severity: str
    message: str
    data: dict[str, Any] = {}


class EventLog:
    def __init__(self, path: Path, member: str, keep: int = 500) -> None:
        self.path = path
        self.member = member
        self.recent: deque[Event] = deque(maxlen=keep)
        self._enc = msgspec.json.Encoder()
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event emitted from now on; returns an unsubscriber."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, kind: str, message: str, severity: str = "info", **data: Any) -> Event:
        ev = Event(
            ts=round(time.time(), 3),
            member=self.member,
            kind=kind,
            severity=severity,
            message=message,
            data=data,
        )
        self.recent.append(ev)
        log.log(_LEVEL.get(severity, logging.INFO), "%s: %s", kind, message)
        try:
            with open(self.path, "ab") as f:
                f.write(self._enc.encode(ev) + b"\n")
        except OSError as exc:
            log.warning("could not write the event log %s: %s", self.path, exc)
        for callback in list(self._subscribers):
            try:
                callback(ev)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, kind)
        return ev
