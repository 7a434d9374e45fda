"""Group commit at the journal: many appends, one write, one fsync.

Theory of operation
-------------------
Database writers (one per database, any number of them) call
:meth:`JournalWriter.append` from the event loop. Requests are queued; one
dedicated thread takes *everything* queued at that moment, hands it to
:meth:`Journal.append` (which writes the records and fsyncs once), and
resolves each request's future on the event loop. While that fsync runs,
new requests accumulate and form the next batch — the batch size adapts to
the load by itself, with no timer.

If the append fails (disk full, I/O error) the journal has already rolled
itself back to its previous end; every request of that batch gets the
error and nothing of it exists anywhere.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litemirror.errors import Error, JournalError
from litemirror.journal import Journal, NewRecord, Record, RecordKind


@dataclass(slots=True)
class _Pending:
    entry: NewRecord
    future: asyncio.Future[Record]


class JournalWriter:
    """Owns the journal's single writer thread."""

    def __init__(self, journal: Journal, loop: asyncio.AbstractEventLoop) -> None:
        self.journal = journal
        self._loop = loop
        self._pending: list[_Pending] = []
        self._cv = threading.Condition()
        self._closing = False
        self._listeners: list[Callable[[list[Record]], None]] = []
        self.fsyncs = 0
        self.records = 0
        self.bytes = 0
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def on_durable(self, listener: Callable[[list[Record]], None]) -> None:
        """Call ``listener(records)`` on the event loop after each durable batch."""
        self._listeners.append(listener)

    async def append(self, epoch: int, kind: RecordKind, db: str, payload: bytes) -> Record:
        fut: asyncio.Future[Record] = self._loop.create_future()
        entry = NewRecord(
            epoch=epoch, kind=kind, db=db, ts_ms=int(time.time() * 1000), payload=payload
        )
        with self._cv:
            if self._closing:
                raise JournalError("the journal is closed; the member is shutting down")
            self._pending.append(_Pending(entry, fut))
            self._cv.notify()
        return await fut

    def call(self, fn: Callable[[Journal], object]) -> asyncio.Future[object]:
        """Run ``fn(journal)`` on the writer thread, between appends (switch, purge)."""
        fut: asyncio.Future[object] = self._loop.create_future()

        def job(j: Journal) -> None:
            try:
                res = fn(j)
            except BaseException as exc:
                self._loop.call_soon_threadsafe(_set_exc, fut, exc)
            else:
                self._loop.call_soon_threadsafe(_set_result, fut, res)

        with self._cv:
            self._pending.append(_Pending(job, fut))  # type: ignore[arg-type]
            self._cv.notify()
        return fut

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                if not self._pending and self._closing:
                    return
                batch, self._pending = self._pending, []
            entries: list[_Pending] = []
            for p in batch:
                if callable(p.entry):
                    self._flush(entries)
                    entries = []
                    p.entry(self.journal)
                else:
                    entries.append(p)
            self._flush(entries)

    def _flush(self, entries: list[_Pending]) -> None:
        if not entries:
            return
        try:
            records = self.journal.append([p.entry for p in entries])
        except BaseException as exc:
            err = exc if isinstance(exc, Error) else JournalError(f"journal append failed: {exc}")
            for p in entries:
                self._loop.call_soon_threadsafe(_set_exc, p.future, err)
            return
        self.fsyncs += 1
        self.records += len(records)
        self.bytes += sum(len(r.payload) for r in records)
        # Listeners first: callbacks run in the order they were scheduled, so
        # they see the records before any waiting writer can act on them.
        if self._listeners:
            self._loop.call_soon_threadsafe(self._notify, records)
        for p, r in zip(entries, records, strict=True):
            self._loop.call_soon_threadsafe(_set_result, p.future, r)

    def _notify(self, records: list[Record]) -> None:
        for listener in self._listeners:
            listener(records)


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exc(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
