"""Where this member stands in the mirror's history, whatever its role.

One answer for the questions the session, the admin actions, the HTTP API and
the status ask: which member is primary as far as this one knows, how far the
journal and the databases here go, the commit point, and the wait of a
read-your-writes read on a non-primary.
"""

from __future__ import annotations

from collections.abc import Callable

from litemirror.config import Member
from litemirror.server.ports import RoleView
from litemirror.server.role import Role
from litemirror.server.stream.receiver import Receiver


class Position:
    def __init__(
        self,
        *,
        me: Member,
        role: RoleView,
        receiver: Callable[[], Receiver | None],
        journal_last_lsn: Callable[[], int],
        committed_lsn: Callable[[], int],
    ) -> None:
        """``receiver``: the running receiver while following; ``committed_lsn``: the
        hub's commit point (the primary's)."""
        self._me = me
        self._role = role
        self._receiver = receiver
        self._last_lsn = journal_last_lsn
        self._committed = committed_lsn

    @property
    def primary_address(self) -> str | None:
        if self._role().role is Role.PRIMARY:
            return self._me.address
        rcv = self._receiver()
        if rcv is not None and rcv.primary is not None:
            return rcv.primary.address
        return None

    @property
    def last_lsn(self) -> int:
        return self._last_lsn()

    @property
    def applied_lsn(self) -> int:
        rcv = self._receiver()
        return rcv.applied if rcv is not None else self._last_lsn()

    def confirmed_lsn(self) -> int:
        """This member's commit point (see replication/commit.py)."""
        rcv = self._receiver()
        return rcv.confirmed if rcv is not None else self._committed()

    async def wait_applied(self, lsn: int, timeout: float) -> bool:
        """Read-your-writes on a non-primary: wait until ``lsn`` is applied here."""
        if self._role().role is Role.PRIMARY or lsn <= 0:
            return True
        rcv = self._receiver()
        if rcv is None:
            return False
        return await rcv.wait_applied(lsn, timeout)
