"""The horizon: an LSN at or below which every journal record is committed in its database.

After a crash the member replays the journal from its last saved horizon, so
the horizon must never name a record whose database transaction is not
committed yet. On the primary a record becomes durable in the journal (the
journal writer says so on this loop) before its group commits in SQLite;
between the two it is *in flight*. The horizon is therefore the lowest
in-flight LSN minus one, or the newest durable record this loop has heard of
when nothing is in flight. A following member's horizon is what its receiver
applied; any other member keeps the last value it saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from litemirror.journal import RecordKind
from litemirror.server.ports import RoleView
from litemirror.server.role import Role


class Horizon:
    """Tracks in-flight records on the primary and answers the current horizon."""

    def __init__(
        self,
        *,
        role: RoleView,
        journal_last_lsn: Callable[[], int],
        replica_applied: Callable[[], int | None],
        saved: int,
        recovered: int,
    ) -> None:
        """``saved``: the horizon the member state file holds; ``recovered``: the LSN up
        to which recovery applied the journal (everything up to it is in the databases)."""
        self._role = role
        self._last_lsn = journal_last_lsn
        self._replica_applied = replica_applied
        self._inflight: set[int] = set()
        #: Highest LSN this event loop has been told is durable.
        self._seen = recovered
        #: The value last saved (what a non-primary, non-following member answers).
        self.saved = saved

    def records_durable(self, records: Sequence[Any]) -> None:
        """The journal writer made ``records`` durable (called on the loop)."""
        for r in records:
            if r.kind == RecordKind.CHANGES:
                self._inflight.add(r.lsn)
        if records:
            self._seen = max(self._seen, records[-1].lsn)

    def committed(self, _db: str, lsn: int) -> None:
        """The group of record ``lsn`` committed in its database."""
        self._inflight.discard(lsn)

    def applied_through(self, lsn: int) -> None:
        """Every journal record up to ``lsn`` is in its database (a replay finished)."""
        self._seen = max(self._seen, lsn)

    @property
    def seen(self) -> int:
        return self._seen

    def current(self) -> int:
        applied = self._replica_applied()
        if applied is not None:
            return applied
        if self._role().role is not Role.PRIMARY:
            return self.saved
        # Not the journal's last LSN: the journal thread advances it before this loop
        # hears of the new records (and adds them to the in-flight set), so in between
        # it would name records whose databases are not committed yet.
        seen = min(self._seen, self._last_lsn())
        if self._inflight:
            return min(min(self._inflight) - 1, seen)
        return seen
