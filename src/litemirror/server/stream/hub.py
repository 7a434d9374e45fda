"""The primary's view of every other member, and commits waiting for the backup.

Theory of operation
-------------------
Every connected member has a :class:`LinkState` (kept here, updated by its
sender): what it acknowledged at each level, when it was last heard from,
and whether it is seeding, catching up or streaming.

Synchronous mirroring concerns only the *backup* (the other failover
member). It is **active** while it is connected, caught up and
acknowledging; a commit then waits until the backup acknowledged the
commit's record at the configured level (``received``, ``durable`` or
``applied``). If the backup goes silent for the quality-of-service timeout
while commits wait, or its connection drops, it is marked **inactive** and
the waiting commits go on without it. It becomes active again only once it
has acknowledged everything the primary had when it caught up, so every
commit acknowledged while it is active is on the backup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litemirror.journal import Record
from litemirror.replication.commit import CommitMode, advance, may_answer

log = logging.getLogger("litemirror.hub")

LEVELS = ("received", "durable", "applied")


@dataclass
class LinkState:
    member: str
    kind: str
    address: str = ""
    state: str = "connecting"
    received: int = 0
    durable: int = 0
    applied: int = 0
    last_contact: float = field(default_factory=time.monotonic)
    connected_at: float = field(default_factory=time.time)
    seed_total: int = 0
    seed_done: int = 0
    #: Bytes of record frames sent (after compression).
    bytes_sent: int = 0
    compression: str = "off"
    #: Closes the connection (set by the sender).
    closer: Callable[[], None] | None = None

    def acked(self, level: str) -> int:
        return int(getattr(self, level))


class Hub:
    def __init__(
        self,
        backup: str | None,
        qos_timeout: float,
        last_lsn: Callable[[], int],
        on_event: Callable[[str, str], None] | None = None,
        on_ack_timeout: Callable[[], None] | None = None,
        on_caught_up: Callable[[], None] | None = None,
        ack_level: str = "durable",
        committed_lsn: int = 0,
    ) -> None:
        """``on_ack_timeout`` and ``on_caught_up`` are the failover agent's (with an
        arbiter); without them the hub itself drops a silent backup. ``committed_lsn``:
        the commit point recovery found."""
        self.backup = backup
        self.qos_timeout = qos_timeout
        self._last_lsn = last_lsn
        self._on_event = on_event or (lambda _kind, _msg: None)
        self.links: dict[str, LinkState] = {}
        #: The mirror's acknowledgement level: what the backup must have for a
        #: record to be committed.
        self.ack_level = ack_level
        #: What lets records become committed besides backup acknowledgements.
        self.mode = CommitMode.HELD
        #: Every record at or below this LSN is committed: no failover takes it back.
        self.committed_lsn = committed_lsn
        self._commit_listeners: dict[str, Callable[[], None]] = {}
        #: With an arbiter, the failover agent decides when commits may stop
        #: waiting for the backup; the hub only reports what it sees.
        self.on_ack_timeout = on_ack_timeout
        self.on_caught_up = on_caught_up
        self._abort: BaseException | None = None
        #: The last abort's error, for commits that waited across it.
        self._aborted_with: BaseException = RuntimeError("commit aborted")
        self._abort_gen = 0
        #: Set (and replaced) whenever something a waiting commit depends on changes.
        self._changed = asyncio.Event()
        #: (lsn, cumulative bytes, ts_ms) of recent records, for lag in bytes and seconds.
        self._recent: deque[tuple[int, int, int]] = deque(maxlen=200_000)
        self._bytes = 0
        self._live: dict[str, Callable[[list[Record]], None]] = {}
        #: Highest LSN each member is known to hold durably (kept after it disconnects).
        self.known: dict[str, int] = {}

    # ------------------------------------------------------------ records

    @property
    def backup_active(self) -> bool:
        """Commits wait for the backup's acknowledgement."""
        return self.mode is CommitMode.WITH_BACKUP

    def records_durable(self, records: list[Record]) -> None:
        for r in records:
            self._bytes += len(r.payload) + 64
            self._recent.append((r.lsn, self._bytes, r.ts_ms))
        for push in list(self._live.values()):
            push(records)
        if records and self.mode is CommitMode.ALONE:
            self._advance()

    def subscribe(
        self,
        member: str,
        push: Callable[[list[Record]], None],
        committed: Callable[[], None] | None = None,
    ) -> None:
        """Push durable records to ``member``'s sender; call ``committed()`` when the
        commit point moves (for members that apply only committed records)."""
        self._live[member] = push
        if committed is not None:
            self._commit_listeners[member] = committed

    def unsubscribe(self, member: str) -> None:
        self._live.pop(member, None)
        self._commit_listeners.pop(member, None)

    def _backup_acked(self, level: str) -> int:
        link = self.links.get(self.backup) if self.backup is not None else None
        return link.acked(level) if link is not None else 0

    def _advance(self) -> None:
        new = advance(
            self.committed_lsn,
            self.mode,
            backup_acked=self._backup_acked(self.ack_level),
            local_durable=self._last_lsn(),
        )
        if new != self.committed_lsn:
            self.committed_lsn = new
            for tell in list(self._commit_listeners.values()):
                tell()
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -------------------------------------------------------------- links

    def connected(self, link: LinkState) -> None:
        self.links[link.member] = link
        self._event("member_connected", f"member {link.member} ({link.kind}) connected")

    async def disconnected(self, member: str, reason: str) -> None:
        link = self.links.pop(member, None)
        self.unsubscribe(member)
        if link is None:
            return
        self._event("member_disconnected", f"member {member} disconnected: {reason}")
        if member == self.backup and self.backup_active:
            if self.on_ack_timeout is not None:
                self.on_ack_timeout()
            else:
                await self.set_backup_active(False, f"backup {member} disconnected ({reason})")

    async def acked(self, member: str, received: int, durable: int, applied: int) -> None:
        link = self.links.get(member)
        if link is None:
            return
        link.received = max(link.received, received)
        link.durable = max(link.durable, durable)
        link.applied = max(link.applied, applied)
        link.last_contact = time.monotonic()
        self.known[member] = max(self.known.get(member, 0), link.durable)
        # Caught up: everything the primary holds is durable on the backup.
        if (
            member == self.backup
            and not self.backup_active
            and link.state == "streaming"
            and link.durable >= self._last_lsn()
        ):
            # Switch the commit path to "wait for the backup" in the same step
            # that it is reported.
            await self.set_backup_active(
                True, f"backup {member} caught up at LSN {link.durable} and is active"
            )
            if self.on_caught_up is not None:
                self.on_caught_up()
        if member == self.backup:
            self._advance()

    def drop_all(self) -> None:
        """Close every replication connection (this member stops being primary).

        Holds the commit point: a backup that stops being active because the
        member is being demoted is no proof that anything may commit alone.
        """
        for link in list(self.links.values()):
            if link.closer is not None:
                link.closer()
        self.hold()

    def hold(self) -> None:
        """Nothing more commits by local durability (the member is deposed or demoted)."""
        self.mode = CommitMode.HELD
        self._signal()

    def heard_from(self, member: str) -> None:
        link = self.links.get(member)
        if link is not None:
            link.last_contact = time.monotonic()

    async def set_backup_active(self, active: bool, reason: str) -> None:
        """Commits wait for the backup (``active``) or, with proof, go on alone.

        ``active=False`` is the proof: the caller knows this primary may commit
        without its backup (the arbiter recorded the backup inactive for this
        epoch, or a mirror without an arbiter dropped it).
        """
        mode = CommitMode.WITH_BACKUP if active else CommitMode.ALONE
        if mode is self.mode:
            return
        was_held = self.mode is CommitMode.HELD
        self.mode = mode
        if self.backup is not None and self.backup in self.links:
            self.links[self.backup].state = "active" if active else "streaming"
        if not (was_held and not active):
            # Opening writes alone is said by the member; a backup dropped is news.
            log.warning(reason) if not active else log.info(reason)
            self._event("backup_active" if active else "backup_inactive", reason)
        self._advance()

    # ------------------------------------------------------------ commits

    async def wait_for(self, lsn: int, level: str) -> None:
        """Return once the record ``lsn`` is committed (and, while commits wait for
        the backup, the backup has it at ``level``).

        Raises the error given to :meth:`abort_waiters` (the member was deposed)
        unless the record is committed by then. Never returns for a record that
        is not committed: a backup that stops being active without proof that
        this primary may commit alone (see :meth:`set_backup_active`) leaves the
        commit waiting.
        """
        gen = self._abort_gen
        deadline = time.monotonic() + self.qos_timeout
        reported = False
        while True:
            if may_answer(
                lsn,
                committed=self.committed_lsn,
                mode=self.mode,
                backup_acked_at_level=self._backup_acked(level),
            ):
                return
            if self._abort is not None or gen != self._abort_gen:
                # Deposed before or while this commit waited.
                raise self._abort or self._aborted_with
            changed = self._changed
            timeout: float | None = None
            if self.mode is CommitMode.WITH_BACKUP:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if self.on_ack_timeout is None:
                        # No arbiter: the fixed primary drops a silent backup.
                        self._mark_inactive(
                            f"backup {self.backup} marked inactive: no acknowledgement of LSN "
                            f"{lsn} within {self.qos_timeout * 1000:.0f} ms"
                        )
                        continue
                    if not reported:
                        # The agent decides (with the arbiter); commits wait meanwhile.
                        reported = True
                        self.on_ack_timeout()
                    deadline = time.monotonic() + self.qos_timeout
                    remaining = self.qos_timeout
                timeout = remaining
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass

    async def abort_waiters(self, exc: BaseException) -> None:
        """Fail every commit waiting for the backup (the member was deposed)."""
        self._abort = exc
        self._aborted_with = exc
        self._abort_gen += 1
        self._signal()

    def clear_abort(self) -> None:
        self._abort = None

    def _mark_inactive(self, reason: str) -> None:
        self.mode = CommitMode.ALONE
        if self.backup is not None and self.backup in self.links:
            self.links[self.backup].state = "streaming"
        log.warning(reason)
        self._event("backup_inactive", reason)
        self._advance()

    # ------------------------------------------------------------- status

    def lag(self, link: LinkState, now_ms: int) -> dict[str, Any]:
        last = self._last_lsn()
        applied = link.applied
        lag_records = max(0, last - applied)
        lag_bytes = 0
        lag_s = 0.0
        if lag_records and self._recent:
            first_lsn = self._recent[0][0]
            idx = applied - first_lsn
            if 0 <= idx < len(self._recent):
                lag_bytes = self._bytes - self._recent[idx][1]
                nxt = idx + 1
                if nxt < len(self._recent):
                    lag_s = max(0.0, (now_ms - self._recent[nxt][2]) / 1000)
            else:
                lag_bytes = -1
        return {"records": lag_records, "bytes": lag_bytes, "seconds": round(lag_s, 3)}

    def _event(self, kind: str, message: str) -> None:
        self._on_event(kind, message)
