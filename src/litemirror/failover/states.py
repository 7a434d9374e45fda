"""How each failover state shows in the member's role snapshot (pure).

The failover machine's states (:class:`State`; the machine is
:mod:`.machine`) live here, with how each shows: operators and clients see a
coarser :class:`Role` and a state word beside it, and the
commit path needs one bit: may this member commit now. :data:`BEARING` is the
table from the machine's :class:`State` to those three, applied by the
member whenever its agent changes state (``server/ha/transitions.py``).

A state never *opens* writes: that is the ``OpenWrites`` action, run only
after the epoch is durable. A state may only keep writes open (the primary
states) or close them (every other state).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BEARING", "FOLLOWING", "HOLDING", "Bearing", "Role", "State", "bearing"]


class State(enum.Enum):
    WAITING = "waiting"  # does not know who is primary; does not commit or acknowledge
    BACKUP_CATCHING_UP = "backup catching up"  # follows the primary, not waited for
    BACKUP_ACTIVE = "backup active"  # caught up, acknowledging; may take over
    TAKING_OVER = "taking over"  # asked the arbiter for the next epoch
    PRIMARY = "primary"  # commits wait for the active backup's acknowledgement
    PRIMARY_ALONE = "primary alone"  # commits without the backup; arbiter recorded it
    IN_TROUBLE = "in trouble"  # thinks it holds the epoch but cannot prove it
    SWITCHING_OVER = "switching over"  # writes stopped; handing over to the backup
    FENCED = "fenced"  # deposed by a newer epoch; will rejoin as backup
    ASYNC = "async"  # DR or reporting member; never takes over by itself


#: States of a member that believes it holds the newest epoch.
HOLDING = frozenset({State.PRIMARY, State.PRIMARY_ALONE, State.IN_TROUBLE, State.SWITCHING_OVER})


class Role(enum.StrEnum):
    """What a member acts as. A ``StrEnum``: it compares equal to, and prints as, its word."""

    STARTING = "starting"
    #: Deciding its role, or waiting for a primary to appear.
    WAITING = "waiting"
    PRIMARY = "primary"
    #: The failover member that is not primary.
    BACKUP = "backup"
    #: A disaster-recovery member (async, can be promoted by hand).
    DR = "dr"
    #: A reporting member (async, read-only, never promoted).
    REPORTING = "reporting"


#: States in which the member follows a primary (or waits to rejoin one).
FOLLOWING = frozenset({State.BACKUP_ACTIVE, State.BACKUP_CATCHING_UP, State.FENCED})


@dataclass(frozen=True)
class Bearing:
    """What entering a failover state does to the role snapshot.

    ``role`` and ``word`` are None where the state leaves them as they were
    (the finer word is then set by whatever action runs next, e.g.
    "connecting" when following starts). ``keeps_writes``: writes that are
    open stay open; False closes them.
    """

    role: Role | None
    word: str | None
    keeps_writes: bool


BEARING: dict[State, Bearing] = {
    State.PRIMARY: Bearing(Role.PRIMARY, "active", keeps_writes=True),
    State.PRIMARY_ALONE: Bearing(Role.PRIMARY, "active (alone)", keeps_writes=True),
    # Holds the epoch but cannot prove it, or is handing over: no commit may land.
    State.IN_TROUBLE: Bearing(Role.PRIMARY, "in trouble", keeps_writes=False),
    State.SWITCHING_OVER: Bearing(Role.PRIMARY, "switching over", keeps_writes=False),
    State.BACKUP_ACTIVE: Bearing(Role.BACKUP, None, keeps_writes=False),
    State.BACKUP_CATCHING_UP: Bearing(Role.BACKUP, None, keeps_writes=False),
    State.FENCED: Bearing(Role.BACKUP, "fenced", keeps_writes=False),
    State.TAKING_OVER: Bearing(None, "taking over", keeps_writes=False),
    State.WAITING: Bearing(Role.WAITING, "waiting", keeps_writes=False),
    # DR and reporting members: their role comes from their kind, set when they follow.
    State.ASYNC: Bearing(None, None, keeps_writes=True),
}


def bearing(state: State) -> Bearing:
    """The row of :data:`BEARING` for ``state``."""
    return BEARING[state]
