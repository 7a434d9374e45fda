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
import time
from typing import TYPE_CHECKING, Any

from litemirror.errors import OperationalError, ProgrammingError
from litemirror.failover import PromoteRequested, State

if TYPE_CHECKING:
    from litemirror.server.node.member import MemberServer


def assessment(m: MemberServer) -> dict[str, Any]:
    """What a forced promote of this member would lose, as data and one sentence."""
    rcv = m.receiver
    held = m.journal.last_lsn
    primary = rcv.primary.name if rcv is not None and rcv.primary is not None else None
    primary = primary or m.state_file.last_primary
    primary_lsn = rcv.primary_lsn if rcv is not None and rcv.primary_lsn else None
    ago = (
        round(time.monotonic() - rcv.last_contact, 1)
        if rcv is not None and rcv.last_contact
        else None
    )
    active = m.agent is not None and m.agent.state is State.BACKUP_ACTIVE
    behind = None if primary_lsn is None else max(0, primary_lsn - held)
    me, who = m.me.name, primary or "the last primary"
    when = f", {ago:g} s ago" if ago is not None else ""
    if active:
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
        "active_backup": active,
        "loss": loss,
    }


async def force_promote(m: MemberServer, confirm: str, dry_run: bool) -> dict[str, Any]:
    """Make this member primary by operator decision (see the module docstring)."""
    if m.me.kind == "reporting":
        raise ProgrammingError("reporting members are never promoted")
    if m.role == "primary":
        raise OperationalError(f"member {m.me.name} is already primary (epoch {m.epoch})")
    info = assessment(m)
    _, leader = await m.statuses()
    if leader is not None:
        raise OperationalError(
            f"member {leader.name} is primary (epoch {leader.epoch}) and reachable: promoting "
            f"{m.me.name} now would make two primaries. Stop {leader.name} first, or hand "
            f"over with `litemirror switchover --to {m.me.name}` (needs an arbiter)"
        )
    if dry_run:
        return {**info, "state": m.role, "reason": m.role_reason, "dry_run": True}
    if confirm != m.me.name:
        raise ProgrammingError(
            f"a forced promote must be confirmed with the member's own name ({m.me.name!r})"
        )
    m.event("promote", f"forced promote of {m.me.name} requested: {info['loss']}", "warning")
    if m.agent is not None:
        seen = m.agent.decision_count
        m.agent.feed(
            PromoteRequested(to_primary=True, records_behind=info["records_behind"], force=True)
        )
        for _ in range(300):
            if m.agent.state not in (State.TAKING_OVER,):
                break
            await asyncio.sleep(0.05)
        return {
            **info,
            "state": m.agent.state.value,
            "reason": m.role_reason,
            "decisions": m.agent.decisions_since(seen),
        }
    # No arbiter: this member takes the next epoch itself, durably, before writing.
    epoch = max(m.epoch, m.journal.last_epoch) + 1
    await m.transitions.record_epoch(epoch, m.me.name)
    await m.transitions.open_writes(epoch, wait_for_backup=False)
    reason = f"promoted to primary at epoch {epoch} by an operator (forced): {info['loss']}"
    m.transitions.note_reason(reason)
    m.event("promoted", reason, "warning", epoch=epoch)
    m.watch_for_newer_primary()
    return {**info, "state": "primary", "epoch": epoch, "reason": reason, "decisions": [reason]}
