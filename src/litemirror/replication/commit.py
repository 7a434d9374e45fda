"""The mirror's commit point: which records no failover can take back (pure).

Theory of operation
-------------------
A journal record is *committed* once no automatic failover can remove it
from the mirror's history. Only committed records may become visible to a
reader on any member, and only a committed record may be acknowledged to
a client. This module holds those rules; the hub, the receiver and the
startup path only gather their inputs.

On the **primary**, the commit point is the highest LSN such that every
record at or below it is committed. It moves in two ways:

* the *backup* (the other failover member, the only member that can take
  over automatically) acknowledged the record at the mirror's ack level —
  whatever the primary's mode, since any automatic failover keeps what the
  backup holds;
* the primary holds *proof that it may commit alone* (mode ``ALONE``): the
  arbiter recorded the backup inactive for this epoch, or, in a mirror
  without an arbiter, the fixed primary dropped its backup after the QoS
  timeout. Then a record is committed as soon as it is durable locally.

Without either, a record stays *in doubt*: its group waits and is never
committed in SQLite. A primary that stops writing (demotion) goes to
``HELD``: nothing becomes committed except through backup acknowledgements
already on the wire, and the groups still waiting are aborted.

On a **follower** the same line separates what it may apply (make visible)
from what it only keeps in its journal:

* the backup applies what it receives: it is the member that takes over,
  so what it holds is in every automatic failover's history;
* ``dr`` and ``reporting`` members receive early but apply only up to the
  primary's commit point, which the primary sends them as it moves;
* after a restart every member replays its journal only up to the commit
  point it last recorded, and learns the fate of the rest from the primary
  it rejoins (a record the new primary also holds is committed; one it never
  had is rolled back without ever having been visible).
"""

from __future__ import annotations

import enum

#: Acknowledgement levels, weakest first.
ACK_LEVELS = ("received", "durable", "applied")


class CommitMode(enum.Enum):
    """What lets a primary's records become committed, besides backup acknowledgements."""

    HELD = "held"  # no proof: only backup acknowledgements commit
    WITH_BACKUP = "with backup"  # commits wait for the active backup
    ALONE = "alone"  # proof to commit without the backup: local durability commits


def advance(committed: int, mode: CommitMode, *, backup_acked: int, local_durable: int) -> int:
    """The primary's new commit point (it never moves back).

    ``backup_acked`` is the highest LSN the backup acknowledged at the
    mirror's ack level (0 when there is no backup link); ``local_durable``
    the primary's own last durable LSN.
    """
    new = max(committed, backup_acked)
    if mode is CommitMode.ALONE:
        new = max(new, local_durable)
    return new


def may_answer(lsn: int, *, committed: int, mode: CommitMode, backup_acked_at_level: int) -> bool:
    """Whether a group whose record is ``lsn`` may commit in SQLite and answer its clients.

    The record must be committed; while commits wait for the backup, a
    client that asked for a stronger level than the mirror's (``applied``)
    also waits for the backup to reach it (``backup_acked_at_level``).
    """
    if lsn > committed:
        return False
    return mode is not CommitMode.WITH_BACKUP or backup_acked_at_level >= lsn


def follower_confirmed(
    confirmed: int, *, failover_kind: bool, received: int, primary_committed: int
) -> int:
    """A follower's new commit point: the records it may apply (it never moves back).

    ``received`` is the last record of its journal received in the current
    session (the session's start was validated against the primary's
    history); ``primary_committed`` the commit point the primary last sent.
    """
    if failover_kind:
        return max(confirmed, received)
    return max(confirmed, min(received, primary_committed))


def startup_limit(journal_last: int, recorded: int | None) -> int:
    """How far a restarting member replays its journal into the databases.

    ``recorded`` is the commit point in its state file (None: written by a
    version that did not record it; the whole journal is trusted, as then).
    """
    if recorded is None:
        return journal_last
    return min(journal_last, recorded)
