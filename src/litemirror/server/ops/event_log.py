"""The member's event log: one JSON line per incident or action in ``events.jsonl``.

Every event is also logged. Writing the event log never blocks or fails
the database: an I/O error is logged and the event dropped.

Subscribers (:meth:`EventLog.subscribe`) see every event as it is emitted,
on the thread that emitted it. They must only hand the event on (put it in
a queue) and return; one that raises is logged and kept.

Events a peer can cause at will (refused connections, refused logins) go
through :meth:`EventLog.emit_limited`: one event per key (e.g. peer host and
reason) and minute; the next one says how many like it were held back, and
:meth:`EventLog.flush` (called every second by the process) emits a summary
for a key that went quiet with some held back, so no count is lost.

The file stays open between events (a process that ran out of descriptors
could not open it to say so); it is reopened when it was moved away
(log rotation) or after an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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


@dataclass
class _Held:
    last_emitted: float
    held: int = 0
    kind: str = ""
    message: str = ""
    severity: str = "info"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Gate:
    """At most one event per key and interval; what was held back is counted, never lost.

    ``check`` says whether an event for ``key`` may go out now and, if so,
    how many were held back since the last one; ``due`` lists the keys whose
    interval ended with events held back (and forgets them), for a summary.
    Memory is bounded: past ``max_keys`` the oldest key is forgotten and
    what it held is added to ``overflow``, reported with the next summary.
    """

    every_s: float = 60.0
    max_keys: int = 1000
    _keys: dict[Hashable, _Held] = field(default_factory=dict)
    overflow: int = 0

    def check(self, key: Hashable, now: float) -> int | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last_emitted < self.every_s:
            entry.held += 1
            return None
        held = entry.held if entry is not None else 0
        self._keys.pop(key, None)
        while len(self._keys) >= self.max_keys:
            oldest = next(iter(self._keys))
            self.overflow += self._keys.pop(oldest).held
        self._keys[key] = _Held(now)
        return held

    def note(
        self, key: Hashable, kind: str, message: str, severity: str, data: dict[str, Any]
    ) -> None:
        """Remember the last event held back for ``key`` (what its summary repeats)."""
        entry = self._keys.get(key)
        if entry is not None:
            entry.kind, entry.message, entry.severity, entry.data = kind, message, severity, data

    def due(self, now: float) -> list[tuple[Hashable, _Held]]:
        out = [
            (key, e)
            for key, e in self._keys.items()
            if now - e.last_emitted >= self.every_s and e.held
        ]
        for key, _ in out:
            del self._keys[key]
        # Quiet keys with nothing held are forgotten too: memory follows activity.
        for key in [k for k, e in self._keys.items() if now - e.last_emitted >= self.every_s]:
            del self._keys[key]
        return out


class EventLog:
    def __init__(
        self,
        path: Path,
        member: str,
        keep: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: what rate-limited events measure their minute with."""
        self.path = path
        self.clock = clock
        self.member = member
        self.recent: deque[Event] = deque(maxlen=keep)
        self._enc = msgspec.json.Encoder()
        self._subscribers: list[Callable[[Event], None]] = []
        self._file: IO[bytes] | None = None
        self._file_lock = threading.Lock()
        self.gate = Gate()

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
        self._write(self._enc.encode(ev) + b"\n")
        for callback in list(self._subscribers):
            try:
                callback(ev)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, kind)
        return ev

    def emit_limited(
        self, kind: str, key: Hashable, message: str, severity: str = "warning", **data: Any
    ) -> Event | None:
        """Emit unless an event for ``key`` went out in the last minute (then only log it).

        The event that goes out after some were held back says how many.
        """
        held = self.gate.check(key, self.clock())
        if held is None:
            # Counted for the next event; in the log only at debug level, or a flood
            # would write one line per attempt.
            log.debug("%s (held back): %s", kind, message)
            self.gate.note(key, kind, message, severity, data)
            return None
        if held:
            message += f" ({held} more like it held back in the last {self.gate.every_s:g} s)"
            data = {**data, "held_back": held}
        return self.emit(kind, message, severity, **data)

    def flush(self) -> None:
        """Emit a summary for each key whose minute ended with events held back."""
        for _key, e in self.gate.due(self.clock()):
            extra = ""
            if self.gate.overflow:
                extra = f"; {self.gate.overflow} more for other peers"
                self.gate.overflow = 0
            self.emit(
                e.kind,
                f"{e.held} more like this held back in the last {self.gate.every_s:g} s{extra}; "
                f"the last: {e.message}",
                e.severity,
                **{**e.data, "held_back": e.held},
            )

    def _write(self, line: bytes) -> None:
        with self._file_lock:
            try:
                if self._file is not None and not _same_file(self._file, self.path):
                    self._file.close()
                    self._file = None
                if self._file is None:
                    self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
                self._file.write(line)
            except OSError as exc:
                log.warning("could not write the event log %s: %s", self.path, exc)
                if self._file is not None:
                    self._file.close()
                    self._file = None

    def close(self) -> None:
        with self._file_lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _same_file(f: IO[bytes], path: Path) -> bool:
    """Whether ``path`` still names the open file ``f`` (not moved away or replaced)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
