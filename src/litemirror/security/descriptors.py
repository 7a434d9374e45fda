"""How many file descriptors a process may need, and connection caps that fit its limit.

Theory of operation
-------------------
A member holds descriptors for its open databases (each connection: the
database file and its WAL; one shared-memory file per database), its
journal, event log and logs (``files``), its links to other members, and
network connections. Only the last can be multiplied by strangers. At
start the process asks for the descriptors it may need: the soft
``RLIMIT_NOFILE`` is raised towards the hard one. When even the hard limit
is too small, the databases keep their share (at most half of the limit:
``server.max_open_databases`` is a cap, rarely reached), files and
members' links keep theirs, and the overall connection caps are lowered in
proportion until every class fits — so connections are refused by a cap,
with an answer and an event, before the process runs out of descriptors
(where ``accept`` fails and nothing useful can be said).

Pure: the caller reads and sets the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from .admission import Caps

#: The least a connection class is lowered to.
FLOOR = 4
#: The listen backlog of a member's port, its HTTP port and the arbiter's
#: port. asyncio accepts up to a backlog of connections in one go before any
#: of them is looked at, so each listening socket may hold that many
#: descriptors beyond the caps.
LISTEN_BACKLOG = 128
HTTP_BACKLOG = 32
ARBITER_BACKLOG = 64
#: Descriptors one connection of each class may hold: a connection in its
#: handshake holds a second one while its first bytes are peeked at.
WEIGHT = {"max_handshakes": 2}
#: Descriptors for everything but databases, members and connections: the
#: journal segments, the event log, logs, the event loop's own, a backup or
#: import in progress, hook pipes, outbound HTTP and control calls.
FILES = 64


def database_descriptors(max_open_databases: int, readers_per_database: int) -> int:
    """Worst case for open databases: (writer + readers) x (file + WAL), + shared memory."""
    return max_open_databases * (2 * (1 + readers_per_database) + 1)


def member_descriptors(members: int) -> int:
    """Links with the other members and the arbiter, both directions, with room to reconnect."""
    return 4 * members + 8


@dataclass(frozen=True)
class Budget:
    #: What to set the soft limit to.
    soft_limit: int
    caps: Caps
    #: Descriptors wanted with the configured caps.
    wanted: int
    #: Why the caps were lowered (logged and kept as an event); None when they fit.
    shortfall: str | None = None


def plan(
    soft: int,
    hard: int | None,
    caps: Caps,
    *,
    databases: int,
    members: int,
    backlog: int = LISTEN_BACKLOG,
    classes: tuple[str, ...] | None = None,
) -> Budget:
    """The soft limit to ask for and the caps that fit it (``hard`` None: unlimited).

    ``backlog``: the listen backlogs of the process's listening sockets,
    added up; ``classes``: the overall caps of the connection classes the
    process serves (None: all); the others are neither counted nor changed.
    """
    totals = {k: v for k, v in caps.totals().items() if classes is None or k in classes}
    connections = sum(v * WEIGHT.get(k, 1) for k, v in totals.items())
    files = FILES + backlog
    wanted = databases + files + members + connections
    limit = max(soft, wanted) if hard is None else min(hard, max(soft, wanted))
    if wanted <= limit:
        return Budget(limit, caps, wanted)
    kept = files + members + min(databases, limit // 2)
    room = max(limit - kept, 0)
    scale = room / connections
    lowered = {k: max(FLOOR, int(v * scale)) for k, v in totals.items()}
    new = caps.with_totals(lowered)
    said = ", ".join(f"limits.{k} {totals[k]} -> {lowered[k]}" for k in totals)
    hard_said = "unlimited" if hard is None else str(hard)
    return Budget(
        limit,
        new,
        wanted,
        f"the descriptor limit (RLIMIT_NOFILE {limit}, hard {hard_said}) is below the "
        f"{wanted} this process may need (databases {databases}, files and accepts {files}, "
        f"members' "
        f"links {members}, connections {connections}); connection caps lowered "
        f"to fit: {said}. Raise the limit (ulimit -n, systemd LimitNOFILE=) or lower "
        "server.max_open_databases",
    )
