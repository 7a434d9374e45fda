"""Manual failover: ``litemirror promote --member B --force``.

The oldest mirrors fail over by hand, and a mirror without an arbiter has no
other way: when its primary is gone for good, an operator makes the backup
(or a ``dr`` member) primary. Three things make that safe enough to offer:

* **What may be lost is said first.** :func:`assessment` compares what this
  member holds with what the primary had when last heard from; the command
  line shows it and asks for confirmation (the request must also name the
  member it is sent to, so a stray request cannot promote anything).
* **Never while the primary answers.** A member that still says it is
  primary is reachable: promoting now would make two primaries. The operator
  stops it first, or uses ``switchover`` (with an arbiter).
* **A newer epoch, recorded before the first write.** With an arbiter the
  claim goes through it (granted only while the holder is out of its
  contact). Without one the member takes the next epoch itself, writes it to
  its state file and journal, and only then accepts writes. The old primary,
  when it comes back, sees a primary at a newer epoch and rejoins as backup:
  its records the new primary never had are rolled back and kept in
  ``diverged/`` (``litemirror diverged``). If it never went down (a network
  partition), it steps down as soon as it can see the new primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litemirror.config import Member
from litemirror.errors import OperationalError, ProgrammingError
from litemirror.failover import PromoteRequested, State
from litemirror.failover.start import PeerStatus
from litemirror.failover.states import Role
from litemirror.server.ha.agent import FailoverAgent
from litemirror.server.ha.transitions import Transitions
from litemirror.server.ports import EventSink, RoleView


@dataclass(frozen=True)
class Holding:
    """What this member holds, and what it last heard of the primary."""

    member: str
    #: The last LSN in this member's journal.
    lsn: int
    #: The primary it followed (or last knew), if any.
    primary: str | None
    #: The primary's last LSN when last heard from (None: never heard).
    primary_lsn: int | None
    #: Seconds since the primary was last heard from (None: never).
    last_contact_s: float | None
    #: This member is the active synchronous backup now.
    active_backup: bool


def assessment(h: Holding) -> dict[str, Any]:
    """What a forced promote of this member would lose, as data and one sentence."""
    held, primary, primary_lsn, ago = h.lsn, h.primary, h.primary_lsn, h.last_contact_s
    behind = None if primary_lsn is None else max(0, primary_lsn - held)
    me, who = h.member, primary or "the last primary"
    when = f", {ago:g} s ago" if ago is not None else ""
    if h.active_backup:
        loss = (
            f"{me} is the active synchronous backup: it holds every commit {who} acknowledged "
            f"(LSN {held}); nothing acknowledged is lost"
        )
    elif behind == 0:
        loss = (
            f"{me} holds every record {who} had when last heard from (LSN {held}{when}); "
            f"commits {who} made after that without its backup are lost unless it comes back"
        )
    elif behind is not None:
        loss = (
            f"{me} is {behind} record(s) behind {who} (it holds LSN {held}, {who} had LSN "
            f"{primary_lsn} when last heard from{when}): those commits are lost unless "
            f"{who} comes back"
        )
    else:
        loss = (
            f"{me} holds LSN {held}; how far it is behind {who} is unknown: whatever {who} "
            "committed after that is lost unless it comes back"
        )
    return {
        "member": me,
        "lsn": held,
        "primary": primary,
        "primary_lsn": primary_lsn,
        "records_behind": behind,
        "last_contact_s": ago,
        "active_backup": h.active_backup,
        "loss": loss,
    }


class Promotion:
    """A forced promote of this member (see the module docstring).

    ``holding`` says what the member holds now; ``leader`` asks the other
    members which one says it is primary (None: nobody reachable does);
    ``watch_for_newer_primary`` starts the arbiter-less watch for a newer one.
    """

    def __init__(
        self,
        *,
        me: Member,
        role: RoleView,
        transitions: Transitions,
        agent: FailoverAgent | None,
        holding: Callable[[], Holding],
        leader: Callable[[], Awaitable[PeerStatus | None]],
        journal_epoch: Callable[[], int],
        event: EventSink,
        watch_for_newer_primary: Callable[[], None],
    ) -> None:
        self.me = me
        self.role = role
        self.transitions = transitions
        self.agent = agent
        self.holding = holding
        self.leader = leader
        self.journal_epoch = journal_epoch
        self.event = event
        self.watch_for_newer_primary = watch_for_newer_primary

    async def force_promote(self, confirm: str, dry_run: bool) -> dict[str, Any]:
        me = self.me
        if me.kind == "reporting":
            raise ProgrammingError("reporting members are never promoted")
        now = self.role()
        if now.role is Role.PRIMARY:
            raise OperationalError(f"member {me.name} is already primary (epoch {now.epoch})")
        info = assessment(self.holding())
        leader = await self.leader()
        if leader is not None:
            raise OperationalError(
                f"member {leader.name} is primary (epoch {leader.epoch}) and reachable: "
                f"promoting {me.name} now would make two primaries. Stop {leader.name} first, "
                f"or hand over with `litemirror switchover --to {me.name}` (needs an arbiter)"
            )
        if dry_run:
            now = self.role()
            return {**info, "state": now.role, "reason": now.reason, "dry_run": True}
        if confirm != me.name:
            raise ProgrammingError(
                f"a forced promote must be confirmed with the member's own name ({me.name!r})"
            )
        self.event("promote", f"forced promote of {me.name} requested: {info['loss']}", "warning")
        agent = self.agent
        if agent is not None:
            seen = agent.decision_count
            agent.feed(
                PromoteRequested(to_primary=True, records_behind=info["records_behind"], force=True)
            )
            for _ in range(300):
                if agent.state not in (State.TAKING_OVER,):
                    break
                await asyncio.sleep(0.05)
            return {
                **info,
                "state": agent.state.value,
                "reason": self.role().reason,
                "decisions": agent.decisions_since(seen),
            }
        # No arbiter: this member takes the next epoch itself, durably, before writing.
        epoch = max(self.role().epoch, self.journal_epoch()) + 1
        await self.transitions.record_epoch(epoch, me.name)
        await self.transitions.open_writes(epoch, wait_for_backup=False)
        reason = f"promoted to primary at epoch {epoch} by an operator (forced): {info['loss']}"
        self.transitions.note_reason(reason)
        self.event("promoted", reason, "warning", epoch=epoch)
        self.watch_for_newer_primary()
        return {
            **info,
            "state": "primary",
            "epoch": epoch,
            "reason": reason,
            "decisions": [reason],
        }
