"""Who may hold a connection: every connection counted by what it has shown itself to be.

Theory of operation
-------------------
Each connection accepted on a member's or the arbiter's ports holds one
*ticket* in one class. A class has a cap overall and per peer host (and, for
logged-in clients, per user); a connection moves to another class when it
shows more of itself, and is checked against the caps of the class it enters:

=========== ===================================================================
HANDSHAKE   accepted, not yet through its Hello: TCP, the TLS handshake, the
            first frame, the login. Closed at ``handshake_timeout`` after it
            was accepted unless it said Hello by then (:meth:`Admission.hello`;
            a login the back-off slows down is not cut). When every place is
            taken, the *oldest* connection that has said nothing is closed to
            admit the newcomer (the oldest of all if every one has): a real
            peer finishes in milliseconds, so a flood of silent connections
            cannot keep a member's link out; past the per-host cap the
            newcomer is refused instead (one host may not push everybody
            else out).
ANONYMOUS   said Hello without a login: may only ping and ask for status.
            Closed ``anonymous_timeout`` after its Hello whatever it does, so
            pinging does not keep it.
CLIENT      logged in (or ``auth.require`` is off): ``max_connections``, per
            host and per user.
MEMBER      presented a member certificate, or said a member's hello that was
            authorised. Never refused here: there are few of them, each one
            is needed for replication or failover, and a certificate from
            the mirror's CA cannot be made up by a stranger.
HTTP        anything on the HTTP port (its own timeouts are aiohttp's).
=========== ===================================================================

Moves (``_MOVES``): HANDSHAKE -> ANONYMOUS, CLIENT, MEMBER; ANONYMOUS ->
CLIENT, MEMBER (an admin action that logs in); CLIENT -> CLIENT (another
user). A member's link stays one whatever it then says (a member asking
another for its status presents its certificate and no login). A refused
move leaves the ticket where it was; the caller answers the peer with the
refusal's message and closes.

Pure: the caller passes ``now`` (seconds, any monotonic clock) and acts on
what comes back (closes the connections of evicted or expired tickets).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field, replace


class Kind(enum.Enum):
    HANDSHAKE = "handshake"
    ANONYMOUS = "anonymous"
    CLIENT = "client"
    MEMBER = "member"
    HTTP = "http"


#: Which class a ticket may move to from its current one.
_MOVES: dict[Kind, frozenset[Kind]] = {
    Kind.HANDSHAKE: frozenset({Kind.ANONYMOUS, Kind.CLIENT, Kind.MEMBER}),
    Kind.ANONYMOUS: frozenset({Kind.CLIENT, Kind.MEMBER}),
    Kind.CLIENT: frozenset({Kind.CLIENT}),
    Kind.MEMBER: frozenset(),
    Kind.HTTP: frozenset(),
}


@dataclass(frozen=True)
class Caps:
    """The caps of each class (``limits.*`` in the config; names follow its keys)."""

    max_connections: int = 1024
    max_connections_per_host: int = 256
    max_connections_per_user: int = 512
    max_handshakes: int = 256
    max_handshakes_per_host: int = 64
    max_anonymous: int = 64
    max_anonymous_per_host: int = 8
    http_max_connections: int = 256
    http_max_connections_per_host: int = 32
    handshake_timeout: float = 5.0
    anonymous_timeout: float = 10.0

    #: The overall caps, which the descriptor budget may lower (name -> per-host partner).
    TOTALS = (
        ("max_connections", ("max_connections_per_host", "max_connections_per_user")),
        ("max_handshakes", ("max_handshakes_per_host",)),
        ("max_anonymous", ("max_anonymous_per_host",)),
        ("http_max_connections", ("http_max_connections_per_host",)),
    )

    def with_totals(self, totals: dict[str, int]) -> Caps:
        """These caps with some overall caps replaced; per-host caps never exceed them."""
        changes: dict[str, int] = {}
        for total, partners in self.TOTALS:
            if total not in totals:
                continue
            changes[total] = totals[total]
            for p in partners:
                changes[p] = min(getattr(self, p), totals[total])
        return replace(self, **changes)

    def totals(self) -> dict[str, int]:
        return {total: int(getattr(self, total)) for total, _ in self.TOTALS}


@dataclass(frozen=True)
class Refused:
    """A connection refused: ``key`` is the limit that refused it, ``message`` the peer's answer."""

    key: str
    message: str


@dataclass(frozen=True)
class Admitted:
    ticket: int
    #: Tickets of older handshakes that had to make room: close their connections.
    evicted: tuple[int, ...] = ()


@dataclass
class _Ticket:
    kind: Kind
    host: str
    since: float
    user: str | None = None


@dataclass
class Admission:
    caps: Caps = field(default_factory=Caps)
    _tickets: dict[int, _Ticket] = field(default_factory=dict)
    #: Tickets of each class in the order they entered it (dicts keep order):
    #: the first is the oldest, and expiry stops at the first one still in time.
    _by_kind: dict[Kind, dict[int, None]] = field(default_factory=lambda: {k: {} for k in Kind})
    #: Handshakes that have not said Hello yet, oldest first: on the deadline.
    _silent: dict[int, None] = field(default_factory=dict)
    _per_host: Counter[tuple[Kind, str]] = field(default_factory=Counter)
    _per_user: Counter[str] = field(default_factory=Counter)
    _next: int = 1
    #: Refusals since start, per limit key (for status and metrics).
    refused: Counter[str] = field(default_factory=Counter)

    # ------------------------------------------------------------ queries

    def count(self, kind: Kind) -> int:
        return len(self._by_kind[kind])

    def counts(self) -> dict[str, int]:
        return {k.value: len(v) for k, v in self._by_kind.items()}

    def kind_of(self, ticket: int) -> Kind | None:
        t = self._tickets.get(ticket)
        return t.kind if t is not None else None

    # ------------------------------------------------------------ changes

    def arrive(self, host: str, now: float, *, http: bool = False) -> Admitted | Refused:
        """A connection was accepted from ``host`` (on the HTTP port when ``http``)."""
        c = self.caps
        if http:
            refusal = self._full(
                Kind.HTTP,
                host,
                ("http_max_connections", c.http_max_connections, "the HTTP port is at its limit"),
                (
                    "http_max_connections_per_host",
                    c.http_max_connections_per_host,
                    f"too many HTTP connections from {host}",
                ),
            )
            if refusal is not None:
                return refusal
            return Admitted(self._add(Kind.HTTP, host, now))
        if self._per_host[(Kind.HANDSHAKE, host)] >= c.max_handshakes_per_host:
            return self._refuse(
                "max_handshakes_per_host",
                c.max_handshakes_per_host,
                f"too many connections from {host} still in their handshake",
            )
        evicted: list[int] = []
        handshakes = self._by_kind[Kind.HANDSHAKE]
        while len(handshakes) >= c.max_handshakes:
            oldest = next(iter(self._silent or handshakes))
            self.leave(oldest)
            evicted.append(oldest)
        if evicted:
            self.refused["limits.max_handshakes"] += len(evicted)
        return Admitted(self._add(Kind.HANDSHAKE, host, now), tuple(evicted))

    def become(
        self, ticket: int, kind: Kind, now: float, user: str | None = None
    ) -> Refused | None:
        """Move ``ticket`` to ``kind`` (as ``user``, for a client); None when admitted.

        An unknown ticket (its connection was already closed or evicted) is
        left alone: its connection is going away anyway.
        """
        t = self._tickets.get(ticket)
        if t is None:
            return None
        if t.kind is Kind.MEMBER:
            return None
        if kind not in _MOVES[t.kind]:
            raise ValueError(f"a {t.kind.value} connection cannot become {kind.value}")
        c = self.caps
        refusal: Refused | None = None
        if kind is Kind.ANONYMOUS:
            refusal = self._full(
                kind,
                t.host,
                (
                    "max_anonymous",
                    c.max_anonymous,
                    "too many connections without a login; log in (user:password@) or retry later",
                ),
                (
                    "max_anonymous_per_host",
                    c.max_anonymous_per_host,
                    f"too many connections without a login from {t.host}; log in "
                    "(user:password@) or close some",
                ),
            )
        elif kind is Kind.CLIENT:
            # A client that logs in as another user keeps its place in the class.
            if t.kind is not Kind.CLIENT:
                refusal = self._full(
                    kind,
                    t.host,
                    ("max_connections", c.max_connections, "no connection left for clients"),
                    (
                        "max_connections_per_host",
                        c.max_connections_per_host,
                        f"too many connections from {t.host}; close some",
                    ),
                )
            if (
                refusal is None
                and user is not None
                and user != t.user
                and self._per_user[user] >= c.max_connections_per_user
            ):
                refusal = self._refuse(
                    "max_connections_per_user",
                    c.max_connections_per_user,
                    f"user {user!r} has too many connections open; close some",
                )
        if refusal is not None:
            return refusal
        self._remove(ticket, t)
        t.kind, t.since, t.user = kind, now, user if kind is Kind.CLIENT else None
        self._insert(ticket, t)
        return None

    def hello(self, ticket: int) -> None:
        """The connection said Hello: its login may take longer than the handshake deadline."""
        self._silent.pop(ticket, None)

    def leave(self, ticket: int) -> None:
        """The connection of ``ticket`` closed (or is being closed); no-op if already gone."""
        t = self._tickets.pop(ticket, None)
        if t is not None:
            self._remove(ticket, t)

    def expired(self, now: float) -> list[tuple[int, Kind]]:
        """Tickets past their deadline, removed here: close their connections."""
        out: list[tuple[int, Kind]] = []
        for kind, waiting, limit in (
            (Kind.HANDSHAKE, self._silent, self.caps.handshake_timeout),
            (Kind.ANONYMOUS, self._by_kind[Kind.ANONYMOUS], self.caps.anonymous_timeout),
        ):
            for ticket in waiting:
                if now - self._tickets[ticket].since < limit:
                    break
                out.append((ticket, kind))
        for ticket, _ in out:
            self.leave(ticket)
        return out

    # ----------------------------------------------------------- plumbing

    def _full(
        self, kind: Kind, host: str, total: tuple[str, int, str], per_host: tuple[str, int, str]
    ) -> Refused | None:
        if len(self._by_kind[kind]) >= total[1]:
            return self._refuse(*total)
        if self._per_host[(kind, host)] >= per_host[1]:
            return self._refuse(*per_host)
        return None

    def _refuse(self, key: str, cap: int, what: str) -> Refused:
        self.refused[f"limits.{key}"] += 1
        return Refused(f"limits.{key}", f"{what} (limits.{key} = {cap})")

    def _add(self, kind: Kind, host: str, now: float) -> int:
        ticket = self._next
        self._next += 1
        t = _Ticket(kind, host, now)
        self._tickets[ticket] = t
        self._insert(ticket, t)
        return ticket

    def _insert(self, ticket: int, t: _Ticket) -> None:
        self._by_kind[t.kind][ticket] = None
        if t.kind is Kind.HANDSHAKE:
            self._silent[ticket] = None
        self._per_host[(t.kind, t.host)] += 1
        if t.user is not None:
            self._per_user[t.user] += 1

    def _remove(self, ticket: int, t: _Ticket) -> None:
        self._by_kind[t.kind].pop(ticket, None)
        self._silent.pop(ticket, None)
        key = (t.kind, t.host)
        self._per_host[key] -= 1
        if self._per_host[key] <= 0:
            del self._per_host[key]
        if t.user is not None:
            self._per_user[t.user] -= 1
            if self._per_user[t.user] <= 0:
                del self._per_user[t.user]
