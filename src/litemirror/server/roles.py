"""Who is primary when a member starts: a pure decision, with the reason said in one sentence.

Rules (never guess):

* ``dr`` and ``reporting`` members are never primary at start; they follow
  whichever failover member is primary.
* A new mirror (no state on this member): the first failover member in the
  configuration is primary, the other is backup.
* A member that was backup rejoins as backup.
* A member that was primary becomes primary again only if it is the only
  failover member, or the other failover member confirms it (it is not
  primary itself and has not seen a newer epoch). If the other member is
  primary, this member joins as backup. If the other member cannot be
  reached, it waits — and says that it waits for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StartFacts:
    me: str
    kind: str
    first_failover: str
    peer: str | None  # the other failover member, if any
    last_role: str | None  # from this member's state file
    epoch: int
    #: The peer's status answer, or None when it could not be reached.
    peer_status: dict[str, Any] | None


@dataclass(frozen=True)
class StartDecision:
    role: str  # primary | backup | dr | reporting | waiting
    reason: str


def decide_start(f: StartFacts) -> StartDecision:
    if f.kind != "failover":
        return StartDecision(f.kind, f"member {f.me} is a {f.kind} member and follows the primary")
    if f.last_role is None:
        if f.me == f.first_failover:
            return StartDecision(
                "primary", f"new mirror: {f.me} is the first failover member in the configuration"
            )
        return StartDecision(
            "backup",
            f"new mirror: {f.first_failover} is the first failover member, {f.me} joins as backup",
        )
    if f.last_role != "primary":
        return StartDecision("backup", f"{f.me} was {f.last_role} and rejoins as backup")
    if f.peer is None:
        return StartDecision("primary", f"{f.me} was primary and is the only failover member")
    st = f.peer_status
    if st is None or st.get("role") == "down":
        return StartDecision(
            "waiting",
            f"{f.me} was primary; waiting for {f.peer} to confirm that no failover happened",
        )
    peer_role = st.get("role")
    peer_epoch = int(st.get("epoch") or 0)
    if peer_role == "primary":
        return StartDecision(
            "backup", f"{f.peer} is primary at epoch {peer_epoch}; {f.me} rejoins as backup"
        )
    if peer_epoch > f.epoch:
        return StartDecision(
            "backup",
            f"{f.peer} has seen epoch {peer_epoch}, newer than "
            f"{f.me}'s {f.epoch}; {f.me} rejoins as backup",
        )
    if peer_role in ("backup", "waiting"):
        return StartDecision(
            "primary",
            f"{f.me} was primary at epoch {f.epoch} and {f.peer} "
            f"({peer_role}) confirms no failover happened",
        )
    return StartDecision(
        "waiting", f"{f.me} was primary; {f.peer} is {peer_role}, waiting for it to confirm"
    )
