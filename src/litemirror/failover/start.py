"""Which role a member takes when it starts, in a mirror without an arbiter (pure).

Theory of operation
-------------------
With an arbiter the failover table decides (a restarted failover member is
``WAITING`` until the arbiter or its peer says who holds the newest epoch);
this module then only says so. Without an arbiter there is no automatic
failover, and a member decides alone from what it remembers (its last role,
its epoch) and what its peer, the other failover member, says of itself —
never guessing:

* ``dr`` and ``reporting`` members follow whichever member is primary.
* A member that is primary (the peer, or a ``dr`` member promoted by an
  operator) at an epoch at least as new as ours is followed. One that is
  primary at an *older* epoch is not: this member was promoted after it
  (``promote --force``) or holds newer data; a person must look.
* The only failover member is primary.
* A peer that has seen a newer epoch than ours (a forced promote we missed)
  is never overruled: we join as backup.
* A member that was primary is primary again only when its peer answers and
  confirms that no failover happened (it is backup or waiting, at our epoch
  or older); unreachable, we wait and say for what.
* A member that was backup (or dr) rejoins as backup.
* A new member (nothing remembered) of a new mirror: the first failover member
  in the configuration is primary, the other backup — unless the peer
  already leads or knows a newer epoch, which wins.

:func:`decide_start` returns the role and one sentence saying why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StartRole(enum.Enum):
    PRIMARY = "primary"
    BACKUP = "backup"
    DR = "dr"
    REPORTING = "reporting"
    WAITING = "waiting"
    #: The failover state machine decides, with the arbiter.
    BY_ARBITER = "decided with the arbiter"


@dataclass(frozen=True)
class PeerStatus:
    """What another member says of itself."""

    role: str
    epoch: int
    name: str = ""


@dataclass(frozen=True)
class StartFacts:
    me: str
    kind: str  # failover | dr | reporting
    first_failover: str
    #: The other failover member, None when there is none.
    peer: str | None
    arbiter: bool
    #: From this member's state file (None: nothing remembered).
    last_role: str | None
    epoch: int
    #: The peer's answer, None when it could not be reached.
    peer_status: PeerStatus | None
    #: The member (peer or dr) that says it is primary at the newest epoch, if any.
    leader: PeerStatus | None = None


@dataclass(frozen=True)
class StartDecision:
    role: StartRole
    reason: str


def decide_start(f: StartFacts) -> StartDecision:
    """The role to take at start, and why."""
    if f.kind in ("dr", "reporting"):
        role = StartRole.DR if f.kind == "dr" else StartRole.REPORTING
        return StartDecision(role, f"member {f.me} is a {f.kind} member and follows the primary")
    if f.arbiter:
        return StartDecision(
            StartRole.BY_ARBITER,
            f"{f.me} asks the arbiter and {f.peer or 'its peer'} who holds the newest epoch",
        )
    lead = f.leader
    if lead is None and f.peer_status is not None and f.peer_status.role == "primary":
        lead = PeerStatus("primary", f.peer_status.epoch, f.peer or "")
    if lead is not None:
        if lead.epoch >= f.epoch:
            return StartDecision(
                StartRole.BACKUP,
                f"{lead.name} is primary at epoch {lead.epoch}; {f.me} joins it as backup",
            )
        return StartDecision(
            StartRole.WAITING,
            f"{lead.name} is primary at epoch {lead.epoch}, older than {f.me}'s epoch "
            f"{f.epoch}: not following a primary that may have lost data; stop one of "
            "them and start it again, or promote one with `litemirror promote --force`",
        )
    if f.peer is None:
        return StartDecision(StartRole.PRIMARY, f"{f.me} is the only failover member")
    st = f.peer_status
    if st is not None and st.epoch > f.epoch:
        return StartDecision(
            StartRole.BACKUP,
            f"{f.peer} has seen epoch {st.epoch}, newer than {f.me}'s {f.epoch}; "
            f"{f.me} joins as backup",
        )
    if f.last_role is None:
        if f.me == f.first_failover:
            return StartDecision(
                StartRole.PRIMARY,
                f"new mirror: {f.me} is the first failover member in the configuration",
            )
        return StartDecision(
            StartRole.BACKUP,
            f"new mirror: {f.first_failover} is the first failover member, {f.me} joins as backup",
        )
    if f.last_role != "primary":
        return StartDecision(StartRole.BACKUP, f"{f.me} was {f.last_role} and rejoins as backup")
    if st is None:
        return StartDecision(
            StartRole.WAITING,
            f"{f.me} was primary at epoch {f.epoch}; waiting for {f.peer} to confirm that "
            f"no failover happened (if {f.peer} is gone for good, make {f.me} primary with "
            f"`litemirror promote --member {f.me} --force`)",
        )
    if st.role in ("backup", "waiting"):
        return StartDecision(
            StartRole.PRIMARY,
            f"{f.me} was primary at epoch {f.epoch} and {f.peer} ({st.role}, epoch "
            f"{st.epoch}) confirms no failover happened",
        )
    return StartDecision(
        StartRole.WAITING,
        f"{f.me} was primary; {f.peer} is {st.role}, waiting for it to confirm that no "
        "failover happened",
    )
