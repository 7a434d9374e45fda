"""Fakes of the operator-facing ports (:mod:`litemirror.server.ops.ports`) for component tests.

:class:`HttpRig` builds :class:`~litemirror.server.ops.ports.HttpPorts` from a
role cell and small fakes: users with passwords in a dict, admin actions that
only record what they were asked, a status source that filters as the member's
does, fixed databases and replica figures. The HTTP API's app is then served
in-process by aiohttp's own test server (``aiohttp.test_utils``).

:class:`CanaryRig` builds :class:`~litemirror.server.ops.ports.CanaryPorts`
whose journal is a list and whose replication wait is a switch the test sets,
on a :class:`~litemirror.testing.fakes.FakeClock` for wall time.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from litemirror.config import Config, Member, build
from litemirror.errors import AuthenticationError, OperationalError, PermissionDeniedError
from litemirror.security.roles import Principal, action_needs, allows
from litemirror.security.visibility import audience_of, status_view
from litemirror.server.front.users import UserRow
from litemirror.server.ops.event_log import Event
from litemirror.server.ops.ports import (
    CanaryPorts,
    Following,
    HttpPorts,
    OpenDatabase,
    ReplicaFigures,
)
from litemirror.server.role import Role, RoleCell

from .fakes import EventRecorder, FakeClock

__all__ = [
    "CanaryRig",
    "FakeAdmin",
    "FakeHttpUsers",
    "FakeMetricsPage",
    "FakeOpsDatabases",
    "FilteringStatus",
    "HttpRig",
    "ops_config",
]


def ops_config(data_dir: Path, *, auth_require: bool = False) -> Config:
    """A two-member mirror (``a`` serves HTTP, ``b`` is its failover peer)."""
    return build(
        {
            "mirror": {"name": "test", "databases": []},
            "auth": {"require": auth_require},
            "members": [
                {
                    "name": "a",
                    "address": "127.0.0.1:7701",
                    "http": "127.0.0.1:7801",
                    "data_dir": str(data_dir / "a"),
                },
                {"name": "b", "address": "127.0.0.1:7702", "data_dir": str(data_dir / "b")},
            ],
        },
        environ={},
    )


class FakeHttpUsers:
    """Users with plain passwords in a dict; refusals are recorded, not rate-limited."""

    def __init__(self, users: dict[str, tuple[str, str]] | None = None) -> None:
        #: name -> (password, role)
        self.users = users or {}
        self.refusals: list[tuple[str, str, str]] = []

    async def authenticate(
        self, name: str, password: str | None, cert_user: str | None, peer: str
    ) -> Principal:
        entry = self.users.get(name)
        if entry is None or password != entry[0]:
            raise AuthenticationError("authentication failed: the login was not accepted")
        return Principal(name, entry[1], "password")

    async def authorize_action(
        self, principal: Principal, action: str, args: dict[str, Any], peer: str
    ) -> Principal:
        needed = action_needs(action, args)
        if not allows(principal.role, needed):
            raise PermissionDeniedError(f"{action} needs the {needed} role")
        return principal

    async def bootstrap_allowed(self, peer: str) -> bool:
        return False

    def member_certificate(self, ssl_object: ssl.SSLObject | None) -> str | None:
        return None

    async def lookup(self, name: str) -> UserRow | None:
        entry = self.users.get(name)
        if entry is None:
            return None
        return UserRow(name, entry[1], f"hash-of-{entry[0]}", "", "")

    def refused(self, peer: str, kind: str, message: str) -> None:
        self.refusals.append((peer, kind, message))


@dataclasses.dataclass
class FakeAdmin:
    """Admin actions that only record what they were asked."""

    runs: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    async def run(
        self, action: str, args: dict[str, Any], actor: Principal | None = None
    ) -> dict[str, Any]:
        self.runs.append((action, args))
        return {"done": action}


@dataclasses.dataclass
class FilteringStatus:
    """A fixed status, filtered for the viewer as the member's ``status(viewer)`` does."""

    info: dict[str, Any]
    auth_require: bool
    viewers: list[Principal | None] = dataclasses.field(default_factory=list)

    def status(self, viewer: Principal | None = None) -> dict[str, Any]:
        self.viewers.append(viewer)
        if viewer is None:
            return dict(self.info)
        return status_view(dict(self.info), audience_of(viewer, self.auth_require))


class FakeMetricsPage:
    def __init__(self) -> None:
        self.polls = 0

    def render(self) -> bytes:
        return b"litemirror_up 1\n"

    def poll(self) -> None:
        self.polls += 1


@dataclasses.dataclass(frozen=True)
class _OpenDb:
    name: str
    applied_lsn: int
    commits: int


class FakeOpsDatabases:
    """Named databases, of which ``open`` are open (with LSN and commit counts)."""

    def __init__(self, names: list[str], open_: dict[str, tuple[int, int]]) -> None:
        self._names = names
        self._open = open_

    def names(self) -> list[str]:
        return list(self._names)

    def open_databases(self) -> Sequence[OpenDatabase]:
        return [_OpenDb(n, lsn, commits) for n, (lsn, commits) in self._open.items()]


class HttpRig:
    """HTTP ports of member ``a`` made of fakes; the test moves ``role`` and ``following``."""

    def __init__(self, data_dir: Path, *, auth_require: bool = False) -> None:
        self.config = ops_config(data_dir, auth_require=auth_require)
        self.me: Member = self.config.members[0]
        self.role = RoleCell()
        self.role.set(role=Role.PRIMARY, state="active", epoch=3, writable=True, reason="test")
        self.following: Following | None = None
        self.users = FakeHttpUsers()
        self.admin = FakeAdmin()
        self.events = EventRecorder()
        self.metrics = FakeMetricsPage()
        self.status = FilteringStatus(
            {"member": "a", "role": "primary", "state": "active", "pid": 4242},
            auth_require,
        )
        self.databases = FakeOpsDatabases(["db1", "db2"], {"db1": (7, 5)})
        self.recent: list[Event] = []

    def ports(self, http_token: str | None = None) -> HttpPorts:
        return HttpPorts(
            config=lambda: self.config,
            me=self.me,
            role=self.role,
            tls=None,
            http_token=http_token,
            status=self.status,
            admin=self.admin,
            users=self.users,
            event=self.events,
            metrics=self.metrics,
            databases=self.databases,
            importing=lambda name: name == "db2",
            following=lambda: self.following,
            replicas=lambda _now: [ReplicaFigures("b", 0, 0.0, 7, 7, 7)],
            recent_events=lambda: self.recent,
            failover_peer=self.config.members[1],
        )


class CanaryRig:
    """Canary ports on a fake wall clock; markers go to a list, replication waits on a flag."""

    def __init__(self, role: Role = Role.PRIMARY) -> None:
        self.clock = FakeClock(1_700_000_000.0)
        self.role = RoleCell()
        self.role.set(role=role, state="active", epoch=4, writable=role is Role.PRIMARY)
        self.events = EventRecorder()
        #: (epoch, payload) of each marker journalled.
        self.markers: list[tuple[int, bytes]] = []
        #: When set, the replication wait fails with this error (the backup did not answer).
        self.replication_error: OperationalError | None = None
        self.applied: dict[str, int] = {}

    async def _append(self, epoch: int, payload: bytes) -> int:
        self.markers.append((epoch, payload))
        return len(self.markers)

    async def _wait(self, lsn: int) -> None:
        if self.replication_error is not None:
            raise self.replication_error

    def ports(self) -> CanaryPorts:
        return CanaryPorts(
            member="a",
            role=self.role,
            event=self.events,
            append_marker=self._append,
            wait_replicated=self._wait,
            applied_by_replica=lambda: self.applied,
            wall_clock=self.clock,
        )

    @staticmethod
    def payload(ts: float) -> bytes:
        """A canary marker's payload as the primary writes it."""
        return msgspec.msgpack.encode({"canary": ts})
